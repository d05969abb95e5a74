//! Approvals: a `require_approval` decision creates a pending approval
//! bound to the exact call (caller, action, SHA-256 of the canonical
//! arguments, policy version, rule). Approving it lets that exact call
//! through once, before it expires.

use agentmesh_identity::canonical_json;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;

/// What an approval is bound to. Any difference is a different call.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Binding {
    pub caller: String,
    pub action: String,
    /// Lowercase hex SHA-256 of the canonical JSON of the arguments.
    pub arguments_sha256: String,
    pub policy_version: String,
    pub rule: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ApprovalState {
    Pending,
    Approved {
        by: String,
        at: u64,
    },
    Denied {
        by: String,
        at: u64,
        reason: String,
    },
    /// Approved and already used by the call it was for.
    Used {
        by: String,
        at: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    pub id: String,
    pub binding: Binding,
    pub approvers: Vec<String>,
    pub state: ApprovalState,
    pub created_at: u64,
    pub expires_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    #[error("no approval `{0}`")]
    NotFound(String),
    #[error("approval `{0}` expired")]
    Expired(String),
    #[error("approval `{id}` is already {state}")]
    AlreadyDecided { id: String, state: &'static str },
    #[error("`{by}` is not among this approval's approvers ({approvers})")]
    NotAnApprover { by: String, approvers: String },
}

/// Pending and decided approvals, in memory. (The control plane persists
/// them; the semantics are these.)
#[derive(Debug, Default)]
pub struct ApprovalStore {
    inner: Mutex<HashMap<String, Approval>>,
}

fn state_word(s: &ApprovalState) -> &'static str {
    match s {
        ApprovalState::Pending => "pending",
        ApprovalState::Approved { .. } => "approved",
        ApprovalState::Denied { .. } => "denied",
        ApprovalState::Used { .. } => "used",
    }
}

impl ApprovalStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Approval>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Returns the pending approval for `binding`, creating one if there is
    /// none (so retries of a held call do not pile up requests).
    pub fn request(
        &self,
        binding: Binding,
        approvers: &[String],
        ttl_secs: u64,
        now: u64,
    ) -> Approval {
        let mut map = self.lock();
        if let Some(existing) = map.values().find(|a| {
            a.binding == binding && a.state == ApprovalState::Pending && a.expires_at > now
        }) {
            return existing.clone();
        }
        let approval = Approval {
            id: new_id(),
            binding,
            approvers: approvers.to_vec(),
            state: ApprovalState::Pending,
            created_at: now,
            expires_at: now.saturating_add(ttl_secs),
        };
        map.insert(approval.id.clone(), approval.clone());
        approval
    }

    fn decide(
        &self,
        id: &str,
        by: &str,
        now: u64,
        state: ApprovalState,
    ) -> Result<Approval, ApprovalError> {
        let mut map = self.lock();
        let a = map
            .get_mut(id)
            .ok_or_else(|| ApprovalError::NotFound(id.to_owned()))?;
        if a.state != ApprovalState::Pending {
            return Err(ApprovalError::AlreadyDecided {
                id: id.to_owned(),
                state: state_word(&a.state),
            });
        }
        if now >= a.expires_at {
            return Err(ApprovalError::Expired(id.to_owned()));
        }
        if !a.approvers.is_empty() && !a.approvers.iter().any(|x| x == by) {
            return Err(ApprovalError::NotAnApprover {
                by: by.to_owned(),
                approvers: a.approvers.join(", "),
            });
        }
        a.state = state;
        Ok(a.clone())
    }

    pub fn approve(&self, id: &str, by: &str, now: u64) -> Result<Approval, ApprovalError> {
        self.decide(
            id,
            by,
            now,
            ApprovalState::Approved {
                by: by.to_owned(),
                at: now,
            },
        )
    }

    pub fn deny(
        &self,
        id: &str,
        by: &str,
        reason: &str,
        now: u64,
    ) -> Result<Approval, ApprovalError> {
        self.decide(
            id,
            by,
            now,
            ApprovalState::Denied {
                by: by.to_owned(),
                at: now,
                reason: reason.to_owned(),
            },
        )
    }

    /// Consumes an approved, unexpired approval for exactly `binding`.
    pub fn take_approved(&self, binding: &Binding, now: u64) -> Option<Approval> {
        let mut map = self.lock();
        let a = map.values_mut().find(|a| {
            &a.binding == binding
                && matches!(a.state, ApprovalState::Approved { .. })
                && a.expires_at > now
        })?;
        if let ApprovalState::Approved { by, .. } = &a.state {
            a.state = ApprovalState::Used {
                by: by.clone(),
                at: now,
            };
        }
        Some(a.clone())
    }

    /// The state of `id`, if it exists.
    pub fn get(&self, id: &str) -> Option<Approval> {
        self.lock().get(id).cloned()
    }

    /// All approvals, oldest first.
    pub fn list(&self) -> Vec<Approval> {
        let mut v: Vec<Approval> = self.lock().values().cloned().collect();
        v.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        v
    }
}

