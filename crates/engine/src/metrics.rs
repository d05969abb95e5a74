//! Prometheus metrics of the pipeline, updated on the real code paths and
//! served by gateways on `/metrics`. Names follow the one scheme
//! (`agentmesh_*`); deploy/grafana/agentmesh.json queries exactly these.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::HashSet;
use std::sync::RwLock;
use std::sync::atomic::AtomicU64;

/// Agents with their own `agentmesh_trust_score` series; beyond this the
/// updates of the others are counted in `agentmesh_trust_score_dropped_total`
/// (bounded cardinality, whatever the number of agents).
pub const MAX_TRUST_SERIES: usize = 256;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub decision: &'static str,
    pub protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgentLabels {
    pub agent: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub method: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub decisions: Family<DecisionLabels, Counter>,
    pub decision_duration: Histogram,
    pub auth_failures: Family<ReasonLabels, Counter>,
    pub authentications: Family<MethodLabels, Counter>,
    pub source_anomalies: Counter,
    pub trust_score: Family<AgentLabels, Gauge<f64, AtomicU64>>,
    pub trust_dropped: Counter,
    pub audit_entries: Gauge,
    pub snapshot_agents: Gauge,
    pub snapshot_reloads: Counter,
    tracked: RwLock<HashSet<String>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "agentmesh_decisions",
            "Governance decisions by outcome (allow, warn, deny, require_approval, rate_limited) and protocol",
            decisions.clone(),
        );
        // 1 µs to ~33 ms.
        let decision_duration = Histogram::new(exponential_buckets(0.000_001, 2.0, 16));
        registry.register(
            "agentmesh_decision_duration_seconds",
            "Time to decide one call, from the snapshot read to the queued audit leaf",
            decision_duration.clone(),
        );
        let auth_failures = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "agentmesh_auth_failures",
            "Rejected credentials, delegation tokens and holder proofs, by reason code",
            auth_failures.clone(),
        );
        let authentications = Family::<MethodLabels, Counter>::default();
        registry.register(
            "agentmesh_authentications",
            "Successful authentications by method (credential, delegation, local)",
            authentications.clone(),
        );
        let source_anomalies = Counter::default();
        registry.register(
            "agentmesh_auth_source_anomalies",
            "Sources (peer addresses) that failed authentication 20 times within a minute",
            source_anomalies.clone(),
        );
        let trust_score = Family::<AgentLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "agentmesh_trust_score",
            "Trust score after the agent's latest decision (at most 256 agents)",
            trust_score.clone(),
        );
        let trust_dropped = Counter::default();
        registry.register(
            "agentmesh_trust_score_dropped",
            "Trust-score updates not exported because 256 agents already have a series",
            trust_dropped.clone(),
        );
        let audit_entries = Gauge::default();
        registry.register(
            "agentmesh_audit_entries",
            "Entries in this process's audit log",
            audit_entries.clone(),
        );
        let snapshot_agents = Gauge::default();
        registry.register(
            "agentmesh_registry_agents",
            "Agents in the registry snapshot this process enforces with",
            snapshot_agents.clone(),
        );
        let snapshot_reloads = Counter::default();
        registry.register(
            "agentmesh_registry_reloads",
            "Registry snapshot reloads (periodic and pushed)",
            snapshot_reloads.clone(),
        );
        Self {
            registry,
            decisions,
            decision_duration,
            auth_failures,
            authentications,
            source_anomalies,
            trust_score,
            trust_dropped,
            audit_entries,
            snapshot_agents,
            snapshot_reloads,
            tracked: RwLock::new(HashSet::new()),
        }
    }

    pub fn decision(&self, decision: &'static str, protocol: &'static str, seconds: f64) {
        self.decisions
            .get_or_create(&DecisionLabels { decision, protocol })
            .inc();
        self.decision_duration.observe(seconds);
    }

    /// Sets an agent's trust score, if it has (or can get) a series.
    pub fn trust(&self, agent: &str, score: f64) {
        let known = self
            .tracked
            .read()
            .map(|t| t.contains(agent))
            .unwrap_or(false);
        if !known {
            let Ok(mut t) = self.tracked.write() else {
                return;
            };
            if !t.contains(agent) {
                if t.len() >= MAX_TRUST_SERIES {
                    self.trust_dropped.inc();
                    return;
                }
                t.insert(agent.to_owned());
            }
        }
        self.trust_score
            .get_or_create(&AgentLabels {
                agent: agent.to_owned(),
            })
            .set(score);
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
