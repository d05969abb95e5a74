//! `agentmesh mcp …`, `agentmesh approvals …`, `agentmesh credential …`.

use crate::output::{Output, table, time};
use crate::{ApprovalsCmd, CredentialCmd, McpCmd, PinsCmd};
use agentmesh_engine::{Engine, EngineConfig, credential};
use agentmesh_mcp::govern::{Governor, Route, UpstreamSettings};
use agentmesh_mcp::pins::{Pins, diff};
use agentmesh_mcp::stdio::ServerCommand;
use agentmesh_mcp::wrap::{WrapOptions, run as run_wrap};
use agentmesh_policy::{PolicyHandle, PolicySet, ReloadEvent, Watcher};
use agentmesh_store::{ApprovalRecord, ApprovalStatus, Mesh, unix_now};
use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Loads a policy file and starts watching it; reload results go to stderr
/// (stdout may be a protocol stream).
/// The policy file, loaded once: what an attached gateway starts with
/// until the control plane's published policy replaces it (the file is not
/// watched: the control plane governs, and a local edit must not override
/// what it published).
pub fn policy_once(path: &Path) -> Result<Arc<PolicyHandle>> {
    let set = PolicySet::from_file(path).map_err(|e| anyhow!("{e}"))?;
    Ok(Arc::new(PolicyHandle::new(set)))
}

pub fn policy_with_reload(path: &Path) -> Result<(Arc<PolicyHandle>, Watcher)> {
    let set = PolicySet::from_file(path).map_err(|e| anyhow!("{e}"))?;
    let handle = Arc::new(PolicyHandle::new(set));
    let (watcher, rx) = Watcher::spawn(path.to_path_buf(), handle.clone(), Duration::from_secs(1));
    let shown = path.display().to_string();
    std::thread::spawn(move || {
        for ev in rx {
            match ev {
                ReloadEvent::Reloaded { version } => {
                    eprintln!("agentmesh: policy {shown} reloaded (version {version})")
                }
                ReloadEvent::Rejected { error } => eprintln!(
                    "agentmesh: policy {shown} changed but cannot be put in force (invalid or unreadable); the previous version stays in force:\n{error}"
                ),
            }
        }
    });
    Ok((handle, watcher))
}

