//! `policy test` judges arguments exactly as the gateways do (issue 14):
//! the same normaliser runs before the policy, so a case with
//! `/data/../etc/passwd` is denied by a rule on `/etc/`, as it is live.

use agentmesh_policy::{Outcome, PolicySet, run_cases};

const POLICY: &str = r#"
version: "1.0"
agents: ["*"]
sponsor: alice@company.com
default_action: deny
rules:
  - name: no-etc
    condition: "request.arguments.path.startsWith('/etc/') || request.arguments.path.startsWith('file:///etc/')"
    action: deny
    priority: 10
  - name: reads
    condition: "action.type == 'tool_call'"
    action: allow
"#;

const CASES: &str = r#"
cases:
  - name: traversal
    request:
      agent: {name: bot, sponsor: alice@company.com}
      action: {type: tool_call, tool: read_file, server: fs}
      request: {arguments: {path: "/data/../etc/passwd"}}
    expect: deny
  - name: one-slash-upper-case-file-uri
    request:
      agent: {name: bot, sponsor: alice@company.com}
      action: {type: tool_call, tool: read_file}
      request: {arguments: {path: "FILE:/data/../etc/shadow"}}
    expect: deny
  - name: double-encoded
    request:
      agent: {name: bot, sponsor: alice@company.com}
      action: {type: tool_call, tool: read_file}
      request: {arguments: {path: "file:///etc/%2570asswd"}}
    expect: deny
  - name: plain
    request:
      agent: {name: bot, sponsor: alice@company.com}
      action: {type: tool_call, tool: read_file}
      request: {arguments: {path: "/data//report.csv"}}
    expect: allow
"#;

#[test]
fn cases_are_judged_on_normalised_arguments() {
    let set = PolicySet::from_yaml(POLICY, "p.yaml").expect("policy");
    let results = run_cases(&set, CASES, "cases.yaml").expect("cases");
    for r in &results {
        assert!(r.passed, "{}: {:?} {:?}", r.name, r.failure, r.decision);
    }
    assert_eq!(results.len(), 4);
    assert_eq!(results[0].decision.outcome, Outcome::Deny);
    assert_eq!(
        results[0]
            .decision
            .rule
            .as_deref()
            .map(|r| r.ends_with("no-etc")),
        Some(true)
    );
    assert!(
        results[2]
            .decision
            .message
            .contains("double percent-encoding"),
        "{}",
        results[2].decision.message
    );
}
