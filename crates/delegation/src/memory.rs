//! An in-memory [`Directory`]: what a gateway holds, what the CLI loads from
//! the registry, and what tests use.

use crate::verify::{AgentEntry, AgentStatus, Directory, SponsorEntry};
use agentmesh_capability::Capability;
use agentmesh_identity::Did;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Sponsors, agents and revoked links held in maps.
#[derive(Debug, Default, Clone)]
pub struct MemoryDirectory {
    sponsors: HashMap<Did, SponsorEntry>,
    agents: HashMap<Did, AgentEntry>,
    revoked_links: HashSet<[u8; 32]>,
    generation: u64,
}

impl MemoryDirectory {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add_sponsor(
        &mut self,
        did: Did,
        email: &str,
        capabilities: Vec<Capability>,
        active: bool,
    ) {
        self.sponsors.insert(
            did,
            SponsorEntry {
                email: email.into(),
                capabilities: capabilities.into(),
                active,
            },
        );
        self.generation += 1;
    }

    pub fn add_agent(
        &mut self,
        did: Did,
        name: &str,
        sponsor_did: Did,
        capabilities: Vec<Capability>,
        status: AgentStatus,
    ) {
        self.add_agent_entry(
            did,
            AgentEntry {
                name: name.into(),
                sponsor_did,
                capabilities: capabilities.into(),
                status,
                expires_at: None,
            },
        );
    }

    /// Adds or replaces an agent with every field given.
    pub fn add_agent_entry(&mut self, did: Did, entry: AgentEntry) {
        self.agents.insert(did, entry);
        self.generation += 1;
    }

    /// Changes an agent's status; returns false when the agent is unknown.
    pub fn set_status(&mut self, did: &Did, status: AgentStatus) -> bool {
        let Some(a) = self.agents.get_mut(did) else {
            return false;
        };
        a.status = status;
        self.generation += 1;
        true
    }

    pub fn revoke_link(&mut self, hash: [u8; 32]) {
        self.revoked_links.insert(hash);
        self.generation += 1;
    }
}

impl Directory for MemoryDirectory {
    fn sponsor(&self, did: &Did) -> Option<SponsorEntry> {
        self.sponsors.get(did).cloned()
    }
    fn agent(&self, did: &Did) -> Option<AgentEntry> {
        self.agents.get(did).cloned()
    }
    fn is_link_revoked(&self, link_hash: &[u8; 32]) -> bool {
        self.revoked_links.contains(link_hash)
    }
    fn generation(&self) -> u64 {
        self.generation
    }
}

/// Shared handle, for directories swapped as a whole.
impl<D: Directory + ?Sized> Directory for Arc<D> {
    fn sponsor(&self, did: &Did) -> Option<SponsorEntry> {
        (**self).sponsor(did)
    }
    fn agent(&self, did: &Did) -> Option<AgentEntry> {
        (**self).agent(did)
    }
    fn is_link_revoked(&self, link_hash: &[u8; 32]) -> bool {
        (**self).is_link_revoked(link_hash)
    }
    fn generation(&self) -> u64 {
        (**self).generation()
    }
}
