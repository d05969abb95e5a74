//! The transport's peer address for every request a gateway serves: what
//! failed authentications are counted against (see
//! `agentmesh_engine::source`), never anything the request claims.

use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;
use std::net::SocketAddr;

/// Middleware: runs the rest of the request with its peer's IP address as
/// the authentication source. Needs the router served with
/// `into_make_service_with_connect_info::<SocketAddr>()`; without it the
/// source is unknown (the request is still served).
pub async fn with_peer(req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip().to_string());
    match peer {
        Some(ip) => agentmesh_engine::source::with_source(ip.into(), next.run(req)).await,
        None => next.run(req).await,
    }
}
