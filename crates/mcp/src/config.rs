//! The gateway's configuration file (YAML), validated strictly: unknown
//! keys, duplicate or malformed upstream names and unsafe listen addresses
//! are errors with the offending key named.

use crate::govern::{ToolSettings, UpstreamSettings};
use crate::pins::PinMode;
use crate::stdio::ServerCommand;
use agentmesh_policy::schema::DataAttrs;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// `gw.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Address to listen on (default 127.0.0.1:8787). Binding a
    /// non-loopback address needs `allow_remote: true`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    #[serde(default)]
    pub allow_remote: bool,
    /// The MCP endpoint path (default `/mcp`).
    #[serde(default = "default_path")]
    pub path: String,
    /// Credential audience this gateway accepts (besides `*`).
    #[serde(default = "default_audience")]
    pub audience: String,
    /// The policy file (relative paths are relative to this config file).
    pub policy: PathBuf,
    /// Requests without credentials act as this registered agent. Only for
    /// local development and conformance runs: it needs a loopback
    /// `listen` address, and every decision is still audited (auth
    /// `local`). Absent (the default): such requests get 401.
    pub anonymous_agent: Option<String>,
    /// Browser origins allowed to call the gateway. Requests without an
    /// `Origin` header (non-browser clients) are always allowed; loopback
    /// origins are allowed when the gateway listens on loopback.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Largest request body (default 4 MiB).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Sessions idle longer than this are closed (default 30 min).
    #[serde(default = "default_idle")]
    pub session_idle_secs: u64,
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// Sessions one agent may hold at once (default 64), so one agent
    /// cannot take every session of the gateway.
    #[serde(default = "default_max_sessions_per_agent")]
    pub max_sessions_per_agent: usize,
    /// How long a client may take to send a request's headers (default
    /// 10 s): half-open and trickling connections are closed before file
    /// descriptors run out.
    #[serde(default = "default_header_read")]
    pub header_read_timeout_secs: u64,
    /// Upstream request timeout (default 300 s): the longest a forwarded
    /// request may take, from sending it to its answer, however the
    /// upstream keeps the stream alive meanwhile.
    #[serde(default = "default_timeout")]
    pub upstream_timeout_secs: u64,
    /// How long each upstream gets at start-up (default 30 s): an HTTP
    /// upstream that is not listening yet is retried for this long; a
    /// stdio server must answer its handshake within it.
    #[serde(default = "default_start")]
    pub upstream_start_secs: u64,
    /// How often registry changes made elsewhere (revocations, new agents,
    /// approvals, CLI audit entries) are picked up (default 1 s).
    #[serde(default = "default_refresh_ms")]
    pub registry_refresh_ms: u64,
    /// Wait for each decision's audit leaf to be durable before forwarding.
    #[serde(default)]
    pub wait_durable_audit: bool,
    /// The IATP verifier mounted at `/.well-known/iatp/…`: agents prove
    /// who they are and get a short-lived attestation this gateway (and
    /// any gateway of the mesh) accepts as a credential.
    #[serde(default)]
    pub iatp: IatpSettings,
    pub upstreams: Vec<UpstreamConfig>,
}

/// Settings of the IATP verifier a gateway mounts (the gateway core's, the
/// same for every protocol).
pub use agentmesh_gateway::config::IatpSettings;

