//! DIDs, SPIFFE IDs and JWKs from outside never panic the parser, and what
//! parses prints back to a text that parses to the same value (the fuzz
//! target `fuzz/fuzz_targets/identity.rs` checks the same on more inputs).

use agentmesh_identity::{Did, Jwk, KeyPair, SpiffeId};
use proptest::prelude::*;

proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
        if let Ok(d) = Did::parse(&s) {
            prop_assert_eq!(Did::parse(&d.to_string()).ok(), Some(d));
        }
        if let Ok(id) = SpiffeId::parse(&s) {
            prop_assert_eq!(SpiffeId::parse(&id.to_string()).ok(), Some(id));
        }
        let _ = Jwk::from_json(&s);
    }

    #[test]
    fn did_shaped_text_never_panics(
        method in prop::sample::select(vec!["key", "mesh", "web", "agentmesh", ""]),
        body in "[a-zA-Z0-9:%._-]{0,80}",
    ) {
        let s = format!("did:{method}:{body}");
        if let Ok(d) = Did::parse(&s) {
            prop_assert_eq!(Did::parse(&d.to_string()).ok(), Some(d));
            let _ = d.public_key();
        }
    }

    #[test]
    fn spiffe_shaped_text_never_panics(
        host in "[a-zA-Z0-9.%:_-]{0,40}",
        path in "(/[a-zA-Z0-9.%_-]{0,12}){0,6}",
    ) {
        let s = format!("spiffe://{host}{path}");
        if let Ok(id) = SpiffeId::parse(&s) {
            prop_assert_eq!(SpiffeId::parse(&id.to_string()).ok(), Some(id));
        }
    }

    /// Every key's DID round-trips through its text.
    #[test]
    fn key_dids_round_trip(seed in any::<[u8; 32]>()) {
        let did = KeyPair::from_seed(&seed).did();
        let again = Did::parse(&did.to_string()).expect("a key's DID parses");
        prop_assert_eq!(again, did);
        let (from_did, pair) = (again.public_key().expect("key DID"), KeyPair::from_seed(&seed));
        prop_assert_eq!(from_did.as_bytes(), pair.public().as_bytes());
    }

    #[test]
    fn jwk_shaped_json_never_panics(
        kty in prop::sample::select(vec!["OKP", "EC", "RSA", ""]),
        crv in prop::sample::select(vec!["Ed25519", "X25519", "P-256", ""]),
        x in "[A-Za-z0-9_=+/-]{0,60}",
    ) {
        let text = serde_json::json!({"kty": kty, "crv": crv, "x": x}).to_string();
        let _ = Jwk::from_json(&text);
    }
}
