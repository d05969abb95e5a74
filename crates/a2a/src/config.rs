//! `a2a.yaml`: the A2A gateway's configuration. Unknown keys are errors.

pub use agentmesh_gateway::config::IatpSettings;
use agentmesh_policy::schema::DataAttrs;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct A2aConfig {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The gateway's URL as clients reach it (written into served cards).
    /// Default: `http://<listen>`.
    #[serde(default)]
    pub public_url: Option<String>,
    pub policy: PathBuf,
    /// Credential audience this gateway accepts (besides `*`).
    #[serde(default = "default_audience")]
    pub audience: String,
    /// Callers without credentials act as this registered agent (local
    /// development only; off by default).
    #[serde(default)]
    pub anonymous_agent: Option<String>,
    #[serde(default = "default_timeout")]
    pub upstream_timeout_secs: u64,
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    #[serde(default = "default_refresh_ms")]
    pub registry_refresh_ms: u64,
    #[serde(default)]
    pub wait_durable_audit: bool,
    /// How long the gateway remembers which upstream (and which caller)
    /// owns a task.
    #[serde(default = "default_task_ttl")]
    pub task_ttl_secs: u64,
    #[serde(default)]
    pub push_notifications: PushSettings,
    /// The IATP verifier at `/.well-known/iatp/…` (as the MCP gateway's).
    #[serde(default)]
    pub iatp: IatpSettings,
    pub agents: Vec<AgentConfig>,
}

/// Webhook URL validation (push notifications are an SSRF vector).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PushSettings {
    /// Allow `http://` webhooks (default: https only).
    #[serde(default)]
    pub allow_http: bool,
    /// Allow loopback, private, link-local and unspecified addresses.
    #[serde(default)]
    pub allow_private: bool,
    /// When set, only these hosts (exact, case-insensitive).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

/// Card signature policy for one upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CardSignatures {
    /// With `card_keys`, a signed card must verify under one of them;
    /// without, signatures are not checked (the start-up log says so).
    /// Unsigned cards are accepted.
    #[default]
    VerifyIfSigned,
    /// The card must be signed and verify.
    Require,
}

/// One fronted A2A agent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Short name: the capability resource (`message:<name>`) and, with
    /// several agents, the path prefix (`/<name>/`).
    pub name: String,
    /// The agent's base URL; its card is read from
    /// `<url>/.well-known/agent-card.json`.
    #[serde(default)]
    pub url: Option<String>,
    /// Instead of `url`: an MCP server (Streamable HTTP endpoint) whose
    /// tools the gateway offers as this agent's skills. Served by the
    /// A2A⇄MCP bridge (`agentmesh-bridge`), which registers itself as the
    /// agent's backend; a gateway built without it refuses to start.
    #[serde(default)]
    pub mcp: Option<String>,
    /// JWK files (public keys) that may sign the upstream's card.
    #[serde(default)]
    pub card_keys: Vec<PathBuf>,
    #[serde(default)]
    pub card_signatures: CardSignatures,
    /// Data attributes policy sees for messages to this agent.
    #[serde(default)]
    pub data: Option<DataAttrs>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7420))
}
fn default_audience() -> String {
    "agentmesh".into()
}
fn default_timeout() -> u64 {
    300
}
fn default_max_body() -> usize {
    4 << 20
}
fn default_refresh_ms() -> u64 {
    1000
}
fn default_task_ttl() -> u64 {
    24 * 3600
}

/// A configuration that could not be used, with the file it came from.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {message}")]
pub struct ConfigError {
    pub source_name: String,
    pub message: String,
}

