//! Strict SPIFFE IDs (SPIFFE-ID standard, section 2).

use std::fmt;
use std::str::FromStr;

const MAX_ID_LEN: usize = 2048;
const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// Why a string is not a valid SPIFFE ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeError {
    #[error("SPIFFE ID is {0} bytes; the limit is 2048")]
    TooLong(usize),
    #[error("SPIFFE ID must start with `spiffe://` (lowercase scheme)")]
    WrongScheme,
    #[error("SPIFFE trust domain is empty")]
    EmptyTrustDomain,
    #[error("SPIFFE trust domain is longer than 255 bytes")]
    TrustDomainTooLong,
    #[error(
        "SPIFFE trust domain `{0}` may only hold lowercase letters, digits, `.`, `-` and `_` (no port, user info or uppercase)"
    )]
    BadTrustDomain(String),
    #[error("SPIFFE path segment is empty (double or trailing slash)")]
    EmptySegment,
    #[error("SPIFFE path segment `.` or `..` is not allowed")]
    DotSegment,
    #[error(
        "SPIFFE path segment `{0}` may only hold letters, digits, `.`, `-` and `_` (no `:`, `%`, query or fragment)"
    )]
    BadSegment(String),
}

/// A validated SPIFFE ID such as `spiffe://example.org/agent/planner`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SpiffeId {
    text: String,
    /// Where the path starts in `text` (== text.len() when there is none).
    path_start: usize,
}

impl SpiffeId {
    /// Parses a SPIFFE ID strictly.
    pub fn parse(s: &str) -> Result<Self, SpiffeError> {
        if s.len() > MAX_ID_LEN {
            return Err(SpiffeError::TooLong(s.len()));
        }
        let rest = s
            .strip_prefix("spiffe://")
            .ok_or(SpiffeError::WrongScheme)?;
        let (td, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        validate_trust_domain(td)?;
        if !path.is_empty() {
            for seg in path[1..].split('/') {
                validate_segment(seg)?;
            }
        }
        Ok(Self {
            text: s.to_owned(),
            path_start: "spiffe://".len() + td.len(),
        })
    }

    /// `spiffe://<trust_domain>/agent/<name>`.
    pub fn for_agent(trust_domain: &str, agent_name: &str) -> Result<Self, SpiffeError> {
        Self::parse(&format!("spiffe://{trust_domain}/agent/{agent_name}"))
    }

    pub fn trust_domain(&self) -> &str {
        &self.text["spiffe://".len()..self.path_start]
    }

    /// The path, starting with `/`, or empty.
    pub fn path(&self) -> &str {
        &self.text[self.path_start..]
    }

    /// The agent name when the path is `/agent/<name>`.
    pub fn agent_name(&self) -> Option<&str> {
        let name = self.path().strip_prefix("/agent/")?;
        (!name.contains('/')).then_some(name)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Validates a trust domain name on its own (for `agentmesh init`).
pub(crate) fn validate_trust_domain(td: &str) -> Result<(), SpiffeError> {
    if td.is_empty() {
        return Err(SpiffeError::EmptyTrustDomain);
    }
    if td.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(SpiffeError::TrustDomainTooLong);
    }
    if !td
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err(SpiffeError::BadTrustDomain(td.to_owned()));
    }
    Ok(())
}

fn validate_segment(seg: &str) -> Result<(), SpiffeError> {
    if seg.is_empty() {
        return Err(SpiffeError::EmptySegment);
    }
    if seg == "." || seg == ".." {
        return Err(SpiffeError::DotSegment);
    }
    if !seg
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err(SpiffeError::BadSegment(seg.to_owned()));
    }
    Ok(())
}

impl SpiffeId {
    /// Checks that `td` is a valid trust domain name.
    pub fn validate_trust_domain(td: &str) -> Result<(), SpiffeError> {
        validate_trust_domain(td)
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeId({})", self.text)
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for SpiffeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for SpiffeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        SpiffeId::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_ids() {
        let id = SpiffeId::for_agent("example.org", "data-analyst-agent").expect("valid");
        assert_eq!(id.as_str(), "spiffe://example.org/agent/data-analyst-agent");
        assert_eq!(id.trust_domain(), "example.org");
        assert_eq!(id.path(), "/agent/data-analyst-agent");
        assert_eq!(id.agent_name(), Some("data-analyst-agent"));
        let td_only = SpiffeId::parse("spiffe://mesh_1.example").expect("valid");
        assert_eq!(td_only.path(), "");
        assert_eq!(td_only.agent_name(), None);
    }

    #[test]
    fn rejects_what_the_standard_forbids() {
        use SpiffeError::*;
        let cases: &[(&str, SpiffeError)] = &[
            ("http://example.org/a", WrongScheme),
            ("SPIFFE://example.org/a", WrongScheme),
            ("spiffe:///a", EmptyTrustDomain),
            (
                "spiffe://Example.org/a",
                BadTrustDomain("Example.org".into()),
            ),
            (
                "spiffe://example.org:8080/a",
                BadTrustDomain("example.org:8080".into()),
            ),
            (
                "spiffe://user@example.org/a",
                BadTrustDomain("user@example.org".into()),
            ),
            ("spiffe://example.org/", EmptySegment),
            ("spiffe://example.org//a", EmptySegment),
            ("spiffe://example.org/a/", EmptySegment),
            ("spiffe://example.org/./a", DotSegment),
            ("spiffe://example.org/a/..", DotSegment),
            (
                "spiffe://example.org/agent/did:mesh:z6Mk",
                BadSegment("did:mesh:z6Mk".into()),
            ),
            ("spiffe://example.org/a%20b", BadSegment("a%20b".into())),
            ("spiffe://example.org/a?x=1", BadSegment("a?x=1".into())),
            ("spiffe://example.org/a#f", BadSegment("a#f".into())),
        ];
        for (input, want) in cases {
            assert_eq!(SpiffeId::parse(input).as_ref(), Err(want), "{input}");
        }
        let long = format!("spiffe://example.org/{}", "a".repeat(2100));
        assert!(matches!(SpiffeId::parse(&long), Err(TooLong(_))));
        let long_td = format!("spiffe://{}/a", "a".repeat(256));
        assert_eq!(SpiffeId::parse(&long_td), Err(TrustDomainTooLong));
    }
}
