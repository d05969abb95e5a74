//! How the gateways serve HTTP: every request knows its peer's address (what
//! failed authentications are counted against, see
//! `agentmesh_engine::source` — never anything the request claims), and a
//! client gets a bounded time to send its request headers, so half-open and
//! trickling connections are closed before file descriptors run out.

use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::time::Duration;

/// Middleware: runs the rest of the request with its peer's IP address as
/// the authentication source (when the server recorded the peer).
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

/// Serves `app` on `listener` until `shutdown` resolves, then waits for the
/// connections in flight. Each connection: `TCP_NODELAY` (small JSON-RPC
/// answers leave at once), the peer address as `ConnectInfo`, and at most
/// `header_read_timeout` to send a request's headers.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    header_read_timeout: Duration,
) -> std::io::Result<()> {
    let app = app.layer(axum::middleware::from_fn(with_peer));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY");
        }
        let svc = TowerToHyperService::new(app.clone().layer(axum::Extension(ConnectInfo(peer))));
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout);
        let conn = http.serve_connection(TokioIo::new(tcp), svc);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    graceful.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[tokio::test]
    async fn a_client_that_never_finishes_its_headers_is_cut_off() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                peer.ip().to_string()
            }),
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            app,
            async {
                let _ = rx.await;
            },
            Duration::from_millis(300),
        ));
        let (slow, fast) = tokio::task::spawn_blocking(move || {
            // Half a request line, then nothing.
            let mut slow = std::net::TcpStream::connect(addr).expect("connect");
            slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
                .expect("write");
            slow.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let started = std::time::Instant::now();
            let mut buf = Vec::new();
            let _ = slow.read_to_end(&mut buf);
            let slow_took = started.elapsed();
            // A normal request still works and sees its peer.
            let mut ok = std::net::TcpStream::connect(addr).expect("connect");
            ok.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .expect("write");
            let mut text = String::new();
            let _ = ok.read_to_string(&mut text);
            (slow_took, text)
        })
        .await
        .expect("clients");
        assert!(slow < Duration::from_secs(3), "closed after {slow:?}");
        assert!(fast.starts_with("HTTP/1.1 200"), "{fast}");
        assert!(fast.ends_with("127.0.0.1"), "{fast}");
        let _ = tx.send(());
        server.await.expect("join").expect("serve");
    }
}
