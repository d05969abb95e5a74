//! Delegation chains that can only narrow.
//!
//! A token is a chain of links. The root link is signed by a human sponsor
//! and grants capabilities to an agent; each further link is signed by the
//! previous link's audience and grants a subset of what it received, for a
//! window inside the parent's, with less remaining depth. [`verify`] checks
//! all of that against the registry ([`Directory`]) and fails closed;
//! [`HolderProof`] lets the final audience prove it holds its key;
//! [`VerifiedCache`] makes repeat verification cost a hash lookup while
//! still honouring expiry and revocation.
//!
//! The byte layout is in [`wire`] and `docs/wire/delegation.md`.

#![forbid(unsafe_code)]

mod cache;
mod holder;
mod memory;
mod token;
mod verify;
pub mod wire;

pub use cache::VerifiedCache;
pub use holder::{HOLDER_DOMAIN, HolderError, HolderProof, ReplayGuard};
pub use memory::MemoryDirectory;
pub use token::{Grant, IssueError, StepError, Token, check_step};
pub use verify::{
    AgentEntry, AgentStatus, Directory, LinkSummary, SponsorEntry, VerifiedChain, VerifyError,
    VerifyOptions, hex, verify, verify_token,
};
