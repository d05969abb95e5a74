//! Obligations acting on a decision.

use crate::evaluate::{Context, Evaluation};
use agentmesh_policy::{
    ApprovalState, ComplianceSettings, DecideContext, Decision, Outcome, PolicySet, Reason, Request,
};

/// What the obligations did to a decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The obligation that changed the outcome, if one did.
    pub changed_by: Option<String>,
    /// Argument fields a minimum-necessary restriction drops from this call.
    pub dropped_fields: Vec<String>,
}

/// The compliance context of a request: action (tool, else type), type,
/// data classification (`data.classification`, else `phi`/`pii` from the
/// flags) and the policies' domain.
pub fn context_for<'a>(req: &'a Request, settings: &'a ComplianceSettings) -> Context<'a> {
    let data = req.data.classification.as_deref().or_else(|| {
        if req.data.contains_phi == Some(true) {
            Some("phi")
        } else if req.data.contains_pii == Some(true) {
            Some("pii")
        } else {
            None
        }
    });
    Context {
        action: req
            .action
            .tool
            .as_deref()
            .or(req.action.kind.as_deref())
            .unwrap_or(""),
        action_type: req.action.kind.as_deref(),
        data,
        domain: settings.domain.as_deref(),
    }
}

fn deny(d: &mut Decision, message: String) {
    d.outcome = Outcome::Deny;
    d.reason = Reason::ComplianceDeny;
    d.message = message;
    d.audit = true;
}

/// Applies the obligations of `eval` to `decision`. Denials stay denials;
/// obligations only ever make a decision stricter:
///
/// * `prohibited` → deny;
/// * `consent_required` → deny unless the request carries `data.consent: true`;
/// * `minimum_necessary` → the policy must declare the fields for the
///   action (`compliance.minimum_necessary`), else deny; the decision then
///   restricts the forwarded arguments to them;
/// * `audit_log`, `logging` → the decision is marked for the audit trail;
/// * `human_oversight` → an allowed call is held for approval (bound to
///   the exact call), unless this exact call was already approved;
/// * `access_control` → satisfied by the identity, delegation and
///   capability gates that already ran; recorded.
pub fn apply(
    set: &PolicySet,
    decision: &mut Decision,
    eval: &Evaluation<'_>,
    req: &Request,
    settings: &ComplianceSettings,
    ctx: &DecideContext<'_>,
) -> Applied {
    let mut applied = Applied::default();
    decision.controls = eval.control_keys();
    decision.obligations = eval.obligations().iter().map(|s| (*s).to_owned()).collect();
    let has = |o: &str| decision.obligations.iter().any(|x| x == o);
    let ctl = |o: &str| eval.control_for(o).unwrap_or_else(|| o.to_owned());
    if has("audit_log") || has("logging") {
        decision.audit = true;
    }
    if !(decision.allowed() || decision.outcome == Outcome::RequireApproval) {
        return applied;
    }
    if has("prohibited") {
        deny(
            decision,
            format!("a prohibited practice ({})", ctl("prohibited")),
        );
        applied.changed_by = Some("prohibited".into());
        return applied;
    }
    if has("consent_required") && req.data.consent != Some(true) {
        deny(
            decision,
            format!(
                "explicit consent is required ({}) and the request carries no data.consent",
                ctl("consent_required")
            ),
        );
        applied.changed_by = Some("consent_required".into());
        return applied;
    }
    if has("minimum_necessary") {
        let action = req
            .action
            .tool
            .as_deref()
            .or(req.action.kind.as_deref())
            .unwrap_or("");
        let declared = settings.minimum_necessary.get(action).or_else(|| {
            req.action
                .kind
                .as_deref()
                .and_then(|k| settings.minimum_necessary.get(k))
        });
        match declared {
            None => {
                deny(
                    decision,
                    format!(
                        "the minimum-necessary standard ({}) applies and the policy declares no fields for `{action}` (compliance.minimum_necessary)",
                        ctl("minimum_necessary")
                    ),
                );
                applied.changed_by = Some("minimum_necessary".into());
                return applied;
            }
            Some(fields) => {
                if let Some(serde_json::Value::Object(args)) = &req.request.arguments {
                    applied.dropped_fields = args
                        .keys()
                        .filter(|k| !fields.contains(k))
                        .cloned()
                        .collect();
                }
                decision.restrict_arguments = Some(fields.clone());
            }
        }
    }
    if has("human_oversight") && decision.allowed() {
        let control = ctl("human_oversight");
        let binding = set.binding_for(req, &format!("compliance/{control}"));
        let now = ctx.now_ns / 1_000_000_000;
        decision.outcome = Outcome::RequireApproval;
        decision.reason = Reason::ComplianceOversight;
        decision.message = format!("human oversight is required ({control})");
        applied.changed_by = Some("human_oversight".into());
        if let Some(store) = ctx.approvals {
            if let Some(granted) = store.take_approved(&binding, now) {
                let by = match &granted.state {
                    ApprovalState::Used { by, .. } => by.clone(),
                    _ => String::new(),
                };
                decision.outcome = Outcome::Allow;
                decision.reason = Reason::ApprovalGranted;
                decision.message = format!("approved by {by} ({}) under {control}", granted.id);
                decision.approval = Some(granted);
            } else {
                let pending = store.request(binding, &[], 900, now);
                decision.message = format!("{}; approval {} pending", decision.message, pending.id);
                decision.approval = Some(pending);
            }
        }
    }
    applied
}
