//! The registry suite every backend must pass, run here against the
//! embedded SQLite backend (file and in-memory), plus the mesh home and
//! the mesh operations on a real temporary home.

use agentmesh_capability::parse_list;
use agentmesh_delegation::AgentStatus;
use agentmesh_identity::{Jwk, KeyPair};
use agentmesh_store::{
    ApprovalRecord, ApprovalStatus, KeyKind, Mesh, MeshError, MeshHome, NewAgent, NewDelegation,
    SqlRegistry, SqliteRegistry, StoreError, ToolPin, load_directory,
};
use std::sync::Arc;

const NOW: u64 = 1_800_000_000;

async fn mesh() -> (tempfile::TempDir, Mesh) {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = MeshHome::init(&dir.path().join("home"), "example.org", NOW)
        .await
        .expect("init");
    let mesh = Mesh::open(home).await.expect("open");
    (dir, mesh)
}

fn agent(name: &str, sponsor: &str, caps: &str, parent: Option<&str>) -> NewAgent {
    NewAgent {
        name: name.into(),
        sponsor: sponsor.into(),
        capabilities: parse_list(caps).expect("caps"),
        parent: parent.map(str::to_owned),
        expires_at: None,
    }
}

/// Builds a small world through the mesh operations and checks every
/// registry call against it.
async fn registry_suite(mesh: &Mesh) {
    let reg = mesh.registry();
    let alice = mesh
        .create_sponsor("Alice@Company.com", None, NOW)
        .await
        .expect("sponsor");
    assert_eq!(alice.email, "alice@company.com");
    let a = mesh
        .create_agent(
            agent(
                "agent-a",
                "alice@company.com",
                "read:*,write:*,delete:*",
                None,
            ),
            NOW,
        )
        .await
        .expect("agent a");
    let b = mesh
        .create_agent(
            agent(
                "agent-b",
                "alice@company.com",
                "read:*,write:reports",
                Some("agent-a"),
            ),
            NOW + 1,
        )
        .await
        .expect("agent b");
    let c = mesh
        .create_agent(
            agent(
                "agent-c",
                "alice@company.com",
                "read:public-data",
                Some(&b.did.to_string()),
            ),
            NOW + 2,
        )
        .await
        .expect("agent c");
    let other = mesh
        .create_agent(agent("other", "alice@company.com", "read:x", None), NOW + 3)
        .await
        .expect("other");

    // Lookups by every key, in both DID spellings.
    assert_eq!(
        reg.sponsor_by_email("ALICE@company.com").await.expect("q"),
        Some(alice.clone())
    );
    assert_eq!(
        reg.sponsor_by_did(&alice.did).await.expect("q"),
        Some(alice.clone())
    );
    assert_eq!(
        reg.agent_by_name("agent-b").await.expect("q"),
        Some(b.clone())
    );
    assert_eq!(
        reg.agent_by_did(&b.did.to_did_key()).await.expect("q"),
        Some(b.clone())
    );
    assert_eq!(reg.agent_by_name("nobody").await.expect("q"), None);
    let names: Vec<String> = reg
        .list_agents()
        .await
        .expect("q")
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["agent-a", "agent-b", "agent-c", "other"]);
    assert_eq!(c.parent_did, Some(b.did));
    assert_eq!(b.spiffe_id.as_str(), "spiffe://example.org/agent/agent-b");

    // The stored attestation is the sponsor's real signature.
    let stored = reg.agent_by_name("agent-c").await.expect("q").expect("c");
    stored
        .sponsorship
        .verify(NOW + 10)
        .expect("attestation verifies");
    assert_eq!(stored.sponsorship.parent_did, Some(b.did));

    // Suspend and reactivate.
    reg.set_agent_status(
        &b.did,
        AgentStatus::Suspended,
        Some("investigation"),
        NOW + 5,
    )
    .await
    .expect("suspend");
    let sb = reg.agent_by_did(&b.did).await.expect("q").expect("b");
    assert_eq!(sb.status, AgentStatus::Suspended);
    assert_eq!(sb.status_reason.as_deref(), Some("investigation"));
    assert!(matches!(
        reg.set_agent_status(&b.did, AgentStatus::Suspended, None, NOW + 6)
            .await,
        Err(StoreError::Conflict(_))
    ));
    reg.set_agent_status(&b.did, AgentStatus::Active, None, NOW + 7)
        .await
        .expect("reactivate");

    // Revoking A revokes B and C (descendants), not `other`.
    let revoked = reg
        .revoke_agent(&a.did, "compromised", NOW + 8)
        .await
        .expect("revoke");
    assert_eq!(revoked, ["agent-a", "agent-b", "agent-c"]);
    for name in ["agent-a", "agent-b", "agent-c"] {
        let r = reg.agent_by_name(name).await.expect("q").expect("exists");
        assert_eq!(r.status, AgentStatus::Revoked, "{name}");
    }
    assert_eq!(
        reg.agent_by_name("other")
            .await
            .expect("q")
            .expect("o")
            .status,
        AgentStatus::Active
    );
    // Revocation is permanent.
    assert!(matches!(
        reg.set_agent_status(&a.did, AgentStatus::Active, None, NOW + 9)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        reg.set_agent_status(&other.did, AgentStatus::Revoked, None, NOW + 9)
            .await,
        Err(StoreError::Conflict(_))
    ));

    // Revoked links, idempotent.
    let link = agentmesh_store::RevokedLink {
        hash: "ab".repeat(32),
        reason: "test".into(),
        revoked_at: NOW,
    };
    reg.revoke_link(&link).await.expect("revoke link");
    reg.revoke_link(&link).await.expect("again");
    assert_eq!(reg.revoked_links().await.expect("q"), vec![link]);

    let dir = load_directory(reg).await.expect("directory");
    use agentmesh_delegation::Directory;
    assert!(dir.is_link_revoked(&[0xab; 32]));
    assert_eq!(dir.agent(&c.did).expect("c").status, AgentStatus::Revoked);
    assert!(dir.sponsor(&alice.did).is_some());

    // Approvals: stored once, decided once (the second decider loses).
    let approval = ApprovalRecord {
        id: "apr_1".into(),
        caller: c.did.to_string(),
        action: "fs.delete_file".into(),
        arguments_sha256: "00".repeat(32),
        policy_version: "v1".into(),
        rule: "p/r".into(),
        approvers: vec!["sec@company.com".into()],
        state: ApprovalStatus::Pending,
        decided_by: None,
        decided_at: None,
        reason: None,
        created_at: NOW,
        expires_at: NOW + 60,
        summary: serde_json::json!({"tool": "fs.delete_file"}),
        proof: None,
    };
    reg.insert_approval(&approval).await.expect("insert");
    reg.insert_approval(&approval).await.expect("idempotent");
    assert_eq!(
        reg.approval("apr_1").await.expect("q"),
        Some(approval.clone())
    );
    assert_eq!(reg.list_approvals(false).await.expect("pending").len(), 1);
    let decided = reg
        .set_approval_state(
            "apr_1",
            ApprovalStatus::Pending,
            ApprovalStatus::Approved,
            Some("sec@company.com"),
            None,
            NOW + 1,
        )
        .await
        .expect("approve");
    assert_eq!(decided.state, ApprovalStatus::Approved);
    assert_eq!(decided.decided_by.as_deref(), Some("sec@company.com"));
    assert!(matches!(
        reg.set_approval_state(
            "apr_1",
            ApprovalStatus::Pending,
            ApprovalStatus::Denied,
            Some("mallory@company.com"),
            Some("no"),
            NOW + 2,
        )
        .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(reg.list_approvals(false).await.expect("pending").is_empty());
    assert_eq!(reg.list_approvals(true).await.expect("all").len(), 1);
    assert!(matches!(
        reg.set_approval_state(
            "nope",
            ApprovalStatus::Pending,
            ApprovalStatus::Denied,
            None,
            None,
            NOW
        )
        .await,
        Err(StoreError::NotFound { .. })
    ));

    // Tool pins: insert, then record a changed definition.
    let mut pin = ToolPin {
        upstream: "fs".into(),
        tool: "read_file".into(),
        sha256: "11".repeat(32),
        definition: serde_json::json!({"name": "read_file", "description": "Reads"}),
        pinned_at: NOW,
        changed_sha256: None,
        changed_definition: None,
        changed_at: None,
    };
    reg.save_tool_pin(&pin).await.expect("pin");
    pin.changed_sha256 = Some("22".repeat(32));
    pin.changed_definition =
        Some(serde_json::json!({"name": "read_file", "description": "Exfiltrates"}));
    pin.changed_at = Some(NOW + 5);
    reg.save_tool_pin(&pin).await.expect("update");
    assert_eq!(reg.tool_pins().await.expect("pins"), vec![pin]);
}

#[tokio::test]
async fn sqlite_file_backend_passes_the_suite() {
    let (_dir, mesh) = mesh().await;
    registry_suite(&mesh).await;
}

/// A PostgreSQL registry in a fresh schema of the database named by
/// `AGENTMESH_TEST_POSTGRES_URL` (`.ci/run` sets it and fails without it).
/// `None` (with a message) when unset outside CI.
async fn postgres_registry() -> Option<SqlRegistry> {
    let Ok(base) = std::env::var("AGENTMESH_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must set AGENTMESH_TEST_POSTGRES_URL"
        );
        eprintln!("skipping the PostgreSQL backend: AGENTMESH_TEST_POSTGRES_URL is not set");
        return None;
    };
    let url = agentmesh_store::postgres_test_schema(&base)
        .await
        .expect("create a test schema");
    Some(
        SqlRegistry::connect_postgres(&url)
            .await
            .expect("postgres registry"),
    )
}

