//! The pipeline: one protocol-agnostic `decide` that every adapter (MCP
//! stdio, MCP over HTTP, later A2A) calls.
//!
//! ```text
//! credential ─▶ delegation ─▶ live identity ─▶ capability ─▶ trust gate
//!   ─▶ policy (with arguments) ─▶ rate limit ─▶ compliance obligations
//!   ─▶ decision ─▶ audit leaf ─▶ trust event
//! ```
//!
//! Everything the hot path reads is in memory: a registry snapshot swapped
//! as a whole, the compiled policy behind an `ArcSwap`, credential and chain
//! caches, trust shards. The audit leaf is queued (its index is known at
//! once; hashing and fsync happen on the audit writer thread), so a call
//! waits for the disk only under back-pressure — or always, when
//! `wait_durable` is set.

use crate::credential::{CredentialCache, CredentialError};
use crate::snapshot::{AgentView, Snapshot};
use crate::trust::TrustShards;
use agentmesh_audit::Event;
use agentmesh_audit::{AuditLog, Draft};
use agentmesh_capability::{Capability, covers};
use agentmesh_compliance::{Catalogues, apply as apply_obligations, context_for};
use agentmesh_delegation::{
    HolderError, HolderProof, ReplayGuard, VerifiedCache, VerifiedChain, VerifyError, VerifyOptions,
};
use agentmesh_identity::PublicKey;
use agentmesh_policy::schema::{
    ActionAttrs, AgentAttrs, DataAttrs, RequestAttrs, TimeAttrs, UserAttrs,
};
use agentmesh_policy::{
    ApprovalStore, DecideContext, Decision, MemoryLimiter, Outcome, PolicyHandle, PolicySet,
    Reason, Request, arguments_digest,
};
use agentmesh_store::{
    ApprovalRecord, ApprovalStatus, Mesh, MeshError, StoreError, TRUST_DETAIL_KEY, TRUST_EVENT,
    decision_event,
};
use agentmesh_trust::{Activity, Applied, EventKind, TrustConfig, TrustEvent, tier_of};
use arc_swap::ArcSwap;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Audit event name of a governance decision.
pub const DECISION_EVENT: &str = Event::Decision.as_str();
/// Audit event name of the outcome of an allowed call.
pub const RESULT_EVENT: &str = Event::CallResult.as_str();
/// Audit event name of a failed authentication.
pub const AUTH_FAILED_EVENT: &str = Event::AuthFailed.as_str();
/// Audit event name of the failed authentications of one source in one
/// window that were counted rather than recorded one by one.
pub const AUTH_FAILED_SUMMARY_EVENT: &str = Event::AuthFailedSummary.as_str();
/// Audit event name of a source with many failed authentications.
pub const AUTH_SOURCE_ANOMALY_EVENT: &str = Event::AuthSourceAnomaly.as_str();
/// Audit event name of an approval decided by a human.
pub const APPROVAL_EVENT: &str = Event::ApprovalDecided.as_str();

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The audience this gateway accepts credentials for (besides `*`).
    pub audience: String,
    /// The suspension floor this engine applies (see the trust model:
    /// suspension needs evidence, and a breached agent is refused until a
    /// human reinstates it). `None`: the trust configuration's
    /// `suspend_below`.
    pub trust_floor: Option<f64>,
    /// How often the registry snapshot is reloaded (revocations, status
    /// changes and new agents made by other processes take effect).
    pub refresh_every: Duration,
    /// How often changed trust state is written to the registry.
    pub flush_every: Duration,
    /// How often a held call looks for a human decision.
    pub approval_poll: Duration,
    /// Wait until each decision's audit leaf is durable before answering
    /// (strict audit-before-act; costs one group-commit fsync per call).
    pub wait_durable: bool,
    /// The key credentials must be signed by. `None`: this home's mesh
    /// key. A gateway attached to a control plane uses the control
    /// plane's.
    pub authority: Option<PublicKey>,
    /// Verifiers whose IATP trust attestations (`amat1.…`) this engine
    /// accepts as credentials: typically this gateway's own verifier key.
    /// Empty: attestations are refused.
    pub attestation_issuers: Vec<PublicKey>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            audience: "agentmesh".into(),
            trust_floor: None,
            refresh_every: Duration::from_secs(1),
            flush_every: Duration::from_secs(1),
            approval_poll: Duration::from_millis(100),
            wait_durable: false,
            authority: None,
            attestation_issuers: Vec::new(),
        }
    }
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Mesh(#[from] MeshError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("compliance catalogues: {0}")]
    Catalogues(String),
}

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// Named in local configuration (the stdio wrapper), its key in the home.
    Local,
    /// A mesh-issued bearer credential.
    Credential,
    /// A delegation token with a holder proof.
    Delegation,
    /// An IATP trust attestation from a verifier this engine trusts.
    Attestation,
}

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub agent: Arc<AgentView>,
    /// What the caller may do: the agent's capabilities, or a delegation
    /// chain's (narrower) ones.
    pub capabilities: Arc<[Capability]>,
    pub capability_names: Arc<[String]>,
    pub delegation_depth: i64,
    pub method: AuthMethod,
    pub chain: Option<Arc<VerifiedChain>>,
    /// The delegation token's text, to re-check the chain later.
    pub token: Option<Arc<str>>,
    /// Id of the credential used, for audit.
    pub credential_id: Option<String>,
}

/// What a caller presented.
#[derive(Debug, Clone, Copy)]
pub enum Presented<'a> {
    /// `amcr1.…`
    Credential(&'a str),
    /// `amdt1.…` plus `amhp1.…` over `request_digest`.
    Delegation {
        token: &'a str,
        proof: &'a str,
        request_digest: [u8; 32],
    },
    /// `amat1.…`: an IATP trust attestation.
    Attestation(&'a str),
}

/// Why authentication failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("no credential was presented")]
    Missing,
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error("delegation token rejected: {0}")]
    Delegation(#[from] VerifyError),
    #[error("holder proof rejected: {0}")]
    Proof(#[from] HolderError),
    #[error("agent `{0}` is not registered in this mesh")]
    UnknownAgent(String),
    #[error("{0}")]
    Inactive(String),
    #[error("credential `{0}` was revoked")]
    CredentialRevoked(String),
    #[error("trust attestation rejected: {0}")]
    Attestation(#[from] agentmesh_iatp::HandshakeError),
}

impl AuthError {
    /// A stable code for the `WWW-Authenticate` error description, audit
    /// and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "credential_missing",
            AuthError::Credential(e) => e.code(),
            AuthError::Delegation(e) => e.code(),
            AuthError::Proof(_) => "holder_proof_rejected",
            AuthError::UnknownAgent(_) => "unknown_agent",
            AuthError::Inactive(_) => "agent_inactive",
            AuthError::CredentialRevoked(_) => "credential_revoked",
            AuthError::Attestation(e) => match e.code() {
                "untrusted_issuer" => "attestation_untrusted_issuer",
                "wrong_audience" => "attestation_wrong_audience",
                "bad_signature" => "attestation_bad_signature",
                "not_yet_valid" => "attestation_not_yet_valid",
                "malformed" => "attestation_malformed",
                // The handshake's own codes (a request-bound response that
                // failed): `replayed`, `channel_mismatch`, …
                other => other,
            },
        }
    }
}

