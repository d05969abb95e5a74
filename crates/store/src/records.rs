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

/// A call held for human approval, as the registry keeps it so that a
/// gateway and `agentmesh approvals` (another process) share it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    pub id: String,
    /// DID of the calling agent.
    pub caller: String,
    /// Tool or action.
    pub action: String,
    pub arguments_sha256: String,
    pub policy_version: String,
    /// Rule key (`policy/rule`) or compliance control that asked for it.
    pub rule: String,
    /// Who may decide; empty means any operator.
    pub approvers: Vec<String>,
    pub state: ApprovalStatus,
    pub decided_by: Option<String>,
    pub decided_at: Option<u64>,
    pub reason: Option<String>,
    pub created_at: u64,
    pub expires_at: u64,
    /// What a human needs to decide: agent name, tool, arguments, message.
    pub summary: serde_json::Value,
    /// The decider's signature over the decision and the exact call
    /// (`agentmesh_policy::DecisionStatement`), `{"at", "signature"}`:
    /// what lets an approved call through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
}

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Denied,
    /// Approved and consumed by the call it was for.
    Used,
    /// Nobody decided before it expired.
    Expired,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Denied => "denied",
            ApprovalStatus::Used => "used",
            ApprovalStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => ApprovalStatus::Pending,
            "approved" => ApprovalStatus::Approved,
            "denied" => ApprovalStatus::Denied,
            "used" => ApprovalStatus::Used,
            "expired" => ApprovalStatus::Expired,
            _ => return None,
        })
    }
}

/// The pinned definition of an upstream tool (name, description, input
/// schema), and a changed definition waiting for re-approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolPin {
    pub upstream: String,
    pub tool: String,
    /// Lowercase hex SHA-256 of the canonical JSON of the pinned definition.
    pub sha256: String,
    pub definition: serde_json::Value,
    pub pinned_at: u64,
    /// A definition seen later that differs from the pin.
    pub changed_sha256: Option<String>,
    pub changed_definition: Option<serde_json::Value>,
    pub changed_at: Option<u64>,
}

/// A credential withdrawn before it expired (kept until it would have).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedCredential {
    /// The credential's `id` claim.
    pub id: String,
    /// DID of the agent it was issued to.
    pub agent: String,
    pub reason: String,
    pub revoked_at: u64,
    /// When the credential expires anyway; the record can go after that.
    pub expires_at: u64,
}

/// An agent that proved possession of its key and waits for its sponsor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub id: String,
    pub name: String,
    pub sponsor: String,
    /// The key the agent proved it holds, as its DID.
    pub agent_did: Did,
    pub capabilities: Vec<Capability>,
    /// Name or DID of the parent agent.
    pub parent: Option<String>,
    pub expires_at: Option<u64>,
    pub state: RegistrationStatus,
    pub created_at: u64,
    pub decided_at: Option<u64>,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
}

/// Where a registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationStatus {
    Pending,
    /// The sponsor signed; the agent is in the registry.
    Approved,
    Rejected,
}

impl RegistrationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationStatus::Pending => "pending",
            RegistrationStatus::Approved => "approved",
            RegistrationStatus::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => RegistrationStatus::Pending,
            "approved" => RegistrationStatus::Approved,
            "rejected" => RegistrationStatus::Rejected,
            _ => return None,
        })
    }
}

/// A policy document distributed by the control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDocument {
    pub name: String,
    pub yaml: String,
    /// Lowercase hex SHA-256 of `yaml`.
    pub sha256: String,
    pub updated_at: u64,
    pub updated_by: String,
}

/// One entry of the change feed: something other replicas and gateways
/// must reload (`kind`: agent, sponsor, revocation, credential, approval,
/// policy, registration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub seq: i64,
    pub kind: String,
    pub subject: String,
    pub at: u64,
}