#[tokio::test]
async fn postgres_backend_passes_the_suite() {
    let Some(pg) = postgres_registry().await else {
        return;
    };
    assert_eq!(pg.backend(), agentmesh_store::Backend::Postgres);
    let (_dir, file_mesh) = mesh().await;
    let mesh = Mesh::new(file_mesh.home().clone(), Arc::new(pg));
    registry_suite(&mesh).await;
}

#[tokio::test]
async fn postgres_outbox_queues_and_dequeues() {
    let Some(pg) = postgres_registry().await else {
        return;
    };
    use agentmesh_store::Registry;
    let a = pg.enqueue_audit(b"first", NOW).await.expect("enqueue");
    let b = pg.enqueue_audit(b"second", NOW).await.expect("enqueue");
    assert!(b > a);
    let q = pg.queued_audit(10).await.expect("queued");
    assert_eq!(q, vec![(a, b"first".to_vec()), (b, b"second".to_vec())]);
    pg.dequeue_audit(&[a]).await.expect("dequeue");
    assert_eq!(pg.queued_audit(10).await.expect("queued").len(), 1);
}

#[tokio::test]
async fn sqlite_in_memory_backend_passes_the_suite() {
    let (_dir, file_mesh) = mesh().await;
    let mem = SqliteRegistry::in_memory().await.expect("memory db");
    let mesh = Mesh::new(file_mesh.home().clone(), Arc::new(mem));
    registry_suite(&mesh).await;
}

