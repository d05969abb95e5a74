//! Events that move trust, and how much each moves which dimension.

use crate::model::Dimension;
use serde::{Deserialize, Serialize};

/// How bad a violation or anomaly is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Evidence weight: each step triples, so one critical violation
    /// outweighs 27 good calls.
    pub fn weight(self) -> f64 {
        match self {
            Severity::Low => 1.0,
            Severity::Medium => 3.0,
            Severity::High => 9.0,
            Severity::Critical => 27.0,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// A governance decision about one of the agent's calls: `allow`,
    /// `warn`, `deny` (a deny rule matched), `refused` (denied by a gate or
    /// the default), `rate_limited` or `require_approval`.
    Decision { outcome: String },
    /// A policy violation found outside a decision (e.g. by review).
    Violation { severity: Severity, reason: String },
    /// A task the agent performed, judged by someone.
    Task { success: bool },
    /// A failed authentication (bad credential, bad holder proof).
    AuthFailed { reason: String },
    /// A trust handshake with a peer.
    Handshake { ok: bool },
    /// Another agent vouches for this one. `endorser_score` is the
    /// endorser's own score when it endorsed (weighting; recorded so the
    /// fold never recurses, which makes endorsement cycles harmless).
    Endorsement { by: String, endorser_score: f64 },
    /// A behavioural anomaly found by a detector.
    Anomaly {
        detector: String,
        severity: Severity,
        explanation: String,
    },
}

/// An event for one agent at one time (unix ms).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrustEvent {
    pub agent: String,
    pub at_ms: u64,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// The evidence an event adds: (dimension, positive?, weight), if any.
pub fn effect(kind: &EventKind) -> Option<(Dimension, bool, f64)> {
    use Dimension::*;
    Some(match kind {
        EventKind::Decision { outcome } => match outcome.as_str() {
            "allow" => (PolicyCompliance, true, 1.0),
            "warn" => (PolicyCompliance, false, 0.5),
            "deny" => (PolicyCompliance, false, 1.0),
            // Denied by a gate or the default, not by a rule against it:
            // asking for something not granted is weak evidence.
            "refused" => (PolicyCompliance, false, 0.25),
            "rate_limited" => (ResourceEfficiency, false, 1.0),
            _ => return None,
        },
        EventKind::Violation { severity, .. } => (PolicyCompliance, false, severity.weight()),
        EventKind::Task { success } => (OutputQuality, *success, 1.0),
        EventKind::AuthFailed { .. } => (SecurityPosture, false, 2.0),
        EventKind::Handshake { ok } => (SecurityPosture, *ok, if *ok { 1.0 } else { 2.0 }),
        EventKind::Endorsement { endorser_score, .. } => {
            let w = if endorser_score.is_finite() {
                endorser_score.clamp(0.0, 1.0)
            } else {
                0.0
            };
            (Collaboration, true, w)
        }
        EventKind::Anomaly { severity, .. } => (SecurityPosture, false, severity.weight()),
    })
}

impl EventKind {
    /// A short label for explanations.
    pub fn label(&self) -> String {
        match self {
            EventKind::Decision { outcome } => format!("decision {outcome}"),
            EventKind::Violation { severity, reason } => {
                format!("violation ({severity:?}): {reason}")
            }
            EventKind::Task { success } => {
                format!("task {}", if *success { "succeeded" } else { "failed" })
            }
            EventKind::AuthFailed { reason } => format!("authentication failed: {reason}"),
            EventKind::Handshake { ok } => {
                format!("handshake {}", if *ok { "ok" } else { "failed" })
            }
            EventKind::Endorsement { by, endorser_score } => {
                format!("endorsed by {by} (score {endorser_score:.2})")
            }
            EventKind::Anomaly {
                detector,
                severity,
                explanation,
            } => format!("anomaly {detector} ({severity:?}): {explanation}"),
        }
    }
}
