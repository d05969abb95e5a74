//! The seed's delegation chain and every way a token must fail.

use agentmesh_capability::{Capability, parse_list};
use agentmesh_delegation::wire::{self, LINK_DOMAIN, Link};
use agentmesh_delegation::{
    AgentStatus, Grant, HolderError, HolderProof, IssueError, MemoryDirectory, ReplayGuard,
    StepError, Token, VerifiedCache, VerifyError, VerifyOptions, verify,
};
use agentmesh_identity::{Did, KeyPair};

const T0: u64 = 1_800_000_000;
const HOUR: u64 = 3600;

struct World {
    sponsor: KeyPair,
    a: KeyPair,
    b: KeyPair,
    c: KeyPair,
    outsider: KeyPair,
    dir: MemoryDirectory,
}

fn caps(s: &str) -> Vec<Capability> {
    parse_list(s).expect("valid capability list")
}

fn world() -> World {
    let sponsor = KeyPair::from_seed(&[1; 32]);
    let a = KeyPair::from_seed(&[0xa; 32]);
    let b = KeyPair::from_seed(&[0xb; 32]);
    let c = KeyPair::from_seed(&[0xc; 32]);
    let outsider = KeyPair::from_seed(&[0xee; 32]);
    let mut dir = MemoryDirectory::new();
    dir.add_sponsor(sponsor.did(), "alice@company.com", caps("*"), true);
    for (kp, name, granted) in [
        (&a, "agent-a", "read:*,write:*,delete:*"),
        (&b, "agent-b", "read:*,write:reports"),
        (&c, "agent-c", "read:public-data"),
        (&outsider, "outsider", "read:*"),
    ] {
        dir.add_agent(
            kp.did(),
            name,
            sponsor.did(),
            caps(granted),
            AgentStatus::Active,
        );
    }
    World {
        sponsor,
        a,
        b,
        c,
        outsider,
        dir,
    }
}

fn grant(to: &KeyPair, c: &str) -> Grant {
    Grant {
        audience: to.did(),
        capabilities: caps(c),
        not_before: T0,
        expires_at: T0 + HOUR,
        max_depth: None,
    }
}

/// sponsor → A `read:*,write:*,delete:*` → B `read:*,write:reports` → C `read:public-data`
fn seed_chain(w: &World) -> (Token, Token, Token) {
    let root =
        Token::issue_root(&w.sponsor, grant(&w.a, "read:*,write:*,delete:*")).expect("root link");
    let ab = root
        .delegate(&w.a, grant(&w.b, "read:*,write:reports"))
        .expect("A → B narrows");
    let bc = ab
        .delegate(&w.b, grant(&w.c, "read:public-data"))
        .expect("B → C narrows");
    (root, ab, bc)
}

fn now() -> VerifyOptions {
    VerifyOptions::at(T0 + 60)
}

fn cap(s: &str) -> Capability {
    Capability::parse(s).expect("valid capability")
}

#[test]
fn seed_chain_grants_c_read_public_data_and_nothing_else() {
    let w = world();
    let (_, _, token) = seed_chain(&w);
    let chain = verify(token.as_str(), &w.dir, now()).expect("seed chain verifies");
    assert_eq!(chain.holder, w.c.did());
    assert_eq!(chain.holder_name, "agent-c");
    assert_eq!(chain.sponsor_email, "alice@company.com");
    assert_eq!(chain.links.len(), 3);
    assert_eq!(chain.depth(), 2);
    assert!(chain.permits(&cap("read:public-data")));
    for denied in [
        "read:public-database",
        "read:private-data",
        "read:*",
        "write:reports",
        "delete:public-data",
        "*",
        "read:public-data-x",
    ] {
        assert!(!chain.permits(&cap(denied)), "C must not get {denied}");
    }
    // Qualified reads of public-data are inside the grant.
    assert!(chain.permits(&cap("read:public-data:summary")));
}

