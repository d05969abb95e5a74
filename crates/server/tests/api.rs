//! The control plane over a real socket, on the embedded SQLite registry
//! and on PostgreSQL (`AGENTMESH_TEST_POSTGRES_URL`; `.ci/run` sets it).

use agentmesh_audit::{parse_hex, verify_inclusion};
use agentmesh_identity::KeyPair;
use agentmesh_server::client::{ControlPlane, FeedEvent, follow_events};
use agentmesh_server::pop::{
    CredentialRequest, RegistrationRequest, approval_message, sign_approval,
};
use agentmesh_server::routes::{Auth, BodyKind, ROUTES};
use agentmesh_server::{AppState, ServeConfig};
use agentmesh_store::{KeyKind, Mesh, MeshHome, SqlRegistry, unix_now};
use hyper::Method;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "test-admin-token-0123456789";

struct Server {
    _dir: tempfile::TempDir,
    cp: ControlPlane,
    home: MeshHome,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.abort();
    }
}

async fn postgres_url() -> Option<String> {
    let Ok(base) = std::env::var("AGENTMESH_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must set AGENTMESH_TEST_POSTGRES_URL"
        );
        eprintln!("skipping the PostgreSQL backend: AGENTMESH_TEST_POSTGRES_URL is not set");
        return None;
    };
    Some(
        agentmesh_store::postgres_test_schema(&base)
            .await
            .expect("test schema"),
    )
}

async fn start(database: Option<&str>) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = MeshHome::init(&dir.path().join("home"), "test.local", unix_now())
        .await
        .expect("home");
    let sql = match database {
        Some(url) => SqlRegistry::connect_postgres(url).await.expect("pg"),
        None => home.registry().await.expect("sqlite"),
    };
    let mesh = Mesh::new(home.clone(), Arc::new(sql.clone()));
    let state = AppState::new(
        mesh,
        sql,
        TOKEN,
        ServeConfig {
            replica: "test".into(),
            ..ServeConfig::default()
        },
    )
    .await
    .expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = agentmesh_server::serve(state, listener, async {
            let _ = rx.await;
        })
        .await;
    });
    let cp = ControlPlane::new(&format!("http://{addr}"), Some(TOKEN)).expect("client");
    Server {
        _dir: dir,
        cp,
        home,
        stop: Some(tx),
        task,
    }
}

