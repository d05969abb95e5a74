//! Malformed and random input never panics; hot reload swaps atomically and
//! keeps the old policy when the new one is invalid; the published JSON
//! Schema matches the code.

use agentmesh_policy::{
    DecideContext, Outcome, PolicyHandle, PolicySet, ReloadEvent, Request, Watcher,
    compile_condition, policy_schema,
};
use proptest::prelude::*;
use std::sync::Arc;
use std::time::Duration;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_text_as_a_condition_never_panics(s in "\\PC{0,200}") {
        let _ = compile_condition(&s);
    }

    #[test]
    fn condition_like_text_never_panics(s in "[a-z_.()'\" =!<>&|\\[\\],0-9+*/%-]{0,120}") {
        let _ = compile_condition(&s);
    }

    #[test]
    fn random_yaml_never_panics(s in "\\PC{0,400}") {
        let _ = PolicySet::from_yaml(&s, "fuzz.yaml");
    }

    #[test]
    fn yaml_like_policies_never_panic(
        agent in "[a-z*\"]{0,8}",
        cond in "[a-z_.()' =!<>&|0-9]{0,60}",
        action in "[a-z_]{0,18}",
        limit in "[0-9a-z/]{0,10}",
        priority in any::<i64>(),
    ) {
        let yaml = format!(
            "agent: {agent}\nrules:\n  - name: r\n    condition: \"{cond}\"\n    action: {action}\n    limit: \"{limit}\"\n    priority: {priority}\n"
        );
        if let Ok(set) = PolicySet::from_yaml(&yaml, "fuzz.yaml") {
            let _ = set.decide(&Request::default(), &DecideContext::bare(0));
        }
    }
}

#[test]
fn hot_reload_swaps_valid_versions_and_keeps_the_old_one_on_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, "agent: \"*\"\ndefault_action: deny\n").expect("write");
    let handle = Arc::new(PolicyHandle::new(PolicySet::from_file(&path).expect("v1")));
    let ctx = DecideContext::bare(0);
    let req = Request::default();
    assert_eq!(handle.current().decide(&req, &ctx).outcome, Outcome::Deny);
    let v1 = handle.current().version.clone();

    let (watcher, events) = Watcher::spawn(path.clone(), handle.clone(), Duration::from_millis(20));
    std::fs::write(&path, "agent: \"*\"\ndefault_action: allow\n").expect("write v2");
    match events
        .recv_timeout(Duration::from_secs(10))
        .expect("reload event")
    {
        ReloadEvent::Reloaded { version } => assert_ne!(version, v1),
        other => panic!("expected a reload, got {other:?}"),
    }
    assert_eq!(handle.current().decide(&req, &ctx).outcome, Outcome::Allow);
    let v2 = handle.current().version.clone();

    // An invalid edit is rejected with its diagnostics; v2 stays in force.
    std::fs::write(&path, "agent: \"*\"\ndefault_action: sometimes\n").expect("write bad");
    match events
        .recv_timeout(Duration::from_secs(10))
        .expect("reject event")
    {
        ReloadEvent::Rejected { error } => {
            assert!(error.to_string().contains("policy.yaml:2:"), "{error}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(handle.current().version, v2);
    assert_eq!(handle.current().decide(&req, &ctx).outcome, Outcome::Allow);
    drop(watcher);
}

#[test]
fn published_json_schema_matches() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/policy.schema.json");
    let generated = serde_json::to_string_pretty(&policy_schema()).expect("json") + "\n";
    if std::env::var_os("AGENTMESH_WRITE_VECTORS").is_some() {
        std::fs::write(&path, &generated).expect("write schema");
    }
    let committed = std::fs::read_to_string(&path).expect("docs/policy.schema.json exists");
    assert_eq!(
        committed, generated,
        "regenerate docs/policy.schema.json with AGENTMESH_WRITE_VECTORS=1"
    );
}

#[test]
fn the_seed_file_validates_against_the_schema_shape() {
    // Every top-level key of the seed file is a property the schema declares.
    let schema = policy_schema();
    let props = schema["$defs"]["policy"]["properties"]
        .as_object()
        .expect("props");
    let seed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies/seed.yaml"),
    )
    .expect("seed");
    for line in seed
        .lines()
        .filter(|l| !l.starts_with(' ') && l.contains(':'))
    {
        let key = line.split(':').next().expect("key");
        assert!(props.contains_key(key), "schema lacks `{key}`");
    }
}
