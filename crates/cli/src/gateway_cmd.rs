//! `agentmesh mcp gateway --config gw.yaml [--control-plane <url>]`.

use crate::output::Output;
use agentmesh_engine::{Engine, EngineConfig};
use agentmesh_mcp::config::GatewayConfig;
use agentmesh_mcp::gateway::{Gateway, bind};
use agentmesh_mcp::govern::Governor;
use agentmesh_mcp::pins::Pins;
use agentmesh_policy::{PolicyHandle, PolicySet};
use agentmesh_server::client::{
    ControlPlane, FeedEvent, RemoteRegistry, follow_events, ship_audit,
};
use agentmesh_store::{Mesh, MeshHome, StoreError, unix_now};
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
    serve(mesh, engine, cfg, key, Vec::new()).await
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

/// The gateway attached to a control plane: its registry is the control
/// plane's (a cached snapshot, reloaded on every pushed change and kept
/// while the control plane is down), credentials are checked against the
/// control plane's key, its published policy replaces the local file, and
/// this gateway's audit log is shipped to it. The local home keeps the
/// gateway's own audit log, its checkpoint key and tool pins.
pub async fn run_attached(
    home: &Path,
    config: &Path,
    url: &str,
    token_file: Option<&Path>,
) -> Result<Output> {
    let cfg = GatewayConfig::load(config).map_err(|e| anyhow!("{e}"))?;
    let token = match std::env::var("AGENTMESH_CONTROL_PLANE_TOKEN") {
        Ok(t) if !t.is_empty() => t,
        _ => {
            let path = token_file.ok_or_else(|| {
                anyhow!("--control-plane needs a gateway credential (`agentmesh gateways issue <name>`): set AGENTMESH_CONTROL_PLANE_TOKEN or --control-plane-token-file")
            })?;
            std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?
                .trim()
                .to_owned()
        }
    };
    // A gateway holds no more authority than its job: a gateway credential,
    // never the admin token (a compromised gateway, or an upstream that
    // reads its environment, must not get the keys to the mesh).
    if !token.starts_with(agentmesh_server::gateway_credential::GATEWAY_PREFIX) {
        return Err(anyhow!(
            "--control-plane needs a gateway credential (amgw1.…), not the admin token: issue one with `agentmesh gateways issue <name> --control-plane {url}` and give it as AGENTMESH_CONTROL_PLANE_TOKEN or --control-plane-token-file"
        ));
    }
    let cp = ControlPlane::new(url, Some(&token)).map_err(|e| anyhow!("{e}"))?;
    // Fail closed at start: without the authority key and a first
    // snapshot there is nothing to enforce with.
    let (mesh_did, authority) = cp
        .authority()
        .await
        .map_err(|e| anyhow!("{e}; the gateway needs the control plane to start"))?;
    let remote = Arc::new(RemoteRegistry::new(cp.clone()));
    remote.snapshot().await.map_err(|e| anyhow!("{e}"))?;
    let local = match MeshHome::open(home) {
        Ok(h) => h,
        Err(StoreError::NoHome(_)) => MeshHome::init(home, "agentmesh.local", unix_now()).await?,
        Err(e) => return Err(e.into()),
    };
    let mesh = Mesh::new(local, remote.clone());
    let (policy, watcher) = crate::mcp_cmd::policy_with_reload(&cfg.policy)
        .with_context(|| format!("policy {}", cfg.policy.display()))?;
    let published = load_published(&cp, &policy).await;
    // Attestations from this gateway's verifier are signed with the local
    // home's key (the control plane's key stays with the control plane).
    let key = mesh.home().mesh_key()?;
    let mut ecfg = engine_config(&cfg, Some(authority));
    ecfg.attestation_issuers = vec![*key.public()];
    let engine = Engine::start(mesh.clone(), policy.clone(), ecfg).await?;
    // An attached gateway ships its own log to the control plane, so it
    // must hold it (a second process on one home follows the first through
    // the registry, which here is the control plane's).
    let Some(log) = engine.audit() else {
        return Err(anyhow!(
            "another process holds the audit log in {}; an attached gateway ships its own log to the control plane: give it its own --home",
            mesh.home().root().display()
        ));
    };
    eprintln!(
        "agentmesh: attached to control plane {url} ({mesh_did}){}",
        if published {
            "; using its published policy"
        } else {
            ""
        }
    );
    let follower = {
        let engine = engine.clone();
        let remote = remote.clone();
        let cp = cp.clone();
        let policy = policy.clone();
        follow_events(cp.clone(), move |event| {
            let engine = engine.clone();
            let remote = remote.clone();
            let cp = cp.clone();
            let policy = policy.clone();
            async move {
                match event {
                    FeedEvent::Connected | FeedEvent::Change(_) => {
                        if matches!(&event, FeedEvent::Connected)
                            || matches!(&event, FeedEvent::Change(k) if k == "policy" || k == "resync")
                        {
                            load_published(&cp, &policy).await;
                        }
                        remote.invalidate();
                        let _ = engine.refresh().await;
                    }
                    FeedEvent::Disconnected => {
                        eprintln!(
                            "agentmesh: control plane stream lost; enforcing with cached state"
                        );
                    }
                }
            }
        })
    };
    let shipper = ship_audit(
        cp,
        log,
        mesh.home().root().join("shipped-audit.cursor"),
        cfg.audience.clone(),
        std::time::Duration::from_secs(1),
    );
    let out = serve(mesh, engine, cfg, key, vec![follower, shipper]).await;
    drop(watcher);
    out
}

/// Replaces the policy with the control plane's published one, if any.
async fn load_published(cp: &ControlPlane, policy: &Arc<PolicyHandle>) -> bool {
    let Ok(doc) = cp.call(hyper::Method::GET, "/v1/policy", None).await else {
        return false;
    };
    let Some(yaml) = doc["yaml"].as_str() else {
        return false;
    };
    match PolicySet::from_yaml(yaml, "control-plane policy") {
        Ok(set) => {
            if set.version != policy.current().version {
                let v = policy.replace(set);
                eprintln!("agentmesh: control-plane policy in force (version {v})");
            }
            true
        }
        Err(e) => {
            eprintln!(
                "agentmesh: the control plane's policy is invalid here; keeping the current one:\n{e}"
            );
            false
        }
    }
}

async fn serve(
    mesh: Mesh,
    engine: Engine,
    cfg: GatewayConfig,
    key: agentmesh_identity::KeyPair,
    tasks: Vec<tokio::task::JoinHandle<()>>,
) -> Result<Output> {
    let pins = Pins::load(Arc::new(mesh.home().registry().await?)).await?;
    let governor = Governor::new(engine.clone(), pins);
    let (listener, addr) = bind(&cfg)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let path = cfg.path.clone();
    let iatp = cfg.iatp.enabled.then(|| {
        agentmesh_iatp::http::router(crate::a2a_cmd::gateway_verifier(
            &engine,
            key,
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
        ))
    });
    let gateway = Gateway::new(cfg, governor)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    for (name, era) in gateway.eras() {
        eprintln!("agentmesh: upstream `{name}` ready ({era:?} era)");
    }
    // The one line a script waits for.
    println!("agentmesh gateway listening on http://{addr}{path}");
    gateway
        .serve_with(listener, iatp, crate::serve_cmd::shutdown_signal())
        .await
        .context("serving")?;
    for t in tasks {
        t.abort();
    }
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
