//! Reports built from audit evidence (filled in below).
