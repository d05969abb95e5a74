//! Capability strings and the one relation that decides narrowing.
//!
//! A capability names what an agent may do: `verb:resource[:qualifier]`, for
//! example `read:customer-data`, `write:reports:weekly`, `read:*` or `*`.
//!
//! # Meaning
//!
//! A capability denotes a *set* of concrete actions. Each of its three
//! segments is either a literal or *any*:
//!
//! * a segment written `*` is *any*;
//! * an absent qualifier is *any* (`read:db` grants every qualifier of `db`,
//!   so `read:db` and `read:db:*` denote the same set);
//! * a lone `*` is *any* in all three segments.
//!
//! [`covers`]`(granted, requested)` is true exactly when the set of
//! `requested` is a subset of the set of `granted`: segment by segment,
//! `granted` is *any* or both are the same literal. Literals compare as whole
//! strings, never as prefixes (`read:data` does not cover `read:database`),
//! and a partial wildcard such as `read:data*` is rejected when parsed.
//!
//! [`covers_all`] lifts this to lists. Because each capability is a product
//! of segment sets over an unbounded alphabet, a requested capability is
//! covered by a *list* of grants only if one grant covers it alone, so the
//! list relation is exact set inclusion too.

#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;

/// Longest capability string accepted, in bytes.
pub const MAX_CAPABILITY_LEN: usize = 256;
/// Longest single segment accepted, in bytes.
pub const MAX_SEGMENT_LEN: usize = 128;

/// Why a capability string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapabilityError {
    #[error("capability is empty")]
    Empty,
    #[error("capability is {0} bytes long; the limit is {MAX_CAPABILITY_LEN}")]
    TooLong(usize),
    #[error("capability `{0}` has no resource: write `verb:resource` (or `*` for everything)")]
    MissingResource(String),
    #[error(
        "capability `{0}` has more than three segments: the form is `verb:resource[:qualifier]`"
    )]
    TooManySegments(String),
    #[error("capability `{cap}` has an empty {segment}")]
    EmptySegment { cap: String, segment: &'static str },
    #[error(
        "capability `{cap}`: `{text}` mixes `*` with other characters; `*` must stand alone as a whole segment"
    )]
    PartialWildcard { cap: String, text: String },
    #[error(
        "capability `{cap}`: character {ch:?} is not allowed (letters, digits, `-`, `_`, `.`, `/` only)"
    )]
    BadCharacter { cap: String, ch: char },
    #[error("capability `{cap}`: the {segment} is longer than {MAX_SEGMENT_LEN} bytes")]
    SegmentTooLong { cap: String, segment: &'static str },
}

/// One parsed capability. Cheap to compare; keeps the text as written.
#[derive(Clone, Eq)]
pub struct Capability {
    text: Box<str>,
    /// Byte ranges of the verb, resource and qualifier in `text`; `None` is *any*.
    segs: [Option<(u16, u16)>; 3],
}

const SEGMENT_NAMES: [&str; 3] = ["verb", "resource", "qualifier"];

impl Capability {
    /// `*`: every action. As a *requirement* it is the strictest there is
    /// (only a `*` grant covers it), which makes it the fail-closed
    /// fallback when a required capability cannot be expressed.
    pub fn any() -> Self {
        Capability {
            text: "*".into(),
            segs: [None, None, None],
        }
    }

    /// Parses and validates a capability string.
    pub fn parse(s: &str) -> Result<Self, CapabilityError> {
        if s.is_empty() {
            return Err(CapabilityError::Empty);
        }
        if s.len() > MAX_CAPABILITY_LEN {
            return Err(CapabilityError::TooLong(s.len()));
        }
        if s == "*" {
            return Ok(Self {
                text: s.into(),
                segs: [None, None, None],
            });
        }
        let mut segs = [None, None, None];
        let mut count = 0;
        let mut start = 0usize;
        for part in s.split(':') {
            if count == 3 {
                return Err(CapabilityError::TooManySegments(s.to_owned()));
            }
            let name = SEGMENT_NAMES[count];
            if part.is_empty() {
                return Err(CapabilityError::EmptySegment {
                    cap: s.to_owned(),
                    segment: name,
                });
            }
            if part.len() > MAX_SEGMENT_LEN {
                return Err(CapabilityError::SegmentTooLong {
                    cap: s.to_owned(),
                    segment: name,
                });
            }
            if part != "*" {
                for ch in part.chars() {
                    if ch == '*' {
                        return Err(CapabilityError::PartialWildcard {
                            cap: s.to_owned(),
                            text: part.to_owned(),
                        });
                    }
                    if !(ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.' | '/')) {
                        return Err(CapabilityError::BadCharacter {
                            cap: s.to_owned(),
                            ch,
                        });
                    }
                }
                // Lengths are bounded by MAX_CAPABILITY_LEN, so they fit in u16.
                segs[count] = Some((start as u16, (start + part.len()) as u16));
            }
            start += part.len() + 1;
            count += 1;
        }
        if count < 2 {
            return Err(CapabilityError::MissingResource(s.to_owned()));
        }
        Ok(Self {
            text: s.into(),
            segs,
        })
    }