/// One governed operation, as an adapter describes it.
#[derive(Debug, Clone)]
pub struct Call {
    /// `mcp`, `a2a`, …
    pub protocol: &'static str,
    /// The protocol method (`tools/call`).
    pub method: String,
    /// `action.type`: `tool_call`, `resource_read`, `prompt_get`, …
    pub kind: &'static str,
    /// The tool, prompt, resource or skill as the client names it (a
    /// federated gateway's namespaced `<upstream>__<name>`): audit entries
    /// and explanations.
    pub target: String,
    /// `action.tool`: the same as its server names it, whichever gateway
    /// fronts it, so adding an upstream never changes what a rule matches.
    pub tool: String,
    /// The capability the operation needs.
    pub capability: Capability,
    /// The arguments as policy sees them (normalised).
    pub arguments: Option<Value>,
    pub data: DataAttrs,
    /// The upstream that would serve it.
    pub upstream: Option<Arc<str>>,
    /// W3C trace id, when the request carries one.
    pub trace_id: Option<String>,
    /// Extra facts for the audit entry (normalised paths, pin state, …).
    pub note: Option<Value>,
}

/// The decision on one call, and where it was recorded.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub decision: Decision,
    /// Index of the decision's audit leaf; `None` when it is not known
    /// here (queued for the process that holds the home's audit log) or
    /// could not be recorded (then the decision is a deny).
    pub audit_index: Option<u64>,
    /// Arguments to forward when they differ from what the caller sent
    /// (restricted to the minimum necessary); `None`: forward as sent.
    pub restricted_arguments: Option<Value>,
    /// The trust score after this decision.
    pub trust_after: f64,
    /// The capability the call needed: what the trust event of its result
    /// is about (diminishing returns for repeated work).
    pub capability: String,
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        self.decision.allowed()
    }
    /// A call held for a human (approval pending).
    pub fn held(&self) -> Option<&str> {
        match (&self.decision.outcome, &self.decision.approval) {
            (Outcome::RequireApproval, Some(a)) => Some(a.id.as_str()),
            _ => None,
        }
    }
}

/// The pipeline. Cheap to clone; safe to share across tasks.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("audience", &self.inner.cfg.audience)
            .finish()
    }
}

