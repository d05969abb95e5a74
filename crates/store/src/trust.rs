//! Trust in the mesh: events are applied to the engine, persisted, written
//! to the audit log (which makes them recomputable by anyone), and acted on
//! (an agent that falls below the suspension floor is suspended).

use crate::mesh::{Mesh, MeshError};
use crate::{AgentRecord, StoreError};
use agentmesh_audit::Draft;
use agentmesh_delegation::AgentStatus;
use agentmesh_trust::{
    Activity, AgentTrust, Applied, EventKind, Score, TrustConfig, TrustEngine, TrustEvent,
};
use std::sync::Mutex;

/// Audit event name of trust events.
pub const TRUST_EVENT: &str = agentmesh_audit::Event::TrustEvent.as_str();
/// Key under `detail` where other entries (a gateway's decisions and call
/// results) carry the trust event they caused.
pub const TRUST_DETAIL_KEY: &str = "trust";
const TRUST_FILE: &str = "trust.toml";

/// The trust event a governance decision produces: a violation of the
/// deciding rule's severity when the rule stopped the call and declares one;
/// `refused` when no rule matched (a gate or the default denied); otherwise
/// a plain decision event.
pub fn decision_event(outcome: &str, severity: Option<&str>, rule: Option<&str>) -> EventKind {
    match (outcome, severity.and_then(agentmesh_trust::Severity::parse)) {
        ("deny" | "warn" | "require_approval", Some(severity)) => EventKind::Violation {
            severity,
            reason: rule.unwrap_or("policy").to_owned(),
        },
        ("deny", None) if rule.is_none() => EventKind::Decision {
            outcome: "refused".to_owned(),
        },
        _ => EventKind::Decision {
            outcome: outcome.to_owned(),
        },
    }
}

/// The result of one trust event.
#[derive(Debug, Clone)]
pub struct TrustOutcome {
    pub event: TrustEvent,
    /// What applying it did; `None` when another process holds this home's
    /// audit log and trust state (a running gateway): the event is queued
    /// for that process, the one writer of trust state, to apply and audit
    /// within seconds.
    pub applied: Option<Applied>,
    /// Index of the audit entry, when this process wrote it (`None`: queued
    /// for a gateway that holds the log).
    pub audit_index: Option<u64>,
    /// Set when this event breached the suspension floor and suspended the
    /// agent.
    pub suspended: bool,
}

/// A trust event queued by a process that does not hold the home's trust
/// state: a `trust.event` entry, or a following gateway's decision or
/// call result carrying its event under `detail.trust`, without
/// `trust_before`/`trust_after`. The holder applies it when it drains the
/// outbox (see [`Mesh::drain_audit_outbox`]).
pub(crate) fn unapplied_trust_event(draft: &Draft) -> Option<TrustEvent> {
    if draft.trust_before.is_some() || draft.trust_after.is_some() {
        return None;
    }
    trust_event_of(draft).map(|(event, _, _)| event)
}

/// The trust event an audit entry records, with the score before and after
/// it: a `trust.event` entry of its own, or one carried by a gateway's
/// decision or call-result entry under `detail.trust` (also when shipped to
/// a control plane). The one reading of trust events from the log, shared
/// by `recompute`, `explain` and `history`.
pub fn trust_event_of(draft: &Draft) -> Option<(TrustEvent, Option<f64>, Option<f64>)> {
    let carried = if draft.event == TRUST_EVENT {
        &draft.detail
    } else {
        draft.detail.get(TRUST_DETAIL_KEY)?
    };
    let event: TrustEvent = serde_json::from_value(carried.clone()).ok()?;
    Some((event, draft.trust_before, draft.trust_after))
}

/// `trust recompute --from-audit`: the fold of the audit log's trust events
/// against the live state.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecomputeReport {
    pub events: u64,
    pub agents: usize,
    pub matching: usize,
    /// Agents whose live state differs from the recomputed one.
    pub mismatches: Vec<String>,
}

impl RecomputeReport {
    pub fn ok(&self) -> bool {
        self.mismatches.is_empty()
    }
}

