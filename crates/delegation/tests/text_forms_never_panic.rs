//! The text forms a caller presents — `amdt1.` tokens and `amhp1.` holder
//! proofs — never panic the parser, and every form the mesh produces parses
//! back to the same value. (Fuzz target: `delegation_token`; binary
//! decoding of arbitrary bytes is in `properties.rs`.)

use agentmesh_capability::Capability;
use agentmesh_delegation::{Grant, HolderProof, Token};
use agentmesh_identity::KeyPair;
use proptest::prelude::*;

proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in "(amdt1\\.|amhp1\\.)?[A-Za-z0-9_=+/.-]{0,300}") {
        if let Ok(t) = Token::parse(&s) {
            prop_assert_eq!(t.as_str(), s.as_str());
            let _ = t.holder();
        }
        if let Ok(p) = HolderProof::parse(&s) {
            prop_assert_eq!(p.to_text(), s);
        }
    }

    #[test]
    fn issued_tokens_and_proofs_round_trip(
        sponsor in any::<[u8; 32]>(),
        agent in any::<[u8; 32]>(),
        nbf in 0u64..u64::MAX / 2,
        life in 1u64..1_000_000,
        digest in any::<[u8; 32]>(),
        now in any::<u64>(),
    ) {
        prop_assume!(sponsor != agent);
        let (s, a) = (KeyPair::from_seed(&sponsor), KeyPair::from_seed(&agent));
        let token = Token::issue_root(&s, Grant {
            audience: a.did(),
            capabilities: vec![Capability::parse("read:*").expect("capability")],
            not_before: nbf,
            expires_at: nbf + life,
            max_depth: Some(2),
        })
        .expect("issue");
        let parsed = Token::parse(token.as_str()).expect("an issued token parses");
        prop_assert_eq!(parsed.holder(), a.did());
        prop_assert_eq!(parsed.leaf_hash(), token.leaf_hash());
        let proof = HolderProof::create(&a, &token, &digest, now);
        let text = proof.to_text();
        let again = HolderProof::parse(&text).expect("a proof parses");
        prop_assert_eq!(again.to_text(), text);
    }
}
