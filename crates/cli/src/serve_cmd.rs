//! `agentmesh serve`: the control plane.

use crate::output::Output;
use agentmesh_server::{AppState, ServeConfig};
use agentmesh_store::{Mesh, MeshHome, SqlRegistry, StoreError, unix_now};
use anyhow::{Context, Result, anyhow};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What `serve` was asked for.
#[derive(Debug, Clone)]
pub struct ServeArgs {
    pub listen: SocketAddr,
    pub allow_remote: bool,
    pub allowed_hosts: Vec<String>,
    pub database: Option<String>,
    pub admin_token_file: Option<PathBuf>,
    pub replica: Option<String>,
    pub credential_ttl: String,
    pub credential_rate: String,
    pub header_read_timeout: String,
}

/// Opens the home (creating it with defaults when missing) and the
/// registry (the embedded file, or PostgreSQL).
pub async fn open_control_plane(
    home: &Path,
    database: Option<&str>,
) -> Result<(Mesh, SqlRegistry)> {
    let home = match MeshHome::open(home) {
        Ok(h) => h,
        Err(StoreError::NoHome(_)) => {
            let h = MeshHome::init(home, "agentmesh.local", unix_now()).await?;
            eprintln!("agentmesh: created mesh home {}", h.root().display());
            h
        }
        Err(e) => return Err(e.into()),
    };
    let sql = match database {
        None => home.registry().await?,
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            SqlRegistry::connect_postgres(url)
                .await
                .with_context(|| "connecting to PostgreSQL (--database)".to_string())?
        }
        Some(other) => {
            return Err(anyhow!(
                "--database `{other}`: give a postgres:// URL (without it, the embedded registry in the home is used)"
            ));
        }
    };
    let mesh = Mesh::new(home, Arc::new(sql.clone()));
    Ok((mesh, sql))
}

pub async fn run(home: &Path, args: ServeArgs) -> Result<Output> {
    if !args.listen.ip().is_loopback() && !args.allow_remote {
        return Err(anyhow!(
            "--listen {} is not a loopback address; add --allow-remote to expose the control plane (and put TLS in front of it: the admin token and credentials cross the network)",
            args.listen
        ));
    }
    let mut allowed_hosts = agentmesh_server::loopback_hosts();
    if !args.listen.ip().is_unspecified() {
        allowed_hosts.push(args.listen.ip().to_string());
    }
    allowed_hosts.extend(args.allowed_hosts.iter().cloned());
    let (mesh, sql) = open_control_plane(home, args.database.as_deref()).await?;
    let token_path = args
        .admin_token_file
        .clone()
        .unwrap_or_else(|| mesh.home().root().join("admin.token"));
    let token = match std::env::var("AGENTMESH_ADMIN_TOKEN") {
        Ok(t) if !t.is_empty() => t,
        _ => agentmesh_server::admin_token(&token_path).map_err(|e| anyhow!("{e}"))?,
    };
    let ttl = humantime::parse_duration(&args.credential_ttl)
        .map_err(|e| anyhow!("--credential-ttl `{}`: {e}", args.credential_ttl))?;
    if ttl.as_secs() < 60 || ttl.as_secs() > 86_400 {
        return Err(anyhow!(
            "--credential-ttl must be between 1 minute and 1 day"
        ));
    }
    let rate = agentmesh_policy::Quota::parse(&args.credential_rate)
        .map_err(|e| anyhow!("--credential-rate: {e}"))?;
    let header_read_timeout = humantime::parse_duration(&args.header_read_timeout)
        .map_err(|e| anyhow!("--header-read-timeout `{}`: {e}", args.header_read_timeout))?;
    if header_read_timeout.is_zero() || header_read_timeout.as_secs() > 600 {
        return Err(anyhow!(
            "--header-read-timeout must be more than 0 and at most 10 minutes"
        ));
    }
    let cfg = ServeConfig {
        header_read_timeout,
        credential_rate: (rate.count, std::time::Duration::from_nanos(rate.period_ns)),
        credential_ttl: ttl,
        max_credential_ttl: ttl.max(std::time::Duration::from_secs(3600)),
        allowed_hosts,
        replica: args
            .replica
            .clone()
            .unwrap_or_else(|| format!("serve-{}", std::process::id())),
        ..ServeConfig::default()
    };
    let backend = if args.database.is_some() {
        "PostgreSQL"
    } else {
        "embedded SQLite"
    };
    let state = AppState::new(mesh, sql, &token, cfg)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    eprintln!(
        "agentmesh: registry on {backend}; admin token in {}",
        token_path.display()
    );
    // The one line a script waits for.
    println!("agentmesh control plane listening on http://{addr} (dashboard: http://{addr}/)");
    agentmesh_server::serve(state, listener, shutdown_signal())
        .await
        .context("serving")?;
    eprintln!("agentmesh: control plane stopped");
    Ok(Output::new(serde_json::Value::Null, ""))
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = ctrl_c => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}
