//! Agent cards as an upstream serves them and JWKs as a card's issuer
//! publishes them: endpoint discovery, unsafe-URL removal, the gateway's
//! rewrite, signature verification.
#![no_main]

use agentmesh_a2a::card;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let _ = card::endpoints(&v);
    let keys: Vec<card::CardKey> = v
        .get("keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|k| card::CardKey::from_jwk(k).ok())
        .collect();
    let _ = card::verify_card(&v, &keys);
    let _ = card::signed_payload(&v);
    let mut cleaned = v.clone();
    card::drop_unsafe_urls(&mut cleaned);
    // Dropping is idempotent: a cleaned card has nothing more to drop.
    let mut twice = cleaned.clone();
    assert!(card::drop_unsafe_urls(&mut twice).is_empty(), "{cleaned}");
    let (rpc, rest) = ("https://gw.example/a2a/x", "https://gw.example/a2a/x/rest");
    if let Ok(out) = card::rewrite(&v, rpc, Some(rest)) {
        // A client of the rewritten card reaches the gateway and nothing
        // else, by whichever binding it picks.
        let e = card::endpoints(&out);
        assert!(
            e.jsonrpc.is_some() || e.rest.is_some(),
            "no endpoint: {out}"
        );
        assert!(e.jsonrpc.as_deref().is_none_or(|u| u == rpc), "{out}");
        assert!(e.rest.as_deref().is_none_or(|u| u == rest), "{out}");
    }
    if let Some(url) = v.get("url").and_then(Value::as_str) {
        let _ = card::rebase(url, "https://gw.example/");
    }
});