#[tokio::test]
async fn state_survives_reopening() {
    let (_dir, mesh) = mesh().await;
    mesh.create_sponsor("alice@company.com", None, NOW)
        .await
        .expect("sponsor");
    mesh.create_agent(agent("agent-a", "alice@company.com", "read:*", None), NOW)
        .await
        .expect("agent");
    let root = mesh.home().root().to_owned();
    drop(mesh);
    let reopened = Mesh::open(MeshHome::open(&root).expect("open"))
        .await
        .expect("mesh");
    let a = reopened.agent("agent-a").await.expect("still there");
    a.sponsorship.verify(NOW).expect("attestation survives");
}

#[tokio::test]
async fn clear_errors_for_bad_requests() {
    let (_dir, mesh) = mesh().await;
    mesh.create_sponsor(
        "alice@company.com",
        Some(parse_list("read:*,write:reports").expect("c")),
        NOW,
    )
    .await
    .expect("sponsor");
    assert!(matches!(
        mesh.create_sponsor("alice@company.com", None, NOW).await,
        Err(MeshError::DuplicateSponsor(_))
    ));
    assert!(matches!(
        mesh.create_sponsor("not-an-email", None, NOW).await,
        Err(MeshError::Name(_))
    ));
    assert!(matches!(
        mesh.create_agent(agent("x", "bob@company.com", "read:x", None), NOW)
            .await,
        Err(MeshError::UnknownSponsor(_))
    ));
    let err = mesh
        .create_agent(
            agent("x", "alice@company.com", "read:x,delete:*", None),
            NOW,
        )
        .await
        .expect_err("sponsor lacks delete");
    assert!(
        matches!(&err, MeshError::CapabilityNotHeld { uncovered, .. } if uncovered == "delete:*"),
        "{err}"
    );
    mesh.create_agent(agent("parent", "alice@company.com", "read:data", None), NOW)
        .await
        .expect("parent");
    let err = mesh
        .create_agent(
            agent(
                "child",
                "alice@company.com",
                "read:database",
                Some("parent"),
            ),
            NOW,
        )
        .await
        .expect_err("no prefix widening via parent");
    assert!(matches!(err, MeshError::CapabilityNotHeld { .. }), "{err}");
    assert!(matches!(
        mesh.create_agent(
            agent("child", "alice@company.com", "read:data", Some("ghost")),
            NOW
        )
        .await,
        Err(MeshError::UnknownAgent(_))
    ));
    assert!(matches!(
        mesh.create_agent(agent("parent", "alice@company.com", "read:data", None), NOW)
            .await,
        Err(MeshError::DuplicateAgent(_))
    ));
    assert!(matches!(
        mesh.create_agent(
            agent("bad name", "alice@company.com", "read:data", None),
            NOW
        )
        .await,
        Err(MeshError::Name(_))
    ));
    // A failed registration leaves no key file behind.
    assert!(!mesh.home().key_path(KeyKind::Agent("x")).exists());
}