/// One upstream MCP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Lowercase letters, digits and `-`; used in namespaced names
    /// (`<name>__<tool>`), capabilities and audit entries.
    pub name: String,
    /// A Streamable HTTP endpoint (`http://…`).
    pub url: Option<String>,
    /// Or a stdio server the gateway starts and supervises.
    pub stdio: Option<ServerCommand>,
    /// Prefix tool and prompt names with `<name>__` (default: when more
    /// than one upstream is configured).
    pub namespace: Option<bool>,
    #[serde(default)]
    pub tools: BTreeMap<String, ToolSettings>,
    pub data: Option<DataAttrs>,
    #[serde(default)]
    pub path_arguments: Vec<String>,
    pub path_base: Option<PathBuf>,
    /// Resolve symbolic links in path arguments before judging them, so a
    /// rule that restricts a folder cannot be passed through a link out of
    /// it. Default: on for stdio upstreams (they run on this machine, where
    /// the links are), off for URL upstreams.
    #[serde(default)]
    pub resolve_symlinks: Option<bool>,
    #[serde(default)]
    pub pinning: PinMode,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8787))
}
fn default_path() -> String {
    "/mcp".into()
}
fn default_audience() -> String {
    "agentmesh-gateway".into()
}
fn default_max_body() -> usize {
    crate::message::MAX_MESSAGE_BYTES
}
fn default_idle() -> u64 {
    1800
}
fn default_max_sessions() -> usize {
    10_000
}
fn default_max_sessions_per_agent() -> usize {
    64
}
fn default_header_read() -> u64 {
    10
}
fn default_refresh_ms() -> u64 {
    1000
}
fn default_timeout() -> u64 {
    300
}
fn default_start() -> u64 {
    30
}

/// Why a configuration is refused.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub message: String,
}

impl UpstreamConfig {
    pub fn settings(&self) -> UpstreamSettings {
        UpstreamSettings {
            tools: self.tools.clone(),
            data: self.data.clone(),
            path_arguments: self.path_arguments.clone(),
            path_base: self.path_base.clone(),
            resolve_symlinks: self.resolve_symlinks.unwrap_or(self.stdio.is_some()),
            pinning: self.pinning,
        }
    }
}

impl GatewayConfig {
    /// Reads and validates `path`; the policy path is resolved against the
    /// config file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let err = |message: String| ConfigError {
            file: file.clone(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let mut cfg = Self::parse(&text).map_err(|e| err(e.message))?;
        if cfg.policy.is_relative()
            && let Some(dir) = path.parent()
        {
            cfg.policy = dir.join(&cfg.policy);
        }
        Ok(cfg)
    }

