//! Agent cards: where the upstream really listens, the card the gateway
//! serves instead (URLs pointing at the gateway, re-signed with the mesh
//! key), and JWS signatures (A2A §8.4: JWS, RFC 7515, with a detached
//! payload: the RFC 8785 canonical form of the card without `signatures`).
//!
//! Upstream signatures are checked against keys named in the gateway's
//! configuration (EdDSA, ES256, RS256). Rewriting the URLs invalidates
//! them, so the served card carries the gateway's own EdDSA signature,
//! whose key is published at `/.well-known/jwks.json`.

use agentmesh_identity::jcs::canonicalize;
use agentmesh_identity::{KeyPair, PublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

/// Protocol bindings, as cards name them.
pub const JSONRPC: &str = "JSONRPC";
pub const HTTP_JSON: &str = "HTTP+JSON";

/// Why a card is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    #[error("agent card is not a JSON object with a `name`: {0}")]
    Malformed(String),
    #[error("agent card offers no JSON-RPC or HTTP+JSON interface the gateway can front")]
    NoInterface,
    #[error("agent card signature {index}: {reason}")]
    BadSignature { index: usize, reason: String },
    #[error("agent card is not signed, and this upstream requires a signed card")]
    Unsigned,
    #[error("agent card is signed, but no configured key verifies it (kids: {0})")]
    NoKey(String),
    #[error("key file: {0}")]
    Key(String),
}

/// A public key that may sign upstream cards.
#[derive(Debug, Clone)]
pub enum CardKey {
    Ed25519 {
        kid: Option<String>,
        key: PublicKey,
    },
    /// Uncompressed SEC1 point.
    P256 {
        kid: Option<String>,
        point: Vec<u8>,
    },
    Rsa {
        kid: Option<String>,
        n: Vec<u8>,
        e: Vec<u8>,
    },
}

fn b64d(v: &Value, field: &str) -> Result<Vec<u8>, CardError> {
    let s = v[field]
        .as_str()
        .ok_or_else(|| CardError::Key(format!("JWK has no `{field}`")))?;
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| CardError::Key(format!("JWK `{field}` is not base64url")))
}

impl CardKey {
    /// From a public (or private: only the public part is read) JWK.
    pub fn from_jwk(v: &Value) -> Result<Self, CardError> {
        let kid = v["kid"].as_str().map(str::to_owned);
        match (v["kty"].as_str(), v["crv"].as_str()) {
            (Some("OKP"), Some("Ed25519")) => {
                let x = b64d(v, "x")?;
                let key = PublicKey::from_slice(&x).map_err(|e| CardError::Key(e.to_string()))?;
                Ok(CardKey::Ed25519 { kid, key })
            }
            (Some("EC"), Some("P-256")) => {
                let (x, y) = (b64d(v, "x")?, b64d(v, "y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(CardError::Key("P-256 coordinates must be 32 bytes".into()));
                }
                let mut point = vec![4u8];
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                Ok(CardKey::P256 { kid, point })
            }
            (Some("RSA"), _) => Ok(CardKey::Rsa {
                kid,
                n: b64d(v, "n")?,
                e: b64d(v, "e")?,
            }),
            (kty, crv) => Err(CardError::Key(format!(
                "unsupported JWK (kty {kty:?}, crv {crv:?}); use OKP/Ed25519, EC/P-256 or RSA"
            ))),
        }
    }

    fn kid(&self) -> Option<&str> {
        match self {
            CardKey::Ed25519 { kid, .. } | CardKey::P256 { kid, .. } | CardKey::Rsa { kid, .. } => {
                kid.as_deref()
            }
        }
    }

    fn verify(&self, alg: &str, input: &[u8], sig: &[u8]) -> bool {
        use ring::signature::{
            ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents,
            UnparsedPublicKey,
        };
        match (self, alg) {
            (CardKey::Ed25519 { key, .. }, "EdDSA" | "Ed25519") => {
                key.verify_raw(input, sig).is_ok()
            }
            (CardKey::P256 { point, .. }, "ES256") => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                    .verify(input, sig)
                    .is_ok()
            }
            (CardKey::Rsa { n, e, .. }, "RS256") => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, input, sig)
                .is_ok(),
            _ => false,
        }
    }
}

