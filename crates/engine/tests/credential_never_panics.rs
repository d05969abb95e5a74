//! `amcr1.` credentials from callers never panic the decoder, signed or
//! not, and every credential the mesh issues decodes to its claims and has
//! exactly one text. Also trust.toml, which the engine loads: a bad file is
//! an error, never a panic. (Fuzz targets: `credential_token`, `config`.)

use agentmesh_engine::credential::{self, CREDENTIAL_DOMAIN, CREDENTIAL_PREFIX, Claims};
use agentmesh_identity::KeyPair;
use agentmesh_trust::TrustConfig;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;

fn mesh() -> KeyPair {
    KeyPair::from_seed(&[7; 32])
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in "(amcr1\\.)?\\PC{0,300}") {
        let _ = credential::decode(&s, mesh().public());
    }

    /// Payloads signed by the mesh key reach the claims parser; what it
    /// accepts re-encodes to the same text.
    #[test]
    fn signed_arbitrary_payloads_never_panic(payload in prop::collection::vec(any::<u8>(), 0..300)) {
        let key = mesh();
        let text = format!(
            "{CREDENTIAL_PREFIX}{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(key.sign(CREDENTIAL_DOMAIN, &payload))
        );
        if let Ok(claims) = credential::decode(&text, key.public()) {
            prop_assert_eq!(credential::encode(&key, &claims), text);
        }
    }

    #[test]
    fn encode_then_decode_round_trips(
        id in "[0-9a-f]{1,32}",
        seed in any::<[u8; 32]>(),
        aud in "\\*|[a-z0-9.:/-]{1,40}",
        iat in any::<u64>(),
        life in any::<u64>(),
    ) {
        let claims = Claims {
            v: 1,
            id,
            sub: KeyPair::from_seed(&seed).did().to_string(),
            aud,
            iat,
            exp: iat.saturating_add(life),
        };
        let key = mesh();
        let text = credential::encode(&key, &claims);
        prop_assert_eq!(credential::decode(&text, key.public()), Ok(claims));
        // Another mesh's key does not accept it.
        let other = KeyPair::from_seed(&[8; 32]);
        prop_assert!(credential::decode(&text, other.public()).is_err());
    }

    #[test]
    fn trust_toml_never_panics(s in "\\PC{0,300}") {
        let _ = TrustConfig::from_toml(&s);
    }

    #[test]
    fn trust_toml_shaped_text_never_panics(
        key in prop::sample::select(vec![
            "initial_score", "suspend_below", "half_life_secs", "tiers", "weights",
            "detectors", "window_secs", "x",
        ]),
        value in prop::sample::select(vec![
            "0", "-1", "1e308", "nan", "inf", "\"x\"", "[]", "{}", "18446744073709551616",
            "0.5", "[{name = \"a\", min = 2.0}]",
        ]),
        section in prop::option::of(prop::sample::select(vec!["weights", "detectors", "tiers"])),
    ) {
        let text = match section {
            Some(s) => format!("[{s}]\n{key} = {value}\n"),
            None => format!("{key} = {value}\n"),
        };
        let _ = TrustConfig::from_toml(&text);
    }
}
