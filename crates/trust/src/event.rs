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
    /// A human (the sponsor or an administrator) reactivated the agent
    /// after a suspension by score: an audited override that clears the
    /// breach of the floor. It adds no evidence: the score stays what the
    /// evidence says, and the next qualifying drop suspends again.
    Reinstated { by: String },
}

/// An event for one agent at one time (unix ms).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrustEvent {
    pub agent: String,
    pub at_ms: u64,
    #[serde(flatten)]
    pub kind: EventKind,
    /// What the event is about: the action (capability) of a decision or a
    /// task, the peer of a handshake. Positive evidence about the same thing
    /// counts less each time within a window (see
    /// [`TrustConfig::gain_window_secs`](crate::TrustConfig)), so trust
    /// cannot be bought by repeating one trivial call or handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<String>,
}

impl TrustEvent {
    pub fn new(agent: impl Into<String>, at_ms: u64, kind: EventKind) -> Self {
        Self {
            agent: agent.into(),
            at_ms,
            kind,
            about: None,
        }
    }

    /// Names what the event is about (see [`TrustEvent::about`]).
    pub fn about(mut self, about: impl Into<String>) -> Self {
        self.about = Some(about.into());
        self
    }

    /// A violation or anomaly of high or critical severity: enough on its
    /// own to suspend an agent whose score it takes below the floor, however
    /// little else is known about the agent.
    pub fn is_severe(&self) -> bool {
        matches!(
            &self.kind,
            EventKind::Violation { severity, .. } | EventKind::Anomaly { severity, .. }
                if matches!(severity, Severity::High | Severity::Critical)
        )
    }
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
        EventKind::Reinstated { .. } => return None,
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
            EventKind::Reinstated { by } => format!("reinstated by {by}"),
        }
    }
}
