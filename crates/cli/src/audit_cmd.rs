//! `agentmesh audit …`: read, prove, verify and export the audit log.

use crate::AuditCmd;
use crate::commands::read_input;
use crate::output::Output;
use agentmesh_audit::note::{NoteSigner, NoteVerifier, parse_unverified, verify_checkpoint};
use agentmesh_audit::{
    AuditLog, StoredEntry, cloud_event, hex, jsonl_line, leaf_hash, parse_hex, verify_inclusion,
    verify_log,
};
use agentmesh_identity::Did;
use agentmesh_store::MeshHome;
use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use std::io::{IsTerminal, Write};
use std::path::Path;

pub async fn run(home: &Path, cmd: AuditCmd) -> Result<Output> {
    match cmd {
        AuditCmd::Tail {
            lines,
            follow,
            remote,
        } if remote.control_plane.is_some() => {
            if follow {
                bail!("`audit tail -f` follows this home's log; by URL, repeat `audit tail`");
            }
            crate::remote_cmd::audit_tail(home, &remote, lines).await
        }
        AuditCmd::Tail { lines, follow, .. } => tail(home, lines, follow),
        AuditCmd::Show { index, remote } if remote.control_plane.is_some() => {
            crate::remote_cmd::audit_show(home, &remote, index).await
        }
        AuditCmd::Show { index, .. } => {
            let log = reader(home)?;
            let e = log.entry(index)?;
            let v =
                json!({"index": index, "leaf_hash": hex(&e.leaf_hash), "entry": e.entry.to_json()});
            let text = serde_json::to_string_pretty(&v)?;
            Ok(Output::new(v, text))
        }
        AuditCmd::Proof {
            index,
            remote,
            pubkey,
            size,
        } if remote.control_plane.is_some() => {
            if size.is_some() {
                bail!(
                    "--size is for this home's log; a control plane proves against its latest checkpoint"
                );
            }
            crate::remote_cmd::audit_proof(home, &remote, index, pubkey.as_deref()).await
        }
        AuditCmd::Proof { index, size, .. } => proof(home, index, size),
        AuditCmd::VerifyProof { proof, pubkey } => verify_proof(home, &proof, pubkey.as_deref()),
        AuditCmd::Verify {
            checkpoint,
            pubkey,
            dir,
            remote,
        } if remote.control_plane.is_some() => {
            if !checkpoint.is_empty() || dir.is_some() {
                bail!(
                    "--checkpoint and --dir are for a log on this machine; by URL the control plane's latest checkpoint is verified"
                );
            }
            crate::remote_cmd::audit_verify(home, &remote, pubkey.as_deref()).await
        }
        AuditCmd::Verify {
            checkpoint,
            pubkey,
            dir,
            ..
        } => verify(home, &checkpoint, pubkey.as_deref(), dir.as_deref()),
        AuditCmd::Export { format, from } => export(home, &format, from),
        AuditCmd::Checkpoint => {
            let h = MeshHome::open(home)?;
            let log = AuditLog::open(&h.audit_dir(), Default::default())?;
            let signer =
                NoteSigner::new(&h.audit_origin(), h.mesh_key()?).map_err(|e| anyhow!("{e}"))?;
            let note = log.checkpoint(&signer)?;
            log.close()?;
            let cp = parse_unverified(&note).map_err(|e| anyhow!("{e}"))?;
            Ok(Output::new(
                json!({"size": cp.size, "root": hex(&cp.root), "note": note}),
                note,
            ))
        }
        AuditCmd::Pubkey => {
            let v = home_verifier(home)?;
            let vkey = v.to_vkey();
            Ok(Output::new(
                json!({"vkey": vkey, "name": v.name, "did": v.key.did()}),
                vkey,
            ))
        }
    }
}

fn reader(home: &Path) -> Result<AuditLog> {
    let h = MeshHome::open(home)?;
    AuditLog::open_read_only(&h.audit_dir())
        .context("opening the audit log (nothing recorded yet?)")
}

fn home_verifier(home: &Path) -> Result<NoteVerifier> {
    let h = MeshHome::open(home)?;
    let key = h.config().mesh_did.public_key()?;
    NoteVerifier::new(&h.audit_origin(), key).map_err(|e| anyhow!("{e}"))
}

/// A verifier from `--pubkey`: a vkey, a DID (named after `origin`), or a
/// file holding either.
pub(crate) fn parse_verifier(arg: &str, origin: Option<&str>) -> Result<NoteVerifier> {
    let text = if Path::new(arg).is_file() {
        std::fs::read_to_string(arg).with_context(|| format!("reading {arg}"))?
    } else {
        arg.to_owned()
    };
    let text = text.trim();
    if text.starts_with("did:") {
        let did = Did::parse(text)?;
        let name = origin.ok_or_else(|| {
            anyhow!("with a DID as --pubkey, the checkpoint's origin names the key; none found")
        })?;
        return NoteVerifier::new(name, did.public_key()?).map_err(|e| anyhow!("{e}"));
    }
    NoteVerifier::parse_vkey(text).map_err(|e| anyhow!("--pubkey: {e}"))
}

