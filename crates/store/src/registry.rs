use crate::{
    AgentRecord, ApprovalRecord, ApprovalStatus, RevokedCredential, RevokedLink, SponsorRecord,
    StoreError, ToolPin,
};
use agentmesh_delegation::{AgentEntry, AgentStatus, MemoryDirectory};
use agentmesh_identity::Did;
use agentmesh_trust::AgentTrust;

/// The registry's storage. Every implementation must pass the same suite
/// (`tests/registry.rs`).
#[async_trait::async_trait]
pub trait Registry: Send + Sync {
    async fn insert_sponsor(&self, sponsor: &SponsorRecord) -> Result<(), StoreError>;
    async fn sponsor_by_email(&self, email: &str) -> Result<Option<SponsorRecord>, StoreError>;
    async fn sponsor_by_did(&self, did: &Did) -> Result<Option<SponsorRecord>, StoreError>;
    async fn list_sponsors(&self) -> Result<Vec<SponsorRecord>, StoreError>;

    /// Fails with `Duplicate` when the name or DID is taken.
    async fn insert_agent(&self, agent: &AgentRecord) -> Result<(), StoreError>;
    async fn agent_by_name(&self, name: &str) -> Result<Option<AgentRecord>, StoreError>;
    async fn agent_by_did(&self, did: &Did) -> Result<Option<AgentRecord>, StoreError>;
    async fn list_agents(&self) -> Result<Vec<AgentRecord>, StoreError>;

    /// Revokes the agent and, in the same transaction, every agent below it
    /// (by `parent_did`, transitively). Returns the names revoked, the agent
    /// itself first. Revoking is permanent.
    async fn revoke_agent(
        &self,
        did: &Did,
        reason: &str,
        now: u64,
    ) -> Result<Vec<String>, StoreError>;

    /// Moves an agent between `active` and `suspended`. A revoked agent
    /// cannot change status.
    async fn set_agent_status(
        &self,
        did: &Did,
        status: AgentStatus,
        reason: Option<&str>,
        now: u64,
    ) -> Result<(), StoreError>;

    /// Persisted trust state of every agent that has had a trust event.
    async fn trust_states(&self) -> Result<Vec<(String, AgentTrust)>, StoreError>;
    /// Saves one agent's trust state (insert or replace).
    async fn save_trust_state(&self, agent: &str, state: &AgentTrust) -> Result<(), StoreError>;

    /// Records a revoked delegation link (idempotent).
    async fn revoke_link(&self, link: &RevokedLink) -> Result<(), StoreError>;
    async fn revoked_links(&self) -> Result<Vec<RevokedLink>, StoreError>;

    /// Stores a new approval request (an existing id is left as it is).
    async fn insert_approval(&self, approval: &ApprovalRecord) -> Result<(), StoreError>;
    async fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, StoreError>;
    /// Approvals, oldest first; only pending ones unless `all`.
    async fn list_approvals(&self, all: bool) -> Result<Vec<ApprovalRecord>, StoreError>;
    /// Moves an approval out of `from` (atomically: fails with `Conflict`
    /// when it is no longer in that state, so two deciders cannot both win).
    async fn set_approval_state(
        &self,
        id: &str,
        from: ApprovalStatus,
        to: ApprovalStatus,
        by: Option<&str>,
        reason: Option<&str>,
        now: u64,
    ) -> Result<ApprovalRecord, StoreError>;

    /// [`Registry::set_approval_state`] for a human's decision, with the
    /// decider's signature (`agentmesh_policy::DecisionStatement`). Only
    /// registries that people decide in implement it (the SQL registry; a
    /// gateway's remote view does not).
    #[allow(clippy::too_many_arguments)]
    async fn decide_approval(
        &self,
        id: &str,
        from: ApprovalStatus,
        to: ApprovalStatus,
        by: Option<&str>,
        reason: Option<&str>,
        proof: Option<&str>,
        now: u64,
    ) -> Result<ApprovalRecord, StoreError> {
        let _ = (id, from, to, by, reason, proof, now);
        Err(StoreError::Conflict(
            "decisions on held calls are made at the registry itself (the control plane or the mesh home)".into(),
        ))
    }

    /// Queues an audit entry (its encoded bytes) for the process that holds
    /// the audit log, when another process (a running gateway) holds it.
    async fn enqueue_audit(&self, entry: &[u8], now: u64) -> Result<i64, StoreError>;
    /// The oldest queued entries, at most `limit`.
    async fn queued_audit(&self, limit: u32) -> Result<Vec<(i64, Vec<u8>)>, StoreError>;
    /// Removes queued entries once they are in the log.
    async fn dequeue_audit(&self, ids: &[i64]) -> Result<(), StoreError>;

    /// Withdraws a credential before it expires (idempotent).
    async fn revoke_credential(&self, revoked: &RevokedCredential) -> Result<(), StoreError>;
    /// Revoked credentials that have not expired yet at `now`.
    async fn revoked_credentials(&self, now: u64) -> Result<Vec<RevokedCredential>, StoreError>;

    /// Every pinned tool definition.
    async fn tool_pins(&self) -> Result<Vec<ToolPin>, StoreError>;
    /// Inserts or replaces the pin of (`upstream`, `tool`).
    async fn save_tool_pin(&self, pin: &ToolPin) -> Result<(), StoreError>;
}

/// Loads the registry into the in-memory directory the delegation verifier
/// reads.
pub async fn load_directory(registry: &dyn Registry) -> Result<MemoryDirectory, StoreError> {
    let mut dir = MemoryDirectory::new();
    for s in registry.list_sponsors().await? {
        dir.add_sponsor(s.did, &s.email, s.capabilities, s.active);
    }
    for a in registry.list_agents().await? {
        dir.add_agent_entry(
            a.did,
            AgentEntry {
                name: a.name.into(),
                sponsor_did: a.sponsor_did,
                capabilities: a.capabilities.into(),
                status: a.status,
                expires_at: a.expires_at,
            },
        );
    }
    for l in registry.revoked_links().await? {
        let bytes = parse_hex32(&l.hash)
            .ok_or_else(|| StoreError::Corrupt(format!("revoked link hash `{}`", l.hash)))?;
        dir.revoke_link(bytes);
    }
    Ok(dir)
}

/// Parses 64 hex characters.
pub fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let hi = (chunk[0] as char).to_digit(16)?;
        let lo = (chunk[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}
