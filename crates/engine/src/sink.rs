//! Where an engine's audit entries go: straight into the home's audit log
//! when this process holds it, otherwise into the registry's audit outbox,
//! for the process that holds the log to append (and, for trust events, to
//! apply first: one writer of a home's trust state).
//!
//! That is what lets several governed processes share one mesh home (a
//! desktop client that starts two `mcp wrap` servers): the first holds the
//! log, the others *follow*. A follower queues each entry as it is made and
//! a background task moves the queue into the registry; it reloads trust
//! states the holder saves; and it takes the log over when the holder
//! exits. See `docs/mcp-gateway.md` (several processes on one home).

use agentmesh_audit::{AuditError, AuditLog, Draft, Entry, Queued};
use agentmesh_store::{Registry, StoreError};
use arc_swap::ArcSwapOption;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How an entry was taken.
#[derive(Debug)]
pub(crate) enum Appended {
    /// Queued in this process's audit log (index known).
    Log(Queued),
    /// Queued for the log's holder, through the registry outbox.
    Outbox,
}

/// A follower that cannot hand its entries on for this long refuses to act
/// (no record, no action): the registry is failing, or the process holding
/// the log does not take queued entries (e.g. a gateway attached to a
/// control plane drains the control plane's outbox, not this home's).
pub(crate) const STALL_AFTER: Duration = Duration::from_secs(15);

#[derive(Debug, Default)]
struct Pending {
    entries: VecDeque<Vec<u8>>,
    /// When the oldest entry still in memory was made.
    oldest: Option<Instant>,
}

/// Entries this process put in the registry outbox and the holder has not
/// taken yet.
#[derive(Debug, Default, Clone, Copy)]
struct Handed {
    /// Outbox id of the newest.
    last_id: i64,
    /// The oldest id still queued when last looked at.
    head: Option<i64>,
    /// Since when the holder has made no progress while some of ours wait.
    since: Option<Instant>,
}

#[derive(Debug, Default)]
pub(crate) struct Sink {
    log: ArcSwapOption<AuditLog>,
    pending: Mutex<Pending>,
    handed: Mutex<Handed>,
    /// One flush at a time (the background task, a takeover, shutdown), so
    /// entries reach the outbox once and in order.
    flushing: tokio::sync::Mutex<()>,
    wake: tokio::sync::Notify,
}

impl Sink {
    pub fn holding(log: Arc<AuditLog>) -> Self {
        Sink {
            log: ArcSwapOption::from(Some(log)),
            ..Sink::default()
        }
    }

    pub fn following() -> Self {
        Sink::default()
    }

    /// The log, when this process holds it. A caller that must keep one
    /// mode for several steps (apply a trust event, then record it) loads
    /// it once and passes it to [`Sink::append_to`].
    pub fn log(&self) -> Option<Arc<AuditLog>> {
        self.log.load_full()
    }

    /// The log (when held) for the length of one operation, without an
    /// `Arc` clone (the decision path).
    pub fn current(&self) -> arc_swap::Guard<Option<Arc<AuditLog>>> {
        self.log.load()
    }

    pub fn holds_log(&self) -> bool {
        self.log.load().is_some()
    }

    /// Appends through whichever way this process has now.
    pub fn append(
        &self,
        build: impl FnOnce() -> Draft + Send + 'static,
    ) -> Result<Appended, AuditError> {
        let guard = self.log.load();
        self.append_to(guard.as_deref(), build)
    }

    /// Appends to `log` if given (loaded once by the caller), otherwise
    /// queues the entry for the holder, unless entries have been stuck for
    /// [`STALL_AFTER`] (then this fails: no record, no action).
    pub fn append_to(
        &self,
        log: Option<&AuditLog>,
        build: impl FnOnce() -> Draft + Send + 'static,
    ) -> Result<Appended, AuditError> {
        if let Some(log) = log {
            return log.append_deferred(build).map(Appended::Log);
        }
        if let Some(why) = self.stalled() {
            return Err(AuditError::WriterFailed(why));
        }
        // The time the entry was made; the holder keeps it as `queued_at`.
        let entry = Entry {
            seq: 0,
            time: agentmesh_audit::rfc3339_millis(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
            ),
            draft: build(),
        };
        {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.oldest.get_or_insert_with(Instant::now);
            pending.entries.push_back(entry.to_bytes());
        }
        self.wake.notify_one();
        Ok(Appended::Outbox)
    }

    /// Why this follower cannot record now, if it cannot.
    pub fn stalled(&self) -> Option<String> {
        let in_memory = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .oldest
            .is_some_and(|t| t.elapsed() > STALL_AFTER);
        if in_memory {
            return Some(format!(
                "this process could not queue its audit entries in the registry for {} s",
                STALL_AFTER.as_secs()
            ));
        }
        let handed = self
            .handed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .since
            .is_some_and(|t| t.elapsed() > STALL_AFTER);
        handed.then(|| {
            format!(
                "the process holding this home's audit log has not taken queued entries for {} s (a gateway attached to a control plane does not drain its home's outbox: give each such process its own --home)",
                STALL_AFTER.as_secs()
            )
        })
    }

    /// Entries queued and not yet in the registry.
    pub fn pending(&self) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .len()
    }

    /// Moves queued entries into the registry outbox, in order, one at a
    /// time: an entry leaves memory only once the registry has it, so an
    /// error (or this future being dropped) loses nothing and repeats
    /// nothing.
    pub async fn flush(&self, registry: &dyn Registry) -> Result<usize, StoreError> {
        let _one = self.flushing.lock().await;
        let mut moved = 0;
        loop {
            let next = {
                let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                pending.entries.front().cloned()
            };
            let Some(bytes) = next else {
                return Ok(moved);
            };
            let id = registry
                .enqueue_audit(&bytes, agentmesh_store::unix_now())
                .await?;
            // No await between the registry taking it and forgetting it.
            {
                let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                pending.entries.pop_front();
                if pending.entries.is_empty() {
                    pending.oldest = None;
                } else {
                    pending.oldest = Some(Instant::now());
                }
            }
            {
                let mut handed = self.handed.lock().unwrap_or_else(|p| p.into_inner());
                handed.last_id = id;
                handed.since.get_or_insert_with(Instant::now);
            }
            moved += 1;
        }
    }

    /// Notes how far the holder has taken the outbox: `head` is the id of
    /// the oldest entry still queued (`None`: the outbox is empty).
    pub fn holder_took_up_to(&self, head: Option<i64>) {
        let mut handed = self.handed.lock().unwrap_or_else(|p| p.into_inner());
        if head.is_none_or(|h| h > handed.last_id) {
            // Everything we handed on was taken.
            handed.since = None;
        } else if head != handed.head && handed.since.is_some() {
            // The holder is taking entries: the wait starts again.
            handed.since = Some(Instant::now());
        }
        handed.head = head;
    }

    /// Resolves when an entry was queued since the last wake-up.
    pub async fn queued(&self) {
        self.wake.notified().await;
    }

    /// This process now holds the log.
    pub fn take_over(&self, log: Arc<AuditLog>) {
        self.log.store(Some(log));
        *self.handed.lock().unwrap_or_else(|p| p.into_inner()) = Handed::default();
    }
}