fn line(e: &StoredEntry) -> String {
    let d = &e.entry.draft;
    tail_line(
        e.index,
        &e.entry.time,
        &d.event,
        &d.agent,
        &d.action,
        &d.decision,
    )
}

/// One line of `audit tail`, from this home's log or a control plane's.
pub(crate) fn tail_line(
    index: u64,
    time: &str,
    event: &str,
    agent: &str,
    action: &str,
    decision: &str,
) -> String {
    let who = match agent.char_indices().nth(24) {
        Some((cut, _)) => format!("{}…", &agent[..cut]),
        None => agent.to_owned(),
    };
    format!("{index:>6}  {time}  {event:<20} {who:<26} {action:<18} {decision}")
}

fn tail(home: &Path, lines: u64, follow: bool) -> Result<Output> {
    let log = reader(home)?;
    let size = log.size();
    let start = size.saturating_sub(lines);
    let entries: Vec<StoredEntry> = (start..size)
        .map(|i| log.entry(i))
        .collect::<Result<_, _>>()?;
    if !follow {
        let text = entries.iter().map(line).collect::<Vec<_>>().join("\n");
        let v: Vec<Value> = entries.iter().map(jsonl_line).collect();
        return Ok(Output::new(json!({"size": size, "entries": v}), text));
    }
    // Follow: print as entries become visible; stops on a closed pipe.
    let mut out = std::io::stdout().lock();
    for e in &entries {
        if writeln!(out, "{}", line(e)).is_err() {
            return Ok(Output::new(Value::Null, ""));
        }
    }
    let mut next = size;
    loop {
        let _ = out.flush();
        std::thread::sleep(std::time::Duration::from_millis(500));
        let log = reader(home)?;
        while next < log.size() {
            let e = log.entry(next)?;
            if writeln!(out, "{}", line(&e)).is_err() {
                return Ok(Output::new(Value::Null, ""));
            }
            next += 1;
        }
    }
}

fn proof(home: &Path, index: u64, size: Option<u64>) -> Result<Output> {
    let log = reader(home)?;
    let latest = log.latest_checkpoint()?;
    let cp = latest
        .as_deref()
        .map(parse_unverified)
        .transpose()
        .map_err(|e| anyhow!("{e}"))?;
    let size = match (size, &cp) {
        (Some(s), _) => s,
        (None, Some(c)) => c.size,
        (None, None) => {
            bail!("no signed checkpoint yet: run `agentmesh audit checkpoint` or give --size")
        }
    };
    if index >= size {
        bail!("entry {index} is not covered by a tree of size {size}");
    }
    let e = log.entry(index)?;
    let path = log.inclusion_proof(index, size)?;
    let root = log.root(size)?;
    let note = latest.filter(|_| cp.as_ref().is_some_and(|c| c.size == size));
    let v = json!({
        "index": index,
        "size": size,
        "entry": String::from_utf8_lossy(&e.bytes),
        "leaf_hash": hex(&e.leaf_hash),
        "proof": path.iter().map(|h| hex(h)).collect::<Vec<_>>(),
        "root": hex(&root),
        "checkpoint": note,
    });
    let text = serde_json::to_string_pretty(&v)?;
    Ok(Output::new(v, text))
}

fn verify_proof(home: &Path, arg: &str, pubkey: Option<&str>) -> Result<Output> {
    let raw = if arg == "-" || arg.starts_with('@') || arg.trim_start().starts_with('{') {
        read_input(arg)?
    } else {
        read_input(&format!("@{arg}"))?
    };
    let p: Value = serde_json::from_str(&raw).context("the proof is not JSON")?;
    let note = p["checkpoint"]
        .as_str()
        .ok_or_else(|| anyhow!("proof has no signed checkpoint to verify against"))?;
    let origin = parse_unverified(note).map_err(|e| anyhow!("{e}"))?.origin;
    let verifier = match pubkey {
        Some(k) => parse_verifier(k, Some(&origin))?,
        None => {
            home_verifier(home).context("no --pubkey given and no mesh home to take it from")?
        }
    };
    check_proof(&p, &verifier)
}

