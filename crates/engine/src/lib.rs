//! The governance pipeline every protocol adapter calls.
//!
//! * [`Engine::authenticate_from`]: a mesh-issued bearer [`credential`], a
//!   delegation token with a holder proof or an IATP attestation → a
//!   [`Principal`]; signatures are verified once and cached, liveness is
//!   checked on every call. Failures are counted against the [`source`]
//!   they came from, never against the agent they name.
//! * [`Engine::decide`]: live identity → capability → trust gate → policy
//!   (with arguments) → rate limit → compliance obligations → decision →
//!   audit leaf → trust event. Protocol-agnostic; adapters only translate.
//! * [`Engine::visible`]: whether a tool should appear in a caller's list.
//! * [`Engine::await_approval`]: holds a `require_approval` call until a
//!   human decides (in the shared registry) or the approval expires.
//! * [`arguments`]: path arguments normalised before policy sees them.

#![forbid(unsafe_code)]

/// The one argument normaliser (in the policy crate, so `policy test`
/// judges arguments exactly as the gateways do).
pub use agentmesh_policy::arguments;
pub mod credential;
pub mod metrics;
mod pipeline;
mod sink;
mod snapshot;
pub mod source;
mod trust;

pub use pipeline::{
    APPROVAL_EVENT, AUTH_FAILED_EVENT, AUTH_FAILED_SUMMARY_EVENT, AUTH_SOURCE_ANOMALY_EVENT,
    AuthError, AuthMethod, Call, DECISION_EVENT, Engine, EngineConfig, EngineError, Presented,
    Principal, RESULT_EVENT, Verdict,
};
pub use snapshot::{AgentView, Snapshot};