async fn call(s: &Server, method: Method, path: &str, body: Option<Value>) -> Value {
    s.cp.call(method.clone(), path, body.as_ref())
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

async fn status_of(
    s: &Server,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
    bearer: Option<&str>,
) -> (u16, Value) {
    let anon = ControlPlane::new(s.cp.url(), None).expect("client");
    let (st, bytes) = anon
        .send(method, path, body, bearer)
        .await
        .expect("request");
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (st.as_u16(), v)
}

async fn challenge(s: &Server, kind: &str) -> String {
    let v = call(s, Method::POST, &format!("/v1/{kind}/challenge"), None).await;
    v["nonce"].as_str().expect("nonce").to_owned()
}

fn registration(name: &str, key: &KeyPair, nonce: &str, mesh: &str) -> RegistrationRequest {
    RegistrationRequest {
        name: name.into(),
        sponsor: "alice@example.com".into(),
        capabilities: vec!["read:*".into(), "tool:search".into()],
        did: key.did().to_did_key().to_string(),
        parent: None,
        expires_at: None,
        nonce: nonce.into(),
        timestamp: unix_now(),
        signature: String::new(),
    }
    .sign(key, mesh)
}

async fn credential_for(s: &Server, key: &KeyPair, mesh: &str) -> (u16, Value) {
    let nonce = challenge(s, "credentials").await;
    let req = CredentialRequest {
        did: key.did().to_string(),
        audience: None,
        ttl_secs: None,
        nonce,
        timestamp: unix_now(),
        signature: String::new(),
    }
    .sign(key, mesh);
    status_of(
        s,
        Method::POST,
        "/v1/credentials",
        Some(serde_json::to_vec(&req).expect("json")),
        None,
    )
    .await
}

/// Everything a client does, end to end.
async fn round_trip(s: &Server) {
    let health = call(s, Method::GET, "/healthz", None).await;
    assert_eq!(health["status"], "ok");
    let mesh = call(s, Method::GET, "/v1/authority", None).await["mesh"]
        .as_str()
        .expect("mesh")
        .to_owned();

    call(
        s,
        Method::POST,
        "/v1/sponsors",
        Some(json!({"email": "alice@example.com", "capabilities": ["read:*", "tool:*"]})),
    )
    .await;
    let sponsors = call(s, Method::GET, "/v1/sponsors", None).await;
    assert_eq!(sponsors["sponsors"][0]["email"], "alice@example.com");

    // Registration with proof of possession, then the sponsor's approval
    // (signed with the sponsor's key, as the CLI does).
    let key = KeyPair::generate().expect("key");
    let nonce = challenge(s, "registrations").await;
    let req = registration("researcher", &key, &nonce, &mesh);
    let (st, reg) = status_of(
        s,
        Method::POST,
        "/v1/registrations",
        Some(serde_json::to_vec(&req).expect("json")),
        None,
    )
    .await;
    assert_eq!(st, 202, "{reg}");
    assert_eq!(reg["state"], "pending");
    let id = reg["id"].as_str().expect("id").to_owned();

    // Not approved yet: no credential.
    let (st, err) = credential_for(s, &key, &mesh).await;
    assert_eq!(st, 403, "{err}");
    assert_eq!(err["error"]["code"], "unknown_agent");

    // An approval signed by the wrong key is refused.
    let cap_names = vec!["read:*".to_string(), "tool:search".to_string()];
    let did = key.did();
    let msg = approval_message(&mesh, &id, &did, "researcher", &cap_names);
    let wrong = sign_approval(&KeyPair::generate().expect("key"), &msg);
    let (st, err) = status_of(
        s,
        Method::POST,
        &format!("/v1/registrations/{id}/approve"),
        Some(json!({"sponsor_signature": wrong}).to_string().into_bytes()),
        Some(TOKEN),
    )
    .await;
    assert_eq!(st, 403, "{err}");
    let sponsor_key = s
        .home
        .read_key(KeyKind::Sponsor("alice@example.com"))
        .expect("sponsor key");
    let good = sign_approval(&sponsor_key, &msg);
    let approved = call(
        s,
        Method::POST,
        &format!("/v1/registrations/{id}/approve"),
        Some(json!({"sponsor_signature": good})),
    )
    .await;
    assert_eq!(approved["agent"]["status"], "active");
    assert_eq!(approved["registration"]["state"], "approved");

    // A credential, used on an agent route, then revoked.
    let (st, cred) = credential_for(s, &key, &mesh).await;
    assert_eq!(st, 201, "{cred}");
    let text = cred["credential"].as_str().expect("credential").to_owned();
    assert!(cred["expires_at"].as_u64().expect("exp") <= unix_now() + 15 * 60);
    let (st, me) = status_of(s, Method::GET, "/v1/me", None, Some(&text)).await;
    assert_eq!(st, 200, "{me}");
    assert_eq!(me["agent"]["name"], "researcher");
    call(
        s,
        Method::POST,
        "/v1/credentials/revoke",
        Some(json!({"credential": text, "reason": "test"})),
    )
    .await;
    let (st, _) = status_of(s, Method::GET, "/v1/me", None, Some(&text)).await;
    assert_eq!(st, 401);

    // Delegation: issued and revoked through the API.
    let d = call(
        s,
        Method::POST,
        "/v1/delegations",
        Some(json!({"from": "alice@example.com", "to": "researcher", "capabilities": ["read:*"], "ttl_secs": 600})),
    )
    .await;
    let token = d["token"].as_str().expect("token").to_owned();
    assert!(token.starts_with("amdt1."));
    call(
        s,
        Method::POST,
        "/v1/delegations/revoke",
        Some(json!({"token": token})),
    )
    .await;

    // Policy: invalid refused with the reason, valid stored.
    let (st, err) = status_of(
        s,
        Method::PUT,
        "/v1/policy",
        Some(b"policies:\n  - name: p\n    bogus_key: 1\n".to_vec()),
        Some(TOKEN),
    )
    .await;
    assert_eq!(st, 400, "{err}");
    assert_eq!(err["error"]["code"], "invalid_policy");
    let policy = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/policies/seed.yaml"
    ))
    .expect("seed policy");
    let (st, put) = status_of(
        s,
        Method::PUT,
        "/v1/policy",
        Some(policy.clone().into_bytes()),
        Some(TOKEN),
    )
    .await;
    assert_eq!(st, 200, "{put}");
    let got = call(s, Method::GET, "/v1/policy", None).await;
    assert_eq!(got["yaml"].as_str(), Some(policy.as_str()));

    // Approvals: a gateway stores one, a human approves it.
    let approval = json!({
        "id": "ap_1", "caller": did.to_string(), "action": "send_email",
        "arguments_sha256": "00", "policy_version": "v", "rule": "p/r",
        "approvers": ["alice@example.com"], "state": "pending",
        "decided_by": null, "decided_at": null, "reason": null,
        "created_at": unix_now(), "expires_at": unix_now() + 300,
        "summary": {"tool": "send_email"},
    });
    call(s, Method::POST, "/v1/approvals", Some(approval)).await;
    let (st, err) = status_of(
        s,
        Method::POST,
        "/v1/approvals/ap_1/approve",
        Some(br#"{"by":"mallory@example.com"}"#.to_vec()),
        Some(TOKEN),
    )
    .await;
    assert_eq!(st, 403, "{err}");
    let a = call(
        s,
        Method::POST,
        "/v1/approvals/ap_1/approve",
        Some(json!({"by": "alice@example.com"})),
    )
    .await;
    assert_eq!(a["state"], "approved");

    // Bulk registration and paging.
    let agents: Vec<Value> = (0..150)
        .map(|i| {
            let k = KeyPair::from_seed(&[i as u8 + 1; 32]);
            json!({"name": format!("bulk-{i:03}"), "did": k.did().to_string(), "capabilities": ["read:*"]})
        })
        .collect();
    let b = call(
        s,
        Method::POST,
        "/v1/agents/bulk",
        Some(json!({"sponsor": "alice@example.com", "agents": agents})),
    )
    .await;
    assert_eq!(b["created"], 150);
    // The same batch again: all or nothing, a conflict.
    let (st, e) = status_of(
        s,
        Method::POST,
        "/v1/agents/bulk",
        Some(
            json!({"sponsor": "alice@example.com", "agents": agents})
                .to_string()
                .into_bytes(),
        ),
        Some(TOKEN),
    )
    .await;
    assert_eq!(st, 409, "{e}");
    let page = call(s, Method::GET, "/v1/agents?limit=100", None).await;
    assert_eq!(page["agents"].as_array().map(|a| a.len()), Some(100));
    let next = page["next_after"].as_str().expect("next").to_owned();
    let page2 = call(
        s,
        Method::GET,
        &format!("/v1/agents?after={next}&limit=100"),
        None,
    )
    .await;
    assert_eq!(page2["agents"].as_array().map(|a| a.len()), Some(51));

    // Every mutation above is in the audit log, and a proof verifies.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let log = call(s, Method::GET, "/v1/audit?limit=1000", None).await;
    let events: Vec<&str> = log["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["entry"]["event"].as_str())
        .collect();
    for wanted in [
        "sponsor.created",
        "registration.requested",
        "registration.approved",
        "agent.imported",
        "credential.issued",
        "credential.revoked",
        "delegation.issued",
        "delegation.revoked",
        "policy.published",
        "approval.decided",
        "agent.bulk_imported",
    ] {
        assert!(events.contains(&wanted), "{wanted} not audited: {events:?}");
    }
    let p = call(s, Method::GET, "/v1/audit/2/proof", None).await;
    let leaf = parse_hex(p["leaf_hash"].as_str().expect("leaf")).expect("hex");
    let root = parse_hex(p["root"].as_str().expect("root")).expect("hex");
    let path: Vec<[u8; 32]> = p["proof"]
        .as_array()
        .expect("proof")
        .iter()
        .map(|h| parse_hex(h.as_str().expect("h")).expect("hex"))
        .collect();
    verify_inclusion(&leaf, 2, p["size"].as_u64().expect("size"), &path, &root)
        .expect("the proof verifies");

    // Compliance report and metrics read real state.
    let report = call(s, Method::GET, "/v1/compliance/report", None).await;
    assert!(!report["reports"].as_array().expect("reports").is_empty());
    let (_, metrics) =
        s.cp.send(Method::GET, "/metrics", None, None)
            .await
            .expect("metrics");
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("agentmesh_credentials_issued_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("agentmesh_registrations_total{result=\"approved\"} 1"));
}

/// Registration refusals, each with its own reason.
async fn proof_of_possession_failures(s: &Server) {
    let mesh = call(s, Method::GET, "/v1/authority", None).await["mesh"]
        .as_str()
        .expect("mesh")
        .to_owned();
    let key = KeyPair::generate().expect("key");
    let post = |req: &RegistrationRequest| serde_json::to_vec(req).expect("json");

    // No proof: an empty signature.
    let nonce = challenge(s, "registrations").await;
    let mut req = registration("nopop", &key, &nonce, &mesh);
    req.signature = String::new();
    let (st, e) = status_of(s, Method::POST, "/v1/registrations", Some(post(&req)), None).await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (401, Some("pop_signature_encoding"))
    );

    // Key mismatch: signed by another key than the one registered.
    let other = KeyPair::generate().expect("key");
    let mut req = registration("mismatch", &other, &nonce, &mesh);
    req.did = key.did().to_string();
    let (st, e) = status_of(s, Method::POST, "/v1/registrations", Some(post(&req)), None).await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (401, Some("pop_key_mismatch"))
    );

    // Altered after signing.
    let mut req = registration("altered", &key, &nonce, &mesh);
    req.capabilities.push("admin:*".into());
    let (st, e) = status_of(s, Method::POST, "/v1/registrations", Some(post(&req)), None).await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (401, Some("pop_key_mismatch"))
    );

    // Signed for another mesh.
    let req = registration("elsewhere", &key, &nonce, "did:mesh:z6MkOtherMesh");
    let (st, _) = status_of(s, Method::POST, "/v1/registrations", Some(post(&req)), None).await;
    assert_eq!(st, 401);

    // Stale timestamp.
    let mut req = registration("stale", &key, &nonce, &mesh);
    req.timestamp -= 600;
    let req = req.sign(&key, &mesh);
    let (st, e) = status_of(s, Method::POST, "/v1/registrations", Some(post(&req)), None).await;
    assert_eq!((st, e["error"]["code"].as_str()), (401, Some("pop_stale")));

    // A nonce the server never issued, and a replayed one.
    let req = registration(
        "forged-nonce",
        &key,
        "00112233445566778899aabbccddeeff",
        &mesh,
    );
    let (st, e) = status_of(s, Method::POST, "/v1/registrations", Some(post(&req)), None).await;
    assert_eq!((st, e["error"]["code"].as_str()), (401, Some("pop_nonce")));
    let req = registration("first", &key, &nonce, &mesh);
    let (st, _) = status_of(s, Method::POST, "/v1/registrations", Some(post(&req)), None).await;
    assert_eq!(st, 202);
    let req2 = registration("replayed", &key, &nonce, &mesh);
    let (st, e) = status_of(
        s,
        Method::POST,
        "/v1/registrations",
        Some(post(&req2)),
        None,
    )
    .await;
    assert_eq!((st, e["error"]["code"].as_str()), (401, Some("pop_nonce")));

    // Rejected by the sponsor: never active, no credential.
    let list = call(s, Method::GET, "/v1/registrations", None).await;
    let id = list["registrations"]
        .as_array()
        .expect("list")
        .iter()
        .find(|r| r["name"] == "first")
        .and_then(|r| r["id"].as_str())
        .expect("pending registration")
        .to_owned();
    call(
        s,
        Method::POST,
        &format!("/v1/registrations/{id}/reject"),
        Some(json!({"reason": "not ours"})),
    )
    .await;
    let (st, e) = credential_for(s, &key, &mesh).await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (403, Some("unknown_agent"))
    );
    let (st, _) = status_of(
        s,
        Method::POST,
        &format!("/v1/registrations/{id}/approve"),
        None,
        Some(TOKEN),
    )
    .await;
    assert_eq!(st, 409, "a rejected registration cannot be approved");
}

fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| if seg.starts_with('{') { "x" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

fn method(m: &str) -> Method {
    Method::from_bytes(m.as_bytes()).expect("method")
}

/// Every admin route refuses a request without (or with a wrong) token,
/// mutations included; every route with a body answers malformed bodies
/// with a 4xx and a JSON error, never a 5xx.
async fn hostile_input(s: &Server) {
    for r in ROUTES
        .iter()
        .filter(|r| matches!(r.auth, Auth::Admin | Auth::Gateway | Auth::GatewayOnly))
    {
        let path = concrete(r.path);
        for bearer in [None, Some("wrong-token-wrong-token")] {
            let body = (r.body != BodyKind::None).then(|| r.example.as_bytes().to_vec());
            let (st, e) = status_of(s, method(r.method), &path, body, bearer).await;
            assert_eq!(st, 401, "{} {path} with {bearer:?}: {e}", r.method);
            assert_eq!(e["error"]["code"], "unauthenticated");
        }
    }
    let deep = "[".repeat(100_000);
    let huge = vec![b'a'; 2 << 20];
    let cases: Vec<Vec<u8>> = vec![
        b"{".to_vec(),
        b"[]".to_vec(),
        // serde reads a struct from an array too; the schema says object.
        b"[null, null]".to_vec(),
        b"null".to_vec(),
        b"\"text\"".to_vec(),
        b"{\"unknown_field\": 1}".to_vec(),
        b"\xff\xfe\xfd".to_vec(),
        deep.into_bytes(),
        huge,
        br#"{"name": 1, "sponsor": [], "capabilities": "x", "did": {}, "nonce": null, "timestamp": -1, "signature": 5, "email": 3, "agents": {}, "token": 1, "from": 1, "to": 1, "id": 1, "source": 1, "entries": 1, "credential": 1}"#.to_vec(),
    ];
    for r in ROUTES.iter().filter(|r| r.body != BodyKind::None) {
        let path = concrete(r.path);
        let bearer = match r.auth {
            Auth::Admin | Auth::Gateway | Auth::GatewayOnly => Some(TOKEN),
            _ => None,
        };
        for body in &cases {
            if body.len() > 1 << 20 {
                // The server answers 413 as soon as the body passes its
                // limit and closes the connection; a client still writing
                // the rest may see the close before the answer. Either is
                // a refusal that loses nothing; a 2xx or 5xx is not.
                let anon = ControlPlane::new(s.cp.url(), None).expect("client");
                match anon
                    .send(method(r.method), &path, Some(body.clone()), bearer)
                    .await
                {
                    Ok((st, _)) => assert!(
                        (400..500).contains(&st.as_u16()),
                        "{} {path} with an oversized body answered {st}",
                        r.method
                    ),
                    Err(e) => assert!(
                        e.to_string().contains("unreachable"),
                        "{} {path} with an oversized body: {e}",
                        r.method
                    ),
                }
                continue;
            }
            let (st, e) = status_of(s, method(r.method), &path, Some(body.clone()), bearer).await;
            assert!(
                (400..500).contains(&st),
                "{} {path} with a malformed body answered {st}: {e}",
                r.method
            );
            assert!(
                e["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{} {path}: no error message ({st}: {e})",
                r.method
            );
        }
    }
    // Still serving.
    assert_eq!(call(s, Method::GET, "/healthz", None).await["status"], "ok");
}

/// A revocation reaches a subscriber of the event stream within a second.
async fn revocation_is_pushed(s: &Server) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let follower = follow_events(s.cp.clone(), move |e| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(e);
        }
    });
    let first = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("connected");
    assert_eq!(first, Some(FeedEvent::Connected));
    let started = std::time::Instant::now();
    call(
        s,
        Method::POST,
        "/v1/agents/bulk-001/revoke",
        Some(json!({"reason": "compromised"})),
    )
    .await;
    loop {
        let e = tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .expect("a change within 2 s");
        if e == Some(FeedEvent::Change("revocation".into())) {
            break;
        }
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "pushed after {took:?}");
    follower.abort();
}

