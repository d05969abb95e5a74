//! Hot reload: a valid new file swaps in atomically; an invalid one keeps
//! the running policy and reports why.

use crate::diag::{Diagnostic, LoadError, Severity};
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
    /// The file changed but could not be put in force (invalid, unreadable,
    /// or the loader failed); the previous version stays and the watcher
    /// keeps polling, so a later good edit is picked up.
    Rejected { error: LoadError },
}

/// Polls a policy file and reloads it when its contents change.
#[derive(Debug)]
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A one-line load error about `path` (not about a position inside it).
fn file_error(path: &Path, message: String) -> LoadError {
    LoadError {
        diagnostics: vec![Diagnostic {
            severity: Severity::Error,
            file: path.display().to_string(),
            line: 0,
            column: 0,
            message,
        }],
    }
}

/// State of one watcher between polls.
struct Poll {
    path: PathBuf,
    handle: Arc<PolicyHandle>,
    /// Contents last acted on (loaded or rejected): unchanged contents are
    /// not reloaded or reported again.
    last: Option<Vec<u8>>,
    /// The read error last reported, so an unreadable file is reported
    /// once per distinct error rather than on every poll.
    read_error: Option<String>,
    /// [`PolicyHandle::reload_from`]; a parameter so the panic guard can be
    /// tested with a loader that panics.
    load: LoadFn,
}

type LoadFn = fn(&PolicyHandle, &Path) -> Result<Arc<str>, LoadError>;

impl Poll {
    /// One poll: `Some(event)` when there is something to report.
    fn step(&mut self) -> Option<ReloadEvent> {
        let now = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) => {
                let msg = format!(
                    "cannot read the policy file ({e}); the previous version stays in force and the file is polled again"
                );
                if self.read_error.as_deref() == Some(msg.as_str()) {
                    return None;
                }
                self.read_error = Some(msg.clone());
                return Some(ReloadEvent::Rejected {
                    error: file_error(&self.path, msg),
                });
            }
        };
        self.read_error = None;
        if self.last.as_deref() == Some(now.as_slice()) {
            return None;
        }
        self.last = Some(now);
        // reload_from re-reads the file: a write between the two reads is
        // seen as one more change on the next poll.
        let (handle, path, load) = (&self.handle, &self.path, self.load);
        // The loader must not panic (the compiler and the YAML parser are
        // fuzzed for that); if it ever does, this thread must survive it,
        // or the gateway silently stops reloading for the rest of its life.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| load(handle, path)));
        Some(match outcome {
            Ok(Ok(version)) => ReloadEvent::Reloaded { version },
            Ok(Err(error)) => ReloadEvent::Rejected { error },
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown cause".to_owned());
                ReloadEvent::Rejected {
                    error: file_error(
                        path,
                        format!(
                            "internal error while loading the policy ({what}); the previous version stays in force; please report this file"
                        ),
                    ),
                }
            }
        })
    }
}

impl Watcher {
    /// Starts polling `path` every `interval`. Events arrive on the returned
    /// receiver. Polling compares file contents, so editors that replace
    /// the file and clocks with coarse mtimes are both handled. The watcher
    /// runs until dropped or until the receiver is dropped; no content of
    /// the file ends it.
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
        let mut poll = Poll {
            last: std::fs::read(&path).ok(),
            path,
            handle,
            read_error: None,
            load: PolicyHandle::reload_from,
        };
        let shown = poll.path.clone();
        let thread_tx = tx.clone();
        let spawned = std::thread::Builder::new()
            .name("policy-reload".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    std::thread::sleep(interval);
                    if let Some(event) = poll.step()
                        && thread_tx.send(event).is_err()
                    {
                        // Nobody listens any more: the owner is gone.
                        break;
                    }
                }
            });
        let thread = match spawned {
            Ok(t) => Some(t),
            Err(e) => {
                // No thread, no reloads: say so on the channel the caller
                // already reports from, instead of panicking at start-up.
                let error = file_error(
                    &shown,
                    format!("cannot start the policy watcher ({e}); edits will not be reloaded"),
                );
                // `rx` is held right here, so this send cannot fail.
                let sent = tx.send(ReloadEvent::Rejected { error });
                debug_assert!(sent.is_ok());
                None
            }
        };
        (Self { stop, thread }, rx)
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

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOW: &str = "agent: \"*\"\ndefault_action: allow\n";
    const DENY: &str = "agent: \"*\"\ndefault_action: deny\n";

    fn panicking_loader(_: &PolicyHandle, _: &Path) -> Result<Arc<str>, LoadError> {
        panic!("loader bug")
    }

    #[test]
    fn a_panicking_loader_is_a_rejection_and_polling_goes_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.yaml");
        std::fs::write(&path, DENY).expect("write");
        let handle = Arc::new(PolicyHandle::new(
            PolicySet::from_file(&path).expect("deny policy"),
        ));
        let v1 = handle.current().version.clone();
        let mut poll = Poll {
            path: path.clone(),
            handle: handle.clone(),
            last: std::fs::read(&path).ok(),
            read_error: None,
            load: panicking_loader,
        };
        assert!(poll.step().is_none(), "unchanged file, nothing to report");
        std::fs::write(&path, ALLOW).expect("write");
        match poll.step() {
            Some(ReloadEvent::Rejected { error }) => {
                let text = error.to_string();
                assert!(text.contains("internal error"), "{text}");
                assert!(text.contains("loader bug"), "{text}");
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
        assert_eq!(handle.current().version, v1, "old policy stays in force");
        // The same poller, with a working loader, takes the next edit.
        poll.load = PolicyHandle::reload_from;
        std::fs::write(&path, format!("{ALLOW}# edited\n")).expect("write");
        match poll.step() {
            Some(ReloadEvent::Reloaded { version }) => assert_ne!(version, v1),
            other => panic!("expected a reload, got {other:?}"),
        }
    }

    #[test]
    fn an_unreadable_file_is_reported_once_per_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.yaml");
        std::fs::write(&path, DENY).expect("write");
        let handle = Arc::new(PolicyHandle::new(
            PolicySet::from_file(&path).expect("deny policy"),
        ));
        let mut poll = Poll {
            path: path.clone(),
            handle,
            last: std::fs::read(&path).ok(),
            read_error: None,
            load: PolicyHandle::reload_from,
        };
        std::fs::remove_file(&path).expect("remove");
        match poll.step() {
            Some(ReloadEvent::Rejected { error }) => {
                assert!(
                    error.to_string().contains("cannot read the policy file"),
                    "{error}"
                );
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
        assert!(poll.step().is_none(), "the same error is not repeated");
        // Back with the same contents: the running policy already is that.
        std::fs::write(&path, DENY).expect("write");
        assert!(poll.step().is_none());
        // Gone again: reported again, since it recovered in between.
        std::fs::remove_file(&path).expect("remove");
        assert!(matches!(poll.step(), Some(ReloadEvent::Rejected { .. })));
    }
}
