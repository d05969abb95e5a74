//! Mesh operations: the rules for creating sponsors and agents, changing
//! their status and issuing delegations, over a [`MeshHome`] (keys) and a
//! [`Registry`] (records). The CLI and the control plane both call these,
//! so the rules live in one place.

use crate::registry::{Registry, load_directory, parse_hex32};
use crate::{AgentRecord, KeyCustody, KeyKind, MeshHome, RevokedLink, SponsorRecord, StoreError};
use agentmesh_audit::note::NoteSigner;
use agentmesh_audit::{Appended, AuditError, AuditLog, Draft, Event, Options as AuditOptions};
use agentmesh_capability::{Capability, covers_all, display_list, normalize, uncovered};
use agentmesh_delegation::{
    AgentStatus, Grant, IssueError, Token, VerifiedChain, VerifyError, VerifyOptions, hex,
    verify_token,
};
use agentmesh_identity::{
    Did, KeyPair, NameError, PublicKey, SpiffeId, Sponsorship, validate_agent_name, validate_email,
};
use std::sync::Arc;

/// Why a mesh operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("no sponsor `{0}`: create it with `agentmesh sponsor create {0}`")]
    UnknownSponsor(String),
    #[error("sponsor `{0}` is deactivated and cannot sponsor agents")]
    SponsorInactive(String),
    #[error("no agent `{0}` (give a name or a DID; `agentmesh agent list` shows them)")]
    UnknownAgent(String),
    #[error("agent name `{0}` is taken")]
    DuplicateAgent(String),
    #[error("sponsor `{0}` already exists")]
    DuplicateSponsor(String),
    #[error("{who} does not hold {uncovered} (it holds: {held})")]
    CapabilityNotHeld {
        who: String,
        uncovered: String,
        held: String,
    },
    #[error("agent `{name}` is {status:?}; only active agents can {action}")]
    NotActive {
        name: String,
        status: AgentStatus,
        action: &'static str,
    },
    #[error("the agent's expiry is after its parent `{parent}` expires")]
    OutlivesParent { parent: String },
    #[error(transparent)]
    Issue(#[from] IssueError),
    #[error("the parent token is not valid: {0}")]
    ParentToken(VerifyError),
    #[error("the parent token was issued to {holder}, not to `{from}`")]
    NotTokenHolder { holder: String, from: String },
    #[error("the new token does not verify: {0}")]
    SelfCheck(VerifyError),
    #[error("{0}")]
    Invalid(String),
    #[error("audit: {0}")]
    Audit(#[from] AuditError),
}

fn event(event: Event, agent: Option<&Did>, sponsor: &str, detail: serde_json::Value) -> Draft {
    Draft {
        event: event.into(),
        agent: agent.map(|d| d.to_string()).unwrap_or_default(),
        sponsor: sponsor.to_owned(),
        action: event.into(),
        decision: "allow".to_owned(),
        detail,
        ..Draft::default()
    }
}

/// The registry and the keys of one mesh home.
#[derive(Clone)]
pub struct Mesh {
    home: MeshHome,
    registry: Arc<dyn Registry>,
    /// The audit log, opened (and its writer lock taken) on first use.
    audit: Arc<std::sync::OnceLock<Arc<AuditLog>>>,
    /// The trust engine, loaded from the registry on first use.
    trust: Arc<std::sync::OnceLock<std::sync::Mutex<agentmesh_trust::TrustEngine>>>,
    /// Outbox ids already appended to the log and not yet known to be
    /// dequeued (`None` until the log's recent entries were read): a drain
    /// that failed half-way, or a holder that stopped between appending and
    /// dequeuing, never appends (or applies) an entry twice.
    /// Keyed by (outbox id, the time the entry was queued), so ids that
    /// restart (a new registry under an old log) are never mistaken.
    drained: Arc<std::sync::Mutex<Option<DrainedKeys>>>,
}

/// Outbox entries known to be in the log: (outbox id, queue time).
type DrainedKeys = std::collections::HashSet<(i64, String)>;

/// How far back a new holder looks for outbox entries its predecessor
/// appended but did not dequeue (one drain takes at most a few batches).
const DRAINED_LOOKBACK: u64 = 8192;
/// Outbox entries read per batch.
const DRAIN_BATCH: u32 = 256;
/// A drain stops after this long even if more is queued (the rest waits for
/// the next tick).
const DRAIN_BUDGET: std::time::Duration = std::time::Duration::from_millis(500);

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh")
            .field("home", &self.home.root())
            .finish()
    }
}

