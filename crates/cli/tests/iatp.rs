//! The IATP handshake on the wire: two `agentmesh iatp serve` peers on
//! loopback complete it both ways; a replayed response, a response signed
//! by another key, an expired challenge, a response bound to another
//! channel and a peer whose registry trust is below the threshold each
//! fail with their own reason; manifests are served and read; every
//! outcome is an audit leaf.

mod support;

use agentmesh_iatp::http::{ClientError, HandshakeClient};
use agentmesh_iatp::{Response, origin_channel};
use agentmesh_identity::KeyPair;
use serde_json::Value;
use support::{Home, free_port};

fn serve(h: &Home, agent: &str, extra: &[&str]) -> (support::Proc, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["iatp", "serve", "--agent", agent, "--listen", &listen];
    args.extend_from_slice(extra);
    let p = h.spawn(&args, port);
    (p, format!("http://{listen}"))
}

fn refused(r: Result<String, ClientError>) -> String {
    match r {
        Ok(a) => panic!("accepted: {a}"),
        Err(e) => e.code(),
    }
}

#[test]
fn two_peers_complete_the_handshake_and_every_failure_has_its_own_reason() {
    let h = Home::new();
    for a in ["alpha", "beta", "low"] {
        h.agent(a, "read:reports");
    }
    // One failed task: trust 0.47, still active, below the default 0.5.
    h.ok(&["trust", "record", "low", "--event", "task-failure"]);
    let (_beta, beta) = serve(&h, "beta", &[]);
    let (_alpha, alpha) = serve(&h, "alpha", &[]);
    let (_short, short) = serve(&h, "beta", &["--challenge-ttl", "1"]);

    // Both ways, each side checking the other in its registry.
    let done = h.json(&[
        "iatp",
        "handshake",
        &beta,
        "--agent",
        "alpha",
        "--expect",
        "beta",
    ]);
    assert_eq!(done["peer"]["name"], "beta", "{done}");
    assert_eq!(done["attested"]["name"], "alpha", "{done}");
    assert_eq!(done["attested"]["capabilities"][0], "read:reports");
    assert!(
        done["attestation"]
            .as_str()
            .is_some_and(|a| a.starts_with("amat1."))
    );
    let back = h.json(&[
        "iatp",
        "handshake",
        &alpha,
        "--agent",
        "beta",
        "--expect",
        "alpha",
    ]);
    assert_eq!(back["attested"]["name"], "beta", "{back}");
    // Expecting someone else: the peer's signed challenge gives it away.
    let out = h.run(&[
        "iatp",
        "handshake",
        &beta,
        "--agent",
        "alpha",
        "--expect",
        "low",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong_peer"));
    // Trust below the threshold, from beta's registry.
    let out = h.run(&["iatp", "handshake", &beta, "--agent", "low"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("trust_below_threshold"), "{err}");

    // The wire-level failures, with alpha's real key.
    let key = agentmesh_store::read_private_key(&h.path.join("keys/agents/alpha.key"))
        .expect("alpha's key");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = HandshakeClient::new();
        // Replayed.
        let c = client
            .challenge(&beta, &key.did())
            .await
            .expect("challenge");
        let r = Response::answer(&c, &key, &origin_channel(&beta)).expect("randomness");
        client.respond(&beta, &r).await.expect("first answer");
        assert_eq!(refused(client.respond(&beta, &r).await), "replayed");
        // Signed by another key, claiming to be alpha.
        let c = client
            .challenge(&beta, &key.did())
            .await
            .expect("challenge");
        let mut forged =
            Response::answer(&c, &KeyPair::from_seed(&[9; 32]), &origin_channel(&beta))
                .expect("randomness");
        forged.prover = key.did().to_string();
        assert_eq!(
            refused(client.respond(&beta, &forged).await),
            "bad_signature"
        );
        // Bound to another channel (relayed through someone else).
        let c = client
            .challenge(&beta, &key.did())
            .await
            .expect("challenge");
        let r =
            Response::answer(&c, &key, &origin_channel("http://127.0.0.1:1")).expect("randomness");
        assert_eq!(refused(client.respond(&beta, &r).await), "channel_mismatch");
        // Expired.
        let c = client
            .challenge(&short, &key.did())
            .await
            .expect("challenge");
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        let r = Response::answer(&c, &key, &origin_channel(&short)).expect("randomness");
        assert_eq!(
            refused(client.respond(&short, &r).await),
            "challenge_expired"
        );
        // Malformed.
        let (status, v) = client
            .post(
                &format!("{beta}/.well-known/iatp/response"),
                &serde_json::json!({"profile": 1}),
            )
            .await
            .expect("answer");
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (400, Some("malformed"))
        );
    });

    // Manifests: served from the registry, read back in the spec shape.
    let m = h.json(&["iatp", "manifest", &beta]);
    assert_eq!(
        (m["agent_id"].as_str(), m["shape"].as_str()),
        (Some("beta"), Some("spec")),
        "{m}"
    );

    // Every outcome is an audit leaf with its reason; the completed ones are
    // trust events for the prover.
    h.audit_until(|entries| {
        entries
            .iter()
            .any(|e| e["event"] == "trust.event" && e["detail"]["kind"] == "handshake")
    });
    h.audit_until(|entries| {
        let hs: Vec<&Value> = entries
            .iter()
            .filter(|e| e["event"] == "iatp.handshake")
            .collect();
        let reasons: Vec<&str> = hs
            .iter()
            .filter_map(|e| e["detail"]["reason"].as_str())
            .collect();
        hs.iter().filter(|e| e["decision"] == "allow").count() >= 3
            && [
                "replayed",
                "bad_signature",
                "channel_mismatch",
                "challenge_expired",
                "trust_below_threshold",
            ]
            .iter()
            .all(|r| reasons.contains(r))
    });
}