#[test]
fn widening_is_refused_when_the_token_is_made() {
    let w = world();
    let (root, ab, _) = seed_chain(&w);
    let err = root
        .delegate(&w.a, grant(&w.b, "read:*,admin:*"))
        .expect_err("A cannot grant admin:*");
    assert!(
        matches!(&err, IssueError::Step(StepError::Widened { uncovered, .. }) if uncovered == "admin:*"),
        "{err}"
    );
    let err = ab
        .delegate(&w.b, grant(&w.c, "write:*"))
        .expect_err("B holds write:reports only");
    assert!(
        matches!(err, IssueError::Step(StepError::Widened { .. })),
        "{err}"
    );
    // The prefix bug of the original: read:data must not reach read:database.
    let narrow = root
        .delegate(&w.a, grant(&w.b, "read:data"))
        .expect("A → B read:data");
    let err = narrow
        .delegate(&w.b, grant(&w.c, "read:database"))
        .expect_err("read:data does not cover read:database");
    assert!(matches!(err, IssueError::Step(StepError::Widened { .. })));
    // Longer in time than the parent.
    let mut g = grant(&w.c, "read:public-data");
    g.expires_at = T0 + 2 * HOUR;
    assert!(matches!(
        ab.delegate(&w.b, g),
        Err(IssueError::Step(StepError::TimeWidened { .. }))
    ));
    // Deeper than the parent.
    let mut g = grant(&w.c, "read:public-data");
    g.max_depth = Some(7);
    assert!(matches!(
        ab.delegate(&w.b, g),
        Err(IssueError::Step(StepError::DepthWidened { .. }))
    ));
    // Only the holder can extend.
    assert!(matches!(
        ab.delegate(&w.a, grant(&w.c, "read:public-data")),
        Err(IssueError::NotHolder { .. })
    ));
    // No cycles, no self-delegation.
    assert!(matches!(
        ab.delegate(&w.b, grant(&w.a, "read:x")),
        Err(IssueError::Cycle(_))
    ));
    assert!(matches!(
        ab.delegate(&w.b, grant(&w.b, "read:x")),
        Err(IssueError::SelfDelegation)
    ));
}

/// Builds and signs a link by hand, bypassing every check the builder does.
fn forge(issuer: &KeyPair, audience: &Did, prev: Option<&Link>, c: &str, depth: u8) -> Link {
    let mut link = Link {
        issuer: *issuer.public().as_bytes(),
        audience: *audience.key_bytes(),
        not_before: T0,
        expires_at: T0 + HOUR,
        max_depth: depth,
        prev_hash: prev.map(Link::hash).unwrap_or([0; 32]),
        capabilities: caps(c),
        signature: [0; 64],
    };
    link.signature = issuer.sign(LINK_DOMAIN, &link.body());
    link
}

fn links_of(t: &Token) -> Vec<Link> {
    t.links().iter().map(|d| d.link.clone()).collect()
}

