//! Trust state for the hot path: the trust engine split into shards by
//! agent, so calls by different agents never contend on one lock. Each
//! shard remembers which agents changed, for the periodic flush to the
//! registry.

use agentmesh_trust::{AgentTrust, TrustConfig, TrustEngine};
use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard};

const SHARDS: usize = 16;

pub(crate) struct Shard {
    pub engine: TrustEngine,
    pub dirty: HashSet<String>,
}

pub(crate) struct TrustShards {
    shards: Box<[Mutex<Shard>]>,
    hasher: foldhash::fast::FixedState,
}

impl TrustShards {
    pub fn new(cfg: &TrustConfig, states: Vec<(String, AgentTrust)>) -> Self {
        let shards: Vec<Mutex<Shard>> = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    engine: TrustEngine::new(cfg.clone()),
                    dirty: HashSet::new(),
                })
            })
            .collect();
        let me = Self {
            shards: shards.into_boxed_slice(),
            hasher: foldhash::fast::FixedState::with_seed(0x5eed),
        };
        for (agent, state) in states {
            me.lock(&agent).engine.restore(&agent, state);
        }
        me
    }

    pub fn lock(&self, agent: &str) -> MutexGuard<'_, Shard> {
        let i = (self.hasher.hash_one(agent) as usize) % self.shards.len();
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The states changed since the last call, to persist.
    pub fn take_dirty(&self) -> Vec<(String, AgentTrust)> {
        let mut out = Vec::new();
        for s in self.shards.iter() {
            let mut s = s.lock().unwrap_or_else(|p| p.into_inner());
            let dirty = std::mem::take(&mut s.dirty);
            for agent in dirty {
                if let Some(state) = s.engine.state(&agent) {
                    out.push((agent, state.clone()));
                }
            }
        }
        out
    }
}
