//! The seed policy, exactly as written, and regression tests for every bug
//! of the original's policy engine.

use agentmesh_policy::{
    ApprovalStore, DecideContext, MemoryLimiter, Outcome, PolicySet, Reason, Request, run_cases,
};

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn seed() -> PolicySet {
    PolicySet::from_file(&root().join("examples/policies/seed.yaml"))
        .expect("the seed policy loads as written")
}

fn req(v: serde_json::Value) -> Request {
    serde_json::from_value(v).expect("request")
}

fn load(yaml: &str) -> PolicySet {
    PolicySet::from_yaml(yaml, "test.yaml").unwrap_or_else(|e| panic!("policy should load:\n{e}"))
}

fn load_err(yaml: &str) -> String {
    PolicySet::from_yaml(yaml, "test.yaml")
        .expect_err("policy should be rejected")
        .to_string()
}

#[test]
fn seed_policy_loads_and_every_case_passes() {
    let set = seed();
    assert_eq!(set.policies.len(), 1);
    let p = &set.policies[0];
    assert_eq!(&*p.name, "policy-for-data-analyst-agent");
    assert_eq!(p.rules.len(), 3);
    assert_eq!(p.frameworks, ["hipaa", "gdpr"]);
    assert_eq!(p.delegation_max_depth, Some(2));
    assert!(set.warnings.is_empty(), "{:?}", set.warnings);
    let cases =
        std::fs::read_to_string(root().join("examples/policies/seed.cases.yaml")).expect("cases");
    let results = run_cases(&set, &cases, "seed.cases.yaml").expect("case file parses");
    assert!(results.len() >= 15);
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| format!("{}: {}", r.name, r.failure.clone().unwrap_or_default()))
        .collect();
    assert!(failed.is_empty(), "failing cases:\n{}", failed.join("\n"));
}

#[test]
fn each_seed_rule_fires_for_the_right_request_and_not_the_wrong_one() {
    let set = seed();
    let ctx = DecideContext::bare(1_800_000_000);
    let base = serde_json::json!({"name": "data-analyst-agent", "sponsor": "alice@company.com"});
    let mk = |trust: f64, action: &str, pii: Option<bool>| {
        let mut v = serde_json::json!({"agent": base.clone(), "action": {"type": action}});
        v["agent"]["trust_score"] = trust.into();
        if let Some(p) = pii {
            v["data"] = serde_json::json!({"contains_pii": p});
        }
        req(v)
    };
    // require-high-trust
    assert_eq!(
        set.decide(&mk(0.61, "read", None), &ctx).rule.as_deref(),
        Some("require-high-trust")
    );
    assert_eq!(
        set.decide(&mk(0.59, "read", None), &ctx).reason,
        Reason::DefaultDeny
    );
    // no-pii-export
    let d = set.decide(&mk(0.9, "export", Some(true)), &ctx);
    assert_eq!(
        (d.outcome, d.rule.as_deref()),
        (Outcome::Deny, Some("no-pii-export"))
    );
    assert!(d.audit, "audit: true marks the decision");
    let d = set.decide(&mk(0.9, "export", Some(false)), &ctx);
    assert_eq!(d.outcome, Outcome::Allow);
    assert!(!d.audit);
    let d = set.decide(&mk(0.9, "read", Some(true)), &ctx);
    assert_eq!(d.outcome, Outcome::Allow, "reading PII is not exporting it");
    // rate-limit: counts api_call only.
    let limiter = MemoryLimiter::new();
    let ctx = DecideContext {
        limiter: Some(&limiter),
        approvals: None,
        now_ns: 1_800_000_000_000_000_000,
    };
    for _ in 0..150 {
        assert_eq!(
            set.decide(&mk(0.9, "read", None), &ctx).outcome,
            Outcome::Allow,
            "reads are not limited"
        );
    }
    for i in 0..100 {
        assert_eq!(
            set.decide(&mk(0.9, "api_call", None), &ctx).outcome,
            Outcome::Allow,
            "call {i}"
        );
    }
    let d = set.decide(&mk(0.9, "api_call", None), &ctx);
    assert_eq!(d.outcome, Outcome::RateLimited);
    assert_eq!(d.retry_after_secs, Some(36));
    assert_eq!(d.frameworks, ["hipaa", "gdpr"]);
}

#[test]
fn parentheses_and_precedence_work() {
    // The original split on ` and `/` or ` and broke on parentheses.
    let set = load(
        r#"
agent: "*"
rules:
  - name: grouped
    condition: "(action.type == 'read' or action.type == 'list') and not data.contains_secrets"
    action: allow
"#,
    );
    let ctx = DecideContext::bare(0);
    let d = |t: &str, s: bool| {
        set.decide(
            &req(serde_json::json!({"action": {"type": t}, "data": {"contains_secrets": s}})),
            &ctx,
        )
        .outcome
    };
    assert_eq!(d("read", false), Outcome::Allow);
    assert_eq!(d("list", false), Outcome::Allow);
    assert_eq!(d("read", true), Outcome::Deny);
    assert_eq!(d("write", false), Outcome::Deny);
}

