//! The registry as the hot path sees it: an immutable snapshot swapped as a
//! whole when the registry changes, so a call never waits for storage.

use agentmesh_capability::Capability;
use agentmesh_delegation::{AgentEntry, AgentStatus, Directory, MemoryDirectory, SponsorEntry};
use agentmesh_identity::Did;
use agentmesh_store::{Registry, StoreError, parse_hex32};
use std::collections::HashMap;
use std::sync::Arc;

/// What a call needs to know about an agent.
#[derive(Debug, Clone)]
pub struct AgentView {
    pub did: Did,
    /// `did:mesh:…`, as audit entries and trust state name the agent.
    pub did_text: Arc<str>,
    pub name: Arc<str>,
    pub sponsor: Arc<str>,
    pub capabilities: Arc<[Capability]>,
    /// The same, as text (what policy conditions read).
    pub capability_names: Arc<[String]>,
    pub status: AgentStatus,
    pub expires_at: Option<u64>,
    pub sponsor_active: bool,
}

impl AgentView {
    /// Why the agent may not act now, if it may not.
    pub fn inactive_reason(&self, now: u64) -> Option<String> {
        if self.status != AgentStatus::Active {
            return Some(format!(
                "agent `{}` is {}",
                self.name,
                match self.status {
                    AgentStatus::Suspended => "suspended",
                    AgentStatus::Revoked => "revoked",
                    AgentStatus::Active => "active",
                }
            ));
        }
        if self.expires_at.is_some_and(|e| now >= e) {
            return Some(format!("agent `{}`'s registration has expired", self.name));
        }
        if !self.sponsor_active {
            return Some(format!(
                "the sponsor of agent `{}` ({}) is deactivated",
                self.name, self.sponsor
            ));
        }
        None
    }
}

/// One consistent view of sponsors, agents and revoked links.
#[derive(Debug, Default)]
pub struct Snapshot {
    dir: MemoryDirectory,
    generation: u64,
    agents: HashMap<[u8; 32], Arc<AgentView>, foldhash::fast::RandomState>,
    by_name: HashMap<String, [u8; 32], foldhash::fast::RandomState>,
    /// Ids of credentials revoked before they expire.
    revoked_credentials: std::collections::HashSet<String, foldhash::fast::RandomState>,
    /// Active sponsors' keys by e-mail: who may sign a decision on a held
    /// call.
    sponsor_keys: HashMap<String, Did, foldhash::fast::RandomState>,
}

impl Snapshot {
    /// Reads the whole registry. `generation` must grow with every load so
    /// that verified-token caches re-check liveness.
    pub async fn load(registry: &dyn Registry, generation: u64) -> Result<Self, StoreError> {
        let mut dir = MemoryDirectory::new();
        let mut sponsor_active = HashMap::new();
        let mut sponsor_keys = HashMap::default();
        for s in registry.list_sponsors().await? {
            sponsor_active.insert(s.email.clone(), s.active);
            if s.active {
                sponsor_keys.insert(s.email.to_lowercase(), s.did);
            }
            dir.add_sponsor(s.did, &s.email, s.capabilities, s.active);
        }
        let mut agents = HashMap::default();
        let mut by_name = HashMap::default();
        for a in registry.list_agents().await? {
            let key = *a.did.key_bytes();
            let view = AgentView {
                did: a.did,
                did_text: a.did.to_mesh().to_string().into(),
                name: a.name.as_str().into(),
                sponsor: a.sponsor.as_str().into(),
                capabilities: a.capabilities.clone().into(),
                capability_names: a.capabilities.iter().map(|c| c.to_string()).collect(),
                status: a.status,
                expires_at: a.expires_at,
                sponsor_active: sponsor_active.get(&a.sponsor).copied().unwrap_or(false),
            };
            dir.add_agent_entry(
                a.did,
                AgentEntry {
                    name: a.name.as_str().into(),
                    sponsor_did: a.sponsor_did,
                    capabilities: a.capabilities.into(),
                    status: a.status,
                    expires_at: a.expires_at,
                },
            );
            by_name.insert(a.name, key);
            agents.insert(key, Arc::new(view));
        }
        for l in registry.revoked_links().await? {
            let bytes = parse_hex32(&l.hash)
                .ok_or_else(|| StoreError::Corrupt(format!("revoked link hash `{}`", l.hash)))?;
            dir.revoke_link(bytes);
        }
        let now = agentmesh_store::unix_now();
        let revoked_credentials = registry
            .revoked_credentials(now)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
        Ok(Self {
            dir,
            generation,
            agents,
            by_name,
            revoked_credentials,
            sponsor_keys,
        })
    }

    /// The key of an active sponsor, by e-mail (case-insensitive).
    pub fn sponsor_key(&self, email: &str) -> Option<&Did> {
        self.sponsor_keys.get(&email.to_lowercase())
    }

    pub fn agent(&self, did: &Did) -> Option<&Arc<AgentView>> {
        self.agents.get(did.key_bytes())
    }

    /// By registered name or DID.
    pub fn find(&self, name_or_did: &str) -> Option<&Arc<AgentView>> {
        if let Some(k) = self.by_name.get(name_or_did) {
            return self.agents.get(k);
        }
        let did = Did::parse(name_or_did).ok()?;
        self.agent(&did)
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// True when the credential with this id was revoked.
    pub fn credential_revoked(&self, id: &str) -> bool {
        !self.revoked_credentials.is_empty() && self.revoked_credentials.contains(id)
    }

    /// Every agent in the snapshot.
    pub fn agents(&self) -> impl Iterator<Item = &Arc<AgentView>> {
        self.agents.values()
    }

    /// Number of agents in the snapshot.
    pub fn agent_count(&self) -> usize {
        self.agents.len()
    }
}

impl Directory for Snapshot {
    fn sponsor(&self, did: &Did) -> Option<SponsorEntry> {
        self.dir.sponsor(did)
    }
    fn agent(&self, did: &Did) -> Option<AgentEntry> {
        self.dir.agent(did)
    }
    fn is_link_revoked(&self, link_hash: &[u8; 32]) -> bool {
        self.dir.is_link_revoked(link_hash)
    }
    fn generation(&self) -> u64 {
        self.generation
    }
}
