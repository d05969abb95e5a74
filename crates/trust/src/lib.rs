//! Continuous trust.
//!
//! Every agent has, per dimension (policy compliance, security posture,
//! output quality, resource efficiency, collaboration), Beta evidence that
//! forgets exponentially with time; the composite is a weighted score in
//! 0–1 with an uncertainty, mapped to configurable tiers. Scores are a pure
//! fold over [`TrustEvent`]s, each of which is also an audit leaf, so anyone
//! with the audit log can recompute them. Streaming [`detect`]ors turn
//! unusual behaviour into anomaly events. The model and its formulas are in
//! `docs/trust-model.md`.

#![forbid(unsafe_code)]

mod config;
pub mod detect;
mod engine;
mod event;
mod model;

pub use config::{ConfigError, DetectorConfig, Tier, TrustConfig, Weights};
pub use detect::{Activity, Anomaly, Behaviour};
pub use engine::{Applied, TrustEngine, TrustError};
pub use event::{EventKind, Severity, TrustEvent, effect};
pub use model::{
    AgentTrust, Dimension, DimensionScore, Evidence, GAIN_MEMORY, Gains, Score, decay_factor,
    tier_of,
};
