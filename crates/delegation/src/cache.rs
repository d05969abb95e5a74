//! A cache of verified tokens, so a token's signatures are checked once.
//!
//! A hit still enforces time (the chain's window is re-checked against the
//! caller's clock) and revocation: every entry remembers the directory
//! generation it was checked at, and when the generation has moved the
//! cheap live checks (revoked links, agent status) run again before the
//! entry is used.

use crate::verify::{Directory, VerifiedChain, VerifyError, VerifyOptions, check_live, verify};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

#[derive(Debug)]
struct Entry {
    chain: Arc<VerifiedChain>,
    generation: AtomicU64,
}

/// Verified tokens keyed by their exact text.
#[derive(Debug)]
pub struct VerifiedCache {
    capacity: usize,
    entries: RwLock<HashMap<Box<str>, Entry, foldhash::fast::RandomState>>,
}

impl VerifiedCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: RwLock::new(HashMap::default()),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Verifies `token`, using the cache when it can.
    pub fn verify(
        &self,
        token: &str,
        directory: &dyn Directory,
        opts: VerifyOptions,
    ) -> Result<Arc<VerifiedChain>, VerifyError> {
        if let Some(hit) = self.lookup(token, directory, opts) {
            return hit;
        }
        let chain = Arc::new(verify(token, directory, opts)?);
        self.insert(token, chain.clone(), directory.generation(), opts.now);
        Ok(chain)
    }

    fn lookup(
        &self,
        token: &str,
        directory: &dyn Directory,
        opts: VerifyOptions,
    ) -> Option<Result<Arc<VerifiedChain>, VerifyError>> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let entry = entries.get(token)?;
        let chain = &entry.chain;
        if opts.now >= chain.expires_at
            || opts.now.saturating_add(opts.not_before_skew) < chain.not_before
        {
            // Let the full verification produce the precise error.
            return None;
        }
        let generation = directory.generation();
        // Registration expiry depends on the clock, not the generation.
        if chain.agents_expire_at <= opts.now
            || entry.generation.load(Ordering::Acquire) != generation
        {
            if let Err(e) = check_live(&chain.link_hashes, &chain.agents, directory, opts.now) {
                return Some(Err(e));
            }
            entry.generation.store(generation, Ordering::Release);
        }
        Some(Ok(chain.clone()))
    }

    fn insert(&self, token: &str, chain: Arc<VerifiedChain>, generation: u64, now: u64) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity {
            entries.retain(|_, e| e.chain.expires_at > now);
            if entries.len() >= self.capacity {
                // Still full of live entries: drop an arbitrary eighth.
                let drop: Vec<Box<str>> = entries
                    .keys()
                    .take(self.capacity / 8 + 1)
                    .cloned()
                    .collect();
                for k in drop {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(
            token.into(),
            Entry {
                chain,
                generation: AtomicU64::new(generation),
            },
        );
    }
}
