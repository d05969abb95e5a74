//! Property tests for `covers`: it is exactly set inclusion over the meaning
//! given in the crate docs, so narrowing can never widen.

use agentmesh_capability::{Capability, covers, covers_all, normalize};
use proptest::prelude::*;

/// Segment literals chosen to provoke prefix bugs (`data` vs `database`).
const LITS: [&str; 4] = ["data", "database", "db", "d"];
/// Values used to enumerate concrete actions: the literals plus one value no
/// pattern names, standing for the unbounded rest of the alphabet.
const UNIVERSE: [&str; 5] = ["data", "database", "db", "d", "zz-fresh"];

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_owned()),
        proptest::sample::select(&LITS[..]).prop_map(str::to_owned)
    ]
}

fn capability() -> impl Strategy<Value = Capability> {
    (
        segment(),
        segment(),
        proptest::option::of(segment()),
        any::<bool>(),
    )
        .prop_map(|(v, r, q, lone_star)| {
            let text = if lone_star {
                "*".to_owned()
            } else {
                match q {
                    Some(q) => format!("{v}:{r}:{q}"),
                    None => format!("{v}:{r}"),
                }
            };
            Capability::parse(&text).expect("generated capability parses")
        })
}

/// Does the pattern match the concrete action (verb, resource, qualifier)?
/// `None` as qualifier is the unqualified action.
fn matches(c: &Capability, v: &str, r: &str, q: Option<&str>) -> bool {
    c.verb().is_none_or(|x| x == v)
        && c.resource().is_none_or(|x| x == r)
        && match (c.qualifier(), q) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => a == b,
        }
}

fn points() -> impl Iterator<Item = (&'static str, &'static str, Option<&'static str>)> {
    UNIVERSE.iter().flat_map(|v| {
        UNIVERSE.iter().flat_map(move |r| {
            std::iter::once(None)
                .chain(UNIVERSE.iter().map(|q| Some(*q)))
                .map(move |q| (*v, *r, q))
        })
    })
}

/// Set inclusion by brute force over the finite universe.
fn subset(granted: &[Capability], requested: &Capability) -> bool {
    points()
        .filter(|(v, r, q)| matches(requested, v, r, *q))
        .all(|(v, r, q)| granted.iter().any(|g| matches(g, v, r, q)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn covers_is_exactly_set_inclusion(g in capability(), r in capability()) {
        prop_assert_eq!(covers(&g, &r), subset(std::slice::from_ref(&g), &r));
    }

    #[test]
    fn covers_all_is_exactly_set_inclusion(
        granted in proptest::collection::vec(capability(), 0..5),
        requested in proptest::collection::vec(capability(), 0..4),
    ) {
        let model = requested.iter().all(|r| subset(&granted, r));
        prop_assert_eq!(covers_all(&granted, &requested), model);
    }

    #[test]
    fn narrowing_never_widens(a in capability(), b in capability(), c in capability()) {
        // Transitivity: a chain of narrowing steps never ends wider than it began.
        if covers(&a, &b) && covers(&b, &c) {
            prop_assert!(covers(&a, &c));
        }
        // Reflexive, and only the universal grant covers `*`.
        prop_assert!(covers(&a, &a));
        let star = Capability::parse("*").expect("star");
        prop_assert!(covers(&star, &a));
        prop_assert_eq!(covers(&a, &star), a.is_universal());
    }

    #[test]
    fn normalize_keeps_the_same_set(caps in proptest::collection::vec(capability(), 0..6)) {
        let n = normalize(caps.clone());
        prop_assert!(covers_all(&n, &caps));
        prop_assert!(covers_all(&caps, &n));
        prop_assert!(n.len() <= caps.len());
    }

    #[test]
    fn literal_prefixes_never_cover(
        verb in "[a-z]{1,6}",
        base in "[a-z0-9-]{1,12}",
        tail in "[a-z0-9-]{1,12}",
    ) {
        let short = Capability::parse(&format!("{verb}:{base}")).expect("short");
        let long = Capability::parse(&format!("{verb}:{base}{tail}")).expect("long");
        prop_assert!(!covers(&short, &long));
        prop_assert!(!covers(&long, &short));
    }

    #[test]
    fn parse_never_panics(s in "\\PC{0,300}") {
        let _ = Capability::parse(&s);
    }

    #[test]
    fn parse_never_panics_on_capability_like_text(s in "[a-z*:/._-]{0,40}") {
        if let Ok(c) = Capability::parse(&s) {
            prop_assert_eq!(c.as_str(), s.as_str());
        }
    }
}
