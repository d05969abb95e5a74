//! Invariants on arbitrary input: narrowing never widens, decoding and
//! verifying never panic, and no mutation of a valid token verifies.

use agentmesh_capability::{Capability, covers_all};
use agentmesh_delegation::wire::{self, Link};
use agentmesh_delegation::{AgentStatus, Grant, MemoryDirectory, Token, VerifyOptions, verify};
use agentmesh_identity::KeyPair;
use proptest::prelude::*;

const T0: u64 = 1_800_000_000;

fn cap_strategy() -> impl Strategy<Value = Capability> {
    let seg = prop_oneof![
        Just("*".to_owned()),
        proptest::sample::select(vec!["read", "write", "data", "database", "db"])
            .prop_map(str::to_owned)
    ];
    (seg.clone(), seg.clone(), proptest::option::of(seg)).prop_map(|(v, r, q)| {
        let text = match q {
            Some(q) => format!("{v}:{r}:{q}"),
            None => format!("{v}:{r}"),
        };
        Capability::parse(&text).expect("generated capability parses")
    })
}

/// Five agents, all sponsored with `*`, and the sponsor.
fn world() -> (KeyPair, Vec<KeyPair>, MemoryDirectory) {
    let sponsor = KeyPair::from_seed(&[1; 32]);
    let agents: Vec<KeyPair> = (0..5u8)
        .map(|i| KeyPair::from_seed(&[i + 10; 32]))
        .collect();
    let star = vec![Capability::parse("*").expect("star")];
    let mut dir = MemoryDirectory::new();
    dir.add_sponsor(sponsor.did(), "s@example.org", star.clone(), true);
    for (i, a) in agents.iter().enumerate() {
        dir.add_agent(
            a.did(),
            &format!("agent-{i}"),
            sponsor.did(),
            star.clone(),
            AgentStatus::Active,
        );
    }
    (sponsor, agents, dir)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any sequence of attempted delegations: those the builder accepts
    /// verify, and the holder's capabilities are covered by every ancestor's.
    #[test]
    fn narrowing_never_widens(steps in proptest::collection::vec(
        proptest::collection::vec(cap_strategy(), 1..4), 1..5)
    ) {
        let (sponsor, agents, dir) = world();
        let mut token = Token::issue_root(&sponsor, Grant {
            audience: agents[0].did(),
            capabilities: steps[0].clone(),
            not_before: T0,
            expires_at: T0 + 3600,
            max_depth: Some(6),
        }).expect("root");
        let mut ancestors = vec![token.capabilities().to_vec()];
        for (i, wanted) in steps.iter().enumerate().skip(1) {
            let grant = Grant {
                audience: agents[i].did(),
                capabilities: wanted.clone(),
                not_before: T0,
                expires_at: T0 + 3600,
                max_depth: None,
            };
            match token.delegate(&agents[i - 1], grant) {
                Ok(next) => {
                    prop_assert!(covers_all(ancestors.last().expect("ancestor"), next.capabilities()));
                    token = next;
                    ancestors.push(token.capabilities().to_vec());
                }
                Err(_) => {
                    prop_assert!(!covers_all(ancestors.last().expect("ancestor"), wanted));
                    break;
                }
            }
        }
        let chain = verify(token.as_str(), &dir, VerifyOptions::at(T0 + 1)).expect("built tokens verify");
        for a in &ancestors {
            prop_assert!(covers_all(a, &chain.capabilities));
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = wire::decode(&bytes);
        let mut prefixed = b"AMDT\x01".to_vec();
        prefixed.extend_from_slice(&bytes);
        let _ = wire::decode(&prefixed);
    }

    #[test]
    fn verifying_arbitrary_text_never_panics(s in "\\PC{0,300}") {
        let (_, _, dir) = world();
        let _ = verify(&s, &dir, VerifyOptions::at(T0));
        let _ = verify(&format!("{}{s}", wire::TEXT_PREFIX), &dir, VerifyOptions::at(T0));
    }

    /// Any change to a valid token's bytes (flip, cut, insert) is rejected.
    #[test]
    fn mutated_tokens_never_verify(pos in any::<prop::sample::Index>(), byte in any::<u8>(), kind in 0..3u8) {
        let (sponsor, agents, dir) = world();
        let root = Token::issue_root(&sponsor, Grant {
            audience: agents[0].did(),
            capabilities: vec![Capability::parse("read:*").expect("cap")],
            not_before: T0, expires_at: T0 + 3600, max_depth: Some(2),
        }).expect("root");
        let t = root.delegate(&agents[0], Grant {
            audience: agents[1].did(),
            capabilities: vec![Capability::parse("read:db").expect("cap")],
            not_before: T0, expires_at: T0 + 3600, max_depth: None,
        }).expect("delegate");
        let links: Vec<Link> = t.links().iter().map(|d| d.link.clone()).collect();
        let mut bytes = wire::encode(&links);
        let i = pos.index(bytes.len());
        match kind {
            0 => { if bytes[i] == byte { return Ok(()); } bytes[i] = byte; }
            1 => { bytes.truncate(i); }
            _ => { bytes.insert(i, byte); }
        }
        let rejected = wire::decode(&bytes).is_err() || {
            use base64::Engine;
            let text = format!("{}{}", wire::TEXT_PREFIX,
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes));
            verify(&text, &dir, VerifyOptions::at(T0 + 1)).is_err()
        };
        prop_assert!(rejected, "a mutated token verified");
    }
}
