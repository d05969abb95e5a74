//! The trust engine: a pure fold of events into per-agent state.

use crate::config::TrustConfig;
use crate::detect::{Activity, Anomaly, Behaviour};
use crate::event::{EventKind, Severity, TrustEvent, effect};
use crate::model::{AgentTrust, Score, tier_of};

use std::collections::HashMap;

/// What applying one event did.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub before: f64,
    pub after: f64,
    pub tier_before: String,
    pub tier_after: String,
    /// This event breached the suspension floor: the score fell below it
    /// with enough evidence (or by a severe event). See
    /// [`TrustEngine::apply`].
    pub suspend: bool,
}

/// Why an event was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error("an agent cannot endorse itself")]
    SelfEndorsement,
    #[error("the event names no agent")]
    NoAgent,
}

/// Per agent: the trust state (derived from events) and the detectors'
/// state (derived from activity), under one key.
#[derive(Debug, Clone, Default)]
struct Agent {
    trust: AgentTrust,
    behaviour: Behaviour,
}

/// Trust state of every agent, derived only from events.
#[derive(Debug, Clone, Default)]
pub struct TrustEngine {
    cfg: TrustConfig,
    agents: HashMap<String, Agent>,
}

impl TrustEngine {
    pub fn new(cfg: TrustConfig) -> Self {
        Self {
            cfg,
            agents: HashMap::new(),
        }
    }

    pub fn config(&self) -> &TrustConfig {
        &self.cfg
    }

    /// Applies one event. Deterministic: the same events in the same order
    /// always give the same state, which is what lets anyone recompute
    /// scores from the audit log.
    ///
    /// Suspension (`Applied::suspend`, and the state's `breached` flag) needs
    /// all of: a floor is configured; the event lowers the score to below
    /// it; the agent is not breached already; and either the event is
    /// severe (a violation or anomaly of high or critical severity) or the
    /// agent's conduct evidence is at least `suspend_min_evidence` and the
    /// event is not a low or medium anomaly (a single detector finding of
    /// that weight never suspends on its own). A `Reinstated` event (a
    /// human's reactivation) clears the breach.
    pub fn apply(&mut self, ev: &TrustEvent) -> Result<Applied, TrustError> {
        if ev.agent.is_empty() {
            return Err(TrustError::NoAgent);
        }
        if let EventKind::Endorsement { by, .. } = &ev.kind
            && by == &ev.agent
        {
            return Err(TrustError::SelfEndorsement);
        }
        let cfg = &self.cfg;
        let state = match self.agents.get_mut(&ev.agent) {
            Some(a) => &mut a.trust,
            None => &mut self.agents.entry(ev.agent.clone()).or_default().trust,
        };
        let (before, ub) = state.composite(ev.at_ms.max(state.at_ms), cfg);
        state.decay_to(ev.at_ms, cfg);
        if let Some((dim, positive, weight)) = effect(&ev.kind) {
            if positive {
                let (tag, once) = match &ev.kind {
                    EventKind::Handshake { .. } => ("handshake", true),
                    EventKind::Endorsement { .. } => ("endorsement", true),
                    EventKind::Task { .. } => ("task", false),
                    _ => ("decision", false),
                };
                let about = match &ev.kind {
                    EventKind::Endorsement { by, .. } => by.as_str(),
                    _ => ev.about.as_deref().unwrap_or(""),
                };
                let at = state.at_ms;
                let granted = state.gains.admit(dim, tag, about, weight, once, at, cfg);
                state.dims[dim.index()].r += granted;
            } else {
                state.dims[dim.index()].s += weight;
            }
        }
        if matches!(ev.kind, EventKind::Reinstated { .. }) {
            state.breached = false;
        }
        state.events += 1;
        let (after, ua) = state.composite(state.at_ms, cfg);
        let minor_anomaly = matches!(
            &ev.kind,
            EventKind::Anomaly { severity, .. }
                if matches!(severity, Severity::Low | Severity::Medium)
        );
        let suspend = cfg.suspend_below.is_some_and(|f| {
            after < f
                && after < before
                && !state.breached
                && (ev.is_severe()
                    || (!minor_anomaly
                        && state.conduct_evidence(state.at_ms, cfg) >= cfg.suspend_min_evidence))
        });
        if suspend {
            state.breached = true;
        }
        Ok(Applied {
            before,
            after,
            tier_before: tier_of(before, ub, cfg).to_owned(),
            tier_after: tier_of(after, ua, cfg).to_owned(),
            suspend,
        })
    }

    /// Whether `agent` is breached (see [`TrustEngine::apply`]): the trust
    /// gate refuses it until a human reinstates it.
    pub fn breached(&self, agent: &str) -> bool {
        self.agents.get(agent).is_some_and(|a| a.trust.breached)
    }

    /// Runs the behavioural detectors on one call by `agent`; the anomalies
    /// found should be applied (and audited) as events.
    pub fn observe(&mut self, agent: &str, activity: &Activity<'_>) -> Vec<Anomaly> {
        let entry = match self.agents.get_mut(agent) {
            Some(a) => a,
            None => self.agents.entry(agent.to_owned()).or_default(),
        };
        entry.behaviour.observe(activity, &self.cfg.detectors)
    }

    /// The score of `agent` at `now_ms` (the prior for an unknown agent).
    pub fn score(&self, agent: &str, now_ms: u64) -> Score {
        match self.agents.get(agent) {
            Some(a) => a.trust.score(now_ms, &self.cfg),
            None => AgentTrust::default().score(now_ms, &self.cfg),
        }
    }

    /// Just the composite score and uncertainty (no allocation).
    pub fn quick_score(&self, agent: &str, now_ms: u64) -> (f64, f64) {
        match self.agents.get(agent) {
            Some(a) => a.trust.composite(now_ms, &self.cfg),
            None => AgentTrust::default().composite(now_ms, &self.cfg),
        }
    }

    /// The trust state of `agent`, once it has had an event.
    pub fn state(&self, agent: &str) -> Option<&AgentTrust> {
        self.agents
            .get(agent)
            .map(|a| &a.trust)
            .filter(|t| t.events > 0)
    }

    /// Installs a stored state (used when loading persisted state).
    pub fn restore(&mut self, agent: &str, state: AgentTrust) {
        self.agents.entry(agent.to_owned()).or_default().trust = state;
    }

    /// Agents with trust state.
    pub fn agents(&self) -> impl Iterator<Item = (&String, &AgentTrust)> {
        self.agents
            .iter()
            .filter(|(_, a)| a.trust.events > 0)
            .map(|(k, a)| (k, &a.trust))
    }

    pub fn len(&self) -> usize {
        self.agents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }
}