fn new_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut seed = [0u8; 16];
    // Randomness keeps ids unguessable; the counter keeps them unique even
    // if the OS source fails.
    let _ = getrandom::fill(&mut seed);
    let mut h = Sha256::new();
    h.update(seed);
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    let d = h.finalize();
    format!("apr_{}", hex(&d[..10]))
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// SHA-256 (hex) of the canonical JSON of `arguments` (`null` when absent).
pub fn arguments_digest(arguments: Option<&serde_json::Value>) -> String {
    let mut s = String::new();
    canonical_json(arguments.unwrap_or(&serde_json::Value::Null), &mut s);
    hex(ring::digest::digest(&ring::digest::SHA256, s.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(args: &serde_json::Value) -> Binding {
        Binding {
            caller: "did:mesh:z6Mkx".into(),
            action: "delete_file".into(),
            arguments_sha256: arguments_digest(Some(args)),
            policy_version: "v1".into(),
            rule: "p/needs-approval".into(),
        }
    }

    #[test]
    fn canonical_digest_ignores_key_order_and_spacing() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b": 1, "a": {"y": [1,2], "x": "s"}}"#).expect("json");
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a":{"x":"s","y":[1,2]},"b":1}"#).expect("json");
        assert_eq!(arguments_digest(Some(&a)), arguments_digest(Some(&b)));
        let mut s = String::new();
        canonical_json(&a, &mut s);
        assert_eq!(s, r#"{"a":{"x":"s","y":[1,2]},"b":1}"#);
        let c: serde_json::Value =
            serde_json::from_str(r#"{"b": 2, "a": {"y": [1,2], "x": "s"}}"#).expect("json");
        assert_ne!(arguments_digest(Some(&a)), arguments_digest(Some(&c)));
    }

    #[test]
    fn approval_is_bound_single_use_and_expires() {
        let store = ApprovalStore::new();
        let args = serde_json::json!({"path": "/tmp/x"});
        let b = binding(&args);
        let a = store.request(b.clone(), &["security@company.com".into()], 600, 100);
        assert_eq!(
            store.request(b.clone(), &[], 600, 101).id,
            a.id,
            "retries reuse the pending approval"
        );
        assert!(
            store.take_approved(&b, 102).is_none(),
            "pending is not approved"
        );
        assert!(matches!(
            store.approve(&a.id, "mallory@company.com", 103),
            Err(ApprovalError::NotAnApprover { .. })
        ));
        store
            .approve(&a.id, "security@company.com", 104)
            .expect("approve");
        // Different arguments: not covered.
        let other = binding(&serde_json::json!({"path": "/etc/passwd"}));
        assert!(store.take_approved(&other, 105).is_none());
        assert!(store.take_approved(&b, 105).is_some());
        assert!(store.take_approved(&b, 106).is_none(), "single use");
        assert!(matches!(
            store.approve(&a.id, "security@company.com", 107),
            Err(ApprovalError::AlreadyDecided { .. })
        ));

        let late = store.request(b.clone(), &[], 10, 200);
        assert_ne!(late.id, a.id);
        assert_eq!(
            store.approve(&late.id, "x", 210),
            Err(ApprovalError::Expired(late.id.clone()))
        );
        let d = store.request(b.clone(), &[], 10, 300);
        store.deny(&d.id, "x", "no", 301).expect("deny");
        assert!(store.take_approved(&b, 302).is_none());
        assert_eq!(
            store.approve("apr_nope", "x", 1),
            Err(ApprovalError::NotFound("apr_nope".into()))
        );
    }
}

/// Signature domain of a human's decision on a held call.
pub const DECISION_DOMAIN: &str = "agentmesh/approval-decision/v1";

/// What an approver signs to decide a held call: the approval, the exact
/// call it is bound to, the decision, who decides and when. The signature
/// (Ed25519 by the approver's registered key, over [`DECISION_DOMAIN`] ‖ 0x00
/// ‖ the canonical JSON of this) is what lets the call through — never an
/// unauthenticated name (docs/wire/approval.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionStatement<'a> {
    pub approval: &'a str,
    pub decision: &'a str,
    pub by: &'a str,
    pub caller: &'a str,
    pub action: &'a str,
    pub arguments_sha256: &'a str,
    pub policy_version: &'a str,
    pub at: u64,
}

impl DecisionStatement<'_> {
    /// The signed bytes.
    pub fn message(&self) -> String {
        agentmesh_identity::to_canonical_json(
            &serde_json::to_value(self).unwrap_or(serde_json::Value::Null),
        )
    }

    /// The proof to store with the decision: `{"at", "signature"}` JSON.
    pub fn sign(&self, key: &agentmesh_identity::KeyPair) -> String {
        use base64::Engine;
        let sig = key.sign(DECISION_DOMAIN, self.message().as_bytes());
        serde_json::json!({
            "at": self.at,
            "signature": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig),
        })
        .to_string()
    }

    /// Checks a stored proof (from [`DecisionStatement::sign`]) against the
    /// approver's public key; `self.at` is taken from the proof.
    pub fn verify(
        mut self,
        proof: &str,
        key: &agentmesh_identity::PublicKey,
    ) -> Result<(), String> {
        use base64::Engine;
        let v: serde_json::Value = serde_json::from_str(proof)
            .map_err(|_| "the decision's proof is not JSON".to_owned())?;
        self.at = v["at"]
            .as_u64()
            .ok_or_else(|| "the decision's proof has no time".to_owned())?;
        let sig = v["signature"]
            .as_str()
            .and_then(|s| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(s)
                    .ok()
            })
            .ok_or_else(|| "the decision's proof has no readable signature".to_owned())?;
        key.verify(DECISION_DOMAIN, self.message().as_bytes(), &sig)
            .map_err(|_| format!("the decision is not signed by {}'s key", self.by))
    }
}

