//! `agentmesh mcp gateway --config gw.yaml`.

use crate::output::Output;
use agentmesh_engine::{Engine, EngineConfig};
use agentmesh_mcp::config::GatewayConfig;
use agentmesh_mcp::gateway::{Gateway, bind};
use agentmesh_mcp::govern::Governor;
use agentmesh_mcp::pins::Pins;
use agentmesh_store::Mesh;
use anyhow::{Context, Result, anyhow};
use std::path::Path;
use std::sync::Arc;

pub async fn run(mesh: Mesh, config: &Path) -> Result<Output> {
    let cfg = GatewayConfig::load(config).map_err(|e| anyhow!("{e}"))?;
    let (policy, _watcher) = crate::mcp_cmd::policy_with_reload(&cfg.policy)
        .with_context(|| format!("policy {}", cfg.policy.display()))?;
    let engine = Engine::start(
        mesh.clone(),
        policy,
        EngineConfig {
            audience: cfg.audience.clone(),
            wait_durable: cfg.wait_durable_audit,
            refresh_every: std::time::Duration::from_millis(cfg.registry_refresh_ms.max(50)),
            ..EngineConfig::default()
        },
    )
    .await?;
    let pins = Pins::load(Arc::new(mesh.home().registry().await?)).await?;
    let governor = Governor::new(engine.clone(), pins);
    let (listener, addr) = bind(&cfg)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let path = cfg.path.clone();
    let gateway = Gateway::new(cfg, governor)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    for (name, era) in gateway.eras() {
        eprintln!("agentmesh: upstream `{name}` ready ({era:?} era)");
    }
    // The one line a script waits for.
    println!("agentmesh gateway listening on http://{addr}{path}");
    let shutdown = async {
        let ctrl_c = tokio::signal::ctrl_c();
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = ctrl_c => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
    };
    gateway.serve(listener, shutdown).await.context("serving")?;
    let note = engine.shutdown().await?;
    eprintln!(
        "agentmesh: gateway stopped; trust state flushed{}",
        if note.is_some() {
            ", audit checkpoint signed"
        } else {
            ""
        }
    );
    Ok(Output::new(serde_json::Value::Null, ""))
}
