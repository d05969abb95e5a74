//! `/metrics`: Prometheus text from the control plane's real code paths.
//! Names follow one scheme, `agentmesh_*` (deploy/grafana checks them).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

/// The control plane's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Histogram,
    pub registrations: Family<ResultLabels, Counter>,
    pub credentials_issued: Counter,
    pub credential_failures: Family<ResultLabels, Counter>,
    pub revocations: Family<KindLabels, Counter>,
    pub audit_entries: Gauge,
    pub agents: Family<StatusLabels, Gauge>,
    pub feed_changes: Counter,
    pub feed_errors: Counter,
    pub event_subscribers: Gauge,
    agents_counted: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "agentmesh_api_requests",
            "Control-plane API requests by route, method and status",
            requests.clone(),
        );
        let request_duration = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "agentmesh_api_request_duration_seconds",
            "Control-plane API request latency",
            request_duration.clone(),
        );
        let registrations = Family::<ResultLabels, Counter>::default();
        registry.register(
            "agentmesh_registrations",
            "Agent registrations by result (requested, approved, rejected, pop_*)",
            registrations.clone(),
        );
        let credentials_issued = Counter::default();
        registry.register(
            "agentmesh_credentials_issued",
            "Credentials issued to agents that proved possession of their key",
            credentials_issued.clone(),
        );
        let credential_failures = Family::<ResultLabels, Counter>::default();
        registry.register(
            "agentmesh_credential_requests_rejected",
            "Credential requests refused, by reason",
            credential_failures.clone(),
        );
        let revocations = Family::<KindLabels, Counter>::default();
        registry.register(
            "agentmesh_revocations",
            "Revocations by kind (agent, delegation, credential)",
            revocations.clone(),
        );
        let audit_entries = Gauge::default();
        registry.register(
            "agentmesh_audit_entries",
            "Entries in the audit log held by this replica",
            audit_entries.clone(),
        );
        let agents = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "agentmesh_agents",
            "Registered agents by status",
            agents.clone(),
        );
        let feed_changes = Counter::default();
        registry.register(
            "agentmesh_feed_changes",
            "Changes read from the shared change feed",
            feed_changes.clone(),
        );
        let feed_errors = Counter::default();
        registry.register(
            "agentmesh_feed_errors",
            "Failed polls of the change feed",
            feed_errors.clone(),
        );
        let event_subscribers = Gauge::default();
        registry.register(
            "agentmesh_event_subscribers",
            "Gateways connected to the event stream",
            event_subscribers.clone(),
        );
        Self {
            registry,
            requests,
            request_duration,
            registrations,
            credentials_issued,
            credential_failures,
            revocations,
            audit_entries,
            agents,
            feed_changes,
            feed_errors,
            event_subscribers,
            agents_counted: std::sync::Mutex::new(None),
        }
    }

    /// True (and the clock reset) when the agent counts are older than
    /// `every`.
    pub fn agents_due(&self, every: std::time::Duration) -> bool {
        let Ok(mut last) = self.agents_counted.lock() else {
            return false;
        };
        if last.is_some_and(|t| t.elapsed() < every) {
            return false;
        }
        *last = Some(std::time::Instant::now());
        true
    }

    pub fn set_agents(&self, status: &str, n: i64) {
        self.agents
            .get_or_create(&StatusLabels {
                status: status.to_owned(),
            })
            .set(n);
    }

    pub fn registration(&self, result: &str) {
        self.registrations
            .get_or_create(&ResultLabels {
                result: result.to_owned(),
            })
            .inc();
    }

    pub fn revocation(&self, kind: &str) {
        self.revocations
            .get_or_create(&KindLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// The text exposition (OpenMetrics, which Prometheus reads).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
