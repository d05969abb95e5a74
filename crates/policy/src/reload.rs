//! Hot reload: a valid new file swaps in atomically; an invalid one keeps
//! the running policy and reports why.

use crate::diag::LoadError;
use crate::policy::PolicySet;
use arc_swap::ArcSwap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// The current policy set, readable without locks from any thread.
#[derive(Debug)]
pub struct PolicyHandle {
    current: ArcSwap<PolicySet>,
}

impl PolicyHandle {
    pub fn new(set: PolicySet) -> Self {
        Self {
            current: ArcSwap::from_pointee(set),
        }
    }

    /// The policy set in force now.
    pub fn current(&self) -> Arc<PolicySet> {
        self.current.load_full()
    }

    /// Swaps in an already-loaded set (a policy distributed by the control
    /// plane); returns its version.
    pub fn replace(&self, set: PolicySet) -> Arc<str> {
        let version = set.version.clone();
        self.current.store(Arc::new(set));
        version
    }

    /// Loads `path`; on success swaps it in and returns the new version,
    /// otherwise keeps the current set and returns the diagnostics.
    pub fn reload_from(&self, path: &Path) -> Result<Arc<str>, LoadError> {
        let set = PolicySet::from_file(path)?;
        let version = set.version.clone();
        self.current.store(Arc::new(set));
        Ok(version)
    }
}

/// What a watcher reports.
#[derive(Debug, Clone)]
pub enum ReloadEvent {
    /// A new version is in force.
    Reloaded { version: Arc<str> },
    /// The file changed but is invalid; the previous version stays.
    Rejected { error: LoadError },
}

/// Polls a policy file and reloads it when its contents change.
#[derive(Debug)]
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    /// Starts polling `path` every `interval`. Events arrive on the returned
    /// receiver. Polling compares file contents, so editors that replace
    /// the file and clocks with coarse mtimes are both handled.
    pub fn spawn(
        path: PathBuf,
        handle: Arc<PolicyHandle>,
        interval: Duration,
    ) -> (Self, mpsc::Receiver<ReloadEvent>) {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        // The baseline is read before this returns, so any write after
        // `spawn` returns is seen as a change.
        let mut last = std::fs::read(&path).ok();
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                std::thread::sleep(interval);
                let now = std::fs::read(&path).ok();
                if now.is_none() || now == last {
                    continue;
                }
                last = now;
                let event = match handle.reload_from(&path) {
                    Ok(version) => ReloadEvent::Reloaded { version },
                    Err(error) => ReloadEvent::Rejected { error },
                };
                if tx.send(event).is_err() {
                    break;
                }
            }
        });
        (
            Self {
                stop,
                thread: Some(thread),
            },
            rx,
        )
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
