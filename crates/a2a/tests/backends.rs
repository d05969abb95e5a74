//! The extension point for agents whose skills come from elsewhere: an
//! agent configured without an upstream `url` is served by the backend
//! registered for it, and a gateway never starts with such an agent
//! unserved (fail closed) or with a backend nobody configured.

use agentmesh_a2a::backend::{AgentBackend, BoxFuture, Judged};
use agentmesh_a2a::config::A2aConfig;
use agentmesh_a2a::gateway::{Gateway, StartError};
use agentmesh_engine::{Engine, EngineConfig};
use agentmesh_identity::KeyPair;
use agentmesh_policy::{PolicyHandle, PolicySet};
use agentmesh_store::{Mesh, MeshHome, unix_now};
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;

const POLICY: &str = r#"
version: "1.0"
agents: ["*"]
default_action: deny
rules: []
"#;

/// A backend with a fixed card; it is never asked anything here.
#[derive(Debug)]
struct Fixed;

impl AgentBackend for Fixed {
    fn card<'a>(&'a self, name: &'a str, base: &'a str) -> BoxFuture<'a, Result<Value, String>> {
        Box::pin(async move {
            let url = format!("{base}/");
            agentmesh_a2a::card::rewrite(
                &json!({
                    "name": name,
                    "description": "a fixed test agent",
                    "version": "1.0.0",
                    "supportedInterfaces": [
                        {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
                    ],
                    "capabilities": {},
                    "defaultInputModes": ["text/plain"],
                    "defaultOutputModes": ["text/plain"],
                    "skills": [{"id": "s", "name": "s", "description": "s", "tags": []}],
                }),
                &url,
                None,
            )
            .map_err(|e| e.to_string())
        })
    }

    fn answer<'a>(&'a self, _gw: &'a Gateway, _call: Judged<'a>) -> BoxFuture<'a, Response> {
        Box::pin(async { Response::new(axum::body::Body::empty()) })
    }

    fn describe(&self) -> String {
        "a fixed test backend".into()
    }
}

async fn engine(dir: &std::path::Path) -> Engine {
    let home = MeshHome::init(&dir.join("home"), "example.org", unix_now())
        .await
        .expect("init");
    let mesh = Mesh::open(home).await.expect("open");
    let set = PolicySet::from_yaml(POLICY, "test.yaml").expect("policy");
    Engine::start(mesh, PolicyHandle::new(set), EngineConfig::default())
        .await
        .expect("engine")
}

fn config(agents: &str) -> A2aConfig {
    A2aConfig::parse(&format!(
        "listen: 127.0.0.1:0\npolicy: p.yaml\nagents:\n{agents}"
    ))
    .expect("config")
}

fn refused(r: Result<Gateway, StartError>) -> String {
    match r {
        Ok(_) => panic!("the gateway was built"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_without_an_upstream_are_served_by_their_backend_or_not_at_all() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path()).await;
    let key = || KeyPair::generate().expect("key");
    let tools = "  - name: tools\n    mcp: http://127.0.0.1:1/mcp\n";

    // `mcp:` without the bridge installed: refused, and the error says why.
    let e = refused(
        Gateway::builder(config(tools), engine.clone(), key(), None)
            .build()
            .await,
    );
    assert!(
        e.contains("agent `tools`") && e.contains("agentmesh-bridge"),
        "{e}"
    );

    // A backend for an agent nobody configured, or for one with an
    // upstream, or twice for one agent: refused.
    for (agents, name, says) in [
        (tools, "other", "does not list"),
        (
            "  - name: echo\n    url: http://127.0.0.1:1\n",
            "echo",
            "upstream `url`",
        ),
    ] {
        let e = refused(
            Gateway::builder(config(agents), engine.clone(), key(), None)
                .backend(name, Arc::new(Fixed))
                .build()
                .await,
        );
        assert!(e.contains(name) && e.contains(says), "{e}");
    }
    let e = refused(
        Gateway::builder(config(tools), engine.clone(), key(), None)
            .backend("tools", Arc::new(Fixed))
            .backend("tools", Arc::new(Fixed))
            .build()
            .await,
    );
    assert!(e.contains("two backends"), "{e}");

    // With its backend, the agent's card is the backend's, signed by the
    // gateway, and the start-up log says where it comes from.
    let gw = Gateway::builder(config(tools), engine.clone(), key(), None)
        .backend("tools", Arc::new(Fixed))
        .build()
        .await
        .expect("built");
    let agents = gw.agents();
    assert_eq!(agents.len(), 1);
    assert!(agents[0].backend);
    assert_eq!(&*agents[0].name, "tools");
    let card: Value = serde_json::from_str(&agents[0].card).expect("card");
    assert_eq!(card["description"], "a fixed test agent");
    assert!(card["signatures"].as_array().is_some_and(|s| !s.is_empty()));
    assert!(gw.describe()[0].contains("a fixed test backend"));
    assert!(gw.agent(1).is_none());
    engine.shutdown().await.expect("shutdown");
}