#[tokio::test]
async fn imported_agents_hold_their_own_keys() {
    let (_dir, mesh) = mesh().await;
    mesh.create_sponsor("alice@company.com", None, NOW)
        .await
        .expect("sponsor");
    let own = KeyPair::generate().expect("key");
    let jwk = Jwk::from_json(&serde_json::to_string(&Jwk::public(own.public())).expect("json"))
        .expect("jwk");
    let rec = mesh
        .import_agent(
            agent("external", "alice@company.com", "read:*", None),
            jwk.public_key().expect("pk"),
            NOW,
        )
        .await
        .expect("import");
    assert_eq!(rec.did, own.did());
    assert_eq!(rec.key_custody, agentmesh_store::KeyCustody::External);
    assert!(!mesh.home().key_path(KeyKind::Agent("external")).exists());
    // The mesh cannot sign for it.
    mesh.create_agent(agent("target", "alice@company.com", "read:*", None), NOW)
        .await
        .expect("target");
    let err = mesh
        .delegate(
            NewDelegation {
                from: "external".into(),
                to: "target".into(),
                capabilities: None,
                ttl_secs: 60,
                max_depth: None,
                parent_token: None,
            },
            NOW,
        )
        .await
        .expect_err("no key");
    assert!(
        matches!(err, MeshError::Store(StoreError::KeyMissing(_))),
        "{err}"
    );
}

