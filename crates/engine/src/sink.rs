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
use std::sync::{Arc, Mutex};

/// How an entry was taken.
#[derive(Debug)]
pub(crate) enum Appended {
    /// Queued in this process's audit log (index known).
    Log(Queued),
    /// Queued for the log's holder, through the registry outbox.
    Outbox,
}

/// Entries waiting for the registry: at most this many are held in memory
/// (the registry being unreachable for that long is an error to report,
/// not memory to spend).
const MAX_PENDING: usize = 100_000;

#[derive(Debug, Default)]
pub(crate) struct Sink {
    log: ArcSwapOption<AuditLog>,
    pending: Mutex<Vec<Vec<u8>>>,
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
    /// queues the entry for the holder.
    pub fn append_to(
        &self,
        log: Option<&AuditLog>,
        build: impl FnOnce() -> Draft + Send + 'static,
    ) -> Result<Appended, AuditError> {
        if let Some(log) = log {
            return log.append_deferred(build).map(Appended::Log);
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
            if pending.len() >= MAX_PENDING {
                // Fail closed: no record, no action.
                return Err(AuditError::WriterFailed(
                    "the registry has not taken this process's queued audit entries".into(),
                ));
            }
            pending.push(entry.to_bytes());
        }
        self.wake.notify_one();
        Ok(Appended::Outbox)
    }

    /// Entries queued and not yet in the registry.
    pub fn pending(&self) -> usize {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Moves queued entries into the registry outbox, in order. On an
    /// error the entries not yet taken stay queued, ahead of newer ones.
    pub async fn flush(&self, registry: &dyn Registry) -> Result<usize, StoreError> {
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        let now = agentmesh_store::unix_now();
        for (i, bytes) in batch.iter().enumerate() {
            if let Err(e) = registry.enqueue_audit(bytes, now).await {
                let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                let newer = std::mem::take(&mut *pending);
                pending.extend(batch.into_iter().skip(i));
                pending.extend(newer);
                return Err(e);
            }
        }
        Ok(batch.len())
    }

    /// Resolves when an entry was queued since the last wake-up.
    pub async fn queued(&self) {
        self.wake.notified().await;
    }

    /// This process now holds the log.
    pub fn take_over(&self, log: Arc<AuditLog>) {
        self.log.store(Some(log));
    }
}