#[test]
fn the_mcp_gateway_accepts_an_attestation_in_meta_or_as_a_bearer() {
    let Some(python) = support::need("AGENTMESH_PEERS_PYTHON") else {
        return;
    };
    let h = Home::new();
    h.agent("caller", "call:fixture:echo");
    h.write(
        "policy.yaml",
        "version: \"1.0\"\nagents: [\"*\"]\nsponsor: alice@company.com\ndefault_action: deny\nrules:\n  - name: calls\n    condition: \"action.type == 'tool_call'\"\n    action: allow\n",
    );
    let (_fixture, fport) = support::mcp_fixture(&python);
    let port = free_port();
    let cfg = h.write(
        "gw.yaml",
        &format!(
            "listen: 127.0.0.1:{port}\npolicy: policy.yaml\nupstreams:\n  - name: fixture\n    url: http://127.0.0.1:{fport}/mcp\n"
        ),
    );
    let _gw = h.spawn(
        &["mcp", "gateway", "--config", cfg.to_str().expect("utf-8")],
        port,
    );
    let done = h.json(&[
        "iatp",
        "handshake",
        &format!("http://127.0.0.1:{port}"),
        "--agent",
        "caller",
    ]);
    let att = done["attestation"]
        .as_str()
        .expect("attestation")
        .to_owned();
    let call = |meta_att: Option<&str>, bearer: Option<&str>| {
        let mut meta = serde_json::json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        });
        if let Some(a) = meta_att {
            meta["dev.agentmesh/iatp"] = serde_json::json!({"attestation": a});
        }
        let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "attested"}, "_meta": meta}});
        let auth = bearer.map(|b| format!("Bearer {b}"));
        let mut headers = vec![
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        let (status, _, out) =
            support::raw(port, "POST", "/mcp", &headers, body.to_string().as_bytes());
        (status, out)
    };
    let (s, out) = call(Some(&att), None);
    assert_eq!(s, 200, "{out}");
    assert!(
        out.contains("attested") && !out.contains("\"error\""),
        "{out}"
    );
    let (s, out) = call(None, Some(&att));
    assert_eq!(s, 200, "{out}");
    assert!(out.contains("attested"), "{out}");
    let mut bad = att.into_bytes();
    bad[12] = if bad[12] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).expect("ascii");
    let (s, out) = call(Some(&bad), None);
    assert_eq!(s, 401, "{out}");
    let (s, _) = call(None, None);
    assert_eq!(s, 401);
}