#[tokio::test]
async fn delegation_through_the_registry() {
    let (_dir, mesh) = mesh().await;
    mesh.create_sponsor("alice@company.com", None, NOW)
        .await
        .expect("sponsor");
    for (n, c) in [
        ("a", "read:*,write:*,delete:*"),
        ("b", "read:*,write:reports"),
        ("c", "read:public-data"),
    ] {
        mesh.create_agent(agent(n, "alice@company.com", c, None), NOW)
            .await
            .expect("agent");
    }
    let req = |from: &str, to: &str, caps: &str, parent: Option<String>| NewDelegation {
        from: from.into(),
        to: to.into(),
        capabilities: Some(parse_list(caps).expect("caps")),
        ttl_secs: 3600,
        max_depth: None,
        parent_token: parent,
    };
    let ab = mesh
        .delegate(req("a", "b", "read:*,write:reports", None), NOW)
        .await
        .expect("a→b");
    let bc = mesh
        .delegate(
            req("b", "c", "read:public-data", Some(ab.as_str().to_owned())),
            NOW,
        )
        .await
        .expect("b→c");
    let chain = mesh.verify(bc.as_str(), NOW + 1).await.expect("verifies");
    assert_eq!(chain.links.len(), 3);
    assert_eq!(chain.holder_name, "c");
    // Widening refused at creation.
    let err = mesh
        .delegate(req("b", "c", "write:*", Some(ab.as_str().to_owned())), NOW)
        .await
        .expect_err("widen");
    assert!(matches!(err, MeshError::Issue(_)), "{err}");
    // Extending a token one does not hold.
    let err = mesh
        .delegate(req("c", "a", "read:x", Some(ab.as_str().to_owned())), NOW)
        .await
        .expect_err("c does not hold ab");
    assert!(matches!(err, MeshError::NotTokenHolder { .. }), "{err}");
    // Revoke the middle link: the whole chain below dies.
    mesh.revoke_delegation(ab.as_str(), None, "rotated", NOW)
        .await
        .expect("revoke");
    let err = mesh
        .verify(bc.as_str(), NOW + 2)
        .await
        .expect_err("revoked");
    assert!(err.to_string().contains("revoked"), "{err}");
    // Revoking agent b kills tokens through it.
    let ab2 = mesh
        .delegate(req("a", "b", "read:*", None), NOW)
        .await
        .expect("a→b again");
    mesh.revoke_agent("b", "gone", NOW).await.expect("revoke b");
    assert!(mesh.verify(ab2.as_str(), NOW + 3).await.is_err());
    // A sponsor issuing a root link directly.
    let root = mesh
        .delegate(req("alice@company.com", "a", "read:*", None), NOW)
        .await
        .expect("root");
    assert_eq!(
        mesh.verify(root.as_str(), NOW + 1)
            .await
            .expect("root ok")
            .links
            .len(),
        1
    );
}