#[cfg(test)]
mod decision_tests {
    use super::*;

    #[test]
    fn a_decision_verifies_only_with_the_approvers_key_and_the_same_call() {
        let alice = agentmesh_identity::KeyPair::from_seed(&[7; 32]);
        let mallory = agentmesh_identity::KeyPair::from_seed(&[8; 32]);
        let st = DecisionStatement {
            approval: "ap_1",
            decision: "approved",
            by: "alice@example.com",
            caller: "did:mesh:z6Mk",
            action: "send_email",
            arguments_sha256: "ab",
            policy_version: "v1",
            at: 1_800_000_000,
        };
        let proof = st.sign(&alice);
        assert!(st.clone().verify(&proof, alice.public()).is_ok());
        assert!(st.clone().verify(&proof, mallory.public()).is_err());
        let other_call = DecisionStatement {
            arguments_sha256: "cd",
            ..st.clone()
        };
        assert!(other_call.verify(&proof, alice.public()).is_err());
        let denied = DecisionStatement {
            decision: "denied",
            ..st.clone()
        };
        assert!(denied.verify(&proof, alice.public()).is_err());
        assert!(st.verify("{}", alice.public()).is_err());
    }
}

#[cfg(test)]
mod decision_vector {
    use super::*;

    /// The example of docs/wire/approval.md, byte for byte.
    #[test]
    fn the_published_example_holds() {
        let key = agentmesh_identity::KeyPair::from_seed(&[7; 32]);
        let st = DecisionStatement {
            approval: "ap_1",
            decision: "approved",
            by: "alice@example.com",
            caller: "did:mesh:z6MkexampleCaller",
            action: "send_email",
            arguments_sha256: "3f0c",
            policy_version: "5e02ad67c1d2a3b4",
            at: 1_800_000_000,
        };
        assert_eq!(
            st.message(),
            r#"{"action":"send_email","approval":"ap_1","arguments_sha256":"3f0c","at":1800000000,"by":"alice@example.com","caller":"did:mesh:z6MkexampleCaller","decision":"approved","policy_version":"5e02ad67c1d2a3b4"}"#
        );
        let proof: serde_json::Value = serde_json::from_str(&st.sign(&key)).expect("json");
        assert_eq!(proof["signature"], EXAMPLE_SIGNATURE);
    }

    const EXAMPLE_SIGNATURE: &str =
        "_DSz76GaEESDGn1b_VKTVOOjZLN8aOH6EWw1ky4mRe0KFj_nwDqu6BO-RsEZGk_VEvi6hR5zqEbo6Yz13BAICg";
}