impl Mesh {
    /// The trust configuration: `<home>/trust.toml` if present (validated,
    /// unknown keys rejected), otherwise the defaults.
    pub fn trust_config(&self) -> Result<TrustConfig, MeshError> {
        let path = self.home().root().join(TRUST_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => TrustConfig::from_toml(&text)
                .map_err(|e| MeshError::Invalid(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TrustConfig::default()),
            Err(e) => Err(StoreError::File {
                path,
                message: e.to_string(),
            }
            .into()),
        }
    }

    /// This process's trust engine over the persisted state (loaded once).
    pub(crate) async fn trust_engine(&self) -> Result<&Mutex<TrustEngine>, MeshError> {
        if let Some(e) = self.trust_cell().get() {
            return Ok(e);
        }
        let mut engine = TrustEngine::new(self.trust_config()?);
        for (agent, state) in self.registry().trust_states().await? {
            engine.restore(&agent, state);
        }
        Ok(self.trust_cell().get_or_init(|| Mutex::new(engine)))
    }

    /// The current score of an agent.
    pub async fn trust_score(&self, agent: &AgentRecord, now_ms: u64) -> Result<Score, MeshError> {
        let engine = self.trust_engine().await?;
        let e = engine.lock().unwrap_or_else(|p| p.into_inner());
        Ok(e.score(&agent.did.to_string(), now_ms))
    }

    /// The persisted state of an agent (none before its first event).
    pub async fn trust_state(&self, agent: &AgentRecord) -> Result<Option<AgentTrust>, MeshError> {
        let engine = self.trust_engine().await?;
        let e = engine.lock().unwrap_or_else(|p| p.into_inner());
        Ok(e.state(&agent.did.to_string()).cloned())
    }

    /// Applies, persists and audits one trust event for `agent`; suspends
    /// the agent when the event breaches the floor (see the trust model).
    ///
    /// One writer of trust state per home: when another process holds the
    /// home's audit log (a running gateway, whose engine keeps the live
    /// trust state and flushes it), the event is queued for that process to
    /// apply instead of being applied here and overwritten by its next
    /// flush.
    pub async fn trust_event(
        &self,
        agent: &AgentRecord,
        kind: EventKind,
        at_ms: u64,
    ) -> Result<TrustOutcome, MeshError> {
        let mut outcome = self.apply_trust_event(agent, kind, at_ms).await?;
        if let Some(applied) = &outcome.applied {
            outcome.suspended = applied.suspend
                && agent.status == AgentStatus::Active
                && self
                    .suspend_by_score(&agent.did.to_string(), applied.after, at_ms / 1000)
                    .await?;
        }
        Ok(outcome)
    }

    /// [`Mesh::trust_event`] without acting on a breach.
    async fn apply_trust_event(
        &self,
        agent: &AgentRecord,
        kind: EventKind,
        at_ms: u64,
    ) -> Result<TrustOutcome, MeshError> {
        let key = agent.did.to_string();
        let event = TrustEvent::new(key.clone(), at_ms, kind);
        if self.try_audit()?.is_none() {
            let detail =
                serde_json::to_value(&event).map_err(|e| MeshError::Invalid(e.to_string()))?;
            let recorded = self
                .record(Draft {
                    event: TRUST_EVENT.into(),
                    agent: key,
                    sponsor: agent.sponsor.clone(),
                    action: event.kind.label(),
                    detail,
                    ..Draft::default()
                })
                .await?;
            return Ok(TrustOutcome {
                event,
                applied: None,
                audit_index: recorded.index(),
                suspended: false,
            });
        }
        let (applied, state) = {
            let engine = self.trust_engine().await?;
            let mut e = engine.lock().unwrap_or_else(|p| p.into_inner());
            let applied = e
                .apply(&event)
                .map_err(|err| MeshError::Invalid(err.to_string()))?;
            let state = e.state(&key).cloned().unwrap_or_default();
            (applied, state)
        };
        self.registry().save_trust_state(&key, &state).await?;
        let detail = serde_json::to_value(&event).map_err(|e| MeshError::Invalid(e.to_string()))?;
        let recorded = self
            .record(Draft {
                event: TRUST_EVENT.into(),
                agent: key.clone(),
                sponsor: agent.sponsor.clone(),
                action: event.kind.label(),
                trust_before: Some(applied.before),
                trust_after: Some(applied.after),
                detail,
                ..Draft::default()
            })
            .await?;
        Ok(TrustOutcome {
            event,
            applied: Some(applied),
            audit_index: recorded.index(),
            suspended: false,
        })
    }

    /// Suspends an active agent whose trust breached the floor; false when
    /// it was not active.
    pub(crate) async fn suspend_by_score(
        &self,
        did: &str,
        score: f64,
        now: u64,
    ) -> Result<bool, MeshError> {
        let agent = self.agent(did).await?;
        if agent.status != AgentStatus::Active {
            return Ok(false);
        }
        let floor = self.trust_config()?.suspend_below.unwrap_or(0.0);
        let reason = format!("trust score {score:.3} fell below the floor {floor:.2}");
        self.set_status(did, AgentStatus::Suspended, Some(&reason), now)
            .await?;
        Ok(true)
    }

    /// After a human reactivated `agent`: if its trust had breached the
    /// floor, records the override (a `reinstated` trust event) so it may
    /// act again. A process that does not hold the trust state leaves this
    /// to the holder, which sees the reactivation in the registry.
    pub(crate) async fn reinstate(
        &self,
        agent: &AgentRecord,
        by: &str,
        now: u64,
    ) -> Result<(), MeshError> {
        if self.try_audit()?.is_none() {
            return Ok(());
        }
        let breached = {
            let engine = self.trust_engine().await?;
            let e = engine.lock().unwrap_or_else(|p| p.into_inner());
            e.breached(&agent.did.to_string())
        };
        if breached {
            // A reinstatement never breaches the floor: nothing to act on.
            self.apply_trust_event(
                agent,
                EventKind::Reinstated { by: by.to_owned() },
                now.saturating_mul(1000),
            )
            .await?;
        }
        Ok(())
    }

    /// Runs the behavioural detectors on one call by `agent` and applies
    /// (and audits) an anomaly event for each finding.
    pub async fn observe(
        &self,
        agent: &AgentRecord,
        tool: Option<&str>,
        denied: bool,
        at_ms: u64,
    ) -> Result<Vec<TrustOutcome>, MeshError> {
        let anomalies = {
            let engine = self.trust_engine().await?;
            let mut e = engine.lock().unwrap_or_else(|p| p.into_inner());
            e.observe(
                &agent.did.to_string(),
                &Activity {
                    at_ms,
                    tool,
                    denied,
                },
            )
        };
        let mut out = Vec::new();
        for a in anomalies {
            let current = self.agent(&agent.did.to_string()).await?;
            out.push(
                self.trust_event(
                    &current,
                    EventKind::Anomaly {
                        detector: a.detector,
                        severity: a.severity,
                        explanation: a.explanation,
                    },
                    at_ms,
                )
                .await?,
            );
        }
        Ok(out)
    }

    /// `from` vouches for `to`, weighted by `from`'s own score now.
    pub async fn endorse(
        &self,
        from: &AgentRecord,
        to: &AgentRecord,
        at_ms: u64,
    ) -> Result<TrustOutcome, MeshError> {
        if from.did == to.did {
            return Err(MeshError::Invalid("an agent cannot endorse itself".into()));
        }
        if from.status != AgentStatus::Active {
            return Err(MeshError::NotActive {
                name: from.name.clone(),
                status: from.status,
                action: "endorse",
            });
        }
        let score = self.trust_score(from, at_ms).await?.score;
        self.trust_event(
            to,
            EventKind::Endorsement {
                by: from.did.to_string(),
                endorser_score: score,
            },
            at_ms,
        )
        .await
    }

    /// Folds every trust event in the audit log into a fresh engine and
    /// compares the result with the live, persisted state — exactly.
    pub async fn recompute_trust(&self) -> Result<RecomputeReport, MeshError> {
        let log = self.audit_reader()?;
        let mut fresh = TrustEngine::new(self.trust_config()?);
        let mut events = 0u64;
        for i in 0..log.size() {
            let e = log.entry(i)?;
            if crate::trust::unapplied_trust_event(&e.entry.draft).is_some() {
                // Not possible in a drained log; refuse to guess.
                return Err(MeshError::Invalid(format!(
                    "audit entry {i}: a trust event that was never applied"
                )));
            }
            let Some((ev, _, _)) = trust_event_of(&e.entry.draft) else {
                if e.entry.draft.event == TRUST_EVENT
                    || e.entry.draft.detail.get(TRUST_DETAIL_KEY).is_some()
                {
                    return Err(MeshError::Invalid(format!(
                        "audit entry {i}: trust event unreadable"
                    )));
                }
                continue;
            };
            fresh
                .apply(&ev)
                .map_err(|err| MeshError::Invalid(format!("audit entry {i}: {err}")))?;
            events += 1;
        }
        let live = self.registry().trust_states().await?;
        let mut mismatches = Vec::new();
        let mut matching = 0;
        for (agent, state) in &live {
            if fresh.state(agent) == Some(state) {
                matching += 1;
            } else {
                mismatches.push(agent.clone());
            }
        }
        for (agent, _) in fresh.agents() {
            if !live.iter().any(|(a, _)| a == agent) {
                mismatches.push(agent.clone());
            }
        }
        Ok(RecomputeReport {
            events,
            agents: live.len(),
            matching,
            mismatches,
        })
    }
}
