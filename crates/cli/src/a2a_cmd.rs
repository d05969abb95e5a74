//! `agentmesh a2a gateway --config a2a.yaml` (or `--upstream URL --listen
//! ADDR --policy FILE` for one agent).

use crate::output::Output;
use agentmesh_a2a::config::A2aConfig;
use agentmesh_a2a::gateway::{Gateway, bind};
use agentmesh_engine::{Engine, EngineConfig};
use agentmesh_iatp::http::{OnOutcome, Outcome, Service};
use agentmesh_iatp::{Verifier, VerifierConfig};
use agentmesh_identity::KeyPair;
use agentmesh_store::Mesh;
use anyhow::{Context, Result, anyhow};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// The IATP verifier a gateway mounts: it signs attestations with `key`,
/// reads the engine's registry and live trust, and audits every outcome
/// in the gateway's log.
pub fn gateway_verifier(
    engine: &Engine,
    key: KeyPair,
    origins: Vec<String>,
    min_trust: f64,
    challenge_ttl_secs: u64,
    attestation_ttl_secs: u64,
) -> Arc<Service> {
    let verifier = Verifier::new(
        key,
        VerifierConfig {
            challenge_ttl_secs,
            attestation_ttl_secs,
            min_trust,
            ..VerifierConfig::default()
        },
    );
    let me = verifier.did().to_string();
    let scorer = engine.clone();
    let on_outcome: OnOutcome = Arc::new(move |o: &Outcome| {
        scorer.record_draft(crate::iatp_cmd::outcome_draft(&me, o));
        if let Outcome::Attested { prover, .. } = o {
            scorer.record_handshake(prover);
        }
    });
    Arc::new(Service {
        verifier,
        directory: Arc::new(engine.clone()),
        origins,
        manifest: None,
        on_outcome: Some(on_outcome),
    })
}

pub async fn run(
    mesh: Mesh,
    attached: Option<crate::attach::Attachment>,
    config: Option<&Path>,
    upstream: Option<&str>,
    listen: Option<SocketAddr>,
    policy: Option<&Path>,
) -> Result<Output> {
    let cfg = match (config, upstream) {
        (Some(c), None) => A2aConfig::load(c).map_err(|e| anyhow!("{e}"))?,
        (None, Some(u)) => {
            let policy = policy
                .map(Path::to_path_buf)
                .ok_or_else(|| anyhow!("--upstream needs --policy (the policy file to enforce)"))?;
            A2aConfig::single(
                u,
                listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7420))),
                policy,
            )
            .map_err(|e| anyhow!("{e}"))?
        }
        (Some(_), Some(_)) => return Err(anyhow!("use either --config or --upstream, not both")),
        (None, None) => {
            return Err(anyhow!(
                "say what to front: --config a2a.yaml, or --upstream <agent-url> --policy <file>"
            ));
        }
    };
    let mut cfg = cfg;
    if let (Some(l), Some(_)) = (listen, config) {
        cfg.listen = l;
    }
    // Attached: the file is the starting point only; the control plane's
    // published policy governs (a local edit must not override it).
    let (policy, _watcher) = if attached.is_some() {
        let p = crate::mcp_cmd::policy_once(&cfg.policy)
            .with_context(|| format!("policy {}", cfg.policy.display()))?;
        (p, None)
    } else {
        let (p, w) = crate::mcp_cmd::policy_with_reload(&cfg.policy)
            .with_context(|| format!("policy {}", cfg.policy.display()))?;
        (p, Some(w))
    };
    // Served cards and IATP attestations are signed with the mesh key, so
    // every gateway of this mesh accepts this gateway's attestations.
    // (Attached: the local home's key; the control plane's stays there.)
    let key = mesh.home().mesh_key()?;
    let engine = Engine::start(
        mesh.clone(),
        policy.clone(),
        EngineConfig {
            audience: cfg.audience.clone(),
            wait_durable: cfg.wait_durable_audit,
            refresh_every: std::time::Duration::from_millis(cfg.registry_refresh_ms.max(50)),
            attestation_issuers: vec![*key.public()],
            // Attached: credentials are the control plane's.
            authority: attached.as_ref().map(|a| a.authority),
            ..EngineConfig::default()
        },
    )
    .await?;
    let mut tasks = match &attached {
        Some(att) => att.start(&engine, &policy, &cfg.audience).await?,
        None => Vec::new(),
    };
    let (listener, addr) = bind(&cfg)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    if cfg.public_url.is_none() {
        // The port may have been 0: cards must carry the real one.
        cfg.public_url = Some(format!("http://{addr}"));
    }
    let iatp = cfg.iatp.enabled.then(|| {
        let mut origins = vec![format!("http://{addr}")];
        origins.push(cfg.public_base());
        origins.extend(
            cfg.iatp
                .public_urls
                .iter()
                .map(|u| u.trim_end_matches('/').to_owned()),
        );
        gateway_verifier(
            &engine,
            KeyPair::from_seed(&key.seed()),
            origins,
            cfg.iatp.min_trust,
            cfg.iatp.challenge_ttl_secs,
            cfg.iatp.attestation_ttl_secs,
        )
    });
    // Attached: the control plane vouches for the verifier's key, so its
    // agents admit this gateway in a handshake.
    if let (Some(service), Some(att)) = (&iatp, &attached) {
        tasks.push(att.keep_vouched(service.clone(), KeyPair::from_seed(&key.seed())));
    }
    let base = cfg.public_base();
    // The A2A⇄MCP bridge lives above both protocols: installed here, it
    // answers `mcp:` agents and serves `POST /mcp`.
    let gateway = agentmesh_bridge::install(Gateway::builder(cfg, engine.clone(), key, iatp))
        .map_err(|e| anyhow!("{e}"))?
        .build()
        .await
        .map_err(|e| anyhow!("{e}"))?;
    for line in gateway.describe() {
        eprintln!("agentmesh: {line}");
    }
    println!("agentmesh a2a gateway listening on {base}");
    let served = gateway
        .serve(listener, crate::serve_cmd::shutdown_signal())
        .await
        .context("serving");
    for t in tasks {
        t.abort();
    }
    if let Some(att) = &attached {
        att.ship_remaining().await;
    }
    // Trust state and a checkpoint are saved even when serving failed.
    let note = engine.shutdown().await?;
    served?;
    eprintln!(
        "agentmesh: a2a gateway stopped; trust state flushed{}",
        if note.is_some() {
            ", audit checkpoint signed"
        } else {
            ""
        }
    );
    Ok(Output::new(Value::Null, ""))
}
