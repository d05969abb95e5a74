//! Admin commands against a control plane by URL (`--control-plane URL` or
//! `AGENTMESH_CONTROL_PLANE`), with the same flags and output as against
//! this home. Nothing here writes the local registry: the control plane's
//! API does the work, and what it answers is checked where it can be (a
//! sponsorship attestation is verified here, not taken on trust).

use crate::output::Output;
use crate::{AgentCmd, ControlPlaneArgs, PolicyCmd, RemoteArgs};
use agentmesh_server::client::ControlPlane;
use agentmesh_store::{AgentRecord, unix_now};
use anyhow::{Result, anyhow};
use hyper::Method;
use serde_json::{Value, json};
use std::path::Path;

async fn client(home: &Path, r: &RemoteArgs) -> Result<ControlPlane> {
    let url = r
        .control_plane
        .clone()
        .ok_or_else(|| anyhow!("no control plane given"))?;
    // Said every time: `AGENTMESH_CONTROL_PLANE` turns these commands
    // remote, and the operator should see where they act.
    eprintln!("agentmesh: acting on control plane {url}");
    crate::cp_client_cmd::client(
        home,
        &ControlPlaneArgs {
            control_plane: url,
            control_plane_token_file: r.control_plane_token_file.clone(),
        },
    )
    .await
}

/// Path segment for an agent name or DID (percent-encoded; `.` and `..`
/// alone would be read as path steps by a normalising proxy, so they are
/// encoded too).
fn seg(id: &str) -> String {
    if id == "." || id == ".." {
        return id.replace('.', "%2E");
    }
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every agent, page by page.
async fn all_agents(cp: &ControlPlane) -> Result<Vec<AgentRecord>> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/agents?limit=1000&after={}", seg(a)),
            None => "/v1/agents?limit=1000".to_owned(),
        };
        let page = cp.call(Method::GET, &path, None).await?;
        let agents: Vec<AgentRecord> = serde_json::from_value(page["agents"].clone())
            .map_err(|e| anyhow!("the control plane's agent list is not readable: {e}"))?;
        out.extend(agents);
        match page["next_after"].as_str() {
            // A server that repeats itself would page forever.
            Some(next) if after.as_deref() != Some(next) => after = Some(next.to_owned()),
            Some(next) => {
                return Err(anyhow!(
                    "the control plane repeated page `{next}` of the agent list"
                ));
            }
            None => return Ok(out),
        }
    }
}