    /// The capability as it was written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn seg(&self, i: usize) -> Option<&str> {
        self.segs[i].map(|(a, b)| &self.text[a as usize..b as usize])
    }

    /// The verb, or `None` when it is `*`.
    pub fn verb(&self) -> Option<&str> {
        self.seg(0)
    }

    /// The resource, or `None` when it is `*`.
    pub fn resource(&self) -> Option<&str> {
        self.seg(1)
    }

    /// The qualifier, or `None` when it is `*` or absent.
    pub fn qualifier(&self) -> Option<&str> {
        self.seg(2)
    }

    /// True when this capability grants everything (`*`, `*:*`, `*:*:*`).
    pub fn is_universal(&self) -> bool {
        self.segs.iter().all(Option::is_none)
    }

    /// True when `self`, as a grant, covers `requested`. See the crate docs.
    #[inline]
    pub fn covers(&self, requested: &Capability) -> bool {
        (0..3).all(|i| match (self.seg(i), requested.seg(i)) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(g), Some(r)) => g == r,
        })
    }

    /// True when both denote the same set (`read:db` and `read:db:*`).
    pub fn same_set(&self, other: &Capability) -> bool {
        self.covers(other) && other.covers(self)
    }
}

/// True when `granted` covers `requested` (set inclusion). The one function
/// that decides narrowing everywhere in AgentMesh.
#[inline]
pub fn covers(granted: &Capability, requested: &Capability) -> bool {
    granted.covers(requested)
}

/// True when every capability in `requested` is covered by some capability
/// in `granted`. An empty `requested` is trivially covered.
pub fn covers_all(granted: &[Capability], requested: &[Capability]) -> bool {
    requested
        .iter()
        .all(|r| granted.iter().any(|g| g.covers(r)))
}

/// The capabilities of `requested` that `granted` does not cover, for error
/// messages that name exactly what widened.
pub fn uncovered<'a>(granted: &[Capability], requested: &'a [Capability]) -> Vec<&'a Capability> {
    requested
        .iter()
        .filter(|r| !granted.iter().any(|g| g.covers(r)))
        .collect()
}

/// Parses a comma-separated list (`read:*,write:reports`), ignoring blanks
/// around commas. An empty list is an error: granting nothing is never what
/// a caller of this function meant.
pub fn parse_list(s: &str) -> Result<Vec<Capability>, CapabilityError> {
    let caps = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(Capability::parse)
        .collect::<Result<Vec<_>, _>>()?;
    if caps.is_empty() {
        return Err(CapabilityError::Empty);
    }
    Ok(normalize(caps))
}

/// Sorts by text and removes capabilities covered by another one in the list,
/// so a list never carries redundant entries (`read:*` absorbs `read:db`).
pub fn normalize(mut caps: Vec<Capability>) -> Vec<Capability> {
    caps.sort_by(|a, b| a.text.cmp(&b.text));
    caps.dedup_by(|a, b| a.text == b.text);
    let keep: Vec<bool> = caps
        .iter()
        .enumerate()
        .map(|(i, c)| {
            !caps.iter().enumerate().any(|(j, other)| {
                // Drop `c` if another entry covers it, keeping the first of two
                // equal sets (`read:db` vs `read:db:*`).
                j != i && other.covers(c) && (!c.covers(other) || j < i)
            })
        })
        .collect();
    caps.into_iter()
        .zip(keep)
        .filter_map(|(c, k)| k.then_some(c))
        .collect()
}

impl PartialEq for Capability {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl std::hash::Hash for Capability {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state)
    }
}

impl PartialOrd for Capability {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Capability {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Capability({})", self.text)
    }
}

impl FromStr for Capability {
    type Err = CapabilityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Capability::parse(s)
    }
}

