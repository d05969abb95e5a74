//! `agentmesh mcp gateway --config gw.yaml [--control-plane <url>]`.

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
    let key = mesh.home().mesh_key()?;
    let mut ecfg = engine_config(&cfg, None);
    ecfg.attestation_issuers = vec![*key.public()];
    let engine = Engine::start(mesh.clone(), policy, ecfg).await?;
    serve(mesh, engine, cfg, key, Vec::new(), None).await
}

fn engine_config(
    cfg: &GatewayConfig,
    authority: Option<agentmesh_identity::PublicKey>,
) -> EngineConfig {
    EngineConfig {
        audience: cfg.audience.clone(),
        wait_durable: cfg.wait_durable_audit,
        refresh_every: std::time::Duration::from_millis(cfg.registry_refresh_ms.max(50)),
        authority,
        ..EngineConfig::default()
    }
}

/// The gateway attached to a control plane (see [`crate::attach`]).
pub async fn run_attached(
    home: &Path,
    config: &Path,
    url: &str,
    token_file: Option<&Path>,
) -> Result<Output> {
    let cfg = GatewayConfig::load(config).map_err(|e| anyhow!("{e}"))?;
    let att = crate::attach::connect(home, url, token_file).await?;
    let policy = crate::mcp_cmd::policy_once(&cfg.policy)
        .with_context(|| format!("policy {}", cfg.policy.display()))?;
    // Attestations from this gateway's verifier are signed with the local
    // home's key (the control plane's key stays with the control plane).
    let key = att.mesh.home().mesh_key()?;
    let mut ecfg = engine_config(&cfg, Some(att.authority));
    ecfg.attestation_issuers = vec![*key.public()];
    let engine = Engine::start(att.mesh.clone(), policy.clone(), ecfg).await?;
    let tasks = att.start(&engine, &policy, &cfg.audience).await?;
    serve(att.mesh.clone(), engine, cfg, key, tasks, Some(&att)).await
}

async fn serve(
    mesh: Mesh,
    engine: Engine,
    cfg: GatewayConfig,
    key: agentmesh_identity::KeyPair,
    mut tasks: Vec<tokio::task::JoinHandle<()>>,
    attached: Option<&crate::attach::Attachment>,
) -> Result<Output> {
    let pins = Pins::load(Arc::new(mesh.home().registry().await?)).await?;
    let governor = Governor::new(engine.clone(), pins);
    let (listener, addr) = bind(&cfg)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let path = cfg.path.clone();
    let iatp = cfg.iatp.enabled.then(|| {
        crate::a2a_cmd::gateway_verifier(
            &engine,
            key.clone(),
            std::iter::once(format!("http://{addr}"))
                .chain(
                    cfg.iatp
                        .public_urls
                        .iter()
                        .map(|u| u.trim_end_matches('/').to_owned()),
                )
                .collect(),
            cfg.iatp.min_trust,
            cfg.iatp.challenge_ttl_secs,
            cfg.iatp.attestation_ttl_secs,
        )
    });
    if let (Some(service), Some(att)) = (&iatp, attached) {
        tasks.push(att.keep_vouched(service.clone(), key));
    }
    let iatp = iatp.map(agentmesh_iatp::http::router);
    let gateway = Gateway::new(cfg, governor)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    for (name, era) in gateway.eras() {
        eprintln!("agentmesh: upstream `{name}` ready ({era:?} era)");
    }
    // The one line a script waits for.
    println!("agentmesh gateway listening on http://{addr}{path}");
    let served = gateway
        .serve_with(listener, iatp, crate::serve_cmd::shutdown_signal())
        .await
        .context("serving");
    for t in tasks {
        t.abort();
    }
    if let Some(att) = attached {
        att.ship_remaining().await;
    }
    // Trust state and a checkpoint are saved even when serving failed.
    let note = engine.shutdown().await?;
    served?;
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
