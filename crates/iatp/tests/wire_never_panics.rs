//! IATP messages from a peer — challenges, responses, `amat1.`
//! attestations, trust manifests — never panic the parser, and every
//! attestation a verifier signs decodes to itself. (Fuzz targets:
//! `iatp_wire`, `attestation_token`.)

use agentmesh_iatp::manifest;
use agentmesh_iatp::voucher::Voucher;
use agentmesh_iatp::wire::{Attestation, Challenge, Response};
use agentmesh_identity::KeyPair;
use proptest::prelude::*;
use serde_json::{Value, json};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::from),
        Just(Value::from(
            "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
        )),
        Just(Value::from("agentmesh-iatp/1")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        let key = prop::sample::select(vec![
            "profile",
            "id",
            "verifier",
            "nonce",
            "issued_at",
            "expires_at",
            "prover",
            "voucher",
            "signature",
            "challenge",
            "verifier_nonce",
            "prover_nonce",
            "channel",
            "identity",
            "agent_id",
            "trust_level",
            "trust",
            "privacy",
            "x",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(key.prop_map(str::to_owned), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn messages_and_manifests_never_panic(v in json_value()) {
        let bytes = serde_json::to_vec(&v).expect("json");
        let _ = manifest::parse(&bytes);
        if let Ok(c) = serde_json::from_value::<Challenge>(v.clone()) {
            let _ = c.check(1_800_000_000);
        }
        if let Ok(r) = serde_json::from_value::<Response>(v.clone()) {
            let _ = r.check_signature();
        }
    }

    #[test]
    fn arbitrary_bytes_as_a_manifest_never_panic(b in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = manifest::parse(&b);
    }

    #[test]
    fn arbitrary_attestation_text_never_panics(s in "(amat1\\.)?[A-Za-z0-9_.-]{0,400}") {
        let _ = Attestation::decode(&s);
    }

    #[test]
    fn arbitrary_voucher_text_never_panics(s in "(amgv1\\.)?[A-Za-z0-9_.-]{0,400}") {
        let k = KeyPair::from_seed(&[7; 32]);
        let _ = Voucher::open(&s, &[*k.public()], &k.did(), 1_800_000_000);
    }

    #[test]
    fn vouchers_round_trip(
        mesh in any::<[u8; 32]>(),
        gateway in any::<[u8; 32]>(),
        name in "\\PC{0,20}",
        iat in 0u64..1_800_000_000,
        ttl in 1u64..100_000,
    ) {
        let (mesh, gateway) = (KeyPair::from_seed(&mesh), KeyPair::from_seed(&gateway));
        let v = Voucher { v: 1, name, key: gateway.did().to_string(), credential: "gw_x".into(), iat, exp: iat + ttl };
        let text = v.encode(&mesh);
        let (back, by) = Voucher::open(&text, &[*mesh.public()], &gateway.did(), iat).expect("opens");
        prop_assert_eq!(back, v);
        prop_assert_eq!(by, *mesh.public());
    }

    #[test]
    fn attestations_round_trip(
        issuer in any::<[u8; 32]>(),
        subject in any::<[u8; 32]>(),
        id in "[A-Za-z0-9_-]{1,22}",
        name in "\\PC{0,20}",
        trust_milli in 0u32..=1000,
        caps in prop::collection::vec("[a-z:*]{1,12}", 0..4),
        iat in any::<u64>(),
    ) {
        let key = KeyPair::from_seed(&issuer);
        let a = Attestation {
            v: 1,
            id,
            iss: key.did().to_string(),
            sub: KeyPair::from_seed(&subject).did().to_string(),
            name,
            aud: "*".into(),
            trust_milli,
            tier: "trusted".into(),
            capabilities: caps,
            iat,
            exp: iat.saturating_add(300),
            transcript: "AAAA".into(),
        };
        let text = a.encode(&key);
        let (back, by) = Attestation::decode(&text).expect("a signed attestation decodes");
        prop_assert_eq!(back, a);
        prop_assert_eq!(by, key.did());
        // One flipped character anywhere is refused, never accepted.
        let mut bytes = text.into_bytes();
        let i = bytes.len() / 2;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let mangled = String::from_utf8(bytes).expect("ascii");
        prop_assert!(Attestation::decode(&mangled).is_err());
    }
}

#[test]
fn a_manifest_is_read_in_either_shape() {
    let nested = json!({"identity": {"agent_id": "did:key:z6Mk"}}).to_string();
    let flat = json!({"agent_id": "did:key:z6Mk"}).to_string();
    assert!(manifest::parse(nested.as_bytes()).is_ok());
    assert!(manifest::parse(flat.as_bytes()).is_ok());
    assert!(manifest::parse(b"{}").is_err());
}
