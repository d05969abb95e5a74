//! The AgentMesh control plane (`agentmesh serve`).
//!
//! One process (or several replicas on one PostgreSQL database) that holds
//! the registry, issues short-lived credentials to agents that prove
//! possession of their keys, takes sponsor approvals, distributes policy,
//! keeps the audit log and pushes every change to connected gateways over
//! a server-sent event stream (`GET /v1/events`).
//!
//! * [`api`]: the REST routes (see docs/openapi.json, generated from
//!   [`routes::ROUTES`]).
//! * [`pop`]: what agents and sponsors sign.
//! * [`feed`]: the change feed every replica follows (database polling
//!   every 200 ms, so a change on one replica reaches gateways attached to
//!   another within a second).
//! * [`client`]: the HTTP client gateways and the CLI use, including a
//!   [`agentmesh_store::Registry`] over the API with a local cache.

#![forbid(unsafe_code)]

pub mod api;
mod api_bulk;
pub mod client;
mod dashboard;
pub mod error;
pub mod feed;
pub mod gateway_credential;
pub mod metrics;
pub mod pop;
pub mod routes;

use agentmesh_identity::KeyPair;
use agentmesh_store::{Mesh, SqlRegistry};
use std::sync::Arc;
use std::time::Duration;

/// Settings of one `serve` process.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Default credential lifetime.
    pub credential_ttl: Duration,
    /// The longest credential an agent may ask for.
    pub max_credential_ttl: Duration,
    /// How often the change feed is polled.
    pub feed_poll: Duration,
    /// A name for this replica (in `/healthz` and metrics).
    pub replica: String,
    /// Credential requests per agent, shared by every replica on the
    /// database (`(count, period)`).
    pub credential_rate: (u32, Duration),
    /// Host names (without port) a request's `Host` header may name; others
    /// are refused (421), so a browser page on another origin cannot reach
    /// the API through DNS rebinding. Loopback names by default.
    pub allowed_hosts: Vec<String>,
    /// How long a stopping server waits for open connections (SSE
    /// subscribers never close by themselves) before it exits anyway.
    pub drain_deadline: Duration,
    /// How long a client may take to send a request's headers (half-open
    /// and trickling connections are closed before file descriptors run
    /// out).
    pub header_read_timeout: Duration,
}

/// The names a loopback control plane answers to.
pub fn loopback_hosts() -> Vec<String> {
    ["localhost", "127.0.0.1", "::1"]
        .iter()
        .map(|h| (*h).to_owned())
        .collect()
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            credential_ttl: Duration::from_secs(15 * 60),
            max_credential_ttl: Duration::from_secs(60 * 60),
            feed_poll: Duration::from_millis(200),
            replica: "serve".into(),
            credential_rate: (30, Duration::from_secs(60)),
            allowed_hosts: loopback_hosts(),
            drain_deadline: agentmesh_gateway::serve::DEFAULT_DRAIN_DEADLINE,
            header_read_timeout: agentmesh_gateway::serve::DEFAULT_HEADER_READ_TIMEOUT,
        }
    }
}

/// What every handler shares.
pub struct AppState {
    pub mesh: Mesh,
    pub sql: SqlRegistry,
    pub mesh_key: KeyPair,
    pub mesh_did: String,
    /// SHA-256 of the admin token (compared digest to digest).
    admin_digest: [u8; 32],
    pub cfg: ServeConfig,
    pub metrics: metrics::Metrics,
    pub feed: feed::Feed,
    pub credentials: agentmesh_engine::credential::CredentialCache,
    /// The home's trust configuration, read once at start.
    pub trust_cfg: agentmesh_trust::TrustConfig,
    /// Rejected unauthenticated requests (registrations) per peer: the
    /// first few are audit leaves, the rest counted, so nobody without a
    /// key can grow the audit log without bound.
    pub rejections: agentmesh_engine::source::SourceWatch,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("mesh", &self.mesh)
            .field("replica", &self.cfg.replica)
            .finish()
    }
}

