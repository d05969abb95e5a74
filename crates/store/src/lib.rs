//! The mesh home and the registry.
//!
//! * [`MeshHome`]: the directory (`$AGENTMESH_HOME`, default `./.agentmesh`)
//!   holding the mesh authority key, `config.toml`, private keys (0600, and
//!   refused when readable by others) and the embedded registry database.
//! * [`Registry`]: sponsors, agents and revoked delegation links behind one
//!   async trait. [`SqliteRegistry`] is the embedded implementation; a
//!   PostgreSQL one implements the same trait and runs the same tests.

#![forbid(unsafe_code)]

mod error;
mod home;
mod mesh;
mod records;
mod registry;
mod sql;
mod trust;

pub use error::StoreError;
pub use home::{DEFAULT_HOME, Defaults, KeyKind, MeshConfig, MeshHome, read_private_key};
pub use mesh::{Mesh, MeshError, NewAgent, NewDelegation, Recorded};
pub use records::{
    AgentRecord, ApprovalRecord, ApprovalStatus, Change, KeyCustody, PolicyDocument, Registration,
    RegistrationStatus, RevokedCredential, RevokedLink, SponsorRecord, ToolPin,
};
pub use registry::{Registry, load_directory, parse_hex32};
pub use sql::{Backend, SqlRegistry, SqliteRegistry, postgres_test_schema};
pub use trust::{
    RecomputeReport, TRUST_DETAIL_KEY, TRUST_EVENT, TrustOutcome, decision_event, trust_event_of,
};

/// Seconds since the Unix epoch, from the system clock.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