impl A2aConfig {
    /// Reads `path`; relative paths inside resolve against its folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source_name: path.display().to_string(),
            message: e.to_string(),
        })?;
        let mut cfg = Self::parse(&text).map_err(|mut e| {
            e.source_name = path.display().to_string();
            e
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        if cfg.policy.is_relative() {
            cfg.policy = base.join(&cfg.policy);
        }
        for a in &mut cfg.agents {
            for k in &mut a.card_keys {
                if k.is_relative() {
                    *k = base.join(&*k);
                }
            }
        }
        Ok(cfg)
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let err = |message: String| ConfigError {
            source_name: "a2a.yaml".into(),
            message,
        };
        let cfg: A2aConfig = yaml_serde::from_str(text).map_err(|e| err(e.to_string()))?;
        if cfg.agents.is_empty() {
            return Err(err("`agents` is empty: front at least one A2A agent".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for a in &cfg.agents {
            agentmesh_identity::validate_agent_name(&a.name)
                .map_err(|e| err(format!("agent `{}`: {e}", a.name)))?;
            if !seen.insert(a.name.as_str()) {
                return Err(err(format!("agent `{}` is listed twice", a.name)));
            }
            let url = match (&a.url, &a.mcp) {
                (Some(u), None) | (None, Some(u)) => u,
                _ => {
                    return Err(err(format!(
                        "agent `{}`: give exactly one of `url` (an A2A agent) or `mcp` (an MCP server to offer as an agent)",
                        a.name
                    )));
                }
            };
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || url.parse::<hyper::Uri>().is_err()
            {
                return Err(err(format!(
                    "agent `{}`: `{url}` is not an http(s) URL",
                    a.name
                )));
            }
            if a.mcp.is_some()
                && (!a.card_keys.is_empty() || a.card_signatures == CardSignatures::Require)
            {
                return Err(err(format!(
                    "agent `{}`: an MCP-backed agent has no upstream card to verify; drop card_keys/card_signatures",
                    a.name
                )));
            }
            if a.card_signatures == CardSignatures::Require && a.card_keys.is_empty() {
                return Err(err(format!(
                    "agent `{}`: card_signatures: require needs card_keys (the keys that may sign its card)",
                    a.name
                )));
            }
            if url.starts_with("https://") {
                return Err(err(format!(
                    "agent `{}`: https upstreams are not supported yet (the gateway's client speaks plain HTTP); front a loopback or in-cluster http:// URL",
                    a.name
                )));
            }
        }
        if !(0.0..=1.0).contains(&cfg.iatp.min_trust) {
            return Err(err("`iatp.min_trust` must be within 0.0–1.0".into()));
        }
        if let Some(u) = &cfg.public_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(err(format!("`public_url` `{u}` is not an http(s) URL")));
        }
        Ok(cfg)
    }

    /// The gateway's base URL, no trailing slash.
    pub fn public_base(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_owned()
    }

    /// A one-agent configuration (`--upstream URL --listen ADDR`).
    pub fn single(
        upstream: &str,
        listen: SocketAddr,
        policy: PathBuf,
    ) -> Result<Self, ConfigError> {
        let text = format!(
            "listen: {listen}\npolicy: {}\nagents:\n  - name: upstream\n    url: {upstream:?}\n",
            serde_json::Value::from(policy.display().to_string())
        );
        Self::parse(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config_loads_and_mistakes_are_named() {
        let cfg = A2aConfig::parse(
            "listen: 127.0.0.1:9000\npolicy: p.yaml\npush_notifications: {allow_http: true}\nagents:\n  - name: echo\n    url: http://127.0.0.1:9001\n    card_keys: [k.jwk]\n    card_signatures: require\n",
        )
        .expect("parses");
        assert_eq!(cfg.agents[0].card_signatures, CardSignatures::Require);
        assert_eq!(cfg.public_base(), "http://127.0.0.1:9000");
        for (bad, says) in [
            ("policy: p\nagents: []\n", "empty"),
            ("policy: p\nagents:\n  - {name: a}\n", "exactly one"),
            (
                "policy: p\nagents:\n  - {name: a, url: 'http://x', mcp: 'http://y/mcp'}\n",
                "exactly one",
            ),
            (
                "policy: p\nagents:\n  - {name: a, url: ftp://x}\n",
                "not an http",
            ),
            (
                "policy: p\nagents:\n  - {name: a, url: 'http://x', bogus: 1}\n",
                "bogus",
            ),
            (
                "policy: p\nagents:\n  - {name: a, url: 'http://x'}\n  - {name: a, url: 'http://y'}\n",
                "twice",
            ),
            (
                "policy: p\niatp: {min_trust: 2}\nagents:\n  - {name: a, url: 'http://x'}\n",
                "min_trust",
            ),
        ] {
            let e = A2aConfig::parse(bad).expect_err(bad).to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let one = A2aConfig::single(
            "http://127.0.0.1:1",
            "127.0.0.1:2".parse().expect("addr"),
            "p.yaml".into(),
        )
        .expect("single");
        assert_eq!(one.agents[0].name, "upstream");
    }
}