pub type State = Arc<AppState>;

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] agentmesh_store::StoreError),
    #[error("{0}")]
    Invalid(String),
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl AppState {
    /// Builds the state over `mesh` (whose registry is `sql`).
    pub async fn new(
        mesh: Mesh,
        sql: SqlRegistry,
        admin_token: &str,
        cfg: ServeConfig,
    ) -> Result<State, StartError> {
        if admin_token.len() < 16 {
            return Err(StartError::Invalid(
                "the admin token must be at least 16 characters".into(),
            ));
        }
        let mesh_key = mesh.home().mesh_key()?;
        let mesh_did = mesh_key.did().to_mesh().to_string();
        let last = sql.last_change().await?;
        let trust_cfg = mesh
            .trust_config()
            .map_err(|e| StartError::Invalid(e.to_string()))?;
        Ok(Arc::new(AppState {
            mesh,
            sql,
            mesh_did,
            mesh_key,
            admin_digest: sha256(admin_token.as_bytes()),
            cfg,
            metrics: metrics::Metrics::new(),
            feed: feed::Feed::new(last),
            credentials: agentmesh_engine::credential::CredentialCache::new(65_536),
            trust_cfg,
            rejections: agentmesh_engine::source::SourceWatch::default(),
        }))
    }

    /// True when `token` is the admin token.
    pub fn is_admin(&self, token: &str) -> bool {
        // Comparing fixed-size digests: no early exit on a shared prefix
        // of the secret itself.
        let d = sha256(token.as_bytes());
        d.iter()
            .zip(self.admin_digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// Starts the background tasks (change feed, audit outbox, checkpoints)
/// and serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    state: State,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tasks = feed::spawn_tasks(state.clone());
    let app = api::router(state.clone());
    let sweeper = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tick.tick().await;
                api::summarise_rejections(&state).await;
            }
        })
    };
    // The shared serve loop: peer address per request, header-read
    // timeout, and a drain deadline after which open connections (SSE
    // subscribers) are dropped.
    let opts = agentmesh_gateway::ServeOptions {
        header_read_timeout: state.cfg.header_read_timeout,
        drain_deadline: state.cfg.drain_deadline,
        ..agentmesh_gateway::ServeOptions::default()
    };
    let result = agentmesh_gateway::serve(listener, app, shutdown, opts).await;
    sweeper.abort();
    for t in tasks {
        t.abort();
    }
    // Leave a signed checkpoint covering everything this replica wrote.
    if state.mesh.audit_opened() {
        if let Err(e) = state.mesh.drain_audit_outbox().await {
            tracing::warn!(error = %e, "could not drain the audit outbox at shutdown");
        }
        if let Err(e) = state.mesh.checkpoint() {
            tracing::warn!(error = %e, "could not write the shutdown checkpoint");
        }
    }
    result
}

/// Reads the admin token from `path`, creating it (random, 0600) if it does
/// not exist.
pub fn admin_token(path: &std::path::Path) -> Result<String, StartError> {
    match std::fs::read_to_string(path) {
        Ok(t) => {
            let t = t.trim().to_owned();
            if t.len() < 16 {
                return Err(StartError::Invalid(format!(
                    "{}: the admin token must be at least 16 characters",
                    path.display()
                )));
            }
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if let Ok(m) = std::fs::metadata(path)
                    && m.permissions().mode() & 0o077 != 0
                {
                    return Err(StartError::Invalid(format!(
                        "refusing to use {}: it is readable by group or others; run `chmod 600 {}`",
                        path.display(),
                        path.display()
                    )));
                }
            }
            Ok(t)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = format!("amadm_{}{}", pop::nonce(), pop::nonce());
            if token.len() < 38 {
                return Err(StartError::Invalid(
                    "no randomness available for the admin token".into(),
                ));
            }
            use std::io::Write;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts
                .open(path)
                .map_err(|e| StartError::Invalid(format!("{}: {e}", path.display())))?;
            f.write_all(token.as_bytes())
                .and_then(|_| f.write_all(b"\n"))
                .and_then(|_| f.sync_all())
                .map_err(|e| StartError::Invalid(format!("{}: {e}", path.display())))?;
            Ok(token)
        }
        Err(e) => Err(StartError::Invalid(format!("{}: {e}", path.display()))),
    }
}