fn upstream_name(argv: &[String]) -> String {
    let base = argv
        .first()
        .map(|p| {
            Path::new(p)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "server".into()
    } else {
        cleaned
    }
}

pub async fn run(mesh: Mesh, cmd: McpCmd) -> Result<Output> {
    match cmd {
        McpCmd::Wrap {
            agent,
            policy,
            name,
            settings,
            no_restart,
            env,
            command,
        } => {
            let (handle, _watcher) = policy_with_reload(&policy)?;
            let settings: UpstreamSettings = match settings {
                Some(p) => {
                    let text = std::fs::read_to_string(&p)
                        .with_context(|| format!("reading {}", p.display()))?;
                    yaml_serde::from_str(&text).map_err(|e| anyhow!("{}: {e}", p.display()))?
                }
                None => UpstreamSettings::default(),
            };
            let mut cmd = ServerCommand::from_argv(&command)
                .ok_or_else(|| anyhow!("give the server command after `--`"))?;
            for e in env {
                match e.split_once('=') {
                    Some((k, v)) if !k.is_empty() => {
                        cmd.env.insert(k.to_owned(), v.to_owned());
                    }
                    None if !e.is_empty() => cmd.inherit_env.push(e),
                    _ => bail!("--env `{e}`: give NAME=VALUE or NAME"),
                }
            }
            let engine = Engine::start(
                mesh.clone(),
                handle,
                EngineConfig {
                    audience: "stdio".into(),
                    ..EngineConfig::default()
                },
            )
            .await?;
            let principal = engine
                .local_principal(&agent)
                .map_err(|e| anyhow!("cannot act as `{agent}`: {e}"))?;
            let pins = Pins::load(Arc::new(mesh.home().registry().await?)).await?;
            let governor = Governor::new(engine.clone(), pins);
            let route = Route {
                upstream: name.unwrap_or_else(|| upstream_name(&command)).into(),
                namespaced: false,
                settings: Arc::new(settings),
            };
            eprintln!(
                "agentmesh: governing `{}` as agent `{agent}` ({})",
                cmd.display(),
                principal.agent.did_text
            );
            let code = run_wrap(
                governor,
                principal,
                route,
                WrapOptions {
                    command: cmd,
                    restart: !no_restart,
                    max_restarts: 5,
                    grace: Duration::from_secs(3),
                },
                tokio::io::stdin(),
                tokio::io::stdout(),
            )
            .await;
            let code = match engine.shutdown().await {
                Ok(Some(note)) => {
                    let first = note.lines().nth(1).unwrap_or("");
                    eprintln!("agentmesh: audit checkpoint signed (size {first})");
                    code
                }
                Ok(None) => code,
                Err(e) => {
                    // Audit entries or trust state may not have been saved:
                    // the exit status says so.
                    eprintln!("agentmesh: could not finish cleanly: {e}");
                    if code == 0 { 1 } else { code }
                }
            };
            Ok(Output::new(serde_json::Value::Null, "").with_code(code.clamp(0, 255) as u8))
        }
        McpCmd::Gateway { config, .. } => crate::gateway_cmd::run(mesh, &config).await,
        McpCmd::Install(args) => crate::install::run(mesh.home().root(), args),
        McpCmd::Pins(cmd) => pins(&mesh, cmd).await,
        McpCmd::DemoServer { data } => {
            crate::demo_server::run(&data)?;
            Ok(Output::new(serde_json::Value::Null, ""))
        }
    }
}

async fn pins(mesh: &Mesh, cmd: PinsCmd) -> Result<Output> {
    let all = mesh.registry().tool_pins().await?;
    let find = |spec: &str| -> Result<agentmesh_store::ToolPin> {
        let (u, t) = spec
            .split_once('/')
            .ok_or_else(|| anyhow!("name a pin as <upstream>/<tool>"))?;
        all.iter()
            .find(|p| p.upstream == u && p.tool == t)
            .cloned()
            .ok_or_else(|| anyhow!("no pin for `{spec}` (`agentmesh mcp pins list` shows them)"))
    };
    match cmd {
        PinsCmd::List => {
            let rows: Vec<Vec<String>> = all
                .iter()
                .map(|p| {
                    vec![
                        format!("{}/{}", p.upstream, p.tool),
                        if p.changed_sha256.is_some() {
                            "CHANGED".into()
                        } else {
                            "pinned".into()
                        },
                        p.sha256[..16].to_owned(),
                        time(p.pinned_at),
                    ]
                })
                .collect();
            Ok(Output::new(
                json!(all),
                if rows.is_empty() {
                    "no tools pinned yet (a gateway pins each tool the first time it lists it)"
                        .into()
                } else {
                    table(&["TOOL", "STATE", "SHA-256", "PINNED"], &rows)
                },
            ))
        }
        PinsCmd::Diff { tool } => {
            let p = find(&tool)?;
            let lines = diff(&p);
            let text = if lines.is_empty() {
                format!("{tool}: matches its pin ({})", p.sha256)
            } else {
                format!(
                    "{tool} changed since it was pinned on {}:\n{}\n\nApprove with `agentmesh mcp pins approve {tool}` if the change is expected.",
                    time(p.pinned_at),
                    lines.join("\n")
                )
            };
            Ok(Output::new(json!({"pin": p, "diff": lines}), text))
        }
        PinsCmd::Approve { tool } => {
            let mut p = find(&tool)?;
            let (Some(sha), Some(def)) = (p.changed_sha256.take(), p.changed_definition.take())
            else {
                bail!("`{tool}` has no changed definition to approve");
            };
            p.sha256 = sha;
            p.definition = def;
            p.pinned_at = unix_now();
            p.changed_at = None;
            mesh.registry().save_tool_pin(&p).await?;
            Ok(Output::new(
                json!({"approved": tool, "sha256": p.sha256}),
                format!(
                    "{tool}: the new definition is now pinned ({}); gateways pick it up within seconds",
                    p.sha256
                ),
            ))
        }
    }
}

pub async fn approvals(mesh: &Mesh, cmd: ApprovalsCmd) -> Result<Output> {
    let reg = mesh.registry();
    match cmd {
        ApprovalsCmd::List { all, .. } => {
            let list = reg.list_approvals(all).await?;
            Ok(approvals_listing(&list, unix_now()))
        }
        ApprovalsCmd::Approve { id, by, .. } | ApprovalsCmd::Deny { id, by, .. }
            if by.trim().is_empty() =>
        {
            bail!("say who decides approval `{id}` with --by <email>")
        }
        ApprovalsCmd::Approve {
            id,
            by,
            control_plane: Some(url),
            control_plane_token_file,
        } => decide_remote(mesh, &id, &by, None, true, url, control_plane_token_file).await,
        ApprovalsCmd::Deny {
            id,
            by,
            reason,
            control_plane: Some(url),
            control_plane_token_file,
        } => decide_remote(mesh, &id, &by, reason, false, url, control_plane_token_file).await,
        ApprovalsCmd::Approve { id, by, .. } => decide(mesh, &id, &by, None, true).await,
        ApprovalsCmd::Deny { id, by, reason, .. } => {
            decide(mesh, &id, &by, reason.as_deref(), false).await
        }
    }
}

async fn decide(
    mesh: &Mesh,
    id: &str,
    by: &str,
    reason: Option<&str>,
    approve: bool,
) -> Result<Output> {
    let reg = mesh.registry();
    let now = unix_now();
    let a = reg.approval(id).await?.ok_or_else(|| {
        anyhow!("no approval `{id}` (`agentmesh approvals list` shows the pending ones)")
    })?;
    if a.state != ApprovalStatus::Pending {
        bail!("approval `{id}` is already {}", a.state.as_str());
    }
    if a.expires_at <= now {
        bail!(
            "approval `{id}` expired at {}; the held call was denied",
            time(a.expires_at)
        );
    }
    let by = by.trim().to_lowercase();
    if !a.approvers.is_empty() && !a.approvers.iter().any(|x| x.eq_ignore_ascii_case(&by)) {
        bail!(
            "`{by}` may not decide `{id}`; its approvers are: {}",
            a.approvers.join(", ")
        );
    }
    let to = if approve {
        ApprovalStatus::Approved
    } else {
        ApprovalStatus::Denied
    };
    let key = sponsor_key(mesh, &by)?;
    let proof = agentmesh_policy::DecisionStatement {
        approval: id,
        decision: to.as_str(),
        by: &by,
        caller: &a.caller,
        action: &a.action,
        arguments_sha256: &a.arguments_sha256,
        policy_version: &a.policy_version,
        at: now,
    }
    .sign(&key);
    let r = reg
        .decide_approval(
            id,
            ApprovalStatus::Pending,
            to,
            Some(&by),
            reason,
            Some(&proof),
            now,
        )
        .await?;
    Ok(Output::new(
        json!(r),
        format!(
            "approval {id} {} by {by}; the held call {} now (the gateway records the decision in the audit log)",
            to.as_str(),
            if approve { "proceeds" } else { "is denied" }
        ),
    ))
}

/// The approver's key, from this home: a decision on a held call is signed
/// by the person who makes it.
fn sponsor_key(mesh: &Mesh, by: &str) -> Result<agentmesh_identity::KeyPair> {
    mesh.home()
        .read_key(agentmesh_store::KeyKind::Sponsor(by))
        .map_err(|e| {
            anyhow!(
                "deciding needs `{by}`'s key in this home ({e}); run this where {by}'s key is (its own home, --home)"
            )
        })
}

/// `approvals approve|deny … --control-plane URL`: signed here, decided
/// there.
async fn decide_remote(
    mesh: &Mesh,
    id: &str,
    by: &str,
    reason: Option<String>,
    approve: bool,
    url: String,
    token_file: Option<std::path::PathBuf>,
) -> Result<Output> {
    let by = by.trim().to_lowercase();
    let cp = crate::cp_client_cmd::client(
        mesh.home().root(),
        &crate::ControlPlaneArgs {
            control_plane: url,
            control_plane_token_file: token_file,
        },
    )
    .await?;
    let a: agentmesh_store::ApprovalRecord = serde_json::from_value(
        cp.call(hyper::Method::GET, &format!("/v1/approvals/{id}"), None)
            .await?,
    )?;
    let decision = if approve { "approved" } else { "denied" };
    let now = unix_now();
    let key = sponsor_key(mesh, &by)?;
    let proof: serde_json::Value = serde_json::from_str(
        &agentmesh_policy::DecisionStatement {
            approval: id,
            decision,
            by: &by,
            caller: &a.caller,
            action: &a.action,
            arguments_sha256: &a.arguments_sha256,
            policy_version: &a.policy_version,
            at: now,
        }
        .sign(&key),
    )?;
    let mut body = json!({"by": by, "at": now, "signature": proof["signature"]});
    if let Some(r) = reason {
        body["reason"] = serde_json::Value::from(r);
    }
    let verb = if approve { "approve" } else { "deny" };
    let r = cp
        .call(
            hyper::Method::POST,
            &format!("/v1/approvals/{id}/{verb}"),
            Some(&body),
        )
        .await?;
    Ok(Output::new(
        r,
        format!("approval {id} {decision} by {by} (signed with {by}'s key) at the control plane"),
    ))
}

pub async fn credential(mesh: &Mesh, cmd: CredentialCmd) -> Result<Output> {
    match cmd {
        CredentialCmd::Request {
            agent,
            cp,
            audience,
        } => {
            crate::cp_client_cmd::credential_request(mesh.home().root(), &agent, &cp, audience)
                .await
        }
        CredentialCmd::Issue {
            agent,
            audience,
            ttl,
        } => {
            let ttl = humantime::parse_duration(&ttl)
                .map_err(|e| anyhow!("--ttl `{ttl}`: {e}"))?
                .as_secs();
            if ttl == 0 || ttl > 30 * 86_400 {
                bail!("--ttl must be between 1 s and 30 days");
            }
            let a = mesh.agent(&agent).await?;
            if a.status != agentmesh_delegation::AgentStatus::Active {
                bail!(
                    "agent `{agent}` is {:?}; only active agents get credentials",
                    a.status
                );
            }
            let key = mesh.home().mesh_key()?;
            let (text, claims) = credential::issue(&key, &a.did, &audience, ttl, unix_now());
            Ok(
                Output::new(json!({"credential": text, "claims": claims}), text).with_note(
                    format!(
                        "bearer credential `{}` for `{}` (audience `{audience}`), expires {}; send it as `Authorization: Bearer <credential>`",
                        claims.id,
                        a.name,
                        time(claims.exp)
                    ),
                ),
            )
        }
        CredentialCmd::Revoke {
            credential: given,
            reason,
            ..
        } => {
            // Without a control plane: this home's registry, which a
            // gateway on this home reloads every second.
            let now = unix_now();
            let key = mesh.home().mesh_key()?;
            let (id, agent, expires_at) = if given.starts_with(credential::CREDENTIAL_PREFIX) {
                let c = credential::decode(&given, key.public())
                    .map_err(|e| anyhow!("this credential was not issued by this mesh: {e}"))?;
                (c.id, c.sub, c.exp)
            } else if !given.is_empty() && given.len() <= 64 && !given.contains('.') {
                // Unknown lifetime: keep the revocation as long as the
                // longest credential `credential issue` makes.
                (given.clone(), String::new(), now + 30 * 86_400)
            } else {
                bail!("give a credential id or an `amcr1.` credential issued by this mesh");
            };
            let reason =
                reason.unwrap_or_else(|| "revoked with agentmesh credential revoke".into());
            mesh.registry()
                .revoke_credential(&agentmesh_store::RevokedCredential {
                    id: id.clone(),
                    agent: agent.clone(),
                    reason: reason.clone(),
                    revoked_at: now,
                    expires_at,
                })
                .await?;
            mesh.record(agentmesh_audit::Draft {
                event: agentmesh_audit::Event::CredentialRevoked.into(),
                agent,
                action: "credential.revoked".into(),
                decision: "allow".into(),
                detail: json!({"id": id, "reason": reason, "by": "cli"}),
                ..agentmesh_audit::Draft::default()
            })
            .await?;
            Ok(Output::new(
                json!({"id": id, "revoked": true}),
                format!(
                    "revoked credential {id} in this home (gateways on it refuse it within a second)"
                ),
            ))
        }
    }
}

/// `approvals list` as printed, from this home's registry or a control
/// plane's.
pub fn approvals_listing(list: &[ApprovalRecord], now: u64) -> Output {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|a| {
            let state = if a.state == ApprovalStatus::Pending && a.expires_at <= now {
                "expired".to_owned()
            } else {
                a.state.as_str().to_owned()
            };
            vec![
                a.id.clone(),
                state,
                a.summary["agent"].as_str().unwrap_or(&a.caller).to_owned(),
                a.action.clone(),
                a.summary["arguments"]
                    .to_string()
                    .chars()
                    .take(60)
                    .collect(),
                if a.approvers.is_empty() {
                    "any".into()
                } else {
                    a.approvers.join(",")
                },
                time(a.expires_at),
            ]
        })
        .collect();
    Output::new(
        json!(list),
        if rows.is_empty() {
            "no pending approvals".into()
        } else {
            table(
                &[
                    "ID",
                    "STATE",
                    "AGENT",
                    "ACTION",
                    "ARGUMENTS",
                    "APPROVERS",
                    "EXPIRES",
                ],
                &rows,
            )
        },
    )
}