/// A gateway gets a voucher for its IATP key only with its own gateway
/// credential and proof of possession of the key; the voucher opens under
/// the mesh key for exactly that key; a revoked credential gets none.
async fn gateway_vouchers(s: &Server) {
    use agentmesh_iatp::Voucher;
    let issued = call(
        s,
        Method::POST,
        "/v1/gateways",
        Some(json!({"name": "edge-1"})),
    )
    .await;
    let (text, id) = (
        issued["credential"].as_str().expect("credential"),
        issued["id"].as_str().expect("id"),
    );
    let gw = ControlPlane::new(s.cp.url(), Some(text)).expect("client");
    let key = KeyPair::generate().expect("key");
    let (voucher, exp) = gw.vouch(&key, id).await.expect("vouched");
    let mesh = s.home.mesh_key().expect("mesh key");
    let (v, _) = Voucher::open(&voucher, &[*mesh.public()], &key.did(), unix_now()).expect("opens");
    assert_eq!(
        (v.name.as_str(), v.credential.as_str(), v.exp),
        ("edge-1", id, exp)
    );
    assert!(exp <= unix_now() + 15 * 60);
    // The voucher is no credential: it opens nothing at the control plane.
    let (st, _) = status_of(s, Method::GET, "/v1/snapshot", None, Some(&voucher)).await;
    assert_eq!(st, 401);
    // A proof by another key than the one named.
    let other = KeyPair::generate().expect("key");
    let at = unix_now();
    let sign = |k: &KeyPair, did: &str, at: u64| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k.sign(
            agentmesh_server::gateway_credential::VOUCH_REQUEST_DOMAIN,
            agentmesh_server::gateway_credential::vouch_request_message(id, did, at).as_bytes(),
        ))
    };
    let did = key.did().to_string();
    let body = |proof: String, at: u64| {
        Some(
            json!({"did": did, "at": at, "proof": proof})
                .to_string()
                .into_bytes(),
        )
    };
    let (st, e) = status_of(
        s,
        Method::POST,
        "/v1/gateways/vouch",
        body(sign(&other, &did, at), at),
        Some(text),
    )
    .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (401, Some("bad_proof")),
        "{e}"
    );
    // Stale.
    let old = at - 3600;
    let (st, e) = status_of(
        s,
        Method::POST,
        "/v1/gateways/vouch",
        body(sign(&key, &did, old), old),
        Some(text),
    )
    .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (400, Some("stale_proof")),
        "{e}"
    );
    // The admin token is not a gateway.
    let (st, e) = status_of(
        s,
        Method::POST,
        "/v1/gateways/vouch",
        body(sign(&key, &did, at), at),
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (403, Some("gateway_only")),
        "{e}"
    );
    // A revoked gateway credential gets no voucher.
    call(
        s,
        Method::POST,
        "/v1/credentials/revoke",
        Some(json!({"id": id, "reason": "decommissioned"})),
    )
    .await;
    let (st, e) = status_of(
        s,
        Method::POST,
        "/v1/gateways/vouch",
        body(sign(&key, &did, at), at),
        Some(text),
    )
    .await;
    assert_eq!(st, 401, "{e}");
    // Every voucher issued is audited.
    let log = call(s, Method::GET, "/v1/audit?limit=1000", None).await;
    assert!(log.to_string().contains("gateway.vouched"), "{log}");
}

