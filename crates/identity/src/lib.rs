//! Key-bound agent identities.
//!
//! * [`KeyPair`] / [`PublicKey`]: Ed25519, with domain-separated signing so a
//!   signature made for one purpose can never be replayed as another.
//! * [`Did`]: `did:mesh:z6Mk…`, derived from the public key (the same
//!   method-specific id as `did:key`, and both spellings parse).
//! * [`DidDocument`] and [`Jwk`]: W3C DID document (`Multikey`) and
//!   OKP/Ed25519 JWK export and import.
//! * [`SpiffeId`]: strict SPIFFE IDs, `spiffe://<trust-domain>/agent/<name>`.
//! * [`Sponsorship`]: a human sponsor's signed attestation for an agent.
//!
//! Everything here is pure: no I/O, no clocks (callers pass the time in).

#![forbid(unsafe_code)]

mod canonical;
mod did;
mod document;
mod keys;
mod names;
mod spiffe;
mod sponsorship;

pub use canonical::{canonical_json, to_canonical_json};
pub use did::{Did, DidError, DidMethod};
pub use document::{DidDocument, Jwk, JwkError, VerificationMethod};
pub use keys::{KeyError, KeyPair, PublicKey, SIGNATURE_LEN, Signature, sha256};
pub mod jcs;
pub use names::{NameError, validate_agent_name, validate_email};
pub use spiffe::{SpiffeError, SpiffeId};
pub use sponsorship::{SPONSORSHIP_DOMAIN, Sponsorship, SponsorshipError};
