//! The provable audit log.
//!
//! * [`tree`]: RFC 9162 Merkle tree hashing, inclusion and consistency
//!   proofs and their verification.
//! * [`Entry`]: canonical audit entries in which every field is hashed;
//!   [`Event`]: the names they are written under.
//! * [`AuditLog`]: the durable store — append-only segments, group commit
//!   with fsync (an append is acknowledged only once on disk), crash
//!   recovery that truncates a torn tail and refuses damaged logs, bounded
//!   memory, proofs served from stored subtree roots.
//! * [`note`]: C2SP signed-note checkpoints with Ed25519.
//! * [`verify_log`]: offline verification with only the files and the
//!   public key.
//!
//! Formats: `docs/wire/audit.md`.

#![forbid(unsafe_code)]

mod entry;
mod event;
mod export;
pub mod note;
mod store;
pub mod tree;
mod verify;

pub use entry::{Draft, ENTRY_VERSION, Entry, EntryError, MAX_ENTRY_BYTES, rfc3339_millis};
pub use event::Event;
pub use export::{cloud_event, jsonl_line};
pub use store::{Appended, AuditError, AuditLog, Options, Queued, StoredEntry, Ticket};
pub use tree::{Hash, hex, leaf_hash, node_hash, parse_hex, verify_consistency, verify_inclusion};
pub use verify::{CheckpointResult, Problem, Report, verify_log};

pub(crate) fn store_io(path: &std::path::Path, e: impl std::fmt::Display) -> AuditError {
    AuditError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}
