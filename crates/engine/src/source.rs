//! Failed authentications, attributed to where they came from.
//!
//! A request whose credential, delegation token, holder proof or attestation
//! fails cannot be attributed to the identity it names: anyone can name a
//! DID, and anyone holding a victim's delegation token can present it with a
//! bad proof. So failures never move the named agent's trust. They are
//! counted per *source* (the transport's peer address, never a claim from
//! the request) instead:
//!
//! * the first [`DETAIL_PER_WINDOW`] failures of a source in a window are
//!   audit leaves of their own (`auth.failed`);
//! * the rest are counted and summarised in one `auth.failed_summary` leaf
//!   when the window is over, so unauthenticated callers cannot grow the
//!   audit log without bound;
//! * a source reaching [`ANOMALY_AT`] failures in a window is recorded once
//!   as an `auth.source_anomaly` leaf (and counted in a metric).
//!
//! Memory is bounded: at most [`MAX_SOURCES`] sources are tracked; beyond
//! that, failures are counted under one shared `overflow` source.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

tokio::task_local! {
    /// The peer address of the request being served (set by the gateways'
    /// transport layer, never from anything the request says).
    static PEER: Arc<str>;
}

/// Runs `f` (a request's handling) with `source` as the peer that
/// [`Engine::authenticate`](crate::Engine::authenticate) counts failures
/// against.
pub async fn with_source<F: std::future::Future>(source: Arc<str>, f: F) -> F::Output {
    PEER.scope(source, f).await
}

/// The peer of the request being served, when the transport set one.
pub fn current() -> Option<Arc<str>> {
    PEER.try_with(Arc::clone).ok()
}

/// Length of a counting window.
pub const WINDOW_MS: u64 = 60_000;
/// Failures per source and window recorded one leaf each.
pub const DETAIL_PER_WINDOW: u32 = 10;
/// Failures per source and window that make an anomaly of the source.
pub const ANOMALY_AT: u32 = 20;
/// Sources tracked at once.
pub const MAX_SOURCES: usize = 4096;
/// The source name used when the transport could not say (or the table is
/// full).
pub const UNKNOWN_SOURCE: &str = "unknown";
const OVERFLOW_SOURCE: &str = "overflow";

#[derive(Debug, Default)]
struct Tally {
    window: u64,
    failures: u32,
    suppressed: u32,
}

/// What to do with one failure.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// Record this failure as a leaf of its own.
    pub record: bool,
    /// This failure made the source anomalous (once per window): failures so
    /// far in the window.
    pub anomaly: Option<u32>,
    /// Failures of an earlier window not recorded one by one:
    /// (source, window start ms, count).
    pub summary: Option<(String, u64, u32)>,
}

/// Failures per source and window (see the module documentation); shared
/// by the gateways (authentication) and the control plane (rejected
/// registrations).
#[derive(Debug, Default)]
pub struct SourceWatch {
    tallies: Mutex<HashMap<String, Tally>>,
}

impl SourceWatch {
    /// Counts one failure from `source` at `now_ms`.
    pub fn failure(&self, source: &str, now_ms: u64) -> Seen {
        let window = now_ms / WINDOW_MS;
        let mut map = self.tallies.lock().unwrap_or_else(|p| p.into_inner());
        let key = if map.contains_key(source) || map.len() < MAX_SOURCES {
            source
        } else {
            OVERFLOW_SOURCE
        };
        let t = match map.get_mut(key) {
            Some(t) => t,
            None => map.entry(key.to_owned()).or_default(),
        };
        let mut seen = Seen::default();
        if t.window != window {
            if t.suppressed > 0 {
                seen.summary = Some((key.to_owned(), t.window * WINDOW_MS, t.suppressed));
            }
            *t = Tally {
                window,
                ..Tally::default()
            };
        }
        t.failures = t.failures.saturating_add(1);
        if t.failures <= DETAIL_PER_WINDOW {
            seen.record = true;
        } else {
            t.suppressed = t.suppressed.saturating_add(1);
        }
        if t.failures == ANOMALY_AT {
            seen.anomaly = Some(t.failures);
        }
        seen
    }

    /// Ends the windows that are over: returns their summaries (sources with
    /// failures not recorded one by one) and forgets quiet sources, so the
    /// table does not fill with addresses seen once.
    pub fn sweep(&self, now_ms: u64) -> Vec<(String, u64, u32)> {
        let window = now_ms / WINDOW_MS;
        let mut out = Vec::new();
        let mut map = self.tallies.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|source, t| {
            if t.window == window {
                return true;
            }
            if t.suppressed > 0 {
                out.push((source.clone(), t.window * WINDOW_MS, t.suppressed));
            }
            false
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000_000;

    #[test]
    fn detail_then_counts_then_one_anomaly_per_window() {
        let w = SourceWatch::default();
        let seen: Vec<Seen> = (0..30).map(|i| w.failure("10.0.0.1", T0 + i)).collect();
        assert_eq!(
            seen.iter().filter(|s| s.record).count(),
            DETAIL_PER_WINDOW as usize
        );
        assert_eq!(seen.iter().filter(|s| s.anomaly.is_some()).count(), 1);
        // Another source is counted on its own.
        assert!(w.failure("10.0.0.2", T0).record);
        // The next window reports what was suppressed in the last one.
        let next = w.failure("10.0.0.1", T0 + WINDOW_MS);
        assert!(next.record);
        let (source, _, n) = next.summary.expect("summary");
        assert_eq!((source.as_str(), n), ("10.0.0.1", 30 - DETAIL_PER_WINDOW));
    }

    #[test]
    fn sweep_summarises_and_forgets() {
        let w = SourceWatch::default();
        for i in 0..15 {
            w.failure("a", T0 + i);
        }
        w.failure("b", T0);
        assert!(w.sweep(T0 + 1).is_empty(), "the window is not over");
        let s = w.sweep(T0 + WINDOW_MS);
        assert_eq!(s, vec![("a".to_owned(), T0 / WINDOW_MS * WINDOW_MS, 5)]);
        assert!(w.tallies.lock().expect("lock").is_empty());
    }

    #[test]
    fn memory_is_bounded() {
        let w = SourceWatch::default();
        for i in 0..(MAX_SOURCES + 100) {
            w.failure(&format!("s{i}"), T0);
        }
        let map = w.tallies.lock().expect("lock");
        assert!(map.len() <= MAX_SOURCES + 1);
        assert!(map.contains_key(OVERFLOW_SOURCE));
    }
}