impl serde::Serialize for Capability {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Capability {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        Capability::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Formats a list as `a, b, c` for messages.
pub fn display_list(caps: &[Capability]) -> String {
    caps.iter()
        .map(Capability::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(s: &str) -> Capability {
        Capability::parse(s).expect("valid capability in test")
    }

    #[test]
    fn any_is_the_parsed_star() {
        assert_eq!(Capability::any(), cap("*"));
        assert!(covers(&cap("*"), &Capability::any()));
        assert!(!covers(&cap("call:*"), &Capability::any()));
    }

    #[test]
    fn parses_the_documented_forms() {
        for s in [
            "*",
            "read:*",
            "read:customer-data",
            "write:reports:weekly",
            "*:reports",
            "read:*:summary",
            "read:files:/var/data",
            "read:db:*",
        ] {
            assert_eq!(cap(s).as_str(), s);
        }
    }

    #[test]
    fn rejects_malformed_capabilities_with_a_reason() {
        use CapabilityError::*;
        assert_eq!(Capability::parse(""), Err(Empty));
        assert!(matches!(Capability::parse("read"), Err(MissingResource(_))));
        assert!(matches!(
            Capability::parse("a:b:c:d"),
            Err(TooManySegments(_))
        ));
        assert!(matches!(
            Capability::parse("read::x"),
            Err(EmptySegment {
                segment: "resource",
                ..
            })
        ));
        assert!(matches!(
            Capability::parse(":x"),
            Err(EmptySegment {
                segment: "verb",
                ..
            })
        ));
        assert!(matches!(
            Capability::parse("read:"),
            Err(EmptySegment { .. })
        ));
        assert!(matches!(
            Capability::parse("read:data*"),
            Err(PartialWildcard { .. })
        ));
        assert!(matches!(
            Capability::parse("re*d:x"),
            Err(PartialWildcard { .. })
        ));
        assert!(matches!(
            Capability::parse("read:da ta"),
            Err(BadCharacter { ch: ' ', .. })
        ));
        assert!(matches!(
            Capability::parse("read:dätä"),
            Err(BadCharacter { .. })
        ));
        assert!(matches!(
            Capability::parse("read:x\0"),
            Err(BadCharacter { .. })
        ));
        assert!(matches!(
            Capability::parse(&"a".repeat(300)),
            Err(TooLong(300))
        ));
        let long_seg = format!("read:{}", "x".repeat(129));
        assert!(matches!(
            Capability::parse(&long_seg),
            Err(SegmentTooLong { .. })
        ));
    }

    #[test]
    fn no_prefix_confusion() {
        // The original matched `read:data` against `read:database` by prefix.
        assert!(!covers(&cap("read:data"), &cap("read:database")));
        assert!(!covers(&cap("read:database"), &cap("read:data")));
        assert!(!covers(&cap("rea:data"), &cap("read:data")));
        assert!(!covers(&cap("read:db:a"), &cap("read:db:ab")));
    }

    #[test]
    fn wildcards_behave() {
        assert!(covers(&cap("*"), &cap("delete:everything:now")));
        assert!(covers(&cap("read:*"), &cap("read:public-data")));
        assert!(covers(&cap("read:*"), &cap("read:db:table")));
        assert!(covers(&cap("read:*"), &cap("read:*")));
        assert!(!covers(&cap("read:*"), &cap("write:x")));
        assert!(!covers(&cap("read:*"), &cap("*")));
        assert!(covers(&cap("read:db"), &cap("read:db:table")));
        assert!(covers(&cap("read:db:*"), &cap("read:db")));
        assert!(covers(&cap("read:db"), &cap("read:db:*")));
        assert!(!covers(&cap("read:db:table"), &cap("read:db")));
        assert!(covers(&cap("*:reports"), &cap("write:reports")));
        assert!(!covers(&cap("*:reports"), &cap("write:*")));
        assert!(covers(&cap("read:*:summary"), &cap("read:db:summary")));
        assert!(!covers(&cap("read:*:summary"), &cap("read:db")));
    }

    #[test]
    fn lists() {
        let granted = parse_list("read:*, write:reports").expect("list");
        assert!(covers_all(
            &granted,
            &parse_list("read:public-data").expect("list")
        ));
        assert!(covers_all(
            &granted,
            &parse_list("write:reports:q3,read:x").expect("list")
        ));
        assert!(!covers_all(&granted, &parse_list("write:*").expect("list")));
        let requested = parse_list("write:*,read:a").expect("list");
        let missing = uncovered(&granted, &requested);
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].as_str(), "write:*");
        assert_eq!(parse_list(" , "), Err(CapabilityError::Empty));
    }

    #[test]
    fn normalize_drops_redundant_entries() {
        let n = normalize(vec![
            cap("read:db"),
            cap("read:*"),
            cap("write:x"),
            cap("read:*"),
        ]);
        assert_eq!(display_list(&n), "read:*, write:x");
        let n = normalize(vec![cap("read:db:*"), cap("read:db")]);
        assert_eq!(n.len(), 1);
    }

    #[test]
    fn serde_round_trip_and_rejection() {
        let c: Capability = serde_json::from_str("\"read:*\"").expect("json");
        assert_eq!(c.as_str(), "read:*");
        assert_eq!(serde_json::to_string(&c).expect("json"), "\"read:*\"");
        assert!(serde_json::from_str::<Capability>("\"read:da*\"").is_err());
    }
}