#[test]
fn hand_forged_widening_is_rejected_at_every_hop() {
    let w = world();
    // Root wider than the agent's sponsored registration.
    let root = forge(&w.sponsor, &w.b.did(), None, "read:*,write:*", 3);
    let err = verify(&wire::encode_text(&[root]), &w.dir, now()).expect_err("root too wide");
    assert!(matches!(err, VerifyError::RootExceeds { .. }), "{err}");

    // A → B grants admin:* although A never had it (validly signed by A).
    let (root, ab, _) = seed_chain(&w);
    let mut links = links_of(&root);
    let wide = forge(&w.a, &w.b.did(), Some(&links[0]), "read:*,admin:*", 2);
    links.push(wide);
    let err = verify(&wire::encode_text(&links), &w.dir, now()).expect_err("widened hop 1");
    assert!(
        matches!(
            err,
            VerifyError::Step {
                link: 1,
                source: StepError::Widened { .. }
            }
        ),
        "{err}"
    );

    // B → C grants write:* although B holds only write:reports.
    let mut links = links_of(&ab);
    let wide = forge(&w.b, &w.c.did(), Some(&links[1]), "write:*", 0);
    links.push(wide);
    let err = verify(&wire::encode_text(&links), &w.dir, now()).expect_err("widened hop 2");
    assert!(
        matches!(
            err,
            VerifyError::Step {
                link: 2,
                source: StepError::Widened { .. }
            }
        ),
        "{err}"
    );

    // B → C with more depth than B had.
    let mut links = links_of(&ab);
    let deep = forge(&w.b, &w.c.did(), Some(&links[1]), "read:public-data", 5);
    links.push(deep);
    let err = verify(&wire::encode_text(&links), &w.dir, now()).expect_err("deeper");
    assert!(
        matches!(
            err,
            VerifyError::Step {
                source: StepError::DepthWidened { .. },
                ..
            }
        ),
        "{err}"
    );

    // B → C signed by the outsider instead of B.
    let mut links = links_of(&ab);
    let mut wrong = forge(
        &w.outsider,
        &w.c.did(),
        Some(&links[1]),
        "read:public-data",
        0,
    );
    wrong.issuer = *w.outsider.public().as_bytes();
    links.push(wrong);
    let err = verify(&wire::encode_text(&links), &w.dir, now()).expect_err("wrong issuer");
    assert!(
        matches!(err, VerifyError::BrokenChain { link: 2, .. }),
        "{err}"
    );

    // B → C that names the wrong previous link (spliced from another chain).
    let mut links = links_of(&ab);
    let spliced = forge(&w.b, &w.c.did(), Some(&links[0]), "read:public-data", 0);
    links.push(spliced);
    let err = verify(&wire::encode_text(&links), &w.dir, now()).expect_err("spliced");
    assert!(
        matches!(err, VerifyError::BrokenHash { link: 2, .. }),
        "{err}"
    );

    // A root signed by someone who is not a sponsor.
    let rogue = forge(&w.outsider, &w.a.did(), None, "read:*", 3);
    let err = verify(&wire::encode_text(&[rogue]), &w.dir, now()).expect_err("unknown sponsor");
    assert!(matches!(err, VerifyError::UnknownSponsor(_)), "{err}");

    // Delegating to a DID the registry has never seen.
    let stranger = KeyPair::from_seed(&[0x55; 32]);
    let mut links = links_of(&ab);
    links.push(forge(
        &w.b,
        &stranger.did(),
        Some(&links[1]),
        "read:public-data",
        0,
    ));
    let err = verify(&wire::encode_text(&links), &w.dir, now()).expect_err("unknown agent");
    assert!(
        matches!(err, VerifyError::UnknownAgent { link: 2, .. }),
        "{err}"
    );

    // A cycle: B delegates back to A.
    let mut links = links_of(&ab);
    links.push(forge(&w.b, &w.a.did(), Some(&links[1]), "read:x", 0));
    let err = verify(&wire::encode_text(&links), &w.dir, now()).expect_err("cycle");
    assert!(matches!(err, VerifyError::Cycle { link: 2, .. }), "{err}");
}