/// Where an audit entry went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// In the log, durable.
    Appended(Appended),
    /// Queued for the process holding the log.
    Queued { outbox_id: i64 },
}

impl Recorded {
    /// The log index, when it is known.
    pub fn index(&self) -> Option<u64> {
        match self {
            Recorded::Appended(a) => Some(a.index),
            Recorded::Queued { .. } => None,
        }
    }
}

/// What `agent create` / `agent import` ask for.
#[derive(Debug, Clone)]
pub struct NewAgent {
    pub name: String,
    pub sponsor: String,
    pub capabilities: Vec<Capability>,
    /// Name or DID of the parent agent.
    pub parent: Option<String>,
    pub expires_at: Option<u64>,
}

/// What a delegation asks for.
#[derive(Debug, Clone)]
pub struct NewDelegation {
    /// A sponsor e-mail (issues a root link) or an agent name/DID.
    pub from: String,
    /// Agent name or DID.
    pub to: String,
    /// `None`: everything the issuer holds.
    pub capabilities: Option<Vec<Capability>>,
    pub ttl_secs: u64,
    pub max_depth: Option<u8>,
    /// A token held by `from` to extend; without it, `from`'s sponsor issues
    /// the root link first.
    pub parent_token: Option<String>,
}

impl Mesh {
    pub fn new(home: MeshHome, registry: Arc<dyn Registry>) -> Self {
        Self {
            home,
            registry,
            audit: Arc::new(std::sync::OnceLock::new()),
            trust: Arc::new(std::sync::OnceLock::new()),
            drained: Arc::new(std::sync::Mutex::new(None)),
        }
    }

    pub(crate) fn trust_cell(
        &self,
    ) -> &std::sync::OnceLock<std::sync::Mutex<agentmesh_trust::TrustEngine>> {
        &self.trust
    }

    /// The mesh's audit log, opened for writing on first use. Another
    /// process holding it is waited for, briefly.
    pub fn audit(&self) -> Result<Arc<AuditLog>, MeshError> {
        self.audit_with(AuditOptions::default())
    }

