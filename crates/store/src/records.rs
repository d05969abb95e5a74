use agentmesh_capability::Capability;
use agentmesh_delegation::AgentStatus;
use agentmesh_identity::{Did, SpiffeId, Sponsorship};
use serde::{Deserialize, Serialize};

/// A human principal who answers for agents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SponsorRecord {
    /// Lowercased e-mail address; the sponsor's name.
    pub email: String,
    pub did: Did,
    /// What this sponsor may grant to the agents it sponsors.
    pub capabilities: Vec<Capability>,
    pub created_at: u64,
    pub active: bool,
}

/// Who holds an agent's private key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyCustody {
    /// In this mesh home's `keys/agents/` (created by `agent create`).
    Home,
    /// Elsewhere; the registry holds only the public key (`agent import`).
    External,
}

/// A registered agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub name: String,
    pub did: Did,
    pub spiffe_id: SpiffeId,
    pub sponsor: String,
    pub sponsor_did: Did,
    pub parent_did: Option<Did>,
    pub capabilities: Vec<Capability>,
    pub status: AgentStatus,
    pub status_reason: Option<String>,
    pub created_at: u64,
    pub updated_at: u64,
    pub expires_at: Option<u64>,
    pub key_custody: KeyCustody,
    /// The sponsor's signed attestation (agent DID, name, capabilities,
    /// parent, times).
    pub sponsorship: Sponsorship,
}

/// A revoked delegation link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedLink {
    /// Lowercase hex SHA-256 link hash.
    pub hash: String,
    pub reason: String,
    pub revoked_at: u64,
}