/// Checks an inclusion proof (as `audit proof` prints it) offline: the
/// checkpoint's signature by `verifier`, the entry's leaf hash and the
/// path to the signed root.
pub(crate) fn check_proof(p: &Value, verifier: &NoteVerifier) -> Result<Output> {
    let index = p["index"]
        .as_u64()
        .ok_or_else(|| anyhow!("proof: `index` missing"))?;
    let size = p["size"]
        .as_u64()
        .ok_or_else(|| anyhow!("proof: `size` missing"))?;
    let entry = p["entry"]
        .as_str()
        .ok_or_else(|| anyhow!("proof: `entry` missing"))?;
    let path: Vec<[u8; 32]> = p["proof"]
        .as_array()
        .ok_or_else(|| anyhow!("proof: `proof` missing"))?
        .iter()
        .map(|h| {
            h.as_str()
                .and_then(parse_hex)
                .ok_or_else(|| anyhow!("proof: bad hash"))
        })
        .collect::<Result<_>>()?;
    let note = p["checkpoint"]
        .as_str()
        .ok_or_else(|| anyhow!("proof has no signed checkpoint to verify against"))?;
    let cp = verify_checkpoint(note, verifier).map_err(|e| anyhow!("checkpoint: {e}"))?;
    if cp.size != size {
        bail!(
            "the proof is for size {size} but the checkpoint is for {}",
            cp.size
        );
    }
    let leaf = leaf_hash(entry.as_bytes());
    let result = verify_inclusion(&leaf, index, size, &path, &cp.root);
    let ok = result.is_ok();
    let text = match &result {
        Ok(()) => format!(
            "VALID: entry {index} is in the log of {size} entries signed by {} ({})",
            verifier.name,
            verifier.key.did()
        ),
        Err(e) => format!("INVALID: {e}"),
    };
    let out = Output::new(
        json!({"valid": ok, "index": index, "size": size, "error": result.err().map(|e| e.to_string())}),
        text,
    );
    Ok(if ok { out } else { out.with_code(1) })
}

fn verify(
    home: &Path,
    checkpoints: &[std::path::PathBuf],
    pubkey: Option<&str>,
    dir: Option<&Path>,
) -> Result<Output> {
    let dir = match dir {
        Some(d) => d.to_owned(),
        None => MeshHome::open(home)?.audit_dir(),
    };
    let mut notes = Vec::new();
    if checkpoints.is_empty() {
        let cdir = dir.join("checkpoints");
        if cdir.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(&cdir)?
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.extension().is_some_and(|x| x == "note")
                        && p.file_name().is_some_and(|n| n != "latest.note")
                })
                .collect();
            files.sort();
            for f in files {
                notes.push(
                    std::fs::read_to_string(&f)
                        .with_context(|| format!("reading {}", f.display()))?,
                );
            }
        }
    } else {
        for f in checkpoints {
            notes.push(
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
            );
        }
    }
    let origin = notes
        .first()
        .and_then(|n| parse_unverified(n).ok())
        .map(|c| c.origin);
    let verifier = match pubkey {
        Some(k) => Some(parse_verifier(k, origin.as_deref())?),
        None => home_verifier(home).ok(),
    };
    let show_progress = std::io::stderr().is_terminal();
    let mut last_pct = u64::MAX;
    let mut progress = |done: u64, total: u64| {
        if !show_progress || total == 0 {
            return;
        }
        let pct = done * 100 / total;
        if pct != last_pct {
            last_pct = pct;
            let bar = "#".repeat((pct / 4) as usize);
            eprint!("\rverifying [{bar:<25}] {pct:>3}%");
            if pct == 100 {
                eprintln!();
            }
        }
    };
    let report = verify_log(&dir, &notes, verifier.as_ref(), &mut progress)?;
    let note = notes
        .is_empty()
        .then_some("no signed checkpoints to compare with (run `agentmesh audit checkpoint`)");
    Ok(verify_shown(
        &report,
        "",
        note,
        serde_json::to_value(&report)?,
    ))
}

/// `audit verify` as printed, for this home's log or a control plane's:
/// entries and root, each checkpoint, then OK or the first failure; exit 1
/// on failure. `whose` names the log in the first line; `note` is a line
/// added before the verdict.
pub(crate) fn verify_shown(
    report: &agentmesh_audit::Report,
    whose: &str,
    note: Option<&str>,
    value: Value,
) -> Output {
    let mut text = format!(
        "{} entries{whose} verified; root {}\n",
        report.entries, report.root
    );
    for c in &report.checkpoints {
        text.push_str(&format!(
            "checkpoint {:>8}: {} ({})\n",
            c.size,
            if c.ok { "ok" } else { "FAILED" },
            c.detail
        ));
    }
    if let Some(n) = note {
        text.push_str(n);
        text.push('\n');
    }
    match &report.problem {
        Some(p) => text.push_str(&format!("FAILED at index {}: {}", p.index, p.reason)),
        None if report.ok() => text.push_str("OK"),
        None => text.push_str("FAILED: a checkpoint does not match"),
    }
    let out = Output::new(value, text);
    if report.ok() { out } else { out.with_code(1) }
}

fn export(home: &Path, format: &str, from: u64) -> Result<Output> {
    let h = MeshHome::open(home)?;
    let log = AuditLog::open_read_only(&h.audit_dir())?;
    let origin = h.audit_origin();
    let mut out = std::io::stdout().lock();
    for i in from..log.size() {
        let e = log.entry(i)?;
        let v = if format == "cloudevents" {
            cloud_event(&e, &origin)
        } else {
            jsonl_line(&e)
        };
        if writeln!(out, "{v}").is_err() {
            break;
        }
    }
    Ok(Output::new(Value::Null, ""))
}
