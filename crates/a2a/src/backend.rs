//! Agents whose skills come from elsewhere: the gateway's one extension
//! point.
//!
//! An agent configured with `url:` is an A2A upstream: the gateway reads
//! its card and forwards what it allows. Any other agent (today: `mcp:
//! <url>`, the A2A⇄MCP bridge in `agentmesh-bridge`) is answered by an
//! [`AgentBackend`] registered under its name when the gateway is built
//! ([`crate::gateway::Builder::backend`]); building fails for such an
//! agent without one, so a configuration is never half served.
//!
//! The gateway still does everything A2A: it serves and signs the card the
//! backend builds, authenticates the caller and judges the operation as an
//! A2A call (the first leg); the backend answers only what was allowed.
//! This crate knows nothing of MCP: protocols that meet live above both.

use crate::gateway::{Binding, Gateway};
use crate::protocol::{Op, Version};
use agentmesh_engine::{Principal, Verdict};
use axum::response::Response;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed future, as a trait object's async method returns it.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An agent the gateway answers through something other than an A2A
/// upstream.
pub trait AgentBackend: Send + Sync + std::fmt::Debug {
    /// The agent's card, not yet signed (the gateway signs and serves
    /// it). `base` is the agent's URL at the gateway, without a trailing
    /// slash. Called when the gateway is built (an error stops the start)
    /// and every minute (an error keeps the last card, logged).
    fn card<'a>(&'a self, name: &'a str, base: &'a str) -> BoxFuture<'a, Result<Value, String>>;

    /// Answers one operation the gateway has judged and allowed.
    fn answer<'a>(&'a self, gw: &'a Gateway, call: Judged<'a>) -> BoxFuture<'a, Response>;

    /// Where the agent comes from, for the start-up log (in place of what
    /// an upstream's card signature said).
    fn describe(&self) -> String;
}

/// One operation to an agent with a backend, after the gateway allowed it.
#[derive(Debug)]
pub struct Judged<'a> {
    /// The authenticated caller.
    pub principal: &'a Principal,
    /// The agent, as [`Gateway::agent`] numbers it.
    pub agent: usize,
    pub op: Op,
    pub binding: Binding,
    /// From `A2A-Version` (0.3 when absent).
    pub version: Version,
    /// The request's params (JSON-RPC) or body (REST).
    pub params: &'a Value,
    /// The A2A leg's decision: allowed, with no result recorded yet. The
    /// backend records one (`Engine::record_result`) on every path, as
    /// the gateway does for a forwarded call.
    pub verdict: Verdict,
    /// The JSON-RPC id (null for REST).
    pub id: &'a Value,
}

/// One fronted agent, as an extension sees it.
#[derive(Debug, Clone)]
pub struct AgentView {
    /// Its number: the position in the configuration's `agents`.
    pub index: usize,
    pub name: Arc<str>,
    /// The card the gateway serves for it (signed JSON), as last refreshed.
    pub card: Arc<str>,
    /// Answered by an [`AgentBackend`] rather than an A2A upstream.
    pub backend: bool,
}

/// Why [`Gateway::send_message`] got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the agent offers no JSON-RPC interface")]
    NoJsonRpc,
    #[error("agent `{0}` is unreachable")]
    Unreachable(Arc<str>),
}
