//! The gateway runtime core: what every AgentMesh listener shares, below the
//! protocol crates (MCP, A2A) and the control plane, so that each of them
//! only translates its own messages.

pub mod config;
pub mod http;
pub mod jsonrpc;
pub mod refusal;
pub mod serve;
pub mod sse;

pub use serve::{ServeOptions, serve};
