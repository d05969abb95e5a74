//! A2A governance: the gateway in front of A2A agents (both protocol
//! versions, both HTTP bindings, streaming, task affinity) and agent cards
//! re-signed with the mesh key. Agents whose skills come from elsewhere
//! are answered by backends registered when the gateway is built
//! ([`backend`]); the A2A⇄MCP bridge is one, in `agentmesh-bridge`.

#![forbid(unsafe_code)]

pub mod backend;
pub mod card;
pub mod config;
pub mod gateway;
pub mod outbound;
/// RFC 8785, shared with the IATP request binding.
pub use agentmesh_identity::jcs;
pub mod protocol;
