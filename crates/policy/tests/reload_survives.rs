//! The policy watcher outlives every bad edit: invalid YAML, conditions of
//! the class that once panicked the compiler (and with it the watcher
//! thread, so the gateway never reloaded again), a deleted file. Each is
//! reported; the next good edit is in force.

use agentmesh_policy::{
    DecideContext, Outcome, PolicyHandle, PolicySet, ReloadEvent, Request, Watcher,
};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::Duration;

fn next(events: &Receiver<ReloadEvent>) -> ReloadEvent {
    events
        .recv_timeout(Duration::from_secs(10))
        .expect("the watcher reports within 10 s (it is alive)")
}

fn rule(condition: &str) -> String {
    format!(
        "agent: \"*\"\ndefault_action: allow\nrules:\n  - name: r\n    condition: \"{condition}\"\n    action: deny\n"
    )
}

/// Replaces the file atomically (as editors do), so a poll never sees a
/// half-written file and every event matches one edit.
fn write(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write policy");
    std::fs::rename(&tmp, path).expect("rename policy");
}

#[test]
fn the_watcher_reports_every_bad_edit_and_reloads_the_next_good_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.yaml");
    write(&path, "agent: \"*\"\ndefault_action: allow\n");
    let handle = Arc::new(PolicyHandle::new(PolicySet::from_file(&path).expect("v1")));
    let ctx = DecideContext::bare(0);
    let mut req = Request::default();
    req.action.tool = Some("read_file".into());
    let (watcher, events) = Watcher::spawn(path.clone(), handle.clone(), Duration::from_millis(20));
    let v1 = handle.current().version.clone();

    // Conditions of the class that panicked: calls whose shape the
    // compiler indexed without checking. Each is a positioned rejection.
    for (cond, want) in [
        ("size() > 0", "size() takes one value"),
        ("[1, 2].map(x, x * 2).size() > 0", "exists() and all()"),
        ("action.tool.matches()", "matches() takes one pattern"),
    ] {
        write(&path, &rule(cond));
        match next(&events) {
            ReloadEvent::Rejected { error } => {
                let text = error.to_string();
                assert!(text.contains("policy.yaml:5:"), "{cond}: {text}");
                assert!(text.contains(want), "{cond}: {text}");
            }
            other => panic!("{cond}: expected a rejection, got {other:?}"),
        }
        assert_eq!(handle.current().version, v1);
    }

    // Not YAML at all.
    write(&path, "agent: [\n");
    assert!(matches!(next(&events), ReloadEvent::Rejected { .. }));

    // The condition from the report is valid CEL and now loads.
    write(&path, &rule("action.tool.size() > 0"));
    match next(&events) {
        ReloadEvent::Reloaded { version } => assert_ne!(version, v1),
        other => panic!("expected a reload, got {other:?}"),
    }
    assert_eq!(handle.current().decide(&req, &ctx).outcome, Outcome::Deny);
    let v2 = handle.current().version.clone();

    // The file disappears (an editor's rename, an operator's mistake):
    // reported, the running policy stays.
    std::fs::remove_file(&path).expect("remove");
    match next(&events) {
        ReloadEvent::Rejected { error } => {
            assert!(error.to_string().contains("cannot read"), "{error}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(handle.current().version, v2);

    // And comes back valid: in force.
    write(&path, &rule("action.tool == 'other'"));
    match next(&events) {
        ReloadEvent::Reloaded { version } => assert_ne!(version, v2),
        other => panic!("expected a reload, got {other:?}"),
    }
    assert_eq!(handle.current().decide(&req, &ctx).outcome, Outcome::Allow);
    drop(watcher);
}
