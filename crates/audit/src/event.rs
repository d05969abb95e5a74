//! The audit log's vocabulary: every event name the mesh writes, in one
//! place. Entries keep the name as text (`Draft::event`), because a log
//! outlives the code that wrote it and shipped entries come from other
//! versions; writers name events through [`Event`], readers compare with
//! it, and docs/wire/audit.md lists the same names (a test keeps them
//! equal).

use std::fmt;

macro_rules! events {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// An audit event name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Event {
            $($(#[$doc])* $variant,)*
        }

        impl Event {
            /// Every event, in the order documented.
            pub const ALL: &'static [Event] = &[$(Event::$variant,)*];

            /// The name written into entries.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Event::$variant => $name,)*
                }
            }

            /// The event a name stands for, if it is one of ours.
            pub fn parse(name: &str) -> Option<Event> {
                match name {
                    $($name => Some(Event::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

events! {
    /// A governed call judged (allow, deny, approval required).
    Decision = "decision",
    /// The upstream's answer to an allowed call.
    CallResult = "call.result",
    /// A credential, delegation, holder proof or attestation that failed
    /// (never held against the identity it claims).
    AuthFailed = "auth.failed",
    /// Failed authentications from one source, summarised.
    AuthFailedSummary = "auth.failed_summary",
    /// A source whose failures crossed the anomaly threshold.
    AuthSourceAnomaly = "auth.source_anomaly",
    /// A held call approved or denied by a human.
    ApprovalDecided = "approval.decided",
    /// A trust event applied (score before and after).
    TrustEvent = "trust.event",
    /// An IATP handshake answered (attested or refused).
    IatpHandshake = "iatp.handshake",
    SponsorCreated = "sponsor.created",
    /// An agent registered with a key made in the home.
    AgentCreated = "agent.created",
    /// An agent registered with an outside public key.
    AgentImported = "agent.imported",
    AgentBulkImported = "agent.bulk_imported",
    AgentSuspended = "agent.suspended",
    AgentReactivated = "agent.reactivated",
    AgentRevoked = "agent.revoked",
    DelegationIssued = "delegation.issued",
    DelegationRevoked = "delegation.revoked",
    RegistrationRequested = "registration.requested",
    RegistrationApproved = "registration.approved",
    RegistrationRejected = "registration.rejected",
    RegistrationRejectedSummary = "registration.rejected_summary",
    RegistrationSourceAnomaly = "registration.source_anomaly",
    CredentialIssued = "credential.issued",
    CredentialRevoked = "credential.revoked",
    PolicyPublished = "policy.published",
    GatewayCredentialIssued = "gateway.credential_issued",
    /// The control plane vouched for a gateway's IATP key.
    GatewayVouched = "gateway.vouched",
    /// The log's own writer failed (recorded once it works again).
    AuditError = "audit.error",
    /// An outbox entry another process queued could not be read.
    AuditOutboxUnreadable = "audit.outbox_unreadable",
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Event> for String {
    fn from(e: Event) -> String {
        e.as_str().to_owned()
    }
}

impl PartialEq<Event> for str {
    fn eq(&self, e: &Event) -> bool {
        self == e.as_str()
    }
}

impl PartialEq<Event> for String {
    fn eq(&self, e: &Event) -> bool {
        self.as_str() == e.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_read_back() {
        let mut seen = std::collections::HashSet::new();
        for e in Event::ALL {
            assert!(seen.insert(e.as_str()), "{e} twice");
            assert_eq!(Event::parse(e.as_str()), Some(*e));
            assert_eq!(e.to_string(), e.as_str());
        }
        assert_eq!(Event::parse("decisions"), None);
    }

    #[test]
    fn the_documented_vocabulary_is_this_one() {
        let doc = include_str!("../../../docs/wire/audit.md");
        for e in Event::ALL {
            assert!(
                doc.contains(&format!("`{e}`")),
                "docs/wire/audit.md does not list `{e}`"
            );
        }
    }
}