pub async fn agent(home: &Path, cmd: AgentCmd) -> Result<Output> {
    let remote = cmd
        .remote()
        .cloned()
        .ok_or_else(|| anyhow!("not a control-plane command"))?;
    let cp = client(home, &remote).await?;
    match cmd {
        AgentCmd::List { status, .. } => Ok(crate::commands::agents_listing(
            all_agents(&cp).await?,
            status.as_deref(),
        )),
        AgentCmd::Show { agent, .. } => {
            let v = cp
                .call(Method::GET, &format!("/v1/agents/{}", seg(&agent)), None)
                .await?;
            let a: AgentRecord = serde_json::from_value(v["agent"].clone())
                .map_err(|e| anyhow!("the control plane's answer is not an agent: {e}"))?;
            // The sponsor's signature is checked here, not taken on the
            // control plane's word.
            let sponsors = cp.call(Method::GET, "/v1/sponsors", None).await?;
            let sponsor_ok = sponsors["sponsors"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| {
                    s["email"] == a.sponsor.as_str()
                        && s["did"] == a.sponsorship.sponsor_did.to_string().as_str()
                });
            // The attestation must be about this record: same agent, same
            // sponsor, and signed by the sponsor's registered key.
            let about_this = a.sponsorship.agent_did == a.did
                && a.sponsorship.sponsor == a.sponsor
                && a.sponsorship.agent_name == a.name;
            let attestation = match (a.sponsorship.verify(unix_now()), sponsor_ok, about_this) {
                (Ok(()), true, true) => format!(
                    "signature valid, signed by {} ({})",
                    a.sponsor, a.sponsorship.sponsor_did
                ),
                (Ok(()), false, _) => {
                    "signature valid but the signer is not this sponsor's registered key".into()
                }
                (Ok(()), true, false) => {
                    "INVALID: the attestation is about another agent or sponsor".into()
                }
                (Err(e), _, _) => format!("INVALID: {e}"),
            };
            let trust = match v["trust"]["score"].as_f64() {
                Some(s) => format!(
                    "{s:.3} ({})",
                    v["trust"]["tier"].as_str().unwrap_or("unknown tier")
                ),
                None => "no events yet".into(),
            };
            let text = format!(
                "name          {}\nDID           {}\nSPIFFE ID     {}\nstatus        {}{}\nsponsor       {}\ncapabilities  {}\ntrust         {trust}\nattestation   {attestation}",
                a.name,
                a.did,
                a.spiffe_id,
                crate::commands::status_word(a.status),
                a.status_reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
                a.sponsor,
                a.capabilities
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            Ok(Output::new(
                json!({"agent": a, "trust": v["trust"], "attestation": attestation}),
                text,
            ))
        }
        AgentCmd::Revoke { agent, reason, .. } => {
            let v = cp
                .call(
                    Method::POST,
                    &format!("/v1/agents/{}/revoke", seg(&agent)),
                    Some(&json!({"reason": reason})),
                )
                .await?;
            let names: Vec<String> = serde_json::from_value(v["revoked"].clone())
                .map_err(|e| anyhow!("unexpected answer: {e}"))?;
            Ok(crate::commands::revoked(names, &reason))
        }
        AgentCmd::Suspend { agent, reason, .. } => {
            let body = match &reason {
                Some(r) => json!({"reason": r}),
                None => json!({}),
            };
            status_change(&cp, &agent, "suspend", &body, "suspended", "Suspended").await
        }
        AgentCmd::Reactivate { agent, .. } => {
            status_change(
                &cp,
                &agent,
                "reactivate",
                &json!({}),
                "active",
                "Reactivated",
            )
            .await
        }
        AgentCmd::Create(_) | AgentCmd::Import { .. } | AgentCmd::Export { .. } => {
            Err(anyhow!("not a control-plane command"))
        }
    }
}

async fn status_change(
    cp: &ControlPlane,
    agent: &str,
    verb: &str,
    body: &Value,
    status: &str,
    done: &str,
) -> Result<Output> {
    let v = cp
        .call(
            Method::POST,
            &format!("/v1/agents/{}/{verb}", seg(agent)),
            Some(body),
        )
        .await?;
    let name = v["agent"]["name"]
        .as_str()
        .or_else(|| v["name"].as_str())
        .unwrap_or(agent)
        .to_owned();
    Ok(Output::new(
        json!({"agent": name, "status": status}),
        format!("{done} {name}"),
    ))
}

/// `policy publish` and `policy show` (a control plane's published policy).
pub async fn policy(home: &Path, cmd: PolicyCmd) -> Result<Output> {
    match cmd {
        PolicyCmd::Publish { file, cp } => {
            let text =
                std::fs::read_to_string(&file).map_err(|e| anyhow!("{}: {e}", file.display()))?;
            // The same compiler the control plane and every gateway use:
            // an invalid policy never leaves this machine.
            let set = agentmesh_policy::PolicySet::from_yaml(&text, &file.display().to_string())
                .map_err(|e| anyhow!("{e}"))?;
            let cp = crate::cp_client_cmd::client(home, &cp).await?;
            let (status, body) = cp
                .send(Method::PUT, "/v1/policy", Some(text.into_bytes()), None)
                .await?;
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if !status.is_success() {
                return Err(anyhow!(
                    "the control plane refused the policy ({status}): {}",
                    v["error"]["message"].as_str().unwrap_or("no reason given")
                ));
            }
            let mut text = format!(
                "Published {} (version {}, sha256 {})",
                file.display(),
                v["version"].as_str().unwrap_or(&set.version),
                v["sha256"].as_str().unwrap_or("?")
            );
            for w in &set.warnings {
                text.push_str(&format!("\nwarning: {w}"));
            }
            Ok(Output::new(v, text))
        }
        PolicyCmd::Show { cp } => {
            let cp = crate::cp_client_cmd::client(home, &cp).await?;
            let v = cp.call(Method::GET, "/v1/policy", None).await?;
            let yaml = v["yaml"].as_str().unwrap_or_default().to_owned();
            let version = agentmesh_policy::PolicySet::from_yaml(&yaml, "published policy")
                .map(|s| s.version.to_string())
                .unwrap_or_else(|e| format!("unreadable here: {e}"));
            Ok(Output::new(
                json!({"version": version, "sha256": v["sha256"], "updated_at": v["updated_at"], "yaml": yaml}),
                format!(
                    "# version {version}, sha256 {}\n{yaml}",
                    v["sha256"].as_str().unwrap_or("?")
                ),
            ))
        }
        PolicyCmd::Diff { file, cp } => {
            let text =
                std::fs::read_to_string(&file).map_err(|e| anyhow!("{}: {e}", file.display()))?;
            // Only a valid policy is compared (the same compiler).
            let local = agentmesh_policy::PolicySet::from_yaml(&text, &file.display().to_string())
                .map_err(|e| anyhow!("{e}"))?;
            let cp = crate::cp_client_cmd::client(home, &cp).await?;
            let v = cp.call(Method::GET, "/v1/policy", None).await?;
            let published = v["yaml"].as_str().unwrap_or_default();
            let d = policy_diff(published, &text)?;
            let same = diff_is_empty(&d);
            let mut lines = vec![format!(
                "published (sha256 {}) → {} (version {})",
                v["sha256"].as_str().map_or("?", |h| &h[..h.len().min(16)]),
                file.display(),
                local.version
            )];
            if same {
                lines.push("no differences in rules or policy settings".into());
            }
            for (what, sign) in [("added", "+"), ("removed", "-"), ("changed", "~")] {
                for name in d[what].as_array().into_iter().flatten() {
                    lines.push(format!("{sign} {}", name.as_str().unwrap_or_default()));
                }
            }
            let out = Output::new(d, lines.join("\n"));
            Ok(if same { out } else { out.with_code(1) })
        }
        _ => Err(anyhow!("not a control-plane command")),
    }
}

/// Rules (as `policy/rule`) and policy settings (as `policy.key`) that
/// differ between two policy documents, read as YAML data (formatting and
/// comments never count as changes).
fn policy_diff(old: &str, new: &str) -> Result<Value> {
    use std::collections::BTreeMap;
    fn items(doc: &str) -> Result<BTreeMap<String, Value>> {
        let v: Value = yaml_serde::from_str(doc).map_err(|e| anyhow!("policy YAML: {e}"))?;
        let policies = match v.get("policies").and_then(Value::as_array) {
            Some(list) => list.clone(),
            None => vec![v],
        };
        let mut out = BTreeMap::new();
        for (i, p) in policies.iter().enumerate() {
            let pname = p["name"]
                .as_str()
                .map_or_else(|| format!("policy#{i}"), str::to_owned);
            if let Some(map) = p.as_object() {
                for (k, val) in map {
                    if k != "rules" {
                        out.insert(format!("{pname}.{k}"), val.clone());
                    }
                }
            }
            for (j, r) in p["rules"].as_array().into_iter().flatten().enumerate() {
                let rname = r["name"]
                    .as_str()
                    .map_or_else(|| format!("#{j}"), str::to_owned);
                out.insert(format!("{pname}/{rname}"), r.clone());
            }
        }
        Ok(out)
    }
    let (a, b) = (items(old)?, items(new)?);
    let added: Vec<&String> = b.keys().filter(|k| !a.contains_key(*k)).collect();
    let removed: Vec<&String> = a.keys().filter(|k| !b.contains_key(*k)).collect();
    let changed: Vec<&String> = b
        .iter()
        .filter(|(k, v)| a.get(*k).is_some_and(|old| old != *v))
        .map(|(k, _)| k)
        .collect();
    Ok(json!({"added": added, "removed": removed, "changed": changed}))
}

/// A diff with nothing added, removed or changed.
fn diff_is_empty(d: &Value) -> bool {
    ["added", "removed", "changed"]
        .iter()
        .all(|k| d[*k].as_array().is_none_or(Vec::is_empty))
}

/// `audit proof INDEX --control-plane URL`: the control plane gives the
/// entry, the path and a signed checkpoint; the proof is checked here.
pub async fn audit_proof(
    home: &Path,
    remote: &RemoteArgs,
    index: u64,
    pubkey: Option<&str>,
) -> Result<Output> {
    let cp = client(home, remote).await?;
    let p = cp
        .call(Method::GET, &format!("/v1/audit/{index}/proof"), None)
        .await?;
    // The proof must be of the entry asked for, not of another one.
    if p["index"].as_u64() != Some(index) {
        return Err(anyhow!(
            "asked for a proof of entry {index}, the control plane sent one for {}",
            p["index"]
        ));
    }
    let note = p["checkpoint"]
        .as_str()
        .ok_or_else(|| anyhow!("the control plane sent no signed checkpoint"))?;
    let (verifier, key_from) = checkpoint_verifier(&cp, note, pubkey).await?;
    let checked = crate::audit_cmd::check_proof(&p, &verifier)?;
    let valid = checked.json["valid"] == json!(true);
    let mut out = Output::new(
        json!({"proof": p, "valid": valid, "pinned": pubkey.is_some(), "verification": checked.json, "key": key_from}),
        format!("{}\nkey: {key_from}", checked.text),
    );
    if !valid {
        out = out.with_code(1);
    }
    Ok(out)
}

/// Who must have signed a control plane's checkpoint `note`: the key given
/// with `--pubkey` (pinned), else the control plane's own mesh key as its
/// public `/v1/authority` names it. Returns the verifier and a line saying
/// which it was.
async fn checkpoint_verifier(
    cp: &ControlPlane,
    note: &str,
    pubkey: Option<&str>,
) -> Result<(agentmesh_audit::note::NoteVerifier, String)> {
    let origin = agentmesh_audit::note::parse_unverified(note)
        .map_err(|e| anyhow!("the control plane's checkpoint: {e}"))?
        .origin;
    match pubkey {
        Some(k) => Ok((
            crate::audit_cmd::parse_verifier(k, Some(&origin))?,
            "--pubkey".to_owned(),
        )),
        None => {
            let did = cp.call(Method::GET, "/v1/authority", None).await?["mesh"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            // Only ever a DID from the server (never a path to open here).
            if !did.starts_with("did:") {
                return Err(anyhow!(
                    "the control plane's authority is not a DID: `{did}`"
                ));
            }
            Ok((
                crate::audit_cmd::parse_verifier(&did, Some(&origin))?,
                format!("the control plane's own key {did} (give --pubkey to pin it)"),
            ))
        }
    }
}

/// `audit show N --control-plane URL`: one entry, checked here to be in
/// canonical form and to hash to the leaf the control plane names.
pub async fn audit_show(home: &Path, remote: &RemoteArgs, index: u64) -> Result<Output> {
    let cp = client(home, remote).await?;
    let v = cp
        .call(Method::GET, &format!("/v1/audit/{index}"), None)
        .await?;
    if v["index"].as_u64() != Some(index) {
        return Err(anyhow!(
            "asked for entry {index}, the control plane sent {}",
            v["index"]
        ));
    }
    let (_, leaf) = checked_leaf(&v, index)?;
    let shown =
        json!({"index": index, "leaf_hash": agentmesh_audit::hex(&leaf), "entry": v["entry"]});
    let text = serde_json::to_string_pretty(&shown)?;
    Ok(Output::new(shown, text))
}

/// An entry as the control plane's API shows it (`{"index", "leaf_hash",
/// "entry"}`): its canonical bytes must parse as an audit entry and hash to
/// the leaf hash given. Returns the bytes and the leaf hash.
fn checked_leaf(v: &Value, index: u64) -> Result<(Vec<u8>, agentmesh_audit::Hash)> {
    let bytes = agentmesh_identity::to_canonical_json(&v["entry"]).into_bytes();
    agentmesh_audit::Entry::from_bytes(&bytes)
        .map_err(|e| anyhow!("entry {index} from the control plane is not an audit entry: {e}"))?;
    let leaf = agentmesh_audit::leaf_hash(&bytes);
    let named = v["leaf_hash"].as_str().and_then(agentmesh_audit::parse_hex);
    if named != Some(leaf) {
        return Err(anyhow!(
            "entry {index}: the control plane names leaf hash {}, its bytes hash to {}",
            v["leaf_hash"],
            agentmesh_audit::hex(&leaf)
        ));
    }
    Ok((bytes, leaf))
}

/// `audit verify --control-plane URL [--pubkey K]`: the control plane's
/// whole log, checked here: its latest checkpoint's signature (by the
/// pinned key, or the key its authority names), then every entry up to the
/// checkpoint's size — canonical, in order, hashing to the leaf named —
/// and the Merkle root recomputed from them against the signed root. The
/// server is trusted for nothing it could forge.
pub async fn audit_verify(
    home: &Path,
    remote: &RemoteArgs,
    pubkey: Option<&str>,
) -> Result<Output> {
    use agentmesh_audit::{CheckpointResult, Problem, Report, hex};
    let cp = client(home, remote).await?;
    let note = cp
        .call(Method::GET, "/v1/audit/checkpoint", None)
        .await
        .map_err(|e| anyhow!("{e} (the control plane signs a checkpoint every so often; sign one now with `POST /v1/audit/checkpoint`)"))?;
    let note = note["checkpoint"]
        .as_str()
        .ok_or_else(|| anyhow!("the control plane sent no signed checkpoint"))?
        .to_owned();
    let (verifier, key_from) = checkpoint_verifier(&cp, &note, pubkey).await?;
    let signed = agentmesh_audit::note::verify_checkpoint(&note, &verifier)
        .map_err(|e| anyhow!("the control plane's checkpoint does not verify: {e}"))?;
    let mut frontier = agentmesh_audit::tree::Frontier::new();
    let mut problem = None;
    let mut next = 0u64;
    'pages: while next < signed.size {
        let limit = (signed.size - next).min(1000);
        let page = cp
            .call(
                Method::GET,
                &format!("/v1/audit?from={next}&limit={limit}"),
                None,
            )
            .await?;
        let entries = page["entries"].as_array().cloned().unwrap_or_default();
        if entries.is_empty() {
            problem = Some(Problem {
                index: next,
                reason: format!(
                    "the control plane sent no entries from {next}, but its checkpoint covers {}",
                    signed.size
                ),
            });
            break;
        }
        for e in &entries {
            if e["index"].as_u64() != Some(next) {
                problem = Some(Problem {
                    index: next,
                    reason: format!("expected entry {next}, got {}", e["index"]),
                });
                break 'pages;
            }
            match checked_leaf(e, next) {
                Ok((_, leaf)) => frontier.push(leaf, |_, _, _| {}),
                Err(err) => {
                    problem = Some(Problem {
                        index: next,
                        reason: err.to_string(),
                    });
                    break 'pages;
                }
            }
            next += 1;
            if next == signed.size {
                break;
            }
        }
    }
    let root = frontier.root();
    let checkpoints = if problem.is_none() {
        let ok = root == signed.root;
        vec![CheckpointResult {
            size: signed.size,
            root: hex(&signed.root),
            ok,
            detail: if ok {
                format!("signed by {} and matches the entries", verifier.name)
            } else {
                format!("root {} recomputed from the entries differs", hex(&root))
            },
        }]
    } else {
        Vec::new()
    };
    let report = Report {
        entries: frontier.size(),
        root: hex(&root),
        checkpoints,
        problem,
    };
    let mut v = serde_json::to_value(&report)?;
    v["pinned"] = json!(pubkey.is_some());
    v["key"] = json!(key_from);
    let key_line = format!("key: {key_from}");
    Ok(crate::audit_cmd::verify_shown(
        &report,
        " of the control plane's log, here,",
        Some(&key_line),
        v,
    ))
}

/// `approvals list [--all] --control-plane URL`.
pub async fn approvals_list(home: &Path, remote: &RemoteArgs, all: bool) -> Result<Output> {
    let cp = client(home, remote).await?;
    let v = cp
        .call(Method::GET, &format!("/v1/approvals?all={all}"), None)
        .await?;
    let list: Vec<agentmesh_store::ApprovalRecord> = serde_json::from_value(v["approvals"].clone())
        .map_err(|e| anyhow!("the control plane's approval list is not readable: {e}"))?;
    Ok(crate::mcp_cmd::approvals_listing(&list, unix_now()))
}

/// `trust list [--below X] --control-plane URL`.
pub async fn trust_list(home: &Path, remote: &RemoteArgs, below: Option<f64>) -> Result<Output> {
    let cp = client(home, remote).await?;
    let agents = all_agents(&cp).await?;
    let v = cp.call(Method::GET, "/v1/trust", None).await?;
    let mut scores = std::collections::HashMap::new();
    for t in v["trust"].as_array().cloned().unwrap_or_default() {
        let did = t["agent"].as_str().unwrap_or_default().to_owned();
        let score: agentmesh_trust::Score = serde_json::from_value(t["score"].clone())
            .map_err(|e| anyhow!("the control plane's score of {did} is not readable: {e}"))?;
        scores.insert(did, score);
    }
    // No trust events yet: the prior, as the control plane scores it.
    let prior: agentmesh_trust::Score = serde_json::from_value(v["prior"].clone())
        .map_err(|e| anyhow!("the control plane's prior score is not readable: {e}"))?;
    let items = agents
        .into_iter()
        .map(|a| {
            let s = scores
                .remove(&a.did.to_mesh().to_string())
                .unwrap_or_else(|| prior.clone());
            (a, s)
        })
        .collect();
    Ok(crate::trust_cmd::trust_listing(items, below))
}

/// `trust history AGENT --control-plane URL`.
pub async fn trust_history(
    home: &Path,
    remote: &RemoteArgs,
    agent: &str,
    last: usize,
) -> Result<Output> {
    let cp = client(home, remote).await?;
    let v = cp
        .call(
            Method::GET,
            &format!("/v1/trust/{}/history", seg(agent)),
            None,
        )
        .await?;
    let name = v["name"].as_str().unwrap_or(agent).to_owned();
    let points: Vec<crate::trust_cmd::Point> = v["points"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|p| {
            Some(crate::trust_cmd::Point {
                index: p["index"].as_u64()?,
                time: p["time"].as_str()?.to_owned(),
                score: p["score"].as_f64()?,
            })
        })
        .collect();
    Ok(crate::trust_cmd::history_shown(&name, &points, last))
}

/// `trust explain AGENT --control-plane URL`: the control plane's score and
/// the trust events behind it (from its audit log), as the home prints them.
pub async fn trust_explain(
    home: &Path,
    remote: &RemoteArgs,
    agent: &str,
    last: usize,
) -> Result<Output> {
    let cp = client(home, remote).await?;
    let shown = cp
        .call(Method::GET, &format!("/v1/trust/{}", seg(agent)), None)
        .await?;
    let v = cp
        .call(
            Method::GET,
            &format!("/v1/trust/{}/history", seg(agent)),
            None,
        )
        .await?;
    let name = v["name"].as_str().unwrap_or(agent).to_owned();
    let score: agentmesh_trust::Score = if shown["score"].is_null() {
        // No trust events yet: the control plane's prior.
        let all = cp.call(Method::GET, "/v1/trust", None).await?;
        serde_json::from_value(all["prior"].clone())
    } else {
        serde_json::from_value(shown["score"].clone())
    }
    .map_err(|e| anyhow!("the control plane's score is not readable: {e}"))?;
    let lines: Vec<crate::trust_cmd::Line> = v["points"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|p| {
            Some(crate::trust_cmd::Line {
                index: p["index"].as_u64()?,
                time: p["time"].as_str()?.to_owned(),
                label: p["label"].as_str()?.to_owned(),
                before: p["before"].as_f64()?,
                after: p["score"].as_f64()?,
            })
        })
        .collect();
    let record = cp
        .call(Method::GET, &format!("/v1/agents/{}", seg(agent)), None)
        .await?;
    let status = match record["agent"]["status"].as_str() {
        Some("active") | None => None,
        Some(st) => Some(match record["agent"]["status_reason"].as_str() {
            Some(r) => format!("{st} ({r})"),
            None => st.to_owned(),
        }),
    };
    Ok(crate::trust_cmd::explain_shown(
        &name,
        &score,
        &lines,
        last,
        status.as_deref(),
    ))
}

/// `trust show AGENT --control-plane URL`.
pub async fn trust_show(home: &Path, remote: &RemoteArgs, agent: &str) -> Result<Output> {
    let cp = client(home, remote).await?;
    let v = cp
        .call(Method::GET, &format!("/v1/trust/{}", seg(agent)), None)
        .await?;
    let name = v["name"].as_str().unwrap_or(agent).to_owned();
    let did = v["agent"].as_str().unwrap_or_default().to_owned();
    if v["score"].is_null() {
        return Ok(Output::new(
            json!({"agent": name, "did": did, "events": 0, "trust": Value::Null}),
            format!("agent        {name} ({did})\nno trust events yet: the prior applies"),
        ));
    }
    let score: agentmesh_trust::Score = serde_json::from_value(v["score"].clone())
        .map_err(|e| anyhow!("the control plane's score is not readable: {e}"))?;
    Ok(crate::trust_cmd::trust_shown(&name, &did, None, &score))
}

/// `sponsor list --control-plane URL`.
pub async fn sponsors(home: &Path, remote: &RemoteArgs) -> Result<Output> {
    let cp = client(home, remote).await?;
    let v = cp.call(Method::GET, "/v1/sponsors", None).await?;
    let sponsors: Vec<agentmesh_store::SponsorRecord> =
        serde_json::from_value(v["sponsors"].clone())
            .map_err(|e| anyhow!("the control plane's sponsor list is not readable: {e}"))?;
    let agents = all_agents(&cp).await?;
    Ok(crate::commands::sponsors_listing(sponsors, &agents))
}

/// `compliance report --framework F --since D --control-plane URL`: built
/// at the control plane over its log, read back as the same report type
/// and printed as a local report is.
pub async fn compliance_report(
    home: &Path,
    remote: &RemoteArgs,
    framework: &str,
    since_secs: u64,
) -> Result<agentmesh_compliance::report::Report> {
    let cp = client(home, remote).await?;
    let v = cp
        .call(
            Method::GET,
            &format!(
                "/v1/compliance/report?format=json&framework={}&since_secs={since_secs}",
                seg(framework)
            ),
            None,
        )
        .await?;
    let first = v["reports"]
        .as_array()
        .and_then(|r| r.first())
        .cloned()
        .ok_or_else(|| anyhow!("the control plane sent no report"))?;
    let r: agentmesh_compliance::report::Report = serde_json::from_value(first)
        .map_err(|e| anyhow!("the control plane's report is not readable: {e}"))?;
    if r.framework != framework {
        return Err(anyhow!(
            "asked for a `{framework}` report, the control plane sent `{}`",
            r.framework
        ));
    }
    Ok(r)
}

/// `sponsor show EMAIL --control-plane URL`.
pub async fn sponsor_show(home: &Path, remote: &RemoteArgs, email: &str) -> Result<Output> {
    let cp = client(home, remote).await?;
    let v = cp.call(Method::GET, "/v1/sponsors", None).await?;
    let sponsors: Vec<agentmesh_store::SponsorRecord> =
        serde_json::from_value(v["sponsors"].clone())
            .map_err(|e| anyhow!("the control plane's sponsor list is not readable: {e}"))?;
    let s = sponsors
        .into_iter()
        .find(|s| s.email.eq_ignore_ascii_case(email))
        .ok_or_else(|| anyhow!("no sponsor `{email}` at the control plane"))?;
    let agents = all_agents(&cp).await?;
    Ok(crate::commands::sponsor_shown(&s, &agents))
}

/// `audit tail -n N --control-plane URL`: the newest entries of the control
/// plane's log (up to 1 000), printed as the local tail prints them.
pub async fn audit_tail(home: &Path, remote: &RemoteArgs, lines: u64) -> Result<Output> {
    let cp = client(home, remote).await?;
    if lines == 0 {
        return Ok(Output::new(json!({"entries": []}), String::new()));
    }
    let limit = lines.min(1000);
    let v = cp
        .call(Method::GET, &format!("/v1/audit?limit={limit}"), None)
        .await?;
    let entries = v["entries"].as_array().cloned().unwrap_or_default();
    let text = entries
        .iter()
        .map(|e| {
            let d = &e["entry"];
            let s = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
            crate::audit_cmd::tail_line(
                e["index"].as_u64().unwrap_or_default(),
                &s("time"),
                &s("event"),
                &s("agent"),
                &s("action"),
                &s("decision"),
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Output::new(
        json!({"size": v["size"], "entries": entries}),
        text,
    ))
}
