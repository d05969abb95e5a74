//! How every AgentMesh listener serves HTTP (both gateways and the control
//! plane): every request knows its peer's address (what failed
//! authentications are counted against, see `agentmesh_engine::source` —
//! never anything the request claims); a client gets a bounded time to send
//! its request headers, so half-open and trickling connections are closed
//! before file descriptors run out; and shutdown drains the connections in
//! flight for at most a deadline, then drops the rest (long-lived SSE
//! subscribers would otherwise hold a stopping process open forever). At
//! most [`ServeOptions::max_connections`] connections are open at once: at
//! the cap the listener stops accepting (new clients wait in the kernel's
//! backlog, none is accepted and dropped) until one closes.

use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::time::Duration;

/// How long a client may take to send its request headers, unless
/// configured otherwise.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a stopping listener waits for the requests in flight, unless
/// configured otherwise.
pub const DEFAULT_DRAIN_DEADLINE: Duration = Duration::from_secs(3);

/// Connections open at once, unless configured otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// The limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// At most this many connections open at once (file descriptors and
    /// memory stay bounded under a flood of idle or slow clients).
    pub max_connections: usize,
    /// At most this long to send a request's headers (per request, also on
    /// a kept-alive connection).
    pub header_read_timeout: Duration,
    /// After the shutdown signal, at most this long for the connections in
    /// flight; the rest are dropped.
    pub drain_deadline: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            drain_deadline: DEFAULT_DRAIN_DEADLINE,
        }
    }
}

/// `GET /healthz` (the process answers) and `GET /readyz` (it can do its
/// job now: `ready` returns `Ok(detail)` or why not), for every listener.
/// Load balancers and orchestrators route on `/readyz`.
pub fn health_routes<S>(
    ready: impl Fn() -> Result<&'static str, String> + Clone + Send + Sync + 'static,
) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route(
            "/readyz",
            axum::routing::get(move || {
                let ready = ready.clone();
                async move {
                    let (status, body) = match ready() {
                        Ok(detail) => (
                            axum::http::StatusCode::OK,
                            serde_json::json!({"ready": true, "detail": detail}),
                        ),
                        Err(why) => (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            serde_json::json!({"ready": false, "reason": why}),
                        ),
                    };
                    (
                        status,
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        body.to_string(),
                    )
                }
            }),
        )
}

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