#[test]
fn warn_allows_and_flags() {
    // The original's `warn` blocked the call.
    let set = load(
        r#"
agent: "*"
default_action: allow
rules:
  - name: flag-writes
    condition: "action.type == 'write'"
    action: warn
  - name: note-reads
    condition: "action.type == 'read'"
    action: log
"#,
    );
    let ctx = DecideContext::bare(0);
    let d = set.decide(&req(serde_json::json!({"action": {"type": "write"}})), &ctx);
    assert_eq!(d.outcome, Outcome::Warn);
    assert!(d.allowed());
    let d = set.decide(&req(serde_json::json!({"action": {"type": "read"}})), &ctx);
    assert_eq!(d.outcome, Outcome::Allow);
    assert_eq!(d.reason, Reason::DefaultAllow);
    assert_eq!(d.logged.len(), 1, "log rules are recorded, not decisive");
}

#[test]
fn priority_then_deny_overrides() {
    let set = load(
        r#"
agent: "*"
rules:
  - name: admins-may-export
    condition: "user.role == 'admin' && action.type == 'export'"
    action: allow
    priority: 10
  - name: no-export
    condition: "action.type == 'export'"
    action: deny
  - name: trusted
    condition: "agent.trust_score >= 0.5"
    action: allow
"#,
    );
    let ctx = DecideContext::bare(0);
    let d = |role: &str| {
        set.decide(
            &req(serde_json::json!({"agent": {"trust_score": 0.9}, "user": {"role": role}, "action": {"type": "export"}})),
            &ctx,
        )
    };
    assert_eq!(
        d("admin").rule.as_deref(),
        Some("admins-may-export"),
        "higher priority wins"
    );
    assert_eq!(
        d("dev").rule.as_deref(),
        Some("no-export"),
        "deny overrides allow at equal priority"
    );
}

#[test]
fn require_approval_holds_until_approved_then_passes_once() {
    let set = load(
        r#"
agent: "*"
rules:
  - name: deletes-need-approval
    condition: "action.type == 'delete'"
    action: require_approval
    approvers: ["security@company.com"]
    approval_ttl: 10m
"#,
    );
    let store = ApprovalStore::new();
    let ctx = |t: u64| DecideContext {
        limiter: None,
        approvals: Some(&store),
        now_ns: t * 1_000_000_000,
    };
    let r = req(
        serde_json::json!({"agent": {"did": "did:mesh:z6MkA"}, "action": {"type": "delete", "tool": "delete_file"}, "request": {"arguments": {"path": "/tmp/a"}}}),
    );
    let held = set.decide(&r, &ctx(100));
    assert_eq!(held.outcome, Outcome::RequireApproval);
    let approval = held.approval.clone().expect("pending approval");
    assert_eq!(approval.binding.action, "delete_file");
    assert_eq!(approval.expires_at, 700);
    assert_eq!(
        set.decide(&r, &ctx(101)).approval.expect("same").id,
        approval.id,
        "retries reuse it"
    );
    store
        .approve(&approval.id, "security@company.com", 150)
        .expect("approve");
    // A different argument is a different call.
    let other = req(
        serde_json::json!({"agent": {"did": "did:mesh:z6MkA"}, "action": {"type": "delete", "tool": "delete_file"}, "request": {"arguments": {"path": "/etc/passwd"}}}),
    );
    assert_eq!(
        set.decide(&other, &ctx(151)).outcome,
        Outcome::RequireApproval
    );
    let ok = set.decide(&r, &ctx(152));
    assert_eq!(
        (ok.outcome, ok.reason),
        (Outcome::Allow, Reason::ApprovalGranted)
    );
    assert_eq!(
        set.decide(&r, &ctx(153)).outcome,
        Outcome::RequireApproval,
        "single use"
    );
}