    /// As [`Mesh::audit`], opening the log with `opts` if this handle has
    /// not opened it yet (a gateway opens it with a commit linger).
    pub fn audit_with(&self, opts: AuditOptions) -> Result<Arc<AuditLog>, MeshError> {
        if let Some(a) = self.audit.get() {
            return Ok(a.clone());
        }
        let dir = self.home.audit_dir();
        let mut waited = std::time::Duration::ZERO;
        let log = loop {
            match AuditLog::open(&dir, opts.clone()) {
                Ok(l) => break l,
                // Long enough for a CLI command to hand the log over; a
                // long-lived holder (a gateway) gets a clear error at once.
                Err(AuditError::Locked(_)) if waited < std::time::Duration::from_secs(1) => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    waited += std::time::Duration::from_millis(50);
                }
                Err(e) => return Err(MeshError::Audit(e)),
            }
        };
        let log = Arc::new(log);
        Ok(self.audit.get_or_init(|| log).clone())
    }

    /// The audit log for writing if no other process holds it now; never
    /// waits. (A control-plane replica uses this to take over the log.)
    pub fn try_audit(&self) -> Result<Option<Arc<AuditLog>>, MeshError> {
        self.try_audit_with(AuditOptions::default())
    }

    /// As [`Mesh::try_audit`], opening the log with `opts` (a following
    /// gateway takes the log over with its own commit linger).
    pub fn try_audit_with(&self, opts: AuditOptions) -> Result<Option<Arc<AuditLog>>, MeshError> {
        if let Some(a) = self.audit.get() {
            return Ok(Some(a.clone()));
        }
        match AuditLog::open(&self.home.audit_dir(), opts) {
            Ok(l) => Ok(Some(self.audit.get_or_init(|| Arc::new(l)).clone())),
            Err(AuditError::Locked(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The audit log for reading: this handle's writer if it has one,
    /// otherwise a read-only view (another process may be writing).
    pub fn audit_reader(&self) -> Result<Arc<AuditLog>, MeshError> {
        if let Some(a) = self.audit.get() {
            return Ok(a.clone());
        }
        match AuditLog::open(&self.home.audit_dir(), AuditOptions::default()) {
            Ok(l) => Ok(self.audit.get_or_init(|| Arc::new(l)).clone()),
            Err(AuditError::Locked(_)) => {
                Ok(Arc::new(AuditLog::open_read_only(&self.home.audit_dir())?))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// True once this handle has opened the audit log (something was recorded).
    pub fn audit_opened(&self) -> bool {
        self.audit.get().is_some()
    }

    /// Records an audit entry. When this process can write the log, the
    /// entry is durable when this returns; when another process holds the
    /// log (a running gateway), the entry is queued in the registry and the
    /// holder appends it within seconds.
    pub async fn record(&self, draft: Draft) -> Result<Recorded, MeshError> {
        if let Some(a) = self.audit.get() {
            return Ok(Recorded::Appended(a.append_wait(draft)?));
        }
        match AuditLog::open(&self.home.audit_dir(), AuditOptions::default()) {
            Ok(l) => {
                let log = self.audit.get_or_init(|| Arc::new(l)).clone();
                Ok(Recorded::Appended(log.append_wait(draft)?))
            }
            Err(AuditError::Locked(_)) => {
                let entry = agentmesh_audit::Entry {
                    seq: 0,
                    time: agentmesh_audit::rfc3339_millis(
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_nanos())
                            .unwrap_or(0),
                    ),
                    draft,
                };
                let id = self
                    .registry
                    .enqueue_audit(&entry.to_bytes(), crate::unix_now())
                    .await?;
                Ok(Recorded::Queued { outbox_id: id })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Appends the entries other processes queued (see [`Mesh::record`]).
    /// The time they were recorded is kept in `detail.queued_at`. Trust
    /// events queued unapplied (see [`Mesh::trust_event`]) are applied by
    /// this process's own trust engine. Returns how many were appended.
    pub async fn drain_audit_outbox(&self) -> Result<usize, MeshError> {
        let engine = self.trust_engine().await?;
        let mut breached = Vec::new();
        let n = self
            .drain_audit_outbox_with(|log, mut draft, event| {
                let mut e = engine.lock().unwrap_or_else(|p| p.into_inner());
                if let Ok(a) = e.apply(&event) {
                    draft.trust_before = Some(a.before);
                    draft.trust_after = Some(a.after);
                    if let Some(state) = e.state(&event.agent) {
                        breached.push((
                            event.agent.clone(),
                            state.clone(),
                            a.suspend.then_some(a.after),
                        ));
                    }
                }
                Ok(log.append_deferred(move || draft)?)
            })
            .await?;
        for (agent, state, suspend_at) in breached {
            self.registry.save_trust_state(&agent, &state).await?;
            if let Some(score) = suspend_at {
                self.suspend_by_score(&agent, score, crate::unix_now())
                    .await?;
            }
        }
        Ok(n)
    }

    /// [`Mesh::drain_audit_outbox`] for a process that keeps trust state of
    /// its own (a gateway's engine): `apply_trust` gets each queued trust
    /// event still to apply, with the draft to complete (`trust_before`,
    /// `trust_after`) and append to the log — under whatever lock keeps
    /// that agent's events in order.
    pub async fn drain_audit_outbox_with(
        &self,
        mut apply_trust: impl FnMut(
            &AuditLog,
            Draft,
            agentmesh_trust::TrustEvent,
        ) -> Result<agentmesh_audit::Queued, MeshError>,
    ) -> Result<usize, MeshError> {
        let log = self.audit()?;
        let started = std::time::Instant::now();
        let mut total = 0;
        loop {
            let n = self.drain_batch(&log, &mut apply_trust).await?;
            total += n;
            if n < DRAIN_BATCH as usize || started.elapsed() > DRAIN_BUDGET {
                return Ok(total);
            }
        }
    }

    /// The outbox ids the log's recent entries record (`detail.outbox_id`),
    /// read once per process.
    fn seed_drained(&self, log: &AuditLog) -> Result<(), MeshError> {
        let mut drained = self.drained.lock().unwrap_or_else(|p| p.into_inner());
        if drained.is_some() {
            return Ok(());
        }
        let mut ids = std::collections::HashSet::new();
        let size = log.size();
        log.scan(size.saturating_sub(DRAINED_LOOKBACK), size, &mut |_, e| {
            let d = &e.draft.detail;
            if let (Some(id), Some(at)) = (
                d.get("outbox_id").and_then(|v| v.as_i64()),
                d.get("queued_at").and_then(|v| v.as_str()),
            ) {
                ids.insert((id, at.to_owned()));
            }
            true
        })?;
        *drained = Some(ids);
        Ok(())
    }

    fn already_drained(&self, key: &(i64, String)) -> bool {
        self.drained
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|d| d.contains(key))
    }

    async fn drain_batch(
        &self,
        log: &AuditLog,
        apply_trust: &mut impl FnMut(
            &AuditLog,
            Draft,
            agentmesh_trust::TrustEvent,
        ) -> Result<agentmesh_audit::Queued, MeshError>,
    ) -> Result<usize, MeshError> {
        self.seed_drained(log)?;
        let queued = self.registry.queued_audit(DRAIN_BATCH).await?;
        let mut ids = Vec::with_capacity(queued.len());
        let mut pending = Vec::with_capacity(queued.len());
        let mut keys = Vec::with_capacity(queued.len());
        for (id, bytes) in queued {
            ids.push(id);
            let Ok(entry) = agentmesh_audit::Entry::from_bytes(&bytes) else {
                // Unreadable: record that something was lost rather than
                // dropping it silently.
                pending.push(log.append_deferred(move || Draft {
                    event: Event::AuditOutboxUnreadable.into(),
                    detail: serde_json::json!({"outbox_id": id, "bytes": bytes.len()}),
                    ..Draft::default()
                })?);
                continue;
            };
            let key = (id, entry.time.clone());
            if self.already_drained(&key) {
                // In the log already (a drain that stopped before it could
                // dequeue): dequeue only.
                keys.push(key);
                continue;
            }
            let mut draft = entry.draft;
            let unapplied = crate::trust::unapplied_trust_event(&draft);
            if let serde_json::Value::Object(m) = &mut draft.detail {
                m.insert("queued_at".into(), serde_json::Value::from(entry.time));
                m.insert("outbox_id".into(), serde_json::Value::from(id));
            } else {
                draft.detail = serde_json::json!({"value": draft.detail, "queued_at": entry.time, "outbox_id": id});
            }
            pending.push(match unapplied {
                Some(event) => apply_trust(log, draft, event)?,
                None => log.append_deferred(move || draft)?,
            });
            self.mark_drained(key.clone());
            keys.push(key);
        }
        // Durable before the queue forgets them.
        for q in pending {
            q.await?;
        }
        if !ids.is_empty() {
            self.registry.dequeue_audit(&ids).await?;
            let mut drained = self.drained.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(d) = drained.as_mut() {
                for key in &keys {
                    d.remove(key);
                }
            }
        }
        Ok(ids.len())
    }

    fn mark_drained(&self, key: (i64, String)) {
        if let Some(d) = self
            .drained
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            d.insert(key);
        }
    }

    /// Signs a checkpoint of the audit log with the mesh key (if anything
    /// was recorded since the last one) and returns the note.
    pub fn checkpoint(&self) -> Result<String, MeshError> {
        let key = self.home.mesh_key()?;
        let signer = NoteSigner::new(&self.home.audit_origin(), key)
            .map_err(|e| MeshError::Invalid(e.to_string()))?;
        Ok(self.audit()?.checkpoint(&signer)?)
    }

    /// Opens the home's embedded registry.
    pub async fn open(home: MeshHome) -> Result<Self, StoreError> {
        let registry = home.registry().await?;
        Ok(Self::new(home, Arc::new(registry)))
    }

    pub fn home(&self) -> &MeshHome {
        &self.home
    }

    pub fn registry(&self) -> &dyn Registry {
        &*self.registry
    }

    /// Creates a sponsor with a new key held in the home. `capabilities`
    /// bounds what the sponsor can grant (default `*`).
    pub async fn create_sponsor(
        &self,
        email: &str,
        capabilities: Option<Vec<Capability>>,
        now: u64,
    ) -> Result<SponsorRecord, MeshError> {
        self.add_sponsor(email, capabilities, None, now).await
    }

    /// Registers a sponsor that keeps its key in its own home: only the
    /// public key (`did`) is stored here, so only the sponsor can sign its
    /// approvals.
    pub async fn register_sponsor(
        &self,
        email: &str,
        did: Did,
        capabilities: Option<Vec<Capability>>,
        now: u64,
    ) -> Result<SponsorRecord, MeshError> {
        self.add_sponsor(email, capabilities, Some(did), now).await
    }

    async fn add_sponsor(
        &self,
        email: &str,
        capabilities: Option<Vec<Capability>>,
        public: Option<Did>,
        now: u64,
    ) -> Result<SponsorRecord, MeshError> {
        let email = validate_email(email)?;
        if self.registry.sponsor_by_email(&email).await?.is_some() {
            return Err(MeshError::DuplicateSponsor(email));
        }
        let capabilities = match capabilities {
            Some(c) if !c.is_empty() => normalize(c),
            Some(_) => {
                return Err(MeshError::Invalid(
                    "a sponsor needs at least one capability".into(),
                ));
            }
            None => vec![parse_cap("*")?],
        };
        let (did, key) = match public {
            Some(did) => (did.to_mesh(), None),
            None => {
                let key = KeyPair::generate().map_err(|e| MeshError::Invalid(e.to_string()))?;
                (key.did(), Some(key))
            }
        };
        let record = SponsorRecord {
            email: email.clone(),
            did,
            capabilities,
            created_at: now,
            active: true,
        };
        let kind = KeyKind::Sponsor(&email);
        if let Some(key) = &key {
            self.home.write_key(kind, key)?;
        }
        if let Err(e) = self.registry.insert_sponsor(&record).await {
            if key.is_some() {
                let _ = self.home.remove_key(kind);
            }
            return Err(match e {
                StoreError::Duplicate { .. } => MeshError::DuplicateSponsor(email),
                e => e.into(),
            });
        }
        self.record(event(
            Event::SponsorCreated,
            None,
            &record.email,
            serde_json::json!({"sponsor_did": record.did, "capabilities": record.capabilities,
                               "key_held_here": key.is_some()}),
        ))
        .await?;
        Ok(record)
    }

    /// Creates an agent whose key is generated and held in the home.
    pub async fn create_agent(&self, new: NewAgent, now: u64) -> Result<AgentRecord, MeshError> {
        let key = KeyPair::generate().map_err(|e| MeshError::Invalid(e.to_string()))?;
        self.register_agent(new, *key.public(), Some(&key), now)
            .await
    }

    /// Registers an agent whose private key is held elsewhere.
    pub async fn import_agent(
        &self,
        new: NewAgent,
        public_key: PublicKey,
        now: u64,
    ) -> Result<AgentRecord, MeshError> {
        self.register_agent(new, public_key, None, now).await
    }

    async fn register_agent(
        &self,
        new: NewAgent,
        public_key: PublicKey,
        private: Option<&KeyPair>,
        now: u64,
    ) -> Result<AgentRecord, MeshError> {
        validate_agent_name(&new.name)?;
        let sponsor_email = validate_email(&new.sponsor)?;
        let sponsor = self
            .registry
            .sponsor_by_email(&sponsor_email)
            .await?
            .ok_or_else(|| MeshError::UnknownSponsor(sponsor_email.clone()))?;
        if !sponsor.active {
            return Err(MeshError::SponsorInactive(sponsor.email));
        }
        if self.registry.agent_by_name(&new.name).await?.is_some() {
            return Err(MeshError::DuplicateAgent(new.name));
        }
        if new.capabilities.is_empty() {
            return Err(MeshError::Invalid(
                "an agent needs at least one capability".into(),
            ));
        }
        let capabilities = normalize(new.capabilities);
        require_held(
            &format!("sponsor {}", sponsor.email),
            &sponsor.capabilities,
            &capabilities,
        )?;
        let mut expires_at = new.expires_at;
        let parent = match &new.parent {
            None => None,
            Some(p) => {
                let parent = self.agent(p).await?;
                if parent.status != AgentStatus::Active {
                    return Err(MeshError::NotActive {
                        name: parent.name,
                        status: parent.status,
                        action: "be a parent",
                    });
                }
                require_held(
                    &format!("parent agent `{}`", parent.name),
                    &parent.capabilities,
                    &capabilities,
                )?;
                match (parent.expires_at, expires_at) {
                    (Some(pe), Some(e)) if e > pe => {
                        return Err(MeshError::OutlivesParent {
                            parent: parent.name,
                        });
                    }
                    (Some(pe), None) => expires_at = Some(pe),
                    _ => {}
                }
                Some(parent)
            }
        };
        let spiffe_id = SpiffeId::for_agent(&self.home.config().trust_domain, &new.name)
            .map_err(|e| MeshError::Invalid(e.to_string()))?;
        let sponsor_key = self.home.read_key(KeyKind::Sponsor(&sponsor.email))?;
        let sponsorship = Sponsorship {
            agent_did: public_key.did(),
            agent_name: new.name.clone(),
            spiffe_id: spiffe_id.clone(),
            sponsor: sponsor.email.clone(),
            sponsor_did: sponsor.did,
            capabilities: capabilities.clone(),
            parent_did: parent.as_ref().map(|p| p.did),
            issued_at: now,
            expires_at,
            signature: String::new(),
        }
        .sign(&sponsor_key);
        let record = AgentRecord {
            name: new.name.clone(),
            did: public_key.did(),
            spiffe_id,
            sponsor: sponsor.email,
            sponsor_did: sponsor.did,
            parent_did: parent.map(|p| p.did),
            capabilities,
            status: AgentStatus::Active,
            status_reason: None,
            created_at: now,
            updated_at: now,
            expires_at,
            key_custody: if private.is_some() {
                KeyCustody::Home
            } else {
                KeyCustody::External
            },
            sponsorship,
        };
        let kind = KeyKind::Agent(&new.name);
        if let Some(key) = private {
            self.home.write_key(kind, key)?;
        }
        if let Err(e) = self.registry.insert_agent(&record).await {
            if private.is_some() {
                let _ = self.home.remove_key(kind);
            }
            return Err(match e {
                StoreError::Duplicate { key, .. } => MeshError::DuplicateAgent(key),
                e => e.into(),
            });
        }
        self.record(event(
            if private.is_some() {
                Event::AgentCreated
            } else {
                Event::AgentImported
            },
            Some(&record.did),
            &record.sponsor,
            serde_json::json!({
                "name": record.name,
                "spiffe_id": record.spiffe_id,
                "capabilities": record.capabilities,
                "parent_did": record.parent_did,
                "expires_at": record.expires_at,
                "sponsorship_signature": record.sponsorship.signature,
            }),
        ))
        .await?;
        Ok(record)
    }

    /// Builds registry records for many externally-keyed agents of one
    /// sponsor (the bulk registration path): validates names and
    /// capabilities and signs each sponsorship with the sponsor's key held
    /// in the home. Nothing is stored; insert them in one transaction.
    pub fn build_imports<'a>(
        &self,
        sponsor: &SponsorRecord,
        items: impl Iterator<Item = (&'a str, PublicKey, Vec<Capability>)>,
        now: u64,
    ) -> Result<Vec<AgentRecord>, MeshError> {
        if !sponsor.active {
            return Err(MeshError::SponsorInactive(sponsor.email.clone()));
        }
        let sponsor_key = self.home.read_key(KeyKind::Sponsor(&sponsor.email))?;
        let domain = &self.home.config().trust_domain;
        let mut out = Vec::new();
        for (name, public_key, capabilities) in items {
            validate_agent_name(name)?;
            if capabilities.is_empty() {
                return Err(MeshError::Invalid(format!(
                    "agent `{name}` needs at least one capability"
                )));
            }
            let capabilities = normalize(capabilities);
            require_held(
                &format!("sponsor {}", sponsor.email),
                &sponsor.capabilities,
                &capabilities,
            )?;
            let spiffe_id =
                SpiffeId::for_agent(domain, name).map_err(|e| MeshError::Invalid(e.to_string()))?;
            let sponsorship = Sponsorship {
                agent_did: public_key.did(),
                agent_name: name.to_owned(),
                spiffe_id: spiffe_id.clone(),
                sponsor: sponsor.email.clone(),
                sponsor_did: sponsor.did,
                capabilities: capabilities.clone(),
                parent_did: None,
                issued_at: now,
                expires_at: None,
                signature: String::new(),
            }
            .sign(&sponsor_key);
            out.push(AgentRecord {
                name: name.to_owned(),
                did: public_key.did(),
                spiffe_id,
                sponsor: sponsor.email.clone(),
                sponsor_did: sponsor.did,
                parent_did: None,
                capabilities,
                status: AgentStatus::Active,
                status_reason: None,
                created_at: now,
                updated_at: now,
                expires_at: None,
                key_custody: KeyCustody::External,
                sponsorship,
            });
        }
        Ok(out)
    }

    /// Finds an agent by name or DID.
    pub async fn agent(&self, name_or_did: &str) -> Result<AgentRecord, MeshError> {
        let found = if name_or_did.starts_with("did:") {
            let did = Did::parse(name_or_did)
                .map_err(|e| MeshError::Invalid(format!("`{name_or_did}`: {e}")))?;
            self.registry.agent_by_did(&did).await?
        } else {
            self.registry.agent_by_name(name_or_did).await?
        };
        found.ok_or_else(|| MeshError::UnknownAgent(name_or_did.to_owned()))
    }

    /// Revokes an agent and all its descendants. Returns their names.
    pub async fn revoke_agent(
        &self,
        name_or_did: &str,
        reason: &str,
        now: u64,
    ) -> Result<Vec<String>, MeshError> {
        let agent = self.agent(name_or_did).await?;
        let names = self.registry.revoke_agent(&agent.did, reason, now).await?;
        self.record(event(
            Event::AgentRevoked,
            Some(&agent.did),
            &agent.sponsor,
            serde_json::json!({"name": agent.name, "reason": reason, "revoked": names}),
        ))
        .await?;
        Ok(names)
    }

    /// Suspends (`active → suspended`) or reactivates (`suspended → active`).
    pub async fn set_status(
        &self,
        name_or_did: &str,
        status: AgentStatus,
        reason: Option<&str>,
        now: u64,
    ) -> Result<AgentRecord, MeshError> {
        let agent = self.agent(name_or_did).await?;
        self.registry
            .set_agent_status(&agent.did, status, reason, now)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(m) => MeshError::Invalid(m),
                e => e.into(),
            })?;
        let name = match status {
            AgentStatus::Suspended => Event::AgentSuspended,
            _ => Event::AgentReactivated,
        };
        self.record(event(
            name,
            Some(&agent.did),
            &agent.sponsor,
            serde_json::json!({"name": agent.name, "reason": reason}),
        ))
        .await?;
        let after = self.agent(name_or_did).await?;
        if agent.status == AgentStatus::Suspended && status == AgentStatus::Active {
            // A human's reactivation overrides a breach of the trust floor.
            self.reinstate(&after, &agent.sponsor, now).await?;
        }
        Ok(after)
    }

    /// Issues a delegation token (see [`NewDelegation`]) and checks that it
    /// verifies before returning it.
    pub async fn delegate(&self, req: NewDelegation, now: u64) -> Result<Token, MeshError> {
        let to = self.agent(&req.to).await?;
        if to.status != AgentStatus::Active {
            return Err(MeshError::NotActive {
                name: to.name,
                status: to.status,
                action: "receive a delegation",
            });
        }
        let expires_at = now.saturating_add(req.ttl_secs.max(1));
        let default_depth = self.home.config().defaults.delegation_max_depth;
        let token = if req.from.contains('@') {
            // A sponsor issues a root link to an agent it sponsors.
            let sponsor = self
                .registry
                .sponsor_by_email(&req.from)
                .await?
                .ok_or_else(|| MeshError::UnknownSponsor(req.from.clone()))?;
            let key = self.home.read_key(KeyKind::Sponsor(&sponsor.email))?;
            let caps = req
                .capabilities
                .clone()
                .unwrap_or_else(|| to.capabilities.clone());
            require_held(
                &format!("agent `{}`'s registration", to.name),
                &to.capabilities,
                &caps,
            )?;
            Token::issue_root(
                &key,
                Grant {
                    audience: to.did,
                    capabilities: caps,
                    not_before: now,
                    expires_at,
                    max_depth: Some(req.max_depth.unwrap_or(default_depth)),
                },
            )?
        } else {
            let from = self.agent(&req.from).await?;
            if from.status != AgentStatus::Active {
                return Err(MeshError::NotActive {
                    name: from.name,
                    status: from.status,
                    action: "delegate",
                });
            }
            let from_key = self.home.read_key(KeyKind::Agent(&from.name))?;
            let parent = match &req.parent_token {
                Some(text) => {
                    let chain = self.verify(text, now).await.map_err(|e| match e {
                        MeshError::SelfCheck(v) => MeshError::ParentToken(v),
                        e => e,
                    })?;
                    if chain.holder != from.did {
                        return Err(MeshError::NotTokenHolder {
                            holder: format!("{} ({})", chain.holder_name, chain.holder),
                            from: from.name,
                        });
                    }
                    Token::parse(text).map_err(|e| MeshError::ParentToken(e.into()))?
                }
                None => {
                    let sponsor_key = self.home.read_key(KeyKind::Sponsor(&from.sponsor))?;
                    Token::issue_root(
                        &sponsor_key,
                        Grant {
                            audience: from.did,
                            capabilities: from.capabilities.clone(),
                            not_before: now,
                            expires_at,
                            max_depth: Some(default_depth.max(1)),
                        },
                    )?
                }
            };
            let parent_link = &parent.links()[parent.links().len() - 1].link;
            let caps = req
                .capabilities
                .clone()
                .unwrap_or_else(|| parent.capabilities().to_vec());
            parent.delegate(
                &from_key,
                Grant {
                    audience: to.did,
                    capabilities: caps,
                    not_before: now.max(parent_link.not_before),
                    // Never outlive the parent: clip rather than fail.
                    expires_at: expires_at.min(parent_link.expires_at),
                    max_depth: req.max_depth,
                },
            )?
        };
        let directory = load_directory(&*self.registry).await?;
        let chain = verify_token(&token, &directory, VerifyOptions::at(now))
            .map_err(MeshError::SelfCheck)?;
        self.record(event(
            Event::DelegationIssued,
            Some(&chain.holder),
            &chain.sponsor_email,
            serde_json::json!({
                "holder": chain.holder_name,
                "capabilities": chain.capabilities,
                "links": chain.links.iter().map(|l| &l.hash).collect::<Vec<_>>(),
                "expires_at": chain.expires_at,
            }),
        ))
        .await?;
        Ok(token)
    }

    /// Verifies a token against the current registry.
    pub async fn verify(&self, text: &str, now: u64) -> Result<VerifiedChain, MeshError> {
        let directory = load_directory(&*self.registry).await?;
        let token = Token::parse(text).map_err(|e| MeshError::SelfCheck(e.into()))?;
        verify_token(&token, &directory, VerifyOptions::at(now)).map_err(MeshError::SelfCheck)
    }

    /// Revokes one link of a token (default: the last), or a link given by
    /// its hex hash. Every token that contains that link stops verifying.
    pub async fn revoke_delegation(
        &self,
        token_or_hash: &str,
        link: Option<usize>,
        reason: &str,
        now: u64,
    ) -> Result<RevokedLink, MeshError> {
        let hash = if let Some(h) = parse_hex32(token_or_hash) {
            hex(&h)
        } else {
            let token = Token::parse(token_or_hash)
                .map_err(|e| MeshError::Invalid(format!("not a token or link hash: {e}")))?;
            let n = token.links().len();
            let i = link.unwrap_or(n - 1);
            if i >= n {
                return Err(MeshError::Invalid(format!(
                    "the token has links 0..={}; there is no link {i}",
                    n - 1
                )));
            }
            hex(&token.links()[i].hash)
        };
        let record = RevokedLink {
            hash,
            reason: reason.to_owned(),
            revoked_at: now,
        };
        self.registry.revoke_link(&record).await?;
        self.record(event(
            Event::DelegationRevoked,
            None,
            "",
            serde_json::json!({"link": record.hash, "reason": reason}),
        ))
        .await?;
        Ok(record)
    }
}

fn parse_cap(s: &str) -> Result<Capability, MeshError> {
    Capability::parse(s).map_err(|e| MeshError::Invalid(e.to_string()))
}

fn require_held(who: &str, held: &[Capability], wanted: &[Capability]) -> Result<(), MeshError> {
    if covers_all(held, wanted) {
        return Ok(());
    }
    let missing: Vec<Capability> = uncovered(held, wanted).into_iter().cloned().collect();
    Err(MeshError::CapabilityNotHeld {
        who: who.to_owned(),
        uncovered: display_list(&missing),
        held: display_list(held),
    })
}
