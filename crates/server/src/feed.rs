//! The change feed: every replica polls the database's `changes` table and
//! fans new entries out to its connected gateways (`GET /v1/events`).
//! Polling (not LISTEN/NOTIFY) works the same on SQLite and PostgreSQL and
//! cannot miss a notification sent while a replica was reconnecting: the
//! sequence number is the cursor.

use crate::State;
use agentmesh_store::Change;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

#[derive(Debug)]
pub struct Feed {
    tx: broadcast::Sender<Change>,
    last: AtomicI64,
}

impl Feed {
    pub fn new(last: i64) -> Self {
        let (tx, _) = broadcast::channel(4096);
        Self {
            tx,
            last: AtomicI64::new(last),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }

    /// The last sequence number this replica has seen.
    pub fn last(&self) -> i64 {
        self.last.load(Ordering::Acquire)
    }

    /// Reads new changes from the database and publishes them. Returns how
    /// many there were.
    pub async fn poll(&self, state: &State) -> Result<usize, agentmesh_store::StoreError> {
        let mut n = 0;
        loop {
            let from = self.last();
            let batch = state.sql.changes_since(from, 512).await?;
            let more = batch.len() == 512;
            for c in batch {
                self.last.fetch_max(c.seq, Ordering::AcqRel);
                state.metrics.feed_changes.inc();
                // No subscriber is fine: nothing to tell.
                let _ = self.tx.send(c);
                n += 1;
            }
            if !more {
                return Ok(n);
            }
        }
    }
}

/// The background tasks of one replica.
pub fn spawn_tasks(state: State) -> Vec<JoinHandle<()>> {
    let s = state.clone();
    let poll = tokio::spawn(async move {
        let mut tick = tokio::time::interval(s.cfg.feed_poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if s.feed.poll(&s).await.is_err() {
                s.metrics.feed_errors.inc();
            }
        }
    });
    let s = state.clone();
    let audit = tokio::spawn(async move {
        // One replica at a time holds the audit log (an OS file lock in
        // the shared home); the others queue their entries in the
        // database and whoever holds the log appends them. When the holder
        // dies, the next replica to try takes over.
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut checkpointed = 0u64;
        let mut last_checkpoint = std::time::Instant::now();
        loop {
            tick.tick().await;
            let log = match s.mesh.try_audit() {
                Ok(Some(log)) => log,
                _ => continue,
            };
            let _ = s.mesh.drain_audit_outbox().await;
            let size = log.size();
            s.metrics
                .audit_entries
                .set(i64::try_from(size).unwrap_or(i64::MAX));
            if size > checkpointed && last_checkpoint.elapsed() >= Duration::from_secs(10) {
                if s.mesh.checkpoint().is_ok() {
                    checkpointed = size;
                }
                last_checkpoint = std::time::Instant::now();
            }
        }
    });
    vec![poll, audit]
}