/// Top-level fields of the 0.3 card layout that a 1.0 card may carry for
/// old clients; they are not part of the 1.0 model, so signatures do not
/// cover them (as `a2a-sdk` signs and verifies).
const COMPAT_0_3_FIELDS: &[&str] = &[
    "url",
    "preferredTransport",
    "protocolVersion",
    "additionalInterfaces",
    "security",
    "supportsAuthenticatedExtendedCard",
];

/// Drops every empty string, list and object, at any depth (what the
/// proto-based signers do before canonicalising; `false` and `0` stay).
fn drop_empty(v: &mut Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Array(a) => {
            a.retain_mut(|x| !drop_empty(x));
            a.is_empty()
        }
        Value::Object(m) => {
            m.retain(|_, x| !drop_empty(x));
            m.is_empty()
        }
        _ => false,
    }
}

/// The bytes a card signature covers: the RFC 8785 form of the card
/// without `signatures` (and, for a 1.0 card, without the 0.3 compat
/// fields), empty values dropped.
pub fn signed_payload(card: &Value) -> String {
    let mut c = card.clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("signatures");
        if m.contains_key("supportedInterfaces") {
            for k in COMPAT_0_3_FIELDS {
                m.remove(*k);
            }
        }
    }
    drop_empty(&mut c);
    canonicalize(&c)
}

/// Checks a card's signatures. `Ok(None)`: unsigned. `Ok(Some(kid))`: one
/// signature verified under a configured key. Signed but unverifiable is
/// an error when keys are configured (a card that claims a signature it
/// cannot back is not trusted).
pub fn verify_card(card: &Value, keys: &[CardKey]) -> Result<Option<String>, CardError> {
    let Some(sigs) = card.get("signatures").and_then(Value::as_array) else {
        return Ok(None);
    };
    if sigs.is_empty() {
        return Ok(None);
    }
    let payload = URL_SAFE_NO_PAD.encode(signed_payload(card));
    let mut kids = Vec::new();
    for (index, s) in sigs.iter().enumerate() {
        let protected = s["protected"].as_str().ok_or(CardError::BadSignature {
            index,
            reason: "no `protected` header".into(),
        })?;
        let header: Value = URL_SAFE_NO_PAD
            .decode(protected)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(CardError::BadSignature {
                index,
                reason: "`protected` is not base64url JSON".into(),
            })?;
        let sig = s["signature"]
            .as_str()
            .and_then(|t| URL_SAFE_NO_PAD.decode(t).ok())
            .ok_or(CardError::BadSignature {
                index,
                reason: "`signature` is not base64url".into(),
            })?;
        let alg = header["alg"].as_str().unwrap_or("");
        let kid = header["kid"].as_str();
        kids.push(kid.unwrap_or("-").to_owned());
        let input = format!("{protected}.{payload}");
        for k in keys {
            if kid.is_some() && k.kid().is_some() && kid != k.kid() {
                continue;
            }
            if k.verify(alg, input.as_bytes(), &sig) {
                return Ok(Some(kid.unwrap_or("").to_owned()));
            }
        }
    }
    Err(CardError::NoKey(kids.join(", ")))
}

/// Signs `card` (replacing any signatures) with `key` as EdDSA; `jku`
/// names where the key is published.
pub fn sign_card(card: &mut Value, key: &KeyPair, kid: &str, jku: Option<&str>) {
    let mut header = json!({"alg": "EdDSA", "typ": "JOSE", "kid": kid});
    if let Some(u) = jku {
        header["jku"] = Value::from(u);
    }
    let protected = URL_SAFE_NO_PAD.encode(canonicalize(&header));
    let payload = URL_SAFE_NO_PAD.encode(signed_payload(card));
    let sig = key.sign_raw(format!("{protected}.{payload}").as_bytes());
    if let Some(m) = card.as_object_mut() {
        m.insert(
            "signatures".into(),
            json!([{"protected": protected, "signature": URL_SAFE_NO_PAD.encode(sig)}]),
        );
    }
}

