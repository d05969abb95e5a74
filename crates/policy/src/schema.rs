//! The typed attributes a condition may read, and the request that carries
//! their values.

use serde::{Deserialize, Serialize};

/// Static type of an attribute or expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Bool,
    Int,
    Double,
    String,
    /// A list of strings (`agent.capabilities`, `user.roles`).
    StringList,
    /// A list whose element type is only known at run time (list literals
    /// of mixed types, JSON arrays).
    List,
    /// A map (`request.arguments`).
    Map,
    /// Known only at run time (a value inside `request.arguments`).
    Dyn,
    Null,
}

impl Ty {
    pub fn name(self) -> &'static str {
        match self {
            Ty::Bool => "bool",
            Ty::Int => "int",
            Ty::Double => "double",
            Ty::String => "string",
            Ty::StringList => "list(string)",
            Ty::List => "list",
            Ty::Map => "map",
            Ty::Dyn => "dyn",
            Ty::Null => "null",
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Double)
    }

    pub fn is_list(self) -> bool {
        matches!(self, Ty::StringList | Ty::List)
    }
}

/// Every attribute a condition may name. The order matches [`ATTRIBUTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Attr {
    AgentDid,
    AgentName,
    AgentSponsor,
    AgentTrustScore,
    AgentTrustTier,
    AgentCapabilities,
    AgentDelegationDepth,
    ActionType,
    ActionCapability,
    ActionTool,
    ActionServer,
    DataClassification,
    DataContainsPii,
    DataContainsPhi,
    DataContainsSecrets,
    DataConsent,
    DataResidency,
    DataSizeBytes,
    RequestProtocol,
    RequestMethod,
    RequestArguments,
    UserId,
    UserRole,
    UserRoles,
    TimeUnix,
    TimeHour,
    TimeMinute,
    TimeWeekday,
    TimeDate,
}

/// Definition of one attribute: its path, type, meaning and (for checks
/// that catch never-true conditions) its known values or range.
#[derive(Debug, Clone, Copy)]
pub struct AttrDef {
    pub attr: Attr,
    pub path: &'static str,
    pub ty: Ty,
    pub doc: &'static str,
    /// The only values a string attribute can take, when closed.
    pub values: Option<&'static [&'static str]>,
    /// Inclusive numeric range, when bounded.
    pub range: Option<(f64, f64)>,
}

/// Trust tiers, lowest first (see the trust engine).
pub const TRUST_TIERS: &[&str] = &[
    "untrusted",
    "probation",
    "standard",
    "trusted",
    "verified_partner",
];
/// Protocols the gateways set in `request.protocol`.
pub const PROTOCOLS: &[&str] = &["mcp", "a2a", "iatp", "http", "cli"];

const fn def(attr: Attr, path: &'static str, ty: Ty, doc: &'static str) -> AttrDef {
    AttrDef {
        attr,
        path,
        ty,
        doc,
        values: None,
        range: None,
    }
}

/// The attribute schema, in [`Attr`] order.
pub const ATTRIBUTES: &[AttrDef] = &[
    def(
        Attr::AgentDid,
        "agent.did",
        Ty::String,
        "The caller's DID (did:mesh:z6Mk…).",
    ),
    def(
        Attr::AgentName,
        "agent.name",
        Ty::String,
        "The caller's registered name.",
    ),
    def(
        Attr::AgentSponsor,
        "agent.sponsor",
        Ty::String,
        "E-mail of the human sponsor who answers for the caller.",
    ),
    AttrDef {
        range: Some((0.0, 1.0)),
        ..def(
            Attr::AgentTrustScore,
            "agent.trust_score",
            Ty::Double,
            "Current trust score, 0.0–1.0.",
        )
    },
    AttrDef {
        values: Some(TRUST_TIERS),
        ..def(
            Attr::AgentTrustTier,
            "agent.trust_tier",
            Ty::String,
            "Trust tier: untrusted, probation, standard, trusted, verified_partner.",
        )
    },
    def(
        Attr::AgentCapabilities,
        "agent.capabilities",
        Ty::StringList,
        "Capabilities the caller holds (after delegation).",
    ),
    AttrDef {
        range: Some((0.0, 8.0)),
        ..def(
            Attr::AgentDelegationDepth,
            "agent.delegation_depth",
            Ty::Int,
            "Delegation hops between the sponsor's root link and the caller (0 = direct).",
        )
    },
    def(
        Attr::ActionType,
        "action.type",
        Ty::String,
        "What the caller does: read, write, export, delete, api_call, tool_call, …",
    ),
    def(
        Attr::ActionCapability,
        "action.capability",
        Ty::String,
        "The capability the action needs (verb:resource[:qualifier]).",
    ),
    def(
        Attr::ActionTool,
        "action.tool",
        Ty::String,
        "Tool, prompt, resource or skill being invoked, as its server names it (never a gateway's namespaced form).",
    ),
    def(
        Attr::ActionServer,
        "action.server",
        Ty::String,
        "The server that serves it: the MCP upstream's name, the A2A agent.",
    ),
    def(
        Attr::DataClassification,
        "data.classification",
        Ty::String,
        "Data class: public, internal, confidential, pii, phi, …",
    ),
    def(
        Attr::DataContainsPii,
        "data.contains_pii",
        Ty::Bool,
        "The data holds personal information.",
    ),
    def(
        Attr::DataContainsPhi,
        "data.contains_phi",
        Ty::Bool,
        "The data holds protected health information.",
    ),
    def(
        Attr::DataContainsSecrets,
        "data.contains_secrets",
        Ty::Bool,
        "The data holds credentials or secrets.",
    ),
    def(
        Attr::DataConsent,
        "data.consent",
        Ty::Bool,
        "The data subject's consent is recorded for this use.",
    ),
    def(
        Attr::DataResidency,
        "data.residency",
        Ty::String,
        "Where the data must stay (eu, us, …).",
    ),
    AttrDef {
        range: Some((0.0, 9.007_199_254_740_992e15)),
        ..def(
            Attr::DataSizeBytes,
            "data.size_bytes",
            Ty::Int,
            "Size of the data in bytes.",
        )
    },
    AttrDef {
        values: Some(PROTOCOLS),
        ..def(
            Attr::RequestProtocol,
            "request.protocol",
            Ty::String,
            "mcp, a2a, iatp, http or cli.",
        )
    },
    def(
        Attr::RequestMethod,
        "request.method",
        Ty::String,
        "Protocol method (tools/call, SendMessage, …).",
    ),
    def(
        Attr::RequestArguments,
        "request.arguments",
        Ty::Map,
        "The call's arguments (any JSON); request.arguments.<name> reads one.",
    ),
    def(
        Attr::UserId,
        "user.id",
        Ty::String,
        "The human the agent acts for, when known.",
    ),
    def(
        Attr::UserRole,
        "user.role",
        Ty::String,
        "That user's primary role.",
    ),
    def(
        Attr::UserRoles,
        "user.roles",
        Ty::StringList,
        "All of that user's roles.",
    ),
    def(
        Attr::TimeUnix,
        "time.unix",
        Ty::Int,
        "Seconds since the Unix epoch (UTC).",
    ),
    AttrDef {
        range: Some((0.0, 23.0)),
        ..def(
            Attr::TimeHour,
            "time.hour",
            Ty::Int,
            "Hour of day, 0–23 (UTC).",
        )
    },
    AttrDef {
        range: Some((0.0, 59.0)),
        ..def(
            Attr::TimeMinute,
            "time.minute",
            Ty::Int,
            "Minute, 0–59 (UTC).",
        )
    },
    AttrDef {
        range: Some((0.0, 6.0)),
        ..def(
            Attr::TimeWeekday,
            "time.weekday",
            Ty::Int,
            "Day of week, 0 = Monday … 6 = Sunday (UTC).",
        )
    },
    def(
        Attr::TimeDate,
        "time.date",
        Ty::String,
        "Date as YYYY-MM-DD (UTC).",
    ),
];

