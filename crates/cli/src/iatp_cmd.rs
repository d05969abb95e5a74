//! `agentmesh iatp serve | handshake | manifest`: the trust handshake for
//! agents without a gateway, and IATP manifests.

use crate::output::Output;
use agentmesh_audit::Draft;
use agentmesh_iatp::http::{HandshakeClient, OnOutcome, Outcome, Service};
use agentmesh_iatp::{Directory, PeerFacts, Verifier, VerifierConfig};
use agentmesh_identity::{Did, PublicKey};
use agentmesh_store::{KeyKind, Mesh, unix_now};
use agentmesh_trust::{TrustEngine, tier_of};
use anyhow::{Context, Result, anyhow};
use base64::Engine as _;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Audit event of one handshake answered by this side.
pub const HANDSHAKE_EVENT: &str = agentmesh_audit::Event::IatpHandshake.as_str();

/// The registry and trust state of a mesh home, reloaded every second, as
/// the handshake reads them (for agents that run no gateway).
pub struct MeshDirectory {
    facts: RwLock<HashMap<[u8; 32], PeerFacts>>,
    /// Mesh authorities whose gateway vouchers are accepted: this home's
    /// mesh key, and any named with [`MeshDirectory::trust_authority`].
    authorities: RwLock<Vec<PublicKey>>,
}

impl MeshDirectory {
    pub async fn load(mesh: &Mesh) -> Result<Arc<Self>> {
        let d = Arc::new(Self {
            facts: RwLock::new(HashMap::new()),
            authorities: RwLock::new(Vec::new()),
        });
        if let Ok(key) = mesh.home().mesh_key() {
            d.trust_authority(*key.public());
        }
        d.reload(mesh).await?;
        Ok(d)
    }

    async fn reload(&self, mesh: &Mesh) -> Result<()> {
        let cfg = mesh.trust_config()?;
        let mut engine = TrustEngine::new(cfg.clone());
        for (agent, state) in mesh.registry().trust_states().await? {
            engine.restore(&agent, state);
        }
        // The engine's view of the registry, so liveness reads exactly as
        // the gateways read it.
        let snapshot = agentmesh_engine::Snapshot::load(mesh.registry(), 0).await?;
        let now = unix_now();
        let mut map = HashMap::new();
        for a in snapshot.agents() {
            let score = engine.score(&a.did_text, now * 1000);
            map.insert(
                *a.did.key_bytes(),
                PeerFacts {
                    name: a.name.to_string(),
                    inactive: a.inactive_reason(now),
                    trust: score.score,
                    tier: tier_of(score.score, score.uncertainty, &cfg).to_owned(),
                    capabilities: a.capability_names.to_vec(),
                },
            );
        }
        // The mesh authority (whose key signs gateways' challenges) is
        // trusted by definition in its own mesh.
        if let Ok(key) = mesh.home().mesh_key() {
            map.insert(
                *key.public().as_bytes(),
                PeerFacts {
                    name: format!("mesh authority ({})", mesh.home().config().trust_domain),
                    inactive: None,
                    trust: 1.0,
                    tier: "verified_partner".into(),
                    capabilities: Vec::new(),
                },
            );
        }
        *self.facts.write().unwrap_or_else(|p| p.into_inner()) = map;
        Ok(())
    }

    /// Reloads every second until the process ends.
    pub fn follow(self: &Arc<Self>, mesh: Mesh) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                if let Err(e) = me.reload(&mesh).await {
                    eprintln!("agentmesh: registry reload failed, keeping the last view: {e}");
                }
                // Entries other processes queued while this one holds the
                // audit log (another `iatp serve` on the same home).
                if mesh.audit_opened() {
                    let _ = mesh.drain_audit_outbox().await;
                }
            }
        })
    }
}

impl MeshDirectory {
    /// Accepts gateway vouchers signed by `key` (a control plane's).
    pub fn trust_authority(&self, key: PublicKey) {
        let mut list = self.authorities.write().unwrap_or_else(|p| p.into_inner());
        if !list.contains(&key) {
            list.push(key);
        }
    }
}

impl Directory for MeshDirectory {
    fn peer(&self, did: &Did) -> Option<PeerFacts> {
        self.facts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(did.key_bytes())
            .cloned()
    }

