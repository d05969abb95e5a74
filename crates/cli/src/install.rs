//! `agentmesh mcp install`: points a desktop MCP client at the stdio
//! wrapper, by editing the client's own configuration file (after a
//! timestamped backup). Other entries are kept; JSON keys come out sorted.

use crate::InstallArgs;
use crate::output::Output;
use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};

/// Where each client keeps its MCP servers, and under which key.
fn client_file(client: &str) -> Result<(PathBuf, &'static str)> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .ok_or_else(|| anyhow!("HOME is not set; give --config-path"))?;
    let mac = cfg!(target_os = "macos");
    Ok(match client {
        "claude-desktop" if mac => (
            home.join("Library/Application Support/Claude/claude_desktop_config.json"),
            "mcpServers",
        ),
        "claude-desktop" => (
            home.join(".config/Claude/claude_desktop_config.json"),
            "mcpServers",
        ),
        "cursor" => (home.join(".cursor/mcp.json"), "mcpServers"),
        "windsurf" => (home.join(".codeium/windsurf/mcp_config.json"), "mcpServers"),
        // VS Code: the workspace file in the current directory.
        "vscode" => (PathBuf::from(".vscode/mcp.json"), "servers"),
        other => bail!(
            "unknown client `{other}`; known: claude-desktop, cursor, windsurf, vscode (or give --config-path and --key)"
        ),
    })
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    Ok(std::env::current_dir()?.join(p))
}

pub fn run(home: &Path, args: InstallArgs) -> Result<Output> {
    let (default_path, default_key) = client_file(&args.client).or_else(|e| {
        if args.config_path.is_some() {
            Ok((PathBuf::new(), "mcpServers"))
        } else {
            Err(e)
        }
    })?;
    let path = args.config_path.clone().unwrap_or(default_path);
    let key = args.key.clone().unwrap_or_else(|| default_key.to_owned());
    if args.command.is_empty() {
        bail!("give the server command after `--`");
    }
    let exe = std::env::current_exe().context("locating the agentmesh binary")?;
    let policy = absolute(&args.policy)?;
    if !policy.exists() {
        bail!("policy file {} does not exist", policy.display());
    }
    let mut wrap_args = vec![
        "--home".to_owned(),
        absolute(home)?.display().to_string(),
        "mcp".into(),
        "wrap".into(),
        "--agent".into(),
        args.agent.clone(),
        "--policy".into(),
        policy.display().to_string(),
        "--name".into(),
        args.name.clone(),
    ];
    // The wrapped server starts with a clean environment: what it needs
    // is named here, set in the entry's `env` block when given a value.
    let mut env_block = Map::new();
    for e in &args.env {
        let (name, value) = match e.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (e.as_str(), None),
        };
        if name.is_empty() || name.contains('\0') {
            bail!("--env `{e}`: give NAME=VALUE or NAME");
        }
        if let Some(v) = value {
            env_block.insert(name.to_owned(), json!(v));
        }
        wrap_args.extend(["--env".to_owned(), name.to_owned()]);
    }
    wrap_args.push("--".into());
    wrap_args.extend(args.command.iter().cloned());
    let mut entry = json!({"command": exe.display().to_string(), "args": wrap_args});
    if !env_block.is_empty() {
        entry["env"] = Value::Object(env_block);
    }
    if key == "servers" {
        entry["type"] = json!("stdio");
    }

    let existing = match std::fs::read_to_string(&path) {
        Ok(t) if t.trim().is_empty() => None,
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(anyhow!("reading {}: {e}", path.display())),
    };
    let mut doc: Value = match &existing {
        Some(t) => serde_json::from_str(t).map_err(|e| {
            anyhow!(
                "{} is not valid JSON ({e}); fix or move it first — nothing was changed",
                path.display()
            )
        })?,
        None => Value::Object(Map::new()),
    };
    let root = doc.as_object_mut().ok_or_else(|| {
        anyhow!(
            "{} is not a JSON object; nothing was changed",
            path.display()
        )
    })?;
    let servers = root
        .entry(key.clone())
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| {
            anyhow!(
                "`{key}` in {} is not an object; nothing was changed",
                path.display()
            )
        })?;
    if servers.contains_key(&args.name) && !args.force {
        bail!(
            "{} already has a server named `{}`; use --force to replace it",
            path.display(),
            args.name
        );
    }
    servers.insert(args.name.clone(), entry.clone());
    let text = serde_json::to_string_pretty(&doc)? + "\n";
    if args.dry_run {
        return Ok(Output::new(
            json!({"path": path, "would_write": doc}),
            format!("# would write {}:\n{text}", path.display()),
        ));
    }
    let backup = match &existing {
        Some(t) => {
            let stamp = agentmesh_store::unix_now();
            let b = PathBuf::from(format!("{}.bak-{stamp}", path.display()));
            std::fs::write(&b, t).with_context(|| format!("writing backup {}", b.display()))?;
            Some(b)
        }
        None => None,
    };
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // Write to a temporary file and rename, so a crash never leaves a
    // half-written client config.
    let tmp = PathBuf::from(format!("{}.agentmesh-tmp", path.display()));
    std::fs::write(&tmp, &text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(Output::new(
        json!({"path": path, "backup": backup, "server": args.name, "entry": entry}),
        format!(
            "{}: `{}` now runs under AgentMesh as agent `{}`{}\nRestart {} to pick it up.",
            path.display(),
            args.name,
            args.agent,
            backup
                .map(|b| format!(" (previous config saved to {})", b.display()))
                .unwrap_or_default(),
            args.client
        ),
    ))
}