    /// Parses and validates YAML text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let err = |message: String| ConfigError {
            file: "<config>".into(),
            message,
        };
        let cfg: GatewayConfig = yaml_serde::from_str(text).map_err(|e| err(e.to_string()))?;
        if !cfg.listen.ip().is_loopback() && !cfg.allow_remote {
            return Err(err(format!(
                "listen: {} is not a loopback address; set `allow_remote: true` to expose the gateway (and put TLS in front of it)",
                cfg.listen
            )));
        }
        if cfg.anonymous_agent.is_some() && !cfg.listen.ip().is_loopback() {
            return Err(err(
                "anonymous_agent: only allowed when listening on a loopback address".into(),
            ));
        }
        if !cfg.path.starts_with('/') {
            return Err(err(format!("path: `{}` must start with `/`", cfg.path)));
        }
        if cfg.upstreams.is_empty() {
            return Err(err("upstreams: at least one upstream is needed".into()));
        }
        if cfg.upstream_timeout_secs == 0 || cfg.upstream_start_secs == 0 {
            return Err(err(
                "upstream_timeout_secs and upstream_start_secs must be at least 1".into(),
            ));
        }
        if cfg.max_body_bytes == 0 || cfg.max_body_bytes > 64 << 20 {
            return Err(err("max_body_bytes: between 1 and 67108864".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, u) in cfg.upstreams.iter().enumerate() {
            let at = format!("upstreams[{i}]");
            let valid = !u.name.is_empty()
                && u.name.len() <= 48
                && u.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !u.name.starts_with('-');
            if !valid {
                return Err(err(format!(
                    "{at}.name: `{}` must be 1–48 lowercase letters, digits or `-`",
                    u.name
                )));
            }
            if !seen.insert(u.name.clone()) {
                return Err(err(format!("{at}.name: `{}` is used twice", u.name)));
            }
            match (&u.url, &u.stdio) {
                (Some(url), None) => {
                    if !url.starts_with("http://") {
                        return Err(err(format!(
                            "{at}.url: `{url}`: only http:// upstreams are supported in this version (https:// is not yet)"
                        )));
                    }
                    url.parse::<hyper::Uri>()
                        .map_err(|e| err(format!("{at}.url: `{url}`: {e}")))?;
                }
                (None, Some(cmd)) => {
                    if cmd.command.is_empty() {
                        return Err(err(format!("{at}.stdio.command is empty")));
                    }
                    for name in cmd.env.keys().chain(&cmd.inherit_env) {
                        if name.is_empty() || name.contains('=') || name.contains('\0') {
                            return Err(err(format!(
                                "{at}.stdio: `{name}` is not a valid environment variable name"
                            )));
                        }
                    }
                }
                _ => {
                    return Err(err(format!(
                        "{at}: give exactly one of `url` (Streamable HTTP) or `stdio` (a command)"
                    )));
                }
            }
            for (tool, s) in &u.tools {
                if let Some(c) = &s.capability {
                    agentmesh_capability::Capability::parse(c)
                        .map_err(|e| err(format!("{at}.tools.{tool}.capability: {e}")))?;
                }
            }
        }
        Ok(cfg)
    }

    /// Whether upstream `i` has its names prefixed.
    pub fn namespaced(&self, i: usize) -> bool {
        self.upstreams[i]
            .namespace
            .unwrap_or(self.upstreams.len() > 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config_loads() {
        let cfg = GatewayConfig::parse(
            r#"
listen: 127.0.0.1:9000
policy: policy.yaml
upstreams:
  - name: fs
    stdio:
      command: mcp-server-filesystem
      args: ["/data"]
      env: { FS_MODE: ro }
      inherit_env: [GITHUB_TOKEN]
      cwd: /srv
    path_arguments: [path]
    tools:
      read_file: { capability: "read:files", data: { classification: internal } }
  - name: time
    url: http://127.0.0.1:38002/mcp
    pinning: warn
"#,
        )
        .expect("valid");
        assert_eq!(cfg.upstreams.len(), 2);
        assert!(cfg.namespaced(0) && cfg.namespaced(1));
        assert_eq!(cfg.path, "/mcp");
        let fs = cfg.upstreams[0].stdio.as_ref().expect("stdio");
        assert_eq!(fs.inherit_env, ["GITHUB_TOKEN"]);
        assert_eq!(fs.env["FS_MODE"], "ro");
        assert_eq!(cfg.upstream_start_secs, 30);
    }

    #[test]
    fn mistakes_are_named() {
        for (yaml, needle) in [
            ("policy: p\nupstreams: []\n", "at least one upstream"),
            (
                "policy: p\nlisten: 0.0.0.0:1\nupstreams: [{name: a, url: 'http://x/'}]\n",
                "loopback",
            ),
            (
                "policy: p\nupstreams: [{name: A, url: 'http://x/'}]\n",
                "lowercase",
            ),
            (
                "policy: p\nupstreams: [{name: a, url: 'https://x/'}]\n",
                "https",
            ),
            ("policy: p\nupstreams: [{name: a}]\n", "exactly one"),
            (
                "policy: p\nupstreams: [{name: a, url: 'http://x/'}, {name: a, url: 'http://y/'}]\n",
                "twice",
            ),
            (
                "policy: p\nupstreams: [{name: a, url: 'http://x/', tols: {}}]\n",
                "unknown field",
            ),
            (
                "policy: p\nupstreams: [{name: a, url: 'http://x/', tools: {t: {capability: 'read:da*'}}}]\n",
                "capability",
            ),
            ("polcy: p\n", "unknown field"),
            (
                "policy: p\nupstreams: [{name: a, stdio: {command: x, inherit_env: ['A=B']}}]\n",
                "environment variable",
            ),
            (
                "policy: p\nupstream_start_secs: 0\nupstreams: [{name: a, url: 'http://x/'}]\n",
                "at least 1",
            ),
        ] {
            let e = GatewayConfig::parse(yaml).expect_err(yaml);
            assert!(e.message.contains(needle), "{yaml}: {}", e.message);
        }
    }
}