    fn authorities(&self) -> Vec<PublicKey> {
        self.authorities
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Which mesh authority's gateway vouchers a prover accepts, besides its
/// own home's.
#[derive(Debug, Default)]
pub struct Vouching {
    pub control_plane: Option<String>,
    pub authority: Option<String>,
}

impl Vouching {
    /// The authority's key: pinned (`--authority`), or read from the
    /// control plane's `/v1/authority`.
    async fn key(&self) -> Result<Option<(String, PublicKey)>> {
        if let Some(a) = &self.authority {
            let did = Did::parse(a).map_err(|e| anyhow!("--authority `{a}`: {e}"))?;
            let key = did
                .public_key()
                .map_err(|_| anyhow!("--authority `{a}` does not name an Ed25519 key"))?;
            return Ok(Some((did.to_string(), key)));
        }
        let Some(url) = &self.control_plane else {
            return Ok(None);
        };
        let cp = agentmesh_server::client::ControlPlane::new(url, None)
            .map_err(|e| anyhow!("--control-plane {url}: {e}"))?;
        let (did, key) = cp
            .authority()
            .await
            .map_err(|e| anyhow!("the control plane at {url} did not say who it is: {e}"))?;
        Ok(Some((did, key)))
    }
}

/// The audit entry of a handshake outcome.
pub fn outcome_draft(verifier: &str, o: &Outcome) -> Draft {
    match o {
        Outcome::Attested {
            prover,
            facts,
            attestation_id,
            exp,
        } => Draft {
            event: HANDSHAKE_EVENT.into(),
            agent: prover.to_string(),
            action: "iatp.attest".into(),
            decision: "allow".into(),
            trust_after: Some(facts.trust),
            detail: json!({"verifier": verifier, "name": facts.name, "attestation": attestation_id,
                "expires_at": exp, "tier": facts.tier}),
            ..Draft::default()
        },
        Outcome::Refused { prover, error } => Draft {
            event: HANDSHAKE_EVENT.into(),
            agent: prover.clone().unwrap_or_default(),
            action: "iatp.attest".into(),
            decision: "deny".into(),
            detail: json!({"verifier": verifier, "reason": error.code(), "message": error.to_string()}),
            ..Draft::default()
        },
    }
}

/// `iatp serve`: the agent's own verifier, manifest and audit.
pub struct ServeArgs {
    pub agent: String,
    pub listen: SocketAddr,
    pub public_urls: Vec<String>,
    pub min_trust: f64,
    pub challenge_ttl_secs: u64,
    pub attestation_ttl_secs: u64,
}

pub async fn serve(mesh: Mesh, a: ServeArgs) -> Result<Output> {
    let record = mesh.agent(&a.agent).await?;
    let key = mesh
        .home()
        .read_key(KeyKind::Agent(&a.agent))
        .with_context(|| format!("the key of agent `{}` (is it this home's agent?)", a.agent))?;
    if key.did() != record.did.to_mesh() && key.did() != record.did {
        return Err(anyhow!(
            "the key file of `{}` does not match its registered DID",
            a.agent
        ));
    }
    let dir = MeshDirectory::load(&mesh).await?;
    let _follow = dir.follow(mesh.clone());
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("cannot listen on {}", a.listen))?;
    let addr = listener.local_addr()?;
    let mut origins = vec![format!("http://{addr}")];
    origins.extend(
        a.public_urls
            .iter()
            .map(|u| u.trim_end_matches('/').to_owned()),
    );
    let facts = dir.peer(&record.did);
    let manifest = agentmesh_iatp::manifest::serve(
        &record.name,
        &record.did.to_mesh().to_string(),
        &base64::engine::general_purpose::STANDARD.encode(key.public().as_bytes()),
        &record.sponsor,
        facts
            .as_ref()
            .map(|f| f.tier.as_str())
            .unwrap_or("probation"),
        &record
            .capabilities
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>(),
    );
    let verifier = Verifier::new(
        key,
        VerifierConfig {
            challenge_ttl_secs: a.challenge_ttl_secs,
            attestation_ttl_secs: a.attestation_ttl_secs,
            min_trust: a.min_trust,
            ..VerifierConfig::default()
        },
    );
    let me = verifier.did().to_string();
    let audit_mesh = mesh.clone();
    let on_outcome: OnOutcome = Arc::new(move |o: &Outcome| {
        let draft = outcome_draft(&me, o);
        let m = audit_mesh.clone();
        // A completed handshake is a trust event for the prover (only
        // successes: a refusal cannot be attributed to the DID it claims).
        let attested = match o {
            Outcome::Attested { prover, .. } => Some(prover.to_string()),
            Outcome::Refused { .. } => None,
        };
        tokio::spawn(async move {
            if let Err(e) = m.record(draft).await {
                eprintln!("agentmesh: could not audit a handshake: {e}");
            }
            if let Some(did) = attested
                && let Ok(agent) = m.agent(&did).await
            {
                let now_ms = unix_now().saturating_mul(1000);
                if let Err(e) = m
                    .trust_event(
                        &agent,
                        agentmesh_trust::EventKind::Handshake { ok: true },
                        now_ms,
                    )
                    .await
                {
                    eprintln!("agentmesh: could not record the handshake's trust event: {e}");
                }
            }
        });
    });
    let service = Arc::new(Service {
        verifier,
        directory: dir.clone(),
        origins,
        manifest: Some(manifest),
        on_outcome: Some(on_outcome),
    });
    let app = agentmesh_iatp::http::router(service)
        .route("/healthz", axum::routing::get(|| async { "ok" }));
    println!(
        "agentmesh iatp listening on http://{addr} as {} ({})",
        a.agent, record.did
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(crate::serve_cmd::shutdown_signal())
        .await
        .context("serving")?;
    Ok(Output::new(Value::Null, ""))
}

/// `iatp handshake <peer-url> --agent <name>`: prove who we are to the
/// peer and check who it is against our registry.
pub async fn handshake(
    mesh: Mesh,
    peer: &str,
    agent: &str,
    expect: Option<&str>,
    min_trust: f64,
    vouching: Vouching,
) -> Result<Output> {
    let key = mesh
        .home()
        .read_key(KeyKind::Agent(agent))
        .with_context(|| format!("the key of agent `{agent}`"))?;
    let authority = vouching.key().await?;
    let expected = match expect {
        None => None,
        Some(e) => Some(match Did::parse(e) {
            Ok(d) => d,
            Err(_) => mesh.agent(e).await?.did,
        }),
    };
    let dir = MeshDirectory::load(&mesh).await?;
    if let Some((_, k)) = &authority {
        dir.trust_authority(*k);
    }
    let started = std::time::Instant::now();
    let done = HandshakeClient::new()
        .handshake(peer, &key, expected.as_ref(), &*dir, min_trust)
        .await
        .map_err(|e| anyhow!("handshake with {peer} failed ({}): {e}", e.code()))?;
    let took = started.elapsed();
    let value = json!({
        "peer": {
            "did": done.verifier.to_string(),
            "name": done.verifier_facts.name,
            "trust": done.verifier_facts.trust,
            "tier": done.verifier_facts.tier,
            "capabilities": done.verifier_facts.capabilities,
            "vouched": done.challenge.voucher.is_some() && done.verifier_facts.tier == agentmesh_iatp::VOUCHED_GATEWAY_TIER,
        },
        "attested": {
            "name": done.attested.name,
            "trust": done.attested.trust(),
            "tier": done.attested.tier,
            "capabilities": done.attested.capabilities,
            "expires_at": done.attested.exp,
        },
        "attestation": done.attestation,
        "challenge": done.challenge.id,
        "took_ms": took.as_secs_f64() * 1000.0,
    });
    let vouched = value["peer"]["vouched"] == true;
    let text = format!(
        "handshake with {} ({}) complete in {:.2} ms\n  peer, by {}: trust {:.3} ({})\n  we, by theirs: `{}` trust {:.3} ({}), attested until {}\n  attestation: {}",
        done.verifier_facts.name,
        done.verifier,
        took.as_secs_f64() * 1000.0,
        if vouched {
            "the mesh authority's voucher"
        } else {
            "our registry"
        },
        done.verifier_facts.trust,
        done.verifier_facts.tier,
        done.attested.name,
        done.attested.trust(),
        done.attested.tier,
        done.attested.exp,
        done.attestation
    );
    Ok(Output::new(value, text))
}

/// `iatp manifest <url|file>`: read an IATP manifest leniently.
pub async fn manifest(source: &str) -> Result<Output> {
    let bytes = if source.starts_with("http://") {
        let url = if source.contains("/.well-known/") {
            source.to_owned()
        } else {
            format!(
                "{}{}",
                source.trim_end_matches('/'),
                agentmesh_iatp::http::MANIFEST_PATH
            )
        };
        let uri: hyper::Uri = url.parse().map_err(|_| anyhow!("`{url}` is not a URL"))?;
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Empty<bytes::Bytes>>();
        let resp = tokio::time::timeout(Duration::from_secs(10), client.get(uri))
            .await
            .map_err(|_| anyhow!("{url}: no answer within 10 s"))??;
        use http_body_util::BodyExt;
        http_body_util::Limited::new(resp.into_body(), agentmesh_iatp::manifest::MAX_MANIFEST_LEN)
            .collect()
            .await
            .map_err(|e| anyhow!("{url}: {e}"))?
            .to_bytes()
            .to_vec()
    } else {
        std::fs::read(source).with_context(|| format!("reading {source}"))?
    };
    let facts = agentmesh_iatp::manifest::parse(&bytes)?;
    let text = format!(
        "agent `{}` ({} shape): trust level {}, IATP score {}/10, reversibility {}, retention {}{}\n  (self-reported: AgentMesh trusts a peer by its registry, not its manifest)",
        facts.agent_id,
        facts.shape,
        facts.trust_level,
        facts.iatp_score(),
        facts.reversibility,
        facts.retention,
        if facts.human_in_loop {
            ", human in the loop"
        } else {
            ""
        },
    );
    let mut value = serde_json::to_value(&facts)?;
    value["attributes"] = facts.attributes();
    Ok(Output::new(value, text))
}