#[test]
fn diagnostics_have_positions() {
    let e = load_err("agent: x\nrules:\n  - name: r\n    conditon: \"true\"\n    action: allow\n");
    assert!(e.contains("test.yaml:4:"), "{e}");
    assert!(e.contains("unknown field `conditon`"), "{e}");

    let e = load_err(
        "agent: x\nrules:\n  - name: ok\n    condition: \"true\"\n    action: allow\n  - name: bad\n    condition: \"agent.trust_scor >= 0.6\"\n    action: allow\n",
    );
    assert!(e.contains("test.yaml:7:17:"), "{e}");
    assert!(e.contains("did you mean `agent.trust_score`"), "{e}");

    let e = load_err("agent: x\nrules:\n  - name: r\n    action: alow\n");
    assert!(
        e.contains("test.yaml:4:") && e.contains("unknown variant `alow`"),
        "{e}"
    );

    let e = load_err(
        "agent: x\nrules:\n  - name: r\n    condition: \"action.type == 'api_call'\"\n    limit: \"100/hr\"\n",
    );
    assert!(
        e.contains("test.yaml:5:") && e.contains("write `hour`"),
        "{e}"
    );

    let e = load_err("agent: x\nfoo: 1\n");
    assert!(e.contains("unknown field `foo`"), "{e}");

    let e = load_err(
        "agent: x\nrules:\n  - name: r\n    condition: \"action.type == 'a' and action.type == 'b'\"\n    action: deny\n",
    );
    assert!(
        e.contains("can never match") && e.contains("cannot be both"),
        "{e}"
    );

    let e = load_err(
        "agent: x\nrules:\n  - name: r\n    condition: \"agent.trust_tier == 'gold'\"\n    action: allow\n",
    );
    assert!(e.contains("never 'gold'"), "{e}");
}

#[test]
fn shadowed_rules_are_errors() {
    let e = load_err(
        r#"
agent: "*"
rules:
  - name: deny-exports
    condition: "action.type == 'export'"
    action: deny
    priority: 10
  - name: allow-small-exports
    condition: "action.type == 'export' && data.size_bytes < 1000"
    action: allow
"#,
    );
    assert!(
        e.contains("rule `allow-small-exports` is unreachable") && e.contains("deny-exports"),
        "{e}"
    );
    let e = load_err(
        r#"
agent: "*"
rules:
  - name: a
    condition: "action.type == 'x'"
    action: deny
  - name: b
    condition: "action.type == 'x'"
    action: allow
"#,
    );
    assert!(e.contains("rule `b` is unreachable"), "{e}");
    // A lower-priority rule with a narrower condition than a higher one is fine
    // only when it is not implied: here it is not shadowed.
    load(
        r#"
agent: "*"
rules:
  - name: allow-reports
    condition: "action.type == 'export' && data.classification == 'public'"
    action: allow
    priority: 10
  - name: deny-exports
    condition: "action.type == 'export'"
    action: deny
"#,
    );
}

#[test]
fn structural_errors() {
    assert!(load_err("rules: []\n").contains("which agents"));
    assert!(load_err("agent: a\nagents: [b]\n").contains("not both"));
    assert!(load_err("version: \"2.0\"\nagent: a\n").contains("not supported"));
    assert!(
        load_err("agent: a\nrules:\n  - name: r\n    condition: \"true\"\n").contains("no action")
    );
    assert!(
        load_err("agent: a\ncompliance:\n  frameworks: [pci]\n")
            .contains("unknown compliance framework")
    );
    assert!(load_err("agent: a\ndelegation:\n  must_narrow: false\n").contains("always narrow"));
    assert!(load_err("agent: a\ncapabilities: [\"read:da*\"]\n").contains("stand alone"));
    assert!(load_err("agent: a\nrules:\n  - {name: r, action: allow}\n  - {name: r, action: deny, priority: 1}\n").contains("two rules are named"));
    assert!(load_err("- just\n- a list\n").contains("mapping"));
    assert!(
        load_err("policies:\n  - {name: p, agent: a}\n  - {name: p, agent: b}\n")
            .contains("two policies are named `p`")
    );
    assert!(
        load_err("agent: a\nrules:\n  - name: r\n    action: deny\n    limit: 5/hour\n")
            .contains("can never apply")
    );
    // Several policies in one file, several agents per policy.
    let set = load(
        "policies:\n  - {name: p1, agents: [a, b], default_action: allow}\n  - {name: p2, agent: \"*\"}\n",
    );
    assert_eq!(set.policies.len(), 2);
}

#[test]
fn hostile_input_is_bounded() {
    // Billion laughs: yaml_serde refuses excessive alias expansion.
    let mut bomb = String::from("a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n");
    for i in 0..9 {
        let prev = if i == 0 {
            "a".to_owned()
        } else {
            format!("l{}", i - 1)
        };
        bomb.push_str(&format!("l{i}: &l{i} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
    }
    assert!(PolicySet::from_yaml(&bomb, "bomb.yaml").is_err());
    // Deep nesting.
    let deep = format!("agent: {}x{}\n", "[".repeat(10_000), "]".repeat(10_000));
    assert!(PolicySet::from_yaml(&deep, "deep.yaml").is_err());
    // Oversized file.
    let big = format!(
        "agent: x\ndescription: \"{}\"\n",
        "a".repeat(2 * 1024 * 1024)
    );
    assert!(load_err(&big).contains("limit"));
    // Huge condition.
    let huge = format!(
        "agent: x\nrules:\n  - name: r\n    condition: \"action.type == '{}'\"\n    action: deny\n",
        "a".repeat(10_000)
    );
    assert!(load_err(&huge).contains("limit"));
}