struct Inner {
    mesh: Mesh,
    cfg: EngineConfig,
    policy: Arc<PolicyHandle>,
    catalogues: Catalogues,
    limiter: MemoryLimiter,
    approvals: ApprovalStore,
    /// The home's audit log when this process holds it, else the outbox
    /// (see `sink`).
    sink: crate::sink::Sink,
    /// The options this engine opens the audit log with (also when it
    /// takes the log over from another process).
    audit_opts: agentmesh_audit::Options,
    snapshot: ArcSwap<Snapshot>,
    generation: AtomicU64,
    credentials: CredentialCache,
    attestations: AttestationCache,
    chains: VerifiedCache,
    replay: ReplayGuard,
    mesh_public: PublicKey,
    trust_cfg: TrustConfig,
    trust: TrustShards,
    sources: crate::source::SourceWatch,
    suspend: tokio::sync::mpsc::UnboundedSender<(String, String)>,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    metrics: crate::metrics::Metrics,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Engine {
    /// Loads the registry, trust state and catalogues from `mesh`, opens its
    /// audit log for writing, and starts the background tasks (registry
    /// refresh, trust flush, suspensions). Needs a Tokio runtime.
    pub async fn start(
        mesh: Mesh,
        policy: impl Into<Arc<PolicyHandle>>,
        cfg: EngineConfig,
    ) -> Result<Self, EngineError> {
        let policy = policy.into();
        let snapshot = Snapshot::load(mesh.registry(), 1).await?;
        let trust_cfg = mesh.trust_config()?;
        let states = mesh.registry().trust_states().await?;
        let catalogues =
            Catalogues::builtin().map_err(|e| EngineError::Catalogues(e.to_string()))?;
        // Decisions arrive in a steady trickle; a 2 ms commit linger turns
        // one fsync per entry into one per batch (nobody waits for it,
        // unless `wait_durable`).
        let audit_opts = agentmesh_audit::Options {
            linger: if cfg.wait_durable {
                std::time::Duration::ZERO
            } else {
                std::time::Duration::from_millis(2)
            },
            cache_tiles: 256,
            ..agentmesh_audit::Options::default()
        };
        let sink = match mesh.audit_with(audit_opts.clone()) {
            Ok(log) => crate::sink::Sink::holding(log),
            // Another process holds this home's log: follow it (its
            // entries reach the log through the registry outbox), unless
            // every call must wait for its own durable record.
            Err(MeshError::Audit(agentmesh_audit::AuditError::Locked(holder)))
                if !cfg.wait_durable =>
            {
                tracing::info!(
                    holder = %holder,
                    "another process holds this home's audit log: this one queues its entries for it and takes the log over when it exits"
                );
                crate::sink::Sink::following()
            }
            Err(e) => return Err(e.into()),
        };
        let mesh_public = match cfg.authority {
            Some(k) => k,
            None => *mesh.home().mesh_key()?.public(),
        };
        // One floor for the fold and the gate: the engine's override, if
        // any, is the floor its trust state is folded with.
        let mut trust_cfg = trust_cfg;
        if cfg.trust_floor.is_some() {
            trust_cfg.suspend_below = cfg.trust_floor;
        }
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let engine = Engine {
            inner: Arc::new(Inner {
                trust: TrustShards::new(&trust_cfg, states),
                trust_cfg,
                mesh,
                cfg,
                policy,
                catalogues,
                limiter: MemoryLimiter::new(),
                approvals: ApprovalStore::new(),
                sink,
                audit_opts,
                snapshot: ArcSwap::from_pointee(snapshot),
                generation: AtomicU64::new(1),
                credentials: CredentialCache::new(65_536),
                attestations: AttestationCache::new(65_536),
                chains: VerifiedCache::new(65_536),
                replay: ReplayGuard::new(120, 1 << 20),
                mesh_public,
                sources: crate::source::SourceWatch::default(),
                suspend: tx,
                tasks: std::sync::Mutex::new(Vec::new()),
                metrics: crate::metrics::Metrics::new(),
            }),
        };
        engine.spawn_tasks(rx);
        Ok(engine)
    }

    fn spawn_tasks(&self, mut suspend_rx: tokio::sync::mpsc::UnboundedReceiver<(String, String)>) {
        // Tasks hold a weak reference, so dropping the last engine handle
        // ends them.
        let weak = Arc::downgrade(&self.inner);
        let refresh_every = self.inner.cfg.refresh_every;
        let refresh = tokio::spawn(async move {
            let mut tick = tokio::time::interval(refresh_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let engine = Engine { inner };
                if engine.inner.sink.holds_log() {
                    // Entries other processes (the CLI, following gateways)
                    // queued while this one holds the audit log; their trust
                    // events are applied here, by the one writer of this
                    // home's trust state.
                    if let Err(e) = engine.drain_outbox().await {
                        tracing::warn!(error = %e, "could not append entries queued by other processes");
                    }
                } else if let Err(e) = engine.follow().await {
                    tracing::warn!(error = %e, "could not follow the process that holds this home's audit log");
                }
                if let Err(e) = engine.refresh().await {
                    tracing::warn!(error = %e, "could not reload the registry snapshot");
                }
            }
        });
        let weak = Arc::downgrade(&self.inner);
        let flush_every = self.inner.cfg.flush_every;
        let flush = tokio::spawn(async move {
            let mut checkpointed = 0u64;
            let mut last_checkpoint = std::time::Instant::now();
            let mut tick = tokio::time::interval(flush_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let engine = Engine { inner };
                if let Err(e) = engine.flush_trust().await {
                    tracing::warn!(error = %e, "could not save trust state");
                }
                engine.summarise_auth_failures(now_ns() / 1_000_000);
                // A signed checkpoint at most once a minute while the log
                // grows, so offline verification covers a running gateway.
                let Some(size) = engine.inner.sink.log().map(|l| l.size()) else {
                    continue;
                };
                if size > checkpointed
                    && last_checkpoint.elapsed() >= std::time::Duration::from_secs(60)
                {
                    if engine.inner.mesh.checkpoint().is_ok() {
                        checkpointed = size;
                    }
                    last_checkpoint = std::time::Instant::now();
                }
            }
        });
        // A follower's entries move to the registry outbox as they are made
        // (batched: one wake-up per burst).
        let weak = Arc::downgrade(&self.inner);
        let outbox = tokio::spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let wait = std::time::Duration::from_millis(250);
                // Waiting holds the engine for at most `wait`, so dropping
                // the last handle still ends this task.
                let _woken = tokio::time::timeout(wait, inner.sink.queued()).await;
                if inner.sink.pending() > 0
                    && let Err(e) = inner.sink.flush(inner.mesh.registry()).await
                {
                    tracing::warn!(error = %e, pending = inner.sink.pending(), "could not queue audit entries in the registry; retrying");
                    drop(inner);
                    tokio::time::sleep(wait).await;
                }
            }
        });
        let weak = Arc::downgrade(&self.inner);
        let suspender = tokio::spawn(async move {
            while let Some((did, reason)) = suspend_rx.recv().await {
                let Some(inner) = weak.upgrade() else { return };
                let engine = Engine { inner };
                if let Err(e) = engine
                    .inner
                    .mesh
                    .set_status(
                        &did,
                        agentmesh_delegation::AgentStatus::Suspended,
                        Some(&reason),
                        now_ns() / 1_000_000_000,
                    )
                    .await
                {
                    tracing::error!(agent = %did, error = %e, "could not suspend an agent whose trust breached the floor (the trust gate still refuses it)");
                }
                if let Err(e) = engine.refresh().await {
                    tracing::warn!(error = %e, "could not reload the registry snapshot");
                }
            }
        });
        let mut tasks = self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.extend([refresh, flush, outbox, suspender]);
    }

    /// One step of a follower (another process holds the home's audit
    /// log): take the log over if its holder has gone, else reload the
    /// trust states the holder saves (a follower never applies trust
    /// events itself; it queues them for the holder).
    async fn follow(&self) -> Result<(), EngineError> {
        let registry = self.inner.mesh.registry();
        // Opening the log recovers it from disk: blocking work.
        let (mesh, opts) = (self.inner.mesh.clone(), self.inner.audit_opts.clone());
        let opened = tokio::task::spawn_blocking(move || mesh.try_audit_with(opts))
            .await
            .map_err(|e| StoreError::Conflict(format!("opening the audit log: {e}")))??;
        match opened {
            Some(log) => {
                // Our queued entries first, then the trust state the last
                // holder saved, then the log: from now on trust events are
                // applied here, and what was queued is applied once, when
                // the outbox is drained.
                self.inner.sink.flush(registry).await?;
                self.reload_trust().await?;
                self.inner.sink.take_over(log);
                tracing::info!("took over this home's audit log (its holder exited)");
                self.drain_outbox().await?;
            }
            None => {
                let head = registry.queued_audit(1).await?.first().map(|(id, _)| *id);
                self.inner.sink.holder_took_up_to(head);
                self.reload_trust().await?;
            }
        }
        Ok(())
    }

    async fn reload_trust(&self) -> Result<(), StoreError> {
        for (agent, state) in self.inner.mesh.registry().trust_states().await? {
            self.inner.trust.lock(&agent).engine.restore(&agent, state);
        }
        Ok(())
    }

    /// Whether this engine can act now (every call needs its record): `Ok`
    /// with how it records (`holder` of the home's audit log, or
    /// `follower`), or why not. What a gateway's `/readyz` answers.
    pub fn readiness(&self) -> Result<&'static str, String> {
        if let Some(log) = self.inner.sink.log() {
            return match log.failure() {
                Some(why) => Err(format!("the audit log cannot record: {why}")),
                None => Ok("holder"),
            };
        }
        match self.inner.sink.stalled() {
            Some(why) => Err(why),
            None => Ok("follower"),
        }
    }

    /// Whether this process holds its home's audit log (else it follows
    /// the process that does).
    pub fn holds_audit_log(&self) -> bool {
        self.inner.sink.holds_log()
    }

    /// Records an entry: in the audit log when this process holds it,
    /// else queued for the process that does.
    pub fn record_draft(&self, draft: Draft) {
        if let Err(e) = self.inner.sink.append(move || draft) {
            tracing::error!(error = %e, "could not record an audit entry");
        }
    }

    /// Reloads the registry snapshot now.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let generation = self.inner.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let snap = Snapshot::load(self.inner.mesh.registry(), generation).await?;
        self.reinstate_reactivated(&snap);
        self.inner
            .metrics
            .snapshot_agents
            .set(i64::try_from(snap.agent_count()).unwrap_or(i64::MAX));
        self.inner.metrics.snapshot_reloads.inc();
        self.inner.snapshot.store(Arc::new(snap));
        Ok(())
    }

    /// A human reactivated an agent (sponsor, administrator; through the
    /// CLI or the control plane): if trust had breached the floor, the
    /// reactivation is an audited override that lets it act again (a
    /// `reinstated` trust event, applied here by the one writer of the
    /// trust state). Seen as a `suspended → active` change between two
    /// snapshots.
    fn reinstate_reactivated(&self, next: &Snapshot) {
        use agentmesh_delegation::AgentStatus;
        if !self.inner.sink.holds_log() {
            // The holder of the log (the one writer of trust state) sees
            // the same reactivation and records the reinstatement once.
            return;
        }
        let prev = self.inner.snapshot.load();
        for agent in next.agents() {
            let was_suspended = prev
                .agent(&agent.did)
                .is_some_and(|a| a.status == AgentStatus::Suspended);
            if agent.status != AgentStatus::Active || !was_suspended {
                continue;
            }
            if !self
                .inner
                .trust
                .lock(&agent.did_text)
                .engine
                .breached(&agent.did_text)
            {
                continue;
            }
            self.trust_only(
                agent,
                EventKind::Reinstated {
                    by: agent.sponsor.to_string(),
                },
                None,
            );
        }
    }

    /// Appends what other processes queued in this home's audit outbox;
    /// trust events they could not apply themselves (this process holds the
    /// trust state) are applied here first, under the agent's shard lock,
    /// so the audit log holds them in the order they were applied.
    pub async fn drain_outbox(&self) -> Result<usize, MeshError> {
        let snap = self.inner.snapshot.load_full();
        self.inner
            .mesh
            .drain_audit_outbox_with(|log, mut draft, event| {
                let mut shard = self.inner.trust.lock(&event.agent);
                let applied = shard.engine.apply(&event).ok();
                if let Some(a) = &applied {
                    shard.dirty.insert(event.agent.clone());
                    draft.trust_before = Some(a.before);
                    draft.trust_after = Some(a.after);
                }
                let queued = log.append_deferred(move || draft);
                drop(shard);
                if let Some(a) = &applied
                    && let Some(agent) = snap.find(&event.agent)
                {
                    self.maybe_suspend(agent, a);
                }
                Ok(queued?)
            })
            .await
    }

    /// Writes the summaries of failed authentications counted (not
    /// recorded one by one) in windows that are over.
    fn summarise_auth_failures(&self, now_ms: u64) {
        for (source, window_start_ms, count) in self.inner.sources.sweep(now_ms) {
            self.audit_source_summary(source, window_start_ms, count);
        }
    }

    fn audit_source_summary(&self, source: String, window_start_ms: u64, count: u32) {
        if let Err(e) = self.inner.sink.append(move || Draft {
            event: AUTH_FAILED_SUMMARY_EVENT.into(),
            decision: "deny".into(),
            detail: json!({
                "source": source,
                "failures": count,
                "window_start_ms": window_start_ms,
                "window_secs": crate::source::WINDOW_MS / 1000,
            }),
            ..Draft::default()
        }) {
            tracing::error!(error = %e, "could not audit a summary of failed authentications");
        }
    }

    /// Writes changed trust state to the registry.
    pub async fn flush_trust(&self) -> Result<usize, StoreError> {
        let dirty = self.inner.trust.take_dirty();
        let n = dirty.len();
        for (agent, state) in dirty {
            self.inner
                .mesh
                .registry()
                .save_trust_state(&agent, &state)
                .await?;
        }
        Ok(n)
    }

    /// Flushes trust state, waits for every queued audit leaf to be durable
    /// and signs a checkpoint; stops the background tasks.
    pub async fn shutdown(&self) -> Result<Option<String>, EngineError> {
        for t in self
            .inner
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            t.abort();
        }
        self.flush_trust().await?;
        if !self.inner.sink.holds_log() {
            // A follower hands what it still holds to the registry; the
            // holder appends it.
            self.inner.sink.flush(self.inner.mesh.registry()).await?;
            return Ok(None);
        }
        // A trailing no-op write is not needed: the checkpoint waits for
        // nothing, so wait for the writer by appending through it.
        let note = self.inner.mesh.checkpoint().ok();
        Ok(note)
    }

    pub fn mesh(&self) -> &Mesh {
        &self.inner.mesh
    }

    pub fn policy(&self) -> &Arc<PolicyHandle> {
        &self.inner.policy
    }

    /// The home's audit log, when this process holds it (`None`: another
    /// process does, and this one queues its entries for it).
    pub fn audit(&self) -> Option<Arc<AuditLog>> {
        self.inner.sink.log()
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.cfg
    }

    /// The pipeline's metrics (the audit size is read when encoding).
    pub fn metrics_text(&self) -> String {
        let m = &self.inner.metrics;
        if let Some(log) = self.inner.sink.log() {
            m.audit_entries
                .set(i64::try_from(log.size()).unwrap_or(i64::MAX));
        }
        m.encode()
    }

    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.inner.metrics
    }

    /// The current registry snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.snapshot.load_full()
    }

    fn principal_for(
        &self,
        agent: Arc<AgentView>,
        method: AuthMethod,
        chain: Option<Arc<VerifiedChain>>,
        credential_id: Option<String>,
    ) -> Principal {
        let (capabilities, names): (Arc<[Capability]>, Arc<[String]>) = match &chain {
            Some(c) => (
                c.capabilities.clone().into(),
                c.capabilities.iter().map(|c| c.to_string()).collect(),
            ),
            None => (agent.capabilities.clone(), agent.capability_names.clone()),
        };
        Principal {
            delegation_depth: chain.as_ref().map(|c| c.depth() as i64).unwrap_or(0),
            agent,
            capabilities,
            capability_names: names,
            method,
            chain,
            token: None,
            credential_id,
        }
    }

    /// The caller named in local configuration (the stdio wrapper): the
    /// agent must be registered and active.
    pub fn local_principal(&self, name_or_did: &str) -> Result<Principal, AuthError> {
        let snap = self.inner.snapshot.load();
        let agent = snap
            .find(name_or_did)
            .cloned()
            .ok_or_else(|| AuthError::UnknownAgent(name_or_did.to_owned()))?;
        if let Some(why) = agent.inactive_reason(now_ns() / 1_000_000_000) {
            return Err(AuthError::Inactive(why));
        }
        Ok(self.principal_for(agent, AuthMethod::Local, None, None))
    }

    /// [`Engine::authenticate_from`] with the source the transport set for
    /// the request being served ([`crate::source::with_source`]); failures
    /// without one are counted under `unknown`.
    pub fn authenticate(&self, presented: Presented<'_>) -> Result<Principal, AuthError> {
        let source = crate::source::current();
        self.authenticate_from(presented, source.as_deref())
    }

    /// Authenticates a presented credential. Signatures are checked once
    /// per credential or chain and cached; liveness every time.
    ///
    /// A failure is never evidence against the agent the credential names:
    /// it cannot be attributed (a forged proof, a replay, someone else's
    /// token). It is audited with the DID it claimed (`claimed_agent`, not
    /// the entry's agent) and counted against `source` — the peer address
    /// as the transport saw it — see [`crate::source`].
    pub fn authenticate_from(
        &self,
        presented: Presented<'_>,
        source: Option<&str>,
    ) -> Result<Principal, AuthError> {
        let now = now_ns() / 1_000_000_000;
        let snap = self.inner.snapshot.load();
        let claimed: std::cell::RefCell<Option<String>> = std::cell::RefCell::new(None);
        let result = match presented {
            Presented::Attestation(text) => self
                .inner
                .attestations
                .verify(text, &self.inner.cfg, now)
                .and_then(|entry| {
                    let (att, sub) = (&entry.att, &entry.sub);
                    // The claimed identity is kept only for a failure's audit
                    // entry (no allocation on the success path).
                    let r = (|| {
                        let agent = snap
                            .agent(sub)
                            .cloned()
                            .ok_or_else(|| AuthError::UnknownAgent(att.sub.clone()))?;
                        if let Some(why) = agent.inactive_reason(now) {
                            return Err(AuthError::Inactive(why));
                        }
                        Ok(self.principal_for(
                            agent,
                            AuthMethod::Attestation,
                            None,
                            Some(format!("iatp:{}", att.id)),
                        ))
                    })();
                    if r.is_err() {
                        claimed.replace(Some(entry.att.sub.clone()));
                    }
                    r
                }),
            Presented::Credential(text) => self
                .inner
                .credentials
                .verify(text, &self.inner.mesh_public, &self.inner.cfg.audience, now)
                .map_err(AuthError::from)
                .and_then(|checked| {
                    // The claimed identity is kept only for a failure's audit
                    // entry (no allocation on the success path).
                    let r = (|| {
                        if snap.credential_revoked(&checked.claims.id) {
                            return Err(AuthError::CredentialRevoked(checked.claims.id.clone()));
                        }
                        let agent = snap
                            .agent(&checked.subject)
                            .cloned()
                            .ok_or_else(|| AuthError::UnknownAgent(checked.claims.sub.clone()))?;
                        if let Some(why) = agent.inactive_reason(now) {
                            return Err(AuthError::Inactive(why));
                        }
                        Ok(self.principal_for(
                            agent,
                            AuthMethod::Credential,
                            None,
                            Some(checked.claims.id.clone()),
                        ))
                    })();
                    if r.is_err() {
                        claimed.replace(Some(checked.claims.sub.clone()));
                    }
                    r
                }),
            Presented::Delegation {
                token,
                proof,
                request_digest,
            } => self
                .inner
                .chains
                .verify(token, &**snap, VerifyOptions::at(now))
                .map_err(AuthError::from)
                .and_then(|chain| {
                    let holder = chain.holder;
                    // The claimed identity is kept only for a failure's audit
                    // entry (no allocation on the success path).
                    let r = (|| {
                        let agent = snap
                            .agent(&chain.holder)
                            .cloned()
                            .ok_or_else(|| AuthError::UnknownAgent(chain.holder.to_string()))?;
                        let proof = HolderProof::parse(proof)?;
                        // A bad or replayed proof is not the holder's conduct:
                        // anyone who saw the token can present it.
                        self.inner
                            .replay
                            .verify(&chain, &proof, &request_digest, now)?;
                        if let Some(why) = agent.inactive_reason(now) {
                            return Err(AuthError::Inactive(why));
                        }
                        let mut p =
                            self.principal_for(agent, AuthMethod::Delegation, Some(chain), None);
                        p.token = Some(token.into());
                        Ok(p)
                    })();
                    if r.is_err() {
                        claimed.replace(Some(holder.to_string()));
                    }
                    r
                }),
        };
        match &result {
            Err(e) => self.audit_auth_failure(e, source, claimed.take(), now_ns() / 1_000_000),
            Ok(p) => {
                self.inner
                    .metrics
                    .authentications
                    .get_or_create(&crate::metrics::MethodLabels {
                        method: match p.method {
                            AuthMethod::Credential => "credential",
                            AuthMethod::Delegation => "delegation",
                            AuthMethod::Local => "local",
                            AuthMethod::Attestation => "attestation",
                        },
                    })
                    .inc();
            }
        }
        result
    }

    /// Re-checks a principal authenticated earlier (a long-lived session):
    /// its chain against the current registry (a cache hit unless the
    /// registry changed) and the agent's liveness. No signature is checked
    /// again unless the chain fell out of the cache.
    pub fn revalidate(&self, p: &Principal) -> Result<(), AuthError> {
        let now = now_ns() / 1_000_000_000;
        let snap = self.inner.snapshot.load();
        if let Some(token) = &p.token {
            self.inner
                .chains
                .verify(token, &**snap, VerifyOptions::at(now))?;
        }
        let agent = snap
            .agent(&p.agent.did)
            .ok_or_else(|| AuthError::UnknownAgent(p.agent.did_text.to_string()))?;
        if let Some(why) = agent.inactive_reason(now) {
            return Err(AuthError::Inactive(why));
        }
        Ok(())
    }

    fn audit_auth_failure(
        &self,
        e: &AuthError,
        source: Option<&str>,
        claimed: Option<String>,
        now_ms: u64,
    ) {
        let code = e.code();
        self.inner
            .metrics
            .auth_failures
            .get_or_create(&crate::metrics::ReasonLabels { reason: code })
            .inc();
        let source = source.unwrap_or(crate::source::UNKNOWN_SOURCE);
        let seen = self.inner.sources.failure(source, now_ms);
        if let Some((s, window_start_ms, count)) = seen.summary {
            self.audit_source_summary(s, window_start_ms, count);
        }
        if seen.record {
            let message = e.to_string();
            let source = source.to_owned();
            if let Err(err) = self.inner.sink.append(move || Draft {
                event: AUTH_FAILED_EVENT.into(),
                decision: "deny".into(),
                // Not `agent`: the claim is unproven, and the entry must
                // not read as that agent's conduct.
                detail: json!({
                    "reason": code,
                    "message": message,
                    "source": source,
                    "claimed_agent": claimed,
                }),
                ..Draft::default()
            }) {
                tracing::error!(error = %err, "could not audit a failed authentication");
            }
        }
        if let Some(failures) = seen.anomaly {
            self.inner.metrics.source_anomalies.inc();
            tracing::warn!(
                source,
                failures,
                "many failed authentications from one source"
            );
            let source = source.to_owned();
            if let Err(err) = self.inner.sink.append(move || Draft {
                event: AUTH_SOURCE_ANOMALY_EVENT.into(),
                decision: "deny".into(),
                detail: json!({
                    "source": source,
                    "failures": failures,
                    "window_secs": crate::source::WINDOW_MS / 1000,
                    "severity": "medium",
                }),
                ..Draft::default()
            }) {
                tracing::error!(error = %err, "could not audit a source anomaly");
            }
        }
    }

    /// Applies a trust event outside a decision and records it.
    /// Records a completed IATP handshake as a trust event for the agent
    /// that proved itself. Only successes: a refused response cannot be
    /// attributed to the DID it claims (anyone can claim one), so failures
    /// are audited, never scored.
    ///
    /// Handshakes count once per peer and window (diminishing returns): the
    /// peer is this engine (its audience), the verifier the agent proved
    /// itself to.
    pub fn record_handshake(&self, did: &agentmesh_identity::Did) {
        let agent = self.inner.snapshot.load().agent(did).cloned();
        if let Some(agent) = agent {
            let peer = self.inner.cfg.audience.clone();
            self.trust_only(&agent, EventKind::Handshake { ok: true }, Some(peer));
        }
    }

    fn trust_only(&self, agent: &AgentView, kind: EventKind, about: Option<String>) {
        let did = agent.did_text.to_string();
        let mut shard = self.inner.trust.lock(&did);
        let at_ms = now_ns() / 1_000_000;
        let event = TrustEvent {
            agent: did.clone(),
            at_ms,
            kind,
            about,
        };
        let sponsor = agent.sponsor.to_string();
        let Some(log) = self.inner.sink.log() else {
            // A follower queues the event for the holder to apply.
            if let Err(e) = self
                .inner
                .sink
                .append_to(None, move || trust_draft(&event, None, sponsor))
            {
                tracing::error!(agent = %did, error = %e, "could not queue a trust event");
            }
            return;
        };
        let Ok(applied) = shard.engine.apply(&event) else {
            return;
        };
        shard.dirty.insert(did.clone());
        let recorded = applied.clone();
        if let Err(e) = self.inner.sink.append_to(Some(&log), move || {
            trust_draft(&event, Some(&recorded), sponsor)
        }) {
            tracing::error!(agent = %did, error = %e, "could not audit a trust event");
        }
        drop(shard);
        self.maybe_suspend(agent, &applied);
    }

    fn maybe_suspend(&self, agent: &AgentView, applied: &Applied) {
        if applied.suspend {
            let reason = format!(
                "trust score {:.3} fell below the floor {:.2}",
                applied.after,
                self.inner.trust_cfg.suspend_below.unwrap_or(0.0)
            );
            if self
                .inner
                .suspend
                .send((agent.did_text.to_string(), reason))
                .is_err()
            {
                // Shutting down; the breach is in the trust state and the
                // gate keeps refusing the agent.
                tracing::warn!(agent = %agent.did_text, "suspension not written: the engine is stopping");
            }
        }
    }

    /// The trust gate's reading of an agent: score, uncertainty, and
    /// whether its trust breached the floor (refused until reinstated).
    fn trust_gate(&self, did: &str, now_ms: u64) -> (f64, f64, bool) {
        let shard = self.inner.trust.lock(did);
        let (score, unc) = shard.engine.quick_score(did, now_ms);
        (score, unc, shard.engine.breached(did))
    }

    fn request(&self, p: &Principal, call: &Call, score: f64, tier: &str, now: u64) -> Request {
        Request {
            agent: AgentAttrs {
                did: Some(p.agent.did_text.to_string()),
                name: Some(p.agent.name.to_string()),
                sponsor: Some(p.agent.sponsor.to_string()),
                trust_score: Some(score),
                trust_tier: Some(tier.to_owned()),
                capabilities: Some(p.capability_names.to_vec()),
                delegation_depth: Some(p.delegation_depth),
            },
            action: ActionAttrs {
                kind: Some(call.kind.to_owned()),
                capability: Some(call.capability.to_string()),
                tool: Some(call.tool.clone()),
                server: call.upstream.as_deref().map(str::to_owned),
            },
            data: call.data.clone(),
            request: RequestAttrs {
                protocol: Some(call.protocol.to_owned()),
                method: Some(call.method.clone()),
                arguments: call.arguments.clone(),
            },
            user: UserAttrs::default(),
            time: TimeAttrs::at(i64::try_from(now).unwrap_or(i64::MAX)),
        }
    }

    /// Policy plus compliance obligations, with or without the stateful
    /// parts (rate limits, approvals).
    fn judge(&self, set: &PolicySet, req: &Request, ctx: &DecideContext<'_>) -> Decision {
        let mut d = set.decide(req, ctx);
        let settings = set.compliance_for(req);
        if !settings.frameworks.is_empty() {
            let fws: Vec<&str> = settings.frameworks.iter().map(String::as_str).collect();
            match self
                .inner
                .catalogues
                .evaluate(&fws, &context_for(req, &settings))
            {
                Ok(eval) => {
                    apply_obligations(set, &mut d, &eval, req, &settings, ctx);
                }
                Err(e) => {
                    d = Decision::denied(
                        Reason::EvaluationError,
                        format!("compliance: {e}"),
                        set.version.clone(),
                    );
                }
            }
        }
        d
    }

    /// Would `call` be allowed for `p` with some arguments? Used to filter
    /// lists: a tool is hidden only when the caller lacks the capability, or
    /// the policy denies it whatever the arguments. (A rule that reads the
    /// arguments cannot be evaluated without them; such tools stay visible
    /// and each call is judged in full.) No audit, no rate-limit tokens.
    pub fn visible(&self, p: &Principal, call: &Call) -> bool {
        if !p.capabilities.iter().any(|g| covers(g, &call.capability)) {
            return false;
        }
        let now_ns = now_ns();
        let now = now_ns / 1_000_000_000;
        let did = p.agent.did_text.as_ref();
        let (score, unc, breached) = self.trust_gate(did, now_ns / 1_000_000);
        if breached {
            return false;
        }
        let tier = tier_of(score, unc, &self.inner.trust_cfg);
        let req = self.request(p, call, score, tier, now);
        let set = self.inner.policy.current();
        let d = self.judge(&set, &req, &DecideContext::bare(now));
        d.outcome != Outcome::Deny || d.reason == Reason::EvaluationError
    }

    /// Decides one call and records it: the audit leaf is queued and the
    /// trust event applied before this returns.
    pub fn decide(&self, p: &Principal, call: &Call) -> Verdict {
        let started = std::time::Instant::now();
        let now_ns = now_ns();
        let now = now_ns / 1_000_000_000;
        let now_ms = now_ns / 1_000_000;
        let did = p.agent.did_text.clone();
        let set = self.inner.policy.current();

        // Liveness: the snapshot may have changed since authentication.
        let snap = self.inner.snapshot.load();
        let live = snap.agent(&p.agent.did).cloned();
        let inactive = match &live {
            None => Some(format!("agent `{}` is no longer registered", p.agent.name)),
            Some(a) => a.inactive_reason(now),
        };
        let (score, unc, breached) = self.trust_gate(&did, now_ms);
        let tier = tier_of(score, unc, &self.inner.trust_cfg);

        let mut req = self.request(p, call, score, tier, now);
        let decision = if let Some(why) = inactive {
            Decision::denied(Reason::AgentInactive, why, set.version.clone())
        } else if !p.capabilities.iter().any(|g| covers(g, &call.capability)) {
            Decision::denied(
                Reason::CapabilityNotHeld,
                format!(
                    "`{}` needs {}, which {} does not hold",
                    call.target, call.capability, p.agent.name
                ),
                set.version.clone(),
            )
        } else if breached {
            Decision::denied(
                Reason::TrustBelowFloor,
                format!(
                    "trust score {score:.3} fell below the floor {:.2}; the agent may act again once its sponsor reactivates it (`agentmesh agent reactivate {}`)",
                    self.inner.trust_cfg.suspend_below.unwrap_or(0.0),
                    p.agent.name
                ),
                set.version.clone(),
            )
        } else {
            let ctx = DecideContext {
                limiter: Some(&self.inner.limiter),
                approvals: Some(&self.inner.approvals),
                now_ns,
            };
            self.judge(&set, &req, &ctx)
        };
        let verdict = self.record(p, call, decision, &mut req, now_ms);
        self.inner.metrics.decision(
            verdict.decision.outcome.as_str(),
            call.protocol,
            started.elapsed().as_secs_f64(),
        );
        verdict
    }

    /// Records a decision made outside the policy (e.g. a changed tool):
    /// the same audit leaf and trust event as [`Engine::decide`].
    pub fn deny(&self, p: &Principal, call: &Call, reason: Reason, message: String) -> Verdict {
        let now_ns = now_ns();
        let set = self.inner.policy.current();
        let did = p.agent.did_text.clone();
        let (score, unc) = self
            .inner
            .trust
            .lock(&did)
            .engine
            .quick_score(&did, now_ns / 1_000_000);
        let tier = tier_of(score, unc, &self.inner.trust_cfg);
        let mut req = self.request(p, call, score, tier, now_ns / 1_000_000_000);
        let d = Decision::denied(reason, message, set.version.clone());
        let verdict = self.record(p, call, d, &mut req, now_ns / 1_000_000);
        self.inner
            .metrics
            .decision(verdict.decision.outcome.as_str(), call.protocol, 0.0);
        verdict
    }

    fn record(
        &self,
        p: &Principal,
        call: &Call,
        mut decision: Decision,
        req: &mut Request,
        now_ms: u64,
    ) -> Verdict {
        let restricted_arguments = match (&decision.restrict_arguments, &call.arguments) {
            (Some(fields), Some(Value::Object(args))) if decision.allowed() => {
                let kept: serde_json::Map<String, Value> = args
                    .iter()
                    .filter(|(k, _)| fields.contains(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                (kept.len() != args.len()).then_some(Value::Object(kept))
            }
            _ => None,
        };
        let did = p.agent.did_text.to_string();
        let outcome = decision.outcome.as_str();
        let kind = decision_event(
            outcome,
            decision.severity.map(|s| s.as_str()),
            decision.rule.as_deref(),
        );
        let approval_pending = decision.outcome == Outcome::RequireApproval;
        // The capability as text was made once for the policy request.
        let cap_text = req
            .action
            .capability
            .take()
            .unwrap_or_else(|| call.capability.to_string());
        // One mode for the whole record: holding the log, trust events are
        // applied here; following, they are queued for the holder.
        // (A guard, not an `Arc` clone: no reference-count traffic per call.)
        let held = self.inner.sink.current();
        let log: Option<&AuditLog> = held.as_deref();
        let mut shard = self.inner.trust.lock(&did);
        let event = TrustEvent {
            agent: did.clone(),
            at_ms: now_ms,
            kind,
            about: Some(cap_text.clone()),
        };
        let applied = match &log {
            Some(_) => shard.engine.apply(&event).ok(),
            None => None,
        };
        let trust = match (&log, &applied) {
            (Some(_), Some(a)) => Some((event, Some(a.clone()))),
            (Some(_), None) => None,
            (None, _) => Some((event, None)),
        };
        let anomalies = shard.engine.observe(
            &did,
            &Activity {
                at_ms: now_ms,
                tool: Some(&call.target),
                denied: !decision.allowed() && !approval_pending,
            },
        );
        let mut anomaly_events = Vec::new();
        for a in anomalies {
            let ev = TrustEvent {
                agent: did.clone(),
                at_ms: now_ms,
                kind: EventKind::Anomaly {
                    detector: a.detector,
                    severity: a.severity,
                    explanation: a.explanation,
                },
                about: None,
            };
            if log.is_none() {
                anomaly_events.push((ev, None));
            } else if let Ok(ap) = shard.engine.apply(&ev) {
                anomaly_events.push((ev, Some(ap)));
            }
        }
        if log.is_some() {
            shard.dirty.insert(did.clone());
        }
        // Queue under the shard lock, so this agent's trust events reach
        // the log in the order they were applied (recompute depends on it).
        let leaf = DecisionLeaf {
            did,
            sponsor: p.agent.sponsor.to_string(),
            agent_name: p.agent.name.to_string(),
            method: p.method,
            credential_id: p.credential_id.clone(),
            delegation_depth: p.delegation_depth,
            call_method: call.method.clone(),
            protocol: call.protocol,
            target: call.target.clone(),
            capability: cap_text.clone(),
            upstream: call.upstream.clone(),
            trace_id: call.trace_id.clone(),
            note: call.note.clone(),
            arguments: req.request.arguments.take(),
            decision: decision.clone(),
            trust,
        };
        let queued = self.inner.sink.append_to(log, move || leaf.into_draft());
        let mut last = applied.clone();
        for (ev, ap) in anomaly_events {
            let sponsor = p.agent.sponsor.to_string();
            if ap.is_some() {
                last.clone_from(&ap);
            }
            if let Err(e) = self
                .inner
                .sink
                .append_to(log, move || trust_draft(&ev, ap.as_ref(), sponsor))
            {
                tracing::error!(error = %e, "could not audit an anomaly");
            }
        }
        drop(shard);
        let audit_index = match queued {
            // Queued for the holder of the log: its index is not known
            // here (a follower never waits for durability: see `start`).
            Ok(crate::sink::Appended::Outbox) => None,
            Ok(crate::sink::Appended::Log(q)) => {
                let index = q.index;
                if self.inner.cfg.wait_durable && q.wait().is_err() {
                    // The record could not be made durable: fail closed.
                    decision = Decision::denied(
                        Reason::EvaluationError,
                        "the audit log could not record this call".into(),
                        decision.policy_version.clone(),
                    );
                }
                Some(index)
            }
            Err(e) => {
                // No audit, no action.
                decision = Decision::denied(
                    Reason::EvaluationError,
                    format!("the audit log is unavailable: {e}"),
                    decision.policy_version.clone(),
                );
                None
            }
        };
        if let Some(a) = &last {
            self.inner.metrics.trust(&p.agent.name, a.after);
            self.maybe_suspend(&p.agent, a);
        }
        Verdict {
            decision,
            audit_index,
            restricted_arguments,
            // A follower reports the score it gated with.
            trust_after: last
                .map(|a| a.after)
                .unwrap_or(req.agent.trust_score.unwrap_or(0.0)),
            capability: cap_text,
        }
    }

    /// Records the outcome of an allowed call (the upstream's answer): a
    /// task trust event, success or failure, in its own audit leaf.
    pub fn record_result(&self, p: &Principal, verdict: &Verdict, success: bool, detail: Value) {
        let did = p.agent.did_text.to_string();
        let held = self.inner.sink.current();
        let log: Option<&AuditLog> = held.as_deref();
        let mut shard = self.inner.trust.lock(&did);
        let event = TrustEvent {
            agent: did.clone(),
            at_ms: now_ns() / 1_000_000,
            kind: EventKind::Task { success },
            about: Some(verdict.capability.clone()),
        };
        // A follower queues the event unapplied, for the log's holder.
        let applied = match &log {
            Some(_) => match shard.engine.apply(&event) {
                Ok(a) => Some(a),
                Err(_) => return,
            },
            None => None,
        };
        if applied.is_some() {
            shard.dirty.insert(did.clone());
        }
        let sponsor = p.agent.sponsor.to_string();
        let decision_index = verdict.audit_index;
        let queued = self.inner.sink.append_to(log, move || {
            let mut detail = detail;
            if let Value::Object(m) = &mut detail {
                m.insert("decision_index".into(), json!(decision_index));
                m.insert(
                    TRUST_DETAIL_KEY.into(),
                    serde_json::to_value(&event).unwrap_or(Value::Null),
                );
            }
            Draft {
                event: RESULT_EVENT.into(),
                agent: did,
                sponsor,
                action: if success { "succeeded" } else { "failed" }.into(),
                decision: String::new(),
                trust_before: applied.as_ref().map(|a| a.before),
                trust_after: applied.as_ref().map(|a| a.after),
                detail,
                ..Draft::default()
            }
        });
        if let Err(e) = queued {
            tracing::error!(error = %e, "could not audit a call result");
        }
        drop(shard);
    }

    /// Holds a call that needs approval until a human decides (through the
    /// registry, e.g. `agentmesh approvals approve`) or the approval
    /// expires, then returns the final verdict (recorded like any other).
    pub async fn await_approval(&self, p: &Principal, call: &Call, held: Verdict) -> Verdict {
        let Some(approval) = held.decision.approval.clone() else {
            return held;
        };
        let registry = self.inner.mesh.registry();
        let record = ApprovalRecord {
            id: approval.id.clone(),
            caller: approval.binding.caller.clone(),
            action: approval.binding.action.clone(),
            arguments_sha256: approval.binding.arguments_sha256.clone(),
            policy_version: approval.binding.policy_version.clone(),
            rule: approval.binding.rule.clone(),
            approvers: approval.approvers.clone(),
            state: ApprovalStatus::Pending,
            decided_by: None,
            decided_at: None,
            reason: None,
            created_at: approval.created_at,
            expires_at: approval.expires_at,
            summary: json!({
                "agent": p.agent.name.as_ref(),
                "sponsor": p.agent.sponsor.as_ref(),
                "tool": call.target,
                "method": call.method,
                "arguments": call.arguments,
                "message": held.decision.message,
                "audit_index": held.audit_index,
            }),
            proof: None,
        };
        if registry.insert_approval(&record).await.is_err() {
            return self.deny(
                p,
                call,
                Reason::EvaluationError,
                format!("approval {} could not be stored; denied", approval.id),
            );
        }
        loop {
            let now = now_ns() / 1_000_000_000;
            if now >= approval.expires_at {
                let _ = registry
                    .set_approval_state(
                        &approval.id,
                        ApprovalStatus::Pending,
                        ApprovalStatus::Expired,
                        None,
                        None,
                        now,
                    )
                    .await;
                return self.deny(
                    p,
                    call,
                    Reason::ApprovalExpired,
                    format!("approval {} expired before anyone decided", approval.id),
                );
            }
            match registry.approval(&approval.id).await {
                Ok(Some(r)) if r.state == ApprovalStatus::Approved => {
                    let by = r.decided_by.clone().unwrap_or_default();
                    self.audit_approval(&r);
                    // Only a decision signed by the approver's own key lets
                    // the call through: a name in a row is not a person.
                    if let Err(why) = self.check_decision(&r, "approved") {
                        return self.deny(
                            p,
                            call,
                            Reason::ApprovalDenied,
                            format!("approval {} refused: {why}", approval.id),
                        );
                    }
                    if let Err(e) = self.inner.approvals.approve(&approval.id, &by, now) {
                        return self.deny(p, call, Reason::ApprovalDenied, e.to_string());
                    }
                    let verdict = self.decide(p, call);
                    let _ = registry
                        .set_approval_state(
                            &approval.id,
                            ApprovalStatus::Approved,
                            ApprovalStatus::Used,
                            None,
                            None,
                            now,
                        )
                        .await;
                    return verdict;
                }
                Ok(Some(r)) if r.state == ApprovalStatus::Denied => {
                    self.audit_approval(&r);
                    let by = r.decided_by.unwrap_or_default();
                    let why = r.reason.map(|x| format!(": {x}")).unwrap_or_default();
                    let _ = self.inner.approvals.deny(&approval.id, &by, "", now);
                    return self.deny(
                        p,
                        call,
                        Reason::ApprovalDenied,
                        format!("approval {} denied by {by}{why}", approval.id),
                    );
                }
                Ok(Some(r)) if r.state != ApprovalStatus::Pending => {
                    return self.deny(
                        p,
                        call,
                        Reason::ApprovalExpired,
                        format!("approval {} is {}", approval.id, r.state.as_str()),
                    );
                }
                Ok(_) => {}
                Err(_) => {}
            }
            tokio::time::sleep(self.inner.cfg.approval_poll).await;
        }
    }

    /// Checks the decider's signature on a decided approval against the
    /// sponsor key the registry holds for `decided_by`.
    fn check_decision(&self, r: &ApprovalRecord, decision: &str) -> Result<(), String> {
        let by = r.decided_by.as_deref().unwrap_or_default();
        let proof = r
            .proof
            .as_deref()
            .ok_or_else(|| format!("`{by}`'s decision carries no signature"))?;
        let did = self
            .inner
            .snapshot
            .load()
            .sponsor_key(by)
            .cloned()
            .ok_or_else(|| format!("`{by}` is not an active sponsor of this mesh"))?;
        let key = did.public_key().map_err(|e| format!("`{by}`'s key: {e}"))?;
        agentmesh_policy::DecisionStatement {
            approval: &r.id,
            decision,
            by,
            caller: &r.caller,
            action: &r.action,
            arguments_sha256: &r.arguments_sha256,
            policy_version: &r.policy_version,
            at: 0,
        }
        .verify(proof, &key)
    }

    fn audit_approval(&self, r: &ApprovalRecord) {
        let r = r.clone();
        let queued = self.inner.sink.append(move || Draft {
            event: APPROVAL_EVENT.into(),
            agent: r.caller.clone(),
            action: r.action.clone(),
            arguments_sha256: r.arguments_sha256.clone(),
            decision: r.state.as_str().into(),
            rule: r.rule.clone(),
            policy_version: r.policy_version.clone(),
            detail: json!({
                "approval": r.id,
                "by": r.decided_by,
                "reason": r.reason,
            }),
            ..Draft::default()
        });
        if let Err(e) = queued {
            tracing::error!(error = %e, "could not audit an approval decision");
        }
    }
}

/// A `trust.event` entry; without `applied` (a follower's), the holder of
/// the log applies it when it drains the outbox.
fn trust_draft(event: &TrustEvent, applied: Option<&Applied>, sponsor: String) -> Draft {
    Draft {
        event: TRUST_EVENT.into(),
        agent: event.agent.clone(),
        sponsor,
        action: event.kind.label(),
        trust_before: applied.map(|a| a.before),
        trust_after: applied.map(|a| a.after),
        detail: serde_json::to_value(event).unwrap_or(Value::Null),
        ..Draft::default()
    }
}

/// Everything a decision leaf holds, moved to the audit writer thread,
/// which canonicalises and hashes the arguments there.
struct DecisionLeaf {
    did: String,
    sponsor: String,
    agent_name: String,
    method: AuthMethod,
    credential_id: Option<String>,
    delegation_depth: i64,
    call_method: String,
    protocol: &'static str,
    target: String,
    capability: String,
    upstream: Option<Arc<str>>,
    trace_id: Option<String>,
    note: Option<Value>,
    arguments: Option<Value>,
    decision: Decision,
    /// The decision's trust event, with what applying it did (`None`:
    /// queued by a follower, applied by the log's holder).
    trust: Option<(TrustEvent, Option<Applied>)>,
}

impl DecisionLeaf {
    fn into_draft(self) -> Draft {
        let d = self.decision;
        let mut detail = serde_json::Map::new();
        detail.insert("protocol".into(), json!(self.protocol));
        detail.insert("method".into(), json!(self.call_method));
        detail.insert("agent_name".into(), json!(self.agent_name));
        detail.insert("auth".into(), json!(self.method));
        if let Some(id) = self.credential_id {
            detail.insert("credential".into(), json!(id));
        }
        if self.delegation_depth > 0 {
            detail.insert("delegation_depth".into(), json!(self.delegation_depth));
        }
        detail.insert("capability".into(), json!(self.capability));
        if let Some(u) = self.upstream {
            detail.insert("upstream".into(), json!(u.as_ref()));
        }
        detail.insert("reason".into(), json!(d.reason.code()));
        detail.insert("message".into(), json!(d.message));
        if !d.frameworks.is_empty() {
            detail.insert("frameworks".into(), json!(d.frameworks));
        }
        if !d.controls.is_empty() {
            detail.insert("controls".into(), json!(d.controls));
        }
        if !d.obligations.is_empty() {
            detail.insert("obligations".into(), json!(d.obligations));
        }
        if !d.logged.is_empty() {
            let logged: Vec<&str> = d.logged.iter().map(|s| s.as_ref()).collect();
            detail.insert("logged".into(), json!(logged));
        }
        if let Some(r) = &d.restrict_arguments {
            detail.insert("restricted_to".into(), json!(r));
        }
        if let Some(s) = d.retry_after_secs {
            detail.insert("retry_after_secs".into(), json!(s));
        }
        if let Some(a) = &d.approval {
            detail.insert("approval".into(), json!(a.id));
            if let agentmesh_policy::ApprovalState::Used { by, .. } = &a.state {
                detail.insert("approved_by".into(), json!(by));
            }
        }
        if let Some(n) = self.note {
            detail.insert("note".into(), n);
        }
        let (before, after) = match &self.trust {
            Some((ev, ap)) => {
                detail.insert(
                    TRUST_DETAIL_KEY.into(),
                    serde_json::to_value(ev).unwrap_or(Value::Null),
                );
                (ap.as_ref().map(|a| a.before), ap.as_ref().map(|a| a.after))
            }
            None => (None, None),
        };
        Draft {
            event: DECISION_EVENT.into(),
            agent: self.did,
            sponsor: self.sponsor,
            action: self.target,
            arguments_sha256: arguments_digest(self.arguments.as_ref()),
            decision: d.outcome.as_str().into(),
            rule: match (&d.policy, &d.rule) {
                (Some(p), Some(r)) => format!("{p}/{r}"),
                _ => String::new(),
            },
            policy_version: d.policy_version.to_string(),
            trust_before: before,
            trust_after: after,
            trace_id: self.trace_id.unwrap_or_default(),
            detail: Value::Object(detail),
        }
    }
}

/// A checked attestation, its subject and its issuer.
struct AttestedEntry {
    att: agentmesh_iatp::Attestation,
    sub: agentmesh_identity::Did,
    iss: agentmesh_identity::Did,
}
type Attested = Arc<AttestedEntry>;

/// IATP attestations whose signature was already checked, keyed by their
/// text. A hit still checks time, audience and the issuer list.
struct AttestationCache {
    capacity: usize,
    entries: std::sync::RwLock<
        std::collections::HashMap<Box<str>, Attested, foldhash::fast::RandomState>,
    >,
}

impl AttestationCache {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: std::sync::RwLock::new(std::collections::HashMap::default()),
        }
    }

    fn verify(&self, text: &str, cfg: &EngineConfig, now: u64) -> Result<Attested, AuthError> {
        use agentmesh_iatp::{Attestation, HandshakeError};
        let hit = self
            .entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(text)
            .cloned();
        let entry = match hit {
            Some(e) => e,
            None => {
                let (att, iss) = Attestation::decode(text)?;
                let sub = agentmesh_identity::Did::parse(&att.sub)
                    .map_err(|e| HandshakeError::Malformed(format!("`sub`: {e}")))?;
                let entry = Arc::new(AttestedEntry { att, sub, iss });
                let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
                if map.len() >= self.capacity {
                    map.retain(|_, e| e.att.exp > now);
                    if map.len() >= self.capacity {
                        map.clear();
                    }
                }
                map.insert(text.into(), entry.clone());
                entry
            }
        };
        // Checked on every hit: the issuer list may have changed since.
        if !cfg
            .attestation_issuers
            .iter()
            .any(|k| k.as_bytes() == entry.iss.key_bytes())
        {
            return Err(HandshakeError::UntrustedIssuer(entry.att.iss.clone()).into());
        }
        entry.att.check(&cfg.audience, now)?;
        Ok(entry)
    }
}

/// The engine's registry and live trust, as the IATP handshake reads them:
/// a verifier running in a gateway attests from exactly what the gateway
/// enforces with.
impl agentmesh_iatp::Directory for Engine {
    fn peer(&self, did: &agentmesh_identity::Did) -> Option<agentmesh_iatp::PeerFacts> {
        let snap = self.inner.snapshot.load();
        let agent = snap.agent(did)?.clone();
        let now_ns = now_ns();
        let key = agent.did_text.as_ref();
        let (score, unc) = self
            .inner
            .trust
            .lock(key)
            .engine
            .quick_score(key, now_ns / 1_000_000);
        Some(agentmesh_iatp::PeerFacts {
            name: agent.name.to_string(),
            inactive: agent.inactive_reason(now_ns / 1_000_000_000),
            trust: score,
            tier: tier_of(score, unc, &self.inner.trust_cfg).to_owned(),
            capabilities: agent.capability_names.to_vec(),
        })
    }
}