/// Serves `app` on `listener` until `shutdown` resolves, then drains the
/// connections in flight (see [`ServeOptions`]). Each connection:
/// `TCP_NODELAY` (small JSON-RPC answers leave at once), the peer address as
/// `ConnectInfo` (and as the authentication source), and the header-read
/// timeout.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    opts: ServeOptions,
) -> std::io::Result<()> {
    let app = app.layer(axum::middleware::from_fn(with_peer));
    let graceful = GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    let max = opts.max_connections.max(1);
    let mut at_cap = false;
    tokio::pin!(shutdown);
    loop {
        let full = connections.len() >= max;
        if full != at_cap {
            at_cap = full;
            if full {
                tracing::warn!(
                    max,
                    "connection cap reached; new connections wait until one closes"
                );
            } else {
                tracing::info!(max, "below the connection cap again; accepting");
            }
        }
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept(), if !full => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            // Reap finished connections so the set stays as small as the
            // connections that are open.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            () = &mut shutdown => break,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY");
        }
        let svc = TowerToHyperService::new(app.clone().layer(axum::Extension(ConnectInfo(peer))));
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(opts.header_read_timeout);
        let conn = http.serve_connection(TokioIo::new(tcp), svc);
        let conn = graceful.watch(conn);
        connections.spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(opts.drain_deadline, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!(
            open = connections.len(),
            deadline = ?opts.drain_deadline,
            "drain deadline passed: dropping the connections still open"
        );
    }
    connections.shutdown().await;
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
            ServeOptions {
                header_read_timeout: Duration::from_millis(300),
                ..ServeOptions::default()
            },
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

    #[tokio::test]
    async fn at_the_connection_cap_new_clients_wait_until_one_closes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            app,
            async {
                let _ = rx.await;
            },
            ServeOptions {
                max_connections: 2,
                ..ServeOptions::default()
            },
        ));
        let (waited, answered) = tokio::task::spawn_blocking(move || {
            let get = |s: &mut std::net::TcpStream| {
                s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    .expect("write");
            };
            // Two kept-alive connections hold the cap (each answered once).
            let mut held = Vec::new();
            for _ in 0..2 {
                let mut c = std::net::TcpStream::connect(addr).expect("connect");
                get(&mut c);
                let mut buf = [0u8; 256];
                let n = c.read(&mut buf).expect("answer");
                assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
                held.push(c);
            }
            // A third gets no answer while they are open...
            let mut third = std::net::TcpStream::connect(addr).expect("backlog");
            get(&mut third);
            third
                .set_read_timeout(Some(Duration::from_millis(500)))
                .expect("timeout");
            let mut buf = [0u8; 256];
            let waited = third.read(&mut buf).is_err();
            // ...and is served as soon as one closes.
            drop(held.pop());
            third
                .set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let n = third.read(&mut buf).expect("served after one closed");
            (waited, buf[..n].starts_with(b"HTTP/1.1 200"))
        })
        .await
        .expect("clients");
        assert!(waited, "the third connection was served beyond the cap");
        assert!(answered, "the third connection was never served");
        let _ = tx.send(());
        server.await.expect("join").expect("serve");
    }

    #[tokio::test]
    async fn a_stream_that_never_ends_does_not_hold_shutdown_past_the_deadline() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        // A response body that never ends, as an SSE subscriber's does.
        let app = axum::Router::new().route(
            "/events",
            axum::routing::get(|| async {
                axum::body::Body::from_stream(futures_util::stream::pending::<
                    Result<axum::body::Bytes, std::convert::Infallible>,
                >())
            }),
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            app,
            async {
                rx.await.ok();
            },
            ServeOptions {
                drain_deadline: Duration::from_millis(500),
                ..ServeOptions::default()
            },
        ));
        let client = tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr).expect("connect");
            s.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
                .expect("write");
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            let mut buf = [0u8; 512];
            // The headers arrive; then the stream stays open until the
            // server drops it.
            let n = s.read(&mut buf).expect("headers");
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).ok();
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = std::time::Instant::now();
        tx.send(()).expect("signal");
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("stopped within the deadline")
            .expect("join")
            .expect("serve");
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(400), "stopped after {took:?}");
        tokio::time::timeout(Duration::from_secs(5), client)
            .await
            .expect("the subscriber's connection was closed")
            .expect("client");
    }

    #[tokio::test]
    async fn readiness_says_why_not() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let ok = Arc::new(AtomicBool::new(true));
        let flag = ok.clone();
        let app: axum::Router = health_routes(move || {
            if flag.load(Ordering::Relaxed) {
                Ok("holder")
            } else {
                Err("the audit log cannot record".to_owned())
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            app,
            async {
                rx.await.ok();
            },
            ServeOptions::default(),
        ));
        let get = move |path: &'static str| {
            tokio::task::spawn_blocking(move || {
                let mut s = std::net::TcpStream::connect(addr).expect("connect");
                write!(
                    s,
                    "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                )
                .expect("write");
                let mut text = String::new();
                s.read_to_string(&mut text).ok();
                text
            })
        };
        let r = get("/readyz").await.expect("get");
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.contains(r#""detail":"holder""#), "{r}");
        ok.store(false, Ordering::Relaxed);
        let r = get("/readyz").await.expect("get");
        assert!(r.starts_with("HTTP/1.1 503"), "{r}");
        assert!(r.contains("cannot record"), "{r}");
        let r = get("/healthz").await.expect("get");
        assert!(
            r.starts_with("HTTP/1.1 200"),
            "the process still answers: {r}"
        );
        tx.send(()).expect("stop");
        server.await.expect("join").expect("serve");
    }
}