/// The JWKS that publishes the gateway's card key.
pub fn jwks(key: &PublicKey, kid: &str) -> Value {
    json!({"keys": [{
        "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(key.as_bytes()),
    }]})
}

/// Where an upstream agent listens, read from its card (1.0
/// `supportedInterfaces`, or 0.3 `url` / `preferredTransport` /
/// `additionalInterfaces`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    pub jsonrpc: Option<String>,
    pub rest: Option<String>,
}

pub fn endpoints(card: &Value) -> Endpoints {
    let mut e = Endpoints::default();
    let mut note = |binding: &str, url: &str| {
        let slot = match binding {
            JSONRPC => &mut e.jsonrpc,
            HTTP_JSON => &mut e.rest,
            _ => return,
        };
        if slot.is_none() && url.starts_with("http") {
            *slot = Some(url.trim_end_matches('/').to_owned());
        }
    };
    for i in card["supportedInterfaces"].as_array().into_iter().flatten() {
        if let (Some(b), Some(u)) = (i["protocolBinding"].as_str(), i["url"].as_str()) {
            note(b, u);
        }
    }
    if let Some(u) = card["url"].as_str() {
        note(card["preferredTransport"].as_str().unwrap_or(JSONRPC), u);
    }
    for i in card["additionalInterfaces"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let (Some(b), Some(u)) = (i["transport"].as_str(), i["url"].as_str()) {
            note(b, u);
        }
    }
    e
}

/// `url` with its scheme, host and port replaced by `base`'s: the path the
/// card names, at the origin the operator configured. `None`: not an
/// http(s) URL.
pub fn rebase(url: &str, base: &str) -> Option<String> {
    let named = url::Url::parse(url).ok()?;
    let base = url::Url::parse(base).ok()?;
    if !matches!(named.scheme(), "http" | "https") {
        return None;
    }
    let mut out = base.clone();
    out.set_path(named.path());
    out.set_query(named.query());
    out.set_fragment(None);
    Some(out.as_str().trim_end_matches('/').to_owned())
}

