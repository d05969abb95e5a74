//! A2A governance: the gateway in front of A2A agents (both protocol
//! versions, both HTTP bindings, streaming, task affinity), agent cards
//! re-signed with the mesh key, and the bridge between A2A and MCP.

#![forbid(unsafe_code)]

pub mod bridge;
pub mod card;
pub mod config;
pub mod gateway;
pub mod outbound;
/// RFC 8785, shared with the IATP request binding.
pub use agentmesh_identity::jcs;
pub mod protocol;
