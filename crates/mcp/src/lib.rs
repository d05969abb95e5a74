//! MCP governance.
//!
//! * [`message`]: lossless JSON-RPC handling (ids, `_meta`, unknown fields
//!   and methods pass through as the original bytes).
//! * [`govern`]: which MCP methods are judged, per-caller list filtering,
//!   denials as protocol-correct errors.
//! * [`pins`]: tool-definition pinning.
//! * [`stdio`]: supervised stdio servers; [`wrap`]: the stdio wrapper that
//!   a desktop client's config points at.

#![forbid(unsafe_code)]
// Handlers return early with an HTTP response as the error value; boxing
// them would only add an allocation on the error path.
#![allow(clippy::result_large_err)]

pub mod config;
pub mod gateway;
pub mod govern;
pub mod message;
pub mod pins;
/// Server-sent events (the gateway core's, shared with A2A and the control
/// plane's client).
pub use agentmesh_gateway::sse;
pub mod stdio;
pub mod upstream;
pub mod wrap;