/// The variables a condition may start with.
pub const ROOTS: &[&str] = &["agent", "action", "data", "request", "user", "time"];

/// Looks an attribute up by its dotted path.
pub fn lookup(path: &str) -> Option<&'static AttrDef> {
    ATTRIBUTES.iter().find(|d| d.path == path)
}

impl Attr {
    pub fn def(self) -> &'static AttrDef {
        &ATTRIBUTES[self as usize]
    }
}

/// The closest known attribute path, for "did you mean" hints.
pub fn suggest(path: &str) -> Option<&'static str> {
    ATTRIBUTES
        .iter()
        .map(|d| (edit_distance(path, d.path), d.path))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, p)| p)
}

pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The attributes of one decision request. Every field is optional; reading
/// an absent one in a condition is an evaluation error, which denies.
/// Unknown fields are rejected, so a typo in a request file is caught.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Request {
    pub agent: AgentAttrs,
    pub action: ActionAttrs,
    pub data: DataAttrs,
    pub request: RequestAttrs,
    pub user: UserAttrs,
    pub time: TimeAttrs,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentAttrs {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub did: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sponsor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_tier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegation_depth: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionAttrs {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataAttrs {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contains_pii: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contains_phi: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contains_secrets: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub residency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestAttrs {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// A JSON object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserAttrs {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeAttrs {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unix: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hour: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minute: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weekday: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
}

impl TimeAttrs {
    /// All time attributes for `unix` seconds (UTC).
    pub fn at(unix: i64) -> Self {
        let days = unix.div_euclid(86_400);
        let secs = unix.rem_euclid(86_400);
        // 1970-01-01 was a Thursday (weekday 3 with Monday = 0).
        let weekday = (days + 3).rem_euclid(7);
        let (y, m, d) = civil_from_days(days);
        Self {
            unix: Some(unix),
            hour: Some(secs / 3600),
            minute: Some(secs % 3600 / 60),
            weekday: Some(weekday),
            date: Some(format!("{y:04}-{m:02}-{d:02}")),
        }
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_in_enum_order() {
        for (i, d) in ATTRIBUTES.iter().enumerate() {
            assert_eq!(d.attr as usize, i, "{}", d.path);
            assert!(ROOTS.contains(&d.path.split('.').next().unwrap_or("")));
        }
    }

    #[test]
    fn time_attributes() {
        let t = TimeAttrs::at(1_800_000_000); // 2027-01-15T08:00:00Z, a Friday
        assert_eq!(t.date.as_deref(), Some("2027-01-15"));
        assert_eq!(t.hour, Some(8));
        assert_eq!(t.minute, Some(0));
        assert_eq!(t.weekday, Some(4));
        assert_eq!(TimeAttrs::at(0).date.as_deref(), Some("1970-01-01"));
        assert_eq!(
            TimeAttrs::at(951_782_400).date.as_deref(),
            Some("2000-02-29")
        );
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("agent.trust_scor"), Some("agent.trust_score"));
        assert_eq!(suggest("data.contains_pi"), Some("data.contains_pii"));
        assert_eq!(suggest("completely.else"), None);
    }
}