#[test]
fn flipping_any_byte_of_any_link_is_rejected() {
    let w = world();
    let (_, _, token) = seed_chain(&w);
    let bytes = wire::encode(&links_of(&token));
    verify(token.as_str(), &w.dir, now()).expect("original verifies");
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut bad = bytes.clone();
            bad[i] ^= mask;
            let text = format!("{}{}", wire::TEXT_PREFIX, b64(&bad));
            assert!(
                verify(&text, &w.dir, now()).is_err(),
                "flipping byte {i} with {mask:#x} was accepted"
            );
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn expired_revoked_too_deep_and_wrong_holder_fail_with_distinct_errors() {
    let mut w = world();
    let (_, ab, bc) = seed_chain(&w);

    // Expired: the whole chain ends at T0 + 1h.
    let err = verify(bc.as_str(), &w.dir, VerifyOptions::at(T0 + HOUR)).expect_err("expired");
    assert!(matches!(err, VerifyError::Expired { .. }), "{err}");
    // Not yet valid.
    let err = verify(bc.as_str(), &w.dir, VerifyOptions::at(T0 - 3600)).expect_err("early");
    assert!(matches!(err, VerifyError::NotYetValid { .. }), "{err}");

    // Depth beyond max: A → B with max depth 0 leaves B unable to delegate.
    let root = Token::issue_root(&w.sponsor, grant(&w.a, "read:*")).expect("root");
    let mut g = grant(&w.b, "read:*");
    g.max_depth = Some(0);
    let shallow = root.delegate(&w.a, g).expect("A → B depth 0");
    let err = shallow
        .delegate(&w.b, grant(&w.c, "read:public-data"))
        .expect_err("B may not delegate");
    assert!(matches!(err, IssueError::Step(StepError::DepthExhausted)));
    let mut links = links_of(&shallow);
    links.push(forge(
        &w.b,
        &w.c.did(),
        Some(&links[1]),
        "read:public-data",
        0,
    ));
    let err = verify(&wire::encode_text(&links), &w.dir, now()).expect_err("too deep");
    assert!(
        matches!(
            err,
            VerifyError::Step {
                link: 2,
                source: StepError::DepthExhausted
            }
        ),
        "{err}"
    );

    // A revoked middle link kills everything below it.
    let middle = ab.links()[1].hash;
    w.dir.revoke_link(middle);
    let err = verify(bc.as_str(), &w.dir, now()).expect_err("revoked middle");
    assert!(
        matches!(err, VerifyError::LinkRevoked { link: 1, .. }),
        "{err}"
    );
    let err = verify(ab.as_str(), &w.dir, now()).expect_err("revoked link itself");
    assert!(
        matches!(err, VerifyError::LinkRevoked { link: 1, .. }),
        "{err}"
    );

    // A token presented by a key that is not its audience.
    let w = world();
    let (_, _, bc) = seed_chain(&w);
    let chain = verify(bc.as_str(), &w.dir, now()).expect("verifies");
    let guard = ReplayGuard::new(60, 1000);
    let digest = [7u8; 32];
    let by_b = HolderProof::create(&w.b, &bc, &digest, T0 + 60);
    let err = guard
        .verify(&chain, &by_b, &digest, T0 + 60)
        .expect_err("B is not C");
    assert!(matches!(err, HolderError::WrongKey { .. }), "{err}");
    let by_c = HolderProof::create(&w.c, &bc, &digest, T0 + 60);
    let parsed = HolderProof::parse(&by_c.to_text()).expect("round trip");
    guard
        .verify(&chain, &parsed, &digest, T0 + 61)
        .expect("C holds the audience key");
    assert_eq!(
        guard.verify(&chain, &parsed, &digest, T0 + 61),
        Err(HolderError::Replayed)
    );
    // The proof binds the request: another request digest fails.
    let other = HolderProof::create(&w.c, &bc, &digest, T0 + 62);
    assert!(matches!(
        guard.verify(&chain, &other, &[8u8; 32], T0 + 62),
        Err(HolderError::WrongKey { .. })
    ));
    let old = HolderProof::create(&w.c, &bc, &digest, T0);
    assert!(matches!(
        guard.verify(&chain, &old, &digest, T0 + 120),
        Err(HolderError::Stale { .. })
    ));
    let future = HolderProof::create(&w.c, &bc, &digest, T0 + 1000);
    assert!(matches!(
        guard.verify(&chain, &future, &digest, T0 + 60),
        Err(HolderError::FromFuture { .. })
    ));
    assert_eq!(HolderProof::parse("amhp1.xyz"), Err(HolderError::Malformed));
    assert_eq!(HolderProof::parse(""), Err(HolderError::Malformed));
}

#[test]
fn registry_state_is_enforced() {
    let mut w = world();
    let (_, _, bc) = seed_chain(&w);
    w.dir.set_status(&w.b.did(), AgentStatus::Suspended);
    let err = verify(bc.as_str(), &w.dir, now()).expect_err("suspended B");
    assert!(
        matches!(
            err,
            VerifyError::AgentNotActive {
                link: 1,
                status: AgentStatus::Suspended,
                ..
            }
        ),
        "{err}"
    );
    w.dir.set_status(&w.b.did(), AgentStatus::Revoked);
    let err = verify(bc.as_str(), &w.dir, now()).expect_err("revoked B");
    assert!(
        matches!(
            err,
            VerifyError::AgentNotActive {
                status: AgentStatus::Revoked,
                ..
            }
        ),
        "{err}"
    );

    let mut w = world();
    let (_, _, bc) = seed_chain(&w);
    w.dir
        .add_sponsor(w.sponsor.did(), "alice@company.com", caps("*"), false);
    assert!(matches!(
        verify(bc.as_str(), &w.dir, now()),
        Err(VerifyError::SponsorInactive(_))
    ));

    // A root to an agent sponsored by somebody else.
    let mut w = world();
    let bob = KeyPair::from_seed(&[0xb0; 32]);
    w.dir
        .add_sponsor(bob.did(), "bob@company.com", caps("*"), true);
    let root = Token::issue_root(&bob, grant(&w.a, "read:*")).expect("root");
    assert!(matches!(
        verify(root.as_str(), &w.dir, now()),
        Err(VerifyError::SponsorMismatch { .. })
    ));
    // A sponsor limited to read:* cannot root-grant write.
    let carol = KeyPair::from_seed(&[0xca; 32]);
    w.dir
        .add_sponsor(carol.did(), "carol@company.com", caps("read:*"), true);
    let d = KeyPair::from_seed(&[0xd; 32]);
    w.dir.add_agent(
        d.did(),
        "agent-d",
        carol.did(),
        caps("read:*,write:x"),
        AgentStatus::Active,
    );
    let root = Token::issue_root(&carol, grant(&d, "write:x")).expect("root");
    assert!(matches!(
        verify(root.as_str(), &w.dir, now()),
        Err(VerifyError::RootExceeds { .. })
    ));
}

#[test]
fn bad_input_is_an_error_never_a_panic() {
    let w = world();
    let (_, _, bc) = seed_chain(&w);
    let text = bc.as_str();
    // Truncated at every length.
    for n in 0..text.len() {
        assert!(
            verify(&text[..n], &w.dir, now()).is_err(),
            "truncated to {n} accepted"
        );
    }
    // Oversized.
    let huge = format!("{}{}", wire::TEXT_PREFIX, "A".repeat(wire::MAX_TOKEN_TEXT));
    assert!(matches!(
        verify(&huge, &w.dir, now()),
        Err(VerifyError::Decode(wire::DecodeError::TooLarge(_)))
    ));
    for junk in [
        "",
        "amdt1.",
        "amdt1.!!!!",
        "bearer xyz",
        "amdt2.AAAA",
        "amdt1.QU1EVA",
    ] {
        assert!(verify(junk, &w.dir, now()).is_err(), "{junk:?}");
    }
    // A link whose issuer is a weak (small-order) key.
    let mut links = links_of(&bc);
    links[0].issuer = [0; 32];
    links[0].issuer[0] = 1;
    let err = verify(&wire::encode_text(&links), &w.dir, now()).expect_err("weak key");
    assert!(
        matches!(err, VerifyError::InvalidKey { role: "issuer", .. }),
        "{err}"
    );
    // Too many links.
    let mut links = links_of(&bc);
    while links.len() <= wire::MAX_LINKS {
        links.push(links[2].clone());
    }
    assert!(matches!(
        verify(&wire::encode_text(&links), &w.dir, now()),
        Err(VerifyError::Decode(wire::DecodeError::LinkCount(9)))
    ));
}

#[test]
fn cache_hits_still_honour_expiry_and_revocation() {
    let mut w = world();
    let (_, ab, bc) = seed_chain(&w);
    let cache = VerifiedCache::new(16);
    let first = cache
        .verify(bc.as_str(), &w.dir, now())
        .expect("miss then verify");
    let second = cache.verify(bc.as_str(), &w.dir, now()).expect("hit");
    assert!(
        std::sync::Arc::ptr_eq(&first, &second),
        "second call must be a cache hit"
    );
    assert_eq!(cache.len(), 1);
    // Expired on a hit.
    let err = cache
        .verify(bc.as_str(), &w.dir, VerifyOptions::at(T0 + HOUR + 1))
        .expect_err("expired");
    assert!(matches!(err, VerifyError::Expired { .. }));
    // Revocation after caching is seen on the next hit.
    w.dir.revoke_link(ab.links()[1].hash);
    let err = cache
        .verify(bc.as_str(), &w.dir, now())
        .expect_err("revoked");
    assert!(matches!(err, VerifyError::LinkRevoked { .. }), "{err}");
    // Suspension after caching too.
    let mut w = world();
    let (_, _, bc) = seed_chain(&w);
    let cache = VerifiedCache::new(16);
    cache.verify(bc.as_str(), &w.dir, now()).expect("verify");
    w.dir.set_status(&w.c.did(), AgentStatus::Suspended);
    assert!(matches!(
        cache.verify(bc.as_str(), &w.dir, now()),
        Err(VerifyError::AgentNotActive { .. })
    ));
    // Capacity is bounded.
    let w = world();
    let cache = VerifiedCache::new(4);
    let root = Token::issue_root(&w.sponsor, grant(&w.a, "read:*")).expect("root");
    for i in 0..20u64 {
        let mut g = grant(&w.b, "read:x");
        g.expires_at = T0 + HOUR - i;
        let t = root.delegate(&w.a, g).expect("delegate");
        cache.verify(t.as_str(), &w.dir, now()).expect("verify");
        assert!(cache.len() <= 4);
    }
}