#[cfg(unix)]
#[tokio::test]
async fn private_keys_are_0600_and_readable_keys_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, mesh) = mesh().await;
    let home = mesh.home();
    let mesh_key = home.key_path(KeyKind::Mesh);
    let mode = std::fs::metadata(&mesh_key)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(home.root())
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    home.mesh_key().expect("readable by owner");
    std::fs::set_permissions(&mesh_key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = home.mesh_key().expect_err("world-readable key refused");
    assert!(
        matches!(err, StoreError::KeyPermissions { mode: 0o644, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chmod 600"));
    std::fs::set_permissions(&mesh_key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    assert!(matches!(
        home.mesh_key(),
        Err(StoreError::KeyPermissions { .. })
    ));
    // A garbage key file is an error, not a panic.
    std::fs::set_permissions(&mesh_key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::write(&mesh_key, "not a key").expect("write");
    assert!(matches!(home.mesh_key(), Err(StoreError::File { .. })));
}

#[tokio::test]
async fn home_init_and_open_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("h");
    assert!(matches!(MeshHome::open(&root), Err(StoreError::NoHome(_))));
    assert!(matches!(
        MeshHome::init(&root, "Bad_Domain:1", NOW).await,
        Err(StoreError::Config { .. })
    ));
    MeshHome::init(&root, "example.org", NOW)
        .await
        .expect("init");
    assert!(matches!(
        MeshHome::init(&root, "example.org", NOW).await,
        Err(StoreError::HomeExists(_))
    ));
    // Unknown config keys are an error, not ignored.
    let cfg = root.join("config.toml");
    let text = std::fs::read_to_string(&cfg).expect("read");
    std::fs::write(&cfg, format!("{text}\ntrust_domian = \"typo.org\"\n")).expect("write");
    let err = MeshHome::open(&root).expect_err("unknown key");
    assert!(err.to_string().contains("trust_domian"), "{err}");
    std::fs::write(&cfg, "this is [not toml").expect("write");
    assert!(matches!(
        MeshHome::open(&root),
        Err(StoreError::Config { .. })
    ));
}

#[tokio::test]
async fn every_mutation_is_an_audit_leaf_and_checkpoints_verify() {
    let (_dir, mesh) = mesh().await;
    mesh.create_sponsor("alice@company.com", None, NOW)
        .await
        .expect("sponsor");
    let a = mesh
        .create_agent(agent("a", "alice@company.com", "read:*", None), NOW)
        .await
        .expect("a");
    mesh.create_agent(agent("b", "alice@company.com", "read:*", None), NOW)
        .await
        .expect("b");
    let t = mesh
        .delegate(
            NewDelegation {
                from: "a".into(),
                to: "b".into(),
                capabilities: None,
                ttl_secs: 60,
                max_depth: None,
                parent_token: None,
            },
            NOW,
        )
        .await
        .expect("delegate");
    mesh.revoke_delegation(t.as_str(), None, "test", NOW)
        .await
        .expect("revoke link");
    mesh.set_status("b", AgentStatus::Suspended, Some("x"), NOW)
        .await
        .expect("suspend");
    mesh.revoke_agent("a", "done", NOW).await.expect("revoke");
    let log = mesh.audit().expect("audit");
    let events: Vec<String> = (0..log.size())
        .map(|i| log.entry(i).expect("entry").entry.draft.event)
        .collect();
    assert_eq!(
        events,
        [
            "sponsor.created",
            "agent.created",
            "agent.created",
            "delegation.issued",
            "delegation.revoked",
            "agent.suspended",
            "agent.revoked"
        ]
    );
    assert_eq!(
        log.entry(1).expect("e").entry.draft.agent,
        a.did.to_string()
    );
    let note = mesh.checkpoint().expect("checkpoint");
    let key = mesh.home().mesh_key().expect("key");
    let v = agentmesh_audit::note::NoteVerifier::new(&mesh.home().audit_origin(), *key.public())
        .expect("verifier");
    let cp = agentmesh_audit::note::verify_checkpoint(&note, &v).expect("signed by the mesh key");
    assert_eq!(cp.size, 7);
}

#[tokio::test]
async fn entries_recorded_while_another_process_holds_the_log_are_queued_then_appended() {
    let (_dir, holder) = mesh().await;
    holder
        .create_sponsor("alice@company.com", None, NOW)
        .await
        .expect("sponsor");
    let log = holder.audit().expect("the holder has the log");
    let before = log.size();
    // A second handle on the same home (as the CLI next to a running
    // gateway): the log is locked, so its entries go to the outbox.
    let other = Mesh::open(MeshHome::open(holder.home().root()).expect("home"))
        .await
        .expect("open");
    other
        .create_sponsor("bob@company.com", None, NOW)
        .await
        .expect("still works while the log is held");
    assert!(!other.audit_opened());
    assert_eq!(log.size(), before, "not appended by the other process");
    assert_eq!(holder.drain_audit_outbox().await.expect("drain"), 1);
    assert_eq!(log.size(), before + 1);
    let e = log.entry(before).expect("entry");
    assert_eq!(e.entry.draft.event, "sponsor.created");
    assert_eq!(e.entry.draft.sponsor, "bob@company.com");
    assert!(
        e.entry.draft.detail["queued_at"].is_string(),
        "{:?}",
        e.entry.draft.detail
    );
    assert_eq!(
        holder.drain_audit_outbox().await.expect("drain"),
        0,
        "dequeued"
    );
}

#[tokio::test]
async fn an_entry_a_stopped_holder_appended_but_never_dequeued_is_not_appended_twice() {
    let (dir, holder) = mesh().await;
    let log = holder.audit().expect("the holder has the log");
    let other = Mesh::open(MeshHome::open(holder.home().root()).expect("home"))
        .await
        .expect("open");
    other
        .create_sponsor("bob@company.com", None, NOW)
        .await
        .expect("queued");
    // The holder appends the queued entry as a drain does, then stops
    // before it can dequeue it (killed, or its task aborted at shutdown).
    let queued = holder.registry().queued_audit(10).await.expect("queued");
    assert_eq!(queued.len(), 1);
    let (id, bytes) = &queued[0];
    let entry = agentmesh_audit::Entry::from_bytes(bytes).expect("entry");
    let mut draft = entry.draft;
    draft.detail = serde_json::json!({"queued_at": entry.time, "outbox_id": id});
    log.append_wait(draft).expect("appended");
    let size = log.size();
    drop(log);
    drop(holder);
    drop(other);
    // The next holder dequeues it without appending it again.
    let next = Mesh::open(MeshHome::open(&dir.path().join("home")).expect("home"))
        .await
        .expect("open");
    assert_eq!(next.drain_audit_outbox().await.expect("drain"), 1);
    let log = next.audit().expect("the next holder has the log");
    assert_eq!(log.size(), size, "not appended twice");
    assert!(
        next.registry()
            .queued_audit(10)
            .await
            .expect("queued")
            .is_empty()
    );
}