async fn suite(s: &Server) {
    round_trip(s).await;
    gateway_vouchers(s).await;
    proof_of_possession_failures(s).await;
    hostile_input(s).await;
    revocation_is_pushed(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_on_sqlite() {
    let s = start(None).await;
    suite(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_on_postgres() {
    let Some(url) = postgres_url().await else {
        return;
    };
    let s = start(Some(&url)).await;
    suite(&s).await;
}

/// Policies whose conditions belong to the class that once panicked the
/// compiler (and so dropped the connection of `PUT /v1/policy`): each is a
/// JSON 400 naming the rule's position, and the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_that_crashed_the_compiler_get_a_json_400() {
    let s = start(None).await;
    let rule = |cond: &str| {
        format!(
            "agent: \"*\"\nrules:\n  - name: r\n    condition: {}\n    action: deny\n",
            serde_json::to_string(cond).expect("json string")
        )
        .into_bytes()
    };
    let long_chain = format!("{}1 > 0", "1 + ".repeat(1000));
    for (cond, want) in [
        ("size() > 0", "size() takes one value"),
        ("action.tool.size(1, 2) > 0", "size() takes one value"),
        ("[1, 2].map(x, x * 2).size() > 0", "exists() and all()"),
        ("{'a': 1}.size() > 0", "map literals"),
        ("action.tool.matches()", "matches() takes one pattern"),
        (long_chain.as_str(), "too deeply nested"),
    ] {
        let (st, e) = status_of(&s, Method::PUT, "/v1/policy", Some(rule(cond)), Some(TOKEN)).await;
        assert_eq!(st, 400, "{cond}: {e}");
        assert_eq!(e["error"]["code"], "invalid_policy", "{cond}: {e}");
        let msg = e["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.starts_with("policy:4:"), "{cond}: {msg}");
        assert!(msg.contains(want), "{cond}: {msg}");
    }
    // The condition from the report is valid CEL: published.
    let (st, put) = status_of(
        &s,
        Method::PUT,
        "/v1/policy",
        Some(rule("action.tool.size() > 0")),
        Some(TOKEN),
    )
    .await;
    assert_eq!(st, 200, "{put}");
    let got = call(&s, Method::GET, "/v1/policy", None).await;
    assert!(
        got["yaml"]
            .as_str()
            .unwrap_or_default()
            .contains("action.tool.size()"),
        "{got}"
    );
}

/// docs/openapi.json is generated from the route table; regenerate with
/// `AGENTMESH_WRITE_OPENAPI=1 cargo test -p agentmesh-server openapi`.
#[test]
fn openapi_document_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let generated =
        serde_json::to_string_pretty(&agentmesh_server::routes::openapi()).expect("json") + "\n";
    if std::env::var_os("AGENTMESH_WRITE_OPENAPI").is_some() {
        std::fs::write(path, &generated).expect("write");
    }
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "docs/openapi.json is stale: run AGENTMESH_WRITE_OPENAPI=1 cargo test -p agentmesh-server openapi"
    );
}

/// The route table (which the OpenAPI document and the hostile-input tests
/// come from) and the router agree: every `.route(…)` in api.rs, with each
/// of its methods, is in the table, and nothing else is.
#[test]
fn route_table_matches_the_router() {
    let src = include_str!("../src/api.rs");
    let start = src.find("Router::new()").expect("router");
    let end = src[start..].find(".fallback(").expect("fallback") + start;
    let mut routed = std::collections::BTreeSet::new();
    for chunk in src[start..end].split(".route(").skip(1) {
        let path = chunk.split('"').nth(1).expect("path");
        if path == "/" || path == "/dashboard" {
            continue; // the dashboard page, not part of the API
        }
        for (word, method) in [
            ("get(", "GET"),
            ("post(", "POST"),
            ("put(", "PUT"),
            ("delete(", "DELETE"),
        ] {
            if chunk.contains(word) {
                routed.insert((method.to_owned(), path.to_owned()));
            }
        }
    }
    let documented: std::collections::BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(routed, documented);
}