/// Removes every URL-valued field of a card (keys ending in `url`/`uri`,
/// any case) that is not an absolute `http(s)` URL — `javascript:`,
/// `data:`, `file:`, relative or unreadable values — before the mesh signs
/// the card: a client that trusts the mesh's signature must not be handed
/// one. Returns the JSON pointers removed.
pub fn drop_unsafe_urls(card: &mut Value) -> Vec<String> {
    fn walk(v: &mut Value, at: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                let bad: Vec<String> = m
                    .iter()
                    .filter(|(k, x)| {
                        let k = k.to_ascii_lowercase();
                        (k.ends_with("url") || k.ends_with("uri"))
                            && !x.as_str().is_some_and(|s| {
                                url::Url::parse(s)
                                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
                                    // Extension and profile identifiers are
                                    // URNs as often as URLs.
                                    || (k.ends_with("uri") && s.starts_with("urn:"))
                            })
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in bad {
                    m.remove(&k);
                    out.push(format!("{at}/{k}"));
                }
                for (k, x) in m.iter_mut() {
                    walk(x, &format!("{at}/{k}"), out);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter_mut().enumerate() {
                    walk(x, &format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(card, "", &mut out);
    out
}

/// The card the gateway serves for an upstream: interfaces pointing at
/// the gateway (`jsonrpc`, `rest`; gRPC is not fronted and is dropped),
/// the upstream's auth schemes replaced by the gateway's bearer scheme,
/// the IATP extension advertised; not yet signed.
pub fn rewrite(upstream: &Value, jsonrpc: &str, rest: Option<&str>) -> Result<Value, CardError> {
    let mut card = upstream
        .as_object()
        .cloned()
        .ok_or_else(|| CardError::Malformed("not an object".into()))?;
    if !card.get("name").is_some_and(Value::is_string) {
        return Err(CardError::Malformed("no `name`".into()));
    }
    card.remove("signatures");
    let target = |binding: &str| match binding {
        JSONRPC => Some(jsonrpc.to_owned()),
        HTTP_JSON => rest.map(str::to_owned),
        _ => None,
    };
    if let Some(Value::Array(list)) = card.get_mut("supportedInterfaces") {
        list.retain_mut(|i| {
            let Some(url) = i["protocolBinding"].as_str().and_then(target) else {
                return false;
            };
            i["url"] = Value::from(url);
            true
        });
    }
    if card.contains_key("url") {
        let preferred = card
            .get("preferredTransport")
            .and_then(Value::as_str)
            .unwrap_or(JSONRPC)
            .to_owned();
        match target(&preferred) {
            Some(u) => {
                card.insert("url".into(), Value::from(u));
            }
            None => {
                card.insert("url".into(), Value::from(jsonrpc));
                card.insert("preferredTransport".into(), Value::from(JSONRPC));
            }
        }
    }
    if let Some(Value::Array(list)) = card.get_mut("additionalInterfaces") {
        list.retain_mut(|i| {
            let Some(url) = i["transport"].as_str().and_then(target) else {
                return false;
            };
            i["url"] = Value::from(url);
            true
        });
    }
    let has_interface = card
        .get("supportedInterfaces")
        .and_then(Value::as_array)
        .is_some_and(|l| !l.is_empty())
        || card.get("url").is_some();
    if !has_interface {
        return Err(CardError::NoInterface);
    }
    let mut whole = Value::Object(card);
    drop_unsafe_urls(&mut whole);
    let Value::Object(mut card) = whole else {
        return Err(CardError::Malformed("not an object".into()));
    };
    // The upstream's own auth is the gateway's business, not the client's:
    // clients present mesh credentials to the gateway.
    card.remove("securitySchemes");
    card.remove("securityRequirements");
    card.remove("security");
    let caps = card
        .entry("capabilities")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(caps) = caps.as_object_mut() {
        let ext = caps
            .entry("extensions")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Some(list) = ext.as_array_mut()
            && !list
                .iter()
                .any(|e| e["uri"] == agentmesh_iatp::A2A_EXTENSION)
        {
            // No `required: false`: a default value, which proto-based
            // verifiers drop before canonicalising.
            list.push(json!({
                "uri": agentmesh_iatp::A2A_EXTENSION,
                "description": "AgentMesh IATP: present a trust attestation in message metadata",
            }));
        }
    }
    Ok(Value::Object(card))
}

/// A strong validator for the served card.
pub fn etag(card_text: &str) -> String {
    let d = agentmesh_identity::sha256(card_text.as_bytes());
    format!("\"{}\"", URL_SAFE_NO_PAD.encode(&d[..12]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream() -> Value {
        json!({
            "name": "echo", "description": "d", "version": "1.0.0",
            "supportedInterfaces": [
                {"url": "http://127.0.0.1:9/", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
                {"url": "http://127.0.0.1:9/grpc", "protocolBinding": "GRPC", "protocolVersion": "1.0"},
                {"url": "http://127.0.0.1:9/rest", "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"}
            ],
            "capabilities": {"streaming": true},
            "securitySchemes": {"x": {"apiKeySecurityScheme": {"location": "header", "name": "k"}}},
            "skills": [{"id": "echo", "name": "Echo", "description": "e", "tags": ["t"]}]
        })
    }

    #[test]
    fn rewriting_points_at_the_gateway_and_the_signature_verifies() {
        let up = upstream();
        assert_eq!(
            endpoints(&up),
            Endpoints {
                jsonrpc: Some("http://127.0.0.1:9".into()),
                rest: Some("http://127.0.0.1:9/rest".into())
            }
        );
        let mut card = rewrite(&up, "http://gw/", Some("http://gw/rest")).expect("rewrite");
        let urls: Vec<&str> = card["supportedInterfaces"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|i| i["url"].as_str())
            .collect();
        assert_eq!(urls, ["http://gw/", "http://gw/rest"]);
        assert!(card.get("securitySchemes").is_none());
        let key = KeyPair::from_seed(&[7; 32]);
        sign_card(
            &mut card,
            &key,
            "k1",
            Some("http://gw/.well-known/jwks.json"),
        );
        let jwk = &jwks(key.public(), "k1")["keys"][0];
        let keys = [CardKey::from_jwk(jwk).expect("jwk")];
        assert_eq!(
            verify_card(&card, &keys).expect("verifies"),
            Some("k1".into())
        );
        // Any change to the card breaks it.
        let mut tampered = card.clone();
        tampered["supportedInterfaces"][0]["url"] = Value::from("http://evil/");
        assert!(matches!(
            verify_card(&tampered, &keys),
            Err(CardError::NoKey(_))
        ));
        // Another key does not verify it.
        let other =
            [
                CardKey::from_jwk(&jwks(KeyPair::from_seed(&[8; 32]).public(), "k1")["keys"][0])
                    .expect("jwk"),
            ];
        assert!(verify_card(&card, &other).is_err());
        assert_eq!(verify_card(&up, &keys).expect("unsigned"), None);
    }

    #[test]
    fn zero_three_cards_are_rewritten_too() {
        let up = json!({"name": "old", "url": "http://127.0.0.1:9/", "preferredTransport": "JSONRPC",
            "protocolVersion": "0.3.0",
            "additionalInterfaces": [{"url": "http://127.0.0.1:9/", "transport": "JSONRPC"},
                                      {"url": "http://127.0.0.1:9/grpc", "transport": "GRPC"}]});
        let card = rewrite(&up, "http://gw/", None).expect("rewrite");
        assert_eq!(card["url"], "http://gw/");
        assert_eq!(
            card["additionalInterfaces"].as_array().map(Vec::len),
            Some(1)
        );
        assert!(rewrite(&json!({"name": "x"}), "http://gw/", None).is_err());
        assert!(rewrite(&json!([1]), "http://gw/", None).is_err());
    }

    #[test]
    fn hostile_signatures_are_errors_not_panics() {
        let keys =
            [
                CardKey::from_jwk(&jwks(KeyPair::from_seed(&[7; 32]).public(), "k")["keys"][0])
                    .expect("jwk"),
            ];
        for sigs in [
            json!([{}]),
            json!([{"protected": "!!", "signature": "AA"}]),
            json!([{"protected": "e30", "signature": "!!"}]),
            json!([{"protected": "e30", "signature": ""}]),
        ] {
            let mut c = upstream();
            c["signatures"] = sigs;
            assert!(verify_card(&c, &keys).is_err());
        }
        assert!(CardKey::from_jwk(&json!({"kty": "EC", "crv": "P-384"})).is_err());
        assert!(CardKey::from_jwk(&json!({"kty": "OKP", "crv": "Ed25519", "x": "AA"})).is_err());
    }

    #[test]
    fn unsafe_urls_are_dropped_and_interfaces_stay_at_the_configured_origin() {
        let up = json!({
            "name": "echo",
            "iconUrl": "javascript:alert(1)",
            "documentationUrl": "https://docs.example.com/echo",
            "provider": {"organization": "x", "url": "data:text/html,<script>1</script>"},
            "supportedInterfaces": [
                {"url": "http://evil.example:9/a2a", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
            ],
            "capabilities": {"extensions": [{"uri": "urn:example:ext"}, {"uri": "file:///etc/passwd"}]},
            "skills": [{"id": "s", "name": "s", "examples": ["javascript: is just text here"]}]
        });
        let card = rewrite(&up, "http://gw/", None).expect("rewrite");
        assert!(card.get("iconUrl").is_none());
        assert_eq!(card["documentationUrl"], "https://docs.example.com/echo");
        assert!(card["provider"].get("url").is_none());
        let exts = card["capabilities"]["extensions"].as_array().expect("exts");
        assert!(exts.iter().any(|e| e["uri"] == "urn:example:ext"));
        assert!(!exts.iter().any(|e| e["uri"] == "file:///etc/passwd"));
        assert_eq!(
            card["skills"][0]["examples"][0],
            "javascript: is just text here"
        );
        // Where the gateway sends messages: the card's path, the configured
        // origin.
        let e = endpoints(&up);
        assert_eq!(
            rebase(
                e.jsonrpc.as_deref().expect("jsonrpc"),
                "http://127.0.0.1:8001"
            )
            .as_deref(),
            Some("http://127.0.0.1:8001/a2a")
        );
        assert_eq!(rebase("javascript:alert(1)", "http://127.0.0.1:8001"), None);
    }
}
