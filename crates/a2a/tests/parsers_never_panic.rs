//! What an A2A caller or upstream sends — message parts, agent cards, JWKs,
//! REST paths — and the operator's a2a.yaml never panic the gateway's
//! readers. (Fuzz targets: `a2a_message`, `a2a_card`, `config`.)

use agentmesh_a2a::config::A2aConfig;
use agentmesh_a2a::{card, protocol};
use agentmesh_identity::KeyPair;
use proptest::prelude::*;
use serde_json::{Value, json};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,16}".prop_map(Value::from),
        prop::sample::select(vec![
            "https://a.example/x",
            "javascript:alert(1)",
            "JSONRPC",
            "HTTP+JSON",
            "text/plain",
            "aGVsbG8=",
            "OKP",
            "Ed25519",
            "completed",
            "working",
            "message/send",
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 5, |inner| {
        let key = prop::sample::select(vec![
            "message",
            "request",
            "parts",
            "content",
            "text",
            "data",
            "url",
            "raw",
            "file",
            "uri",
            "bytes",
            "mimeType",
            "mediaType",
            "metadata",
            "skillId",
            "skill",
            "tool",
            "contextId",
            "taskId",
            "id",
            "status",
            "state",
            "result",
            "preferredTransport",
            "additionalInterfaces",
            "supportedInterfaces",
            "transport",
            "protocolBinding",
            "signatures",
            "protected",
            "signature",
            "keys",
            "kty",
            "crv",
            "x",
            "kid",
            "name",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key.prop_map(str::to_owned), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn messages_never_panic(v in json_value()) {
        let message = protocol::message_of(&v).unwrap_or(&v);
        if let Some(parts) = protocol::parts_of(message).as_array() {
            for p in parts {
                prop_assert!(protocol::normalize_part(p).get("kind").is_some());
            }
        }
        let _ = protocol::tool_of(message);
        let _ = protocol::message_arguments("agent", message);
        let mut ids = Vec::new();
        protocol::context_ids(&v, &mut ids);
        protocol::task_ids(&v, &mut ids);
        let _ = protocol::terminal(&v);
    }

    #[test]
    fn cards_never_panic_and_cleaning_is_idempotent(v in json_value()) {
        let _ = card::endpoints(&v);
        let keys: Vec<card::CardKey> = v
            .get("keys")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|k| card::CardKey::from_jwk(k).ok())
            .collect();
        let _ = card::verify_card(&v, &keys);
        let mut cleaned = v.clone();
        card::drop_unsafe_urls(&mut cleaned);
        let mut twice = cleaned.clone();
        prop_assert!(card::drop_unsafe_urls(&mut twice).is_empty());
        // A client of a rewritten card reaches the gateway and nothing else.
        let rpc = "https://gw.example/a2a/x";
        if let Ok(out) = card::rewrite(&v, rpc, None) {
            let e = card::endpoints(&out);
            prop_assert_eq!(e.jsonrpc.as_deref(), Some(rpc), "{}", out);
            prop_assert_eq!(e.rest, None, "{}", out);
        }
    }

    #[test]
    fn rest_paths_never_panic(path in "(/[a-zA-Z0-9:%._-]{0,12}){0,6}") {
        for m in [hyper::Method::GET, hyper::Method::POST, hyper::Method::DELETE] {
            let _ = protocol::rest_op(&m, &path);
        }
    }

    #[test]
    fn a2a_yaml_never_panics(s in "\\PC{0,300}") {
        if let Err(e) = A2aConfig::parse(&s) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    /// A card signed with a key verifies with it whatever the card holds.
    #[test]
    fn signed_cards_verify(v in json_value(), seed in any::<[u8; 32]>()) {
        let mut c = json!({"name": "agent", "extra": v});
        let key = KeyPair::from_seed(&seed);
        card::sign_card(&mut c, &key, "k1", None);
        let jwks = card::jwks(key.public(), "k1");
        let keys: Vec<card::CardKey> = jwks["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| card::CardKey::from_jwk(k).ok())
            .collect();
        prop_assert!(!keys.is_empty());
        prop_assert!(card::verify_card(&c, &keys).is_ok(), "{c}");
    }
}
