//! `agentmesh`: identity, trust and governance for AI agents.

#![forbid(unsafe_code)]

mod a2a_cmd;
mod attach;
mod audit_cmd;
mod commands;
mod compliance_cmd;
mod cp_client_cmd;
mod demo;
mod demo_server;
mod gateway_cmd;
mod iatp_cmd;
mod install;
mod mcp_cmd;
mod output;
mod policy_cmd;
mod remote_cmd;
mod serve_cmd;
mod trust_cmd;

use clap::{Args, Parser, Subcommand};

// Request threads allocate and the audit writer frees; mimalloc keeps that
// from serialising on glibc's arena lock.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::path::PathBuf;

/// AgentMesh: key-bound agent identities with human sponsors, delegation
/// chains that can only narrow, and the tools to inspect them.
#[derive(Debug, Parser)]
#[command(name = "agentmesh", version, propagate_version = true)]
#[command(
    after_help = "Start with `agentmesh init`, then `agentmesh sponsor create <email>`.\n\
Every command accepts --json for machine-readable output."
)]
pub struct Cli {
    /// Mesh home directory.
    #[arg(long, global = true, env = "AGENTMESH_HOME", default_value = agentmesh_store::DEFAULT_HOME)]
    pub home: PathBuf,
    /// Print JSON instead of text (errors too, as {"error": …}).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a mesh home: mesh authority key, config and an empty registry.
    Init {
        /// SPIFFE trust domain of the mesh (lowercase letters, digits, `.`, `-`, `_`).
        #[arg(long, default_value = "agentmesh.local")]
        trust_domain: String,
    },
    /// Show the mesh home: trust domain, mesh DID, counts.
    Status,
    /// Human sponsors, who answer for agents.
    #[command(subcommand)]
    Sponsor(SponsorCmd),
    /// Agents: create, import, list, show, export, revoke, suspend, reactivate.
    #[command(subcommand)]
    Agent(AgentCmd),
    /// Issue a delegation token from a sponsor or agent to an agent.
    Delegate(DelegateArgs),
    /// Verify, inspect, prove and revoke delegation tokens.
    #[command(subcommand)]
    Delegation(DelegationCmd),
    /// Resolve DIDs offline.
    #[command(subcommand)]
    Did(DidCmd),
    /// Check, test and explain policy files (YAML with CEL conditions).
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// The provable audit log: read, prove, verify offline, export.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Trust scores: show, explain, history, list, endorse, record, recompute.
    #[command(subcommand)]
    Trust(TrustCmd),
    /// Compliance: evaluate an action, report from audit evidence, list catalogues.
    #[command(subcommand)]
    Compliance(ComplianceCmd),
    /// MCP: govern servers (stdio wrapper), pinned tool definitions.
    #[command(subcommand)]
    Mcp(McpCmd),
    /// A2A: the gateway in front of A2A agents.
    #[command(subcommand)]
    A2a(A2aCmd),
    /// IATP: the trust handshake (serve, handshake) and agent manifests.
    #[command(subcommand)]
    Iatp(IatpCmd),
    /// Calls held for human approval: list, approve, deny.
    #[command(subcommand)]
    Approvals(ApprovalsCmd),
    /// Bearer credentials for agents, signed by the mesh authority key.
    #[command(subcommand)]
    Credential(CredentialCmd),
    /// The whole mesh on this machine: control plane, gateway in front of
    /// a real tool server, allowed / denied / rate-limited / approved calls,
    /// trust moving, an audit proof verified; then a summary.
    Demo {
        /// Keep the control plane, dashboard and gateway running afterwards.
        #[arg(long)]
        keep_running: bool,
        /// Working directory (default: a fresh temporary one).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Control-plane address (default: a free loopback port).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Registrations at a control plane: request (as the agent), list,
    /// approve (as the sponsor, signed with its key), reject.
    #[command(subcommand)]
    Registrations(RegistrationsCmd),
    /// Gateway credentials at a control plane: what an attached gateway
    /// presents instead of the admin token.
    #[command(subcommand)]
    Gateways(GatewaysCmd),
    /// Run the control plane: REST API, registration with proof of
    /// possession, credentials, revocation push, dashboard, metrics.
    Serve(ServeCliArgs),
}

#[derive(Debug, Args)]
pub struct ServeCliArgs {
    /// Address to listen on (loopback by default; another address needs
    /// --allow-remote).
    #[arg(long, default_value = "127.0.0.1:7400")]
    pub listen: std::net::SocketAddr,
    /// Listen on a non-loopback address (put TLS in front of it: the admin
    /// token and credentials cross the network).
    #[arg(long)]
    pub allow_remote: bool,
    /// A host name clients reach the control plane by (repeatable); requests
    /// naming any other `Host` are refused (DNS rebinding). Loopback names
    /// and the listen address are always allowed.
    #[arg(long = "allowed-host")]
    pub allowed_hosts: Vec<String>,
    /// PostgreSQL URL (`postgres://…`) for several replicas; default: the
    /// embedded registry in the mesh home.
    #[arg(long, env = "AGENTMESH_DATABASE_URL")]
    pub database: Option<String>,
    /// Admin token file (created, 0600, when missing). Default:
    /// `<home>/admin.token`. AGENTMESH_ADMIN_TOKEN overrides it.
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    /// Name of this replica (health, logs).
    #[arg(long)]
    pub replica: Option<String>,
    /// Default lifetime of agent credentials.
    #[arg(long, default_value = "15m")]
    pub credential_ttl: String,
    /// Credential requests allowed per agent (`30/minute`), counted in the
    /// database so every replica shares it.
    #[arg(long, default_value = "30/minute")]
    pub credential_rate: String,
    /// How long a client may take to send a request's headers; slower
    /// (half-open, trickling) connections are closed.
    #[arg(long, default_value = "10s")]
    pub header_read_timeout: String,
}

#[derive(Debug, Subcommand)]
pub enum A2aCmd {
    /// Front A2A agents (1.0 and 0.3, JSON-RPC and HTTP+JSON): cards
    /// re-signed, every message judged, streams relayed, tasks kept with
    /// their upstream and owner. See docs/a2a-gateway.md.
    Gateway {
        /// Gateway configuration (YAML).
        #[arg(long, conflicts_with = "upstream")]
        config: Option<PathBuf>,
        /// One agent's base URL, instead of a config file.
        #[arg(long)]
        upstream: Option<String>,
        /// Address to listen on (default 127.0.0.1:7420; overrides the config's).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Policy file, with --upstream.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Enforce with a control plane's registry, published policy and
        /// revocations (`http://host:7400`) instead of this home's registry;
        /// audit entries are shipped to it. Needs a gateway credential
        /// (`agentmesh gateways issue`): AGENTMESH_CONTROL_PLANE_TOKEN or
        /// --control-plane-token-file.
        #[arg(long)]
        control_plane: Option<String>,
        /// File holding the gateway credential (amgw1.…).
        #[arg(long)]
        control_plane_token_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum IatpCmd {
    /// Answer trust handshakes as one of this home's agents (for agents
    /// without a gateway): `/.well-known/iatp/…` and its IATP manifest.
    Serve {
        /// The agent (registered, its key in this home).
        #[arg(long)]
        agent: String,
        #[arg(long, default_value = "127.0.0.1:7430")]
        listen: std::net::SocketAddr,
        /// Extra origins peers may dial this verifier by (channel binding).
        #[arg(long = "public-url")]
        public_urls: Vec<String>,
        /// Peers whose registry trust is below this are refused.
        #[arg(long, default_value_t = 0.5)]
        min_trust: f64,
        /// Seconds a challenge may be answered.
        #[arg(long, default_value_t = 30)]
        challenge_ttl: u64,
        /// Seconds an attestation is valid.
        #[arg(long, default_value_t = 300)]
        attestation_ttl: u64,
    },
    /// Run the handshake with a peer (`http://host:port`) as one of this
    /// home's agents: prove who we are, check who it is in our registry.
    Handshake {
        peer: String,
        #[arg(long)]
        agent: String,
        /// The peer we mean to reach (name in our registry, or DID).
        #[arg(long)]
        expect: Option<String>,
        /// The peer must have at least this trust in our registry.
        #[arg(long, default_value_t = 0.5)]
        min_trust: f64,
        /// Also admit a gateway of the mesh whose control plane is at this
        /// URL, on that control plane's voucher (its key is read from
        /// `/v1/authority`; pin it with --authority instead).
        #[arg(long, env = "AGENTMESH_CONTROL_PLANE")]
        control_plane: Option<String>,
        /// Also admit a gateway vouched for by this mesh authority (its
        /// DID, as `/v1/authority` shows it).
        #[arg(long)]
        authority: Option<String>,
    },
    /// Read an IATP agent manifest (URL or file), in either shape.
    Manifest { source: String },
}

#[derive(Debug, Subcommand)]
pub enum McpCmd {
    /// Run an MCP server over stdio under governance. Point a desktop
    /// client's config at this instead of the server:
    /// `agentmesh mcp wrap --agent fs-agent --policy policy.yaml -- npx -y @modelcontextprotocol/server-filesystem /data`
    Wrap {
        /// The agent the client acts as (registered, its key in this home).
        #[arg(long)]
        agent: String,
        /// Policy file (YAML); reloaded when it changes.
        #[arg(long)]
        policy: PathBuf,
        /// Name of the server in capabilities and audit (default: from the command).
        #[arg(long)]
        name: Option<String>,
        /// Per-tool settings (YAML): capabilities, data classes, path arguments, pinning.
        #[arg(long)]
        settings: Option<PathBuf>,
        /// Do not restart the server when it exits.
        #[arg(long)]
        no_restart: bool,
        /// Environment for the server (repeatable): `NAME=VALUE` sets a
        /// variable, `NAME` copies it from this process (e.g. from a
        /// desktop client's `env` block). The server gets nothing else
        /// but PATH, HOME, USER, LOGNAME, TMPDIR, TZ and the locale.
        #[arg(long = "env", value_name = "NAME[=VALUE]")]
        env: Vec<String>,
        /// The server command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Run the Streamable HTTP gateway: several upstream servers (HTTP and
    /// stdio) behind one authenticated, governed endpoint, both MCP eras.
    Gateway {
        /// Gateway configuration (YAML); see docs/mcp-gateway.md.
        #[arg(long)]
        config: PathBuf,
        /// Enforce with a control plane's registry, policy and revocations
        /// (`http://host:7400`) instead of this home's registry; audit
        /// entries are shipped to it. Needs a gateway credential
        /// (`agentmesh gateways issue`): AGENTMESH_CONTROL_PLANE_TOKEN or
        /// --control-plane-token-file.
        #[arg(long)]
        control_plane: Option<String>,
        /// File holding the gateway credential (amgw1.…).
        #[arg(long)]
        control_plane_token_file: Option<PathBuf>,
    },
    /// Point a desktop MCP client (Claude Desktop, Cursor, Windsurf, VS
    /// Code) at the stdio wrapper: edits its config file, after a backup.
    Install(InstallArgs),
    /// Pinned tool definitions: list, show what changed, approve a change.
    #[command(subcommand)]
    Pins(PinsCmd),
    /// The demo's tool server (MCP over stdio): search documents, read a
    /// file, export customers, queue e-mail, on files under --data.
    DemoServer {
        #[arg(long)]
        data: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// claude-desktop, cursor, windsurf or vscode.
    #[arg(long)]
    pub client: String,
    /// Name of the server in the client's config (also its upstream name).
    #[arg(long)]
    pub name: String,
    /// The agent the client acts as.
    #[arg(long)]
    pub agent: String,
    /// Policy file.
    #[arg(long)]
    pub policy: PathBuf,
    /// Use this config file instead of the client's default location.
    #[arg(long)]
    pub config_path: Option<PathBuf>,
    /// The JSON key holding the servers (default: the client's).
    #[arg(long)]
    pub key: Option<String>,
    /// Replace an existing server of the same name.
    #[arg(long)]
    pub force: bool,
    /// Print the new config instead of writing it.
    #[arg(long)]
    pub dry_run: bool,
    /// Environment for the server (repeatable; it gets a clean one):
    /// `NAME=VALUE` goes into the entry's `env` block, `NAME` is taken from
    /// the client's environment. Either way the wrapper passes it on with
    /// `--env NAME`.
    #[arg(long = "env", value_name = "NAME[=VALUE]")]
    pub env: Vec<String>,
    /// The server command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum PinsCmd {
    /// Every pinned tool and whether its definition changed.
    List,
    /// What changed in a tool's definition (`<upstream>/<tool>`).
    Diff { tool: String },
    /// Accept a changed definition as the new pin.
    Approve { tool: String },
}

#[derive(Debug, Subcommand)]
pub enum ApprovalsCmd {
    /// Pending approvals (all with --all).
    List {
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Let a held call through, once: signed with the approver's key (a
    /// sponsor's key in this home).
    Approve {
        id: String,
        /// Who approves (must be among the rule's approvers, if it names any).
        #[arg(long)]
        by: String,
        /// Decide at this control plane (signing here, with the key in
        /// this home) instead of in this home's registry.
        #[arg(long)]
        control_plane: Option<String>,
        /// File with the admin token (default: AGENTMESH_CONTROL_PLANE_TOKEN,
        /// else this home's admin.token).
        #[arg(long)]
        control_plane_token_file: Option<PathBuf>,
    },
    /// Refuse a held call (signed like an approval).
    Deny {
        id: String,
        #[arg(long)]
        by: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        control_plane: Option<String>,
        #[arg(long)]
        control_plane_token_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CredentialCmd {
    /// Issue a bearer credential for an agent (for the HTTP gateway).
    Issue {
        agent: String,
        /// The gateway audience it is valid for (`*`: any gateway of this mesh).
        #[arg(long, default_value = "*")]
        audience: String,
        /// Lifetime, e.g. 1h, 30m (at most 30 days).
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
    /// Ask a control plane for a short-lived credential, proving possession
    /// of the agent's key (held in this home).
    Request {
        agent: String,
        #[command(flatten)]
        cp: ControlPlaneArgs,
        /// Gateway audience (default: any gateway of the mesh).
        #[arg(long)]
        audience: Option<String>,
    },
    /// Revoke a credential (agent or gateway) by its id or text: in this
    /// home's registry (a gateway on this home refuses it within a second),
    /// or at a control plane with --control-plane.
    Revoke {
        /// The credential's id (`claims.id`), or its whole text.
        credential: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: Option<String>,
        /// Revoke at this control plane instead of in this home.
        #[arg(long)]
        control_plane: Option<String>,
        /// File with the admin token (default: AGENTMESH_CONTROL_PLANE_TOKEN,
        /// else this home's admin.token).
        #[arg(long)]
        control_plane_token_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum GatewaysCmd {
    /// Issue a gateway credential (`amgw1.…`). Only the credential is
    /// printed on stdout: `TOKEN=$(agentmesh gateways issue gw-1)`.
    Issue {
        /// The gateway's name (in the audit entries it ships).
        name: String,
        /// Lifetime (default 30 days, at most 365).
        #[arg(long, default_value = "30d")]
        ttl: String,
        #[command(flatten)]
        cp: ControlPlaneArgs,
    },
}

/// How to reach a control plane.
#[derive(Debug, Clone, Args)]
pub struct ControlPlaneArgs {
    /// The control plane (`http://127.0.0.1:7400`).
    #[arg(
        long,
        env = "AGENTMESH_CONTROL_PLANE",
        default_value = "http://127.0.0.1:7400"
    )]
    pub control_plane: String,
    /// File with the admin token (default: AGENTMESH_CONTROL_PLANE_TOKEN,
    /// else this home's admin.token).
    #[arg(long)]
    pub control_plane_token_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum RegistrationsCmd {
    /// Ask a control plane to register an agent: a new key is made and
    /// kept in this home, and the request is signed with it (proof of
    /// possession). The agent is active once its sponsor approves.
    Request {
        /// Agent name.
        name: String,
        #[arg(long)]
        sponsor: String,
        /// Capabilities, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        capabilities: Vec<String>,
        #[command(flatten)]
        cp: ControlPlaneArgs,
    },
    /// Pending registrations (`--all`: every one).
    List {
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        cp: ControlPlaneArgs,
    },
    /// Approve as the sponsor: signs the approval with the sponsor's key
    /// held in this home.
    Approve {
        id: String,
        #[command(flatten)]
        cp: ControlPlaneArgs,
    },
    /// Reject a pending registration.
    Reject {
        id: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        cp: ControlPlaneArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ComplianceCmd {
    /// What each framework says about an action: classification, controls,
    /// obligations (with citations).
    Evaluate {
        /// Agent name or DID (its registry record is shown with the result).
        #[arg(long)]
        agent: Option<String>,
        /// Action or tool name, e.g. access_patient_record.
        #[arg(long)]
        action: String,
        /// Data classification, e.g. phi, pii.
        #[arg(long)]
        data: Option<String>,
        /// Action type, e.g. read, export, tool_call.
        #[arg(long)]
        action_type: Option<String>,
        /// Domain, e.g. healthcare, employment.
        #[arg(long)]
        domain: Option<String>,
        /// Frameworks, comma-separated (default: all).
        #[arg(long, value_delimiter = ',')]
        frameworks: Option<Vec<String>>,
        /// Directory of catalogue overrides (*.yaml).
        #[arg(long)]
        catalogues: Option<PathBuf>,
    },
    /// A report for one framework built from the audit log: per control
    /// evidence, violations, approvals and gaps, linked to audit indices.
    Report {
        #[arg(long)]
        framework: String,
        /// Window length back from now, e.g. 30d, 12h.
        #[arg(long, default_value = "30d")]
        since: String,
        #[arg(long, value_parser = ["html", "json", "md"], default_value = "md")]
        format: String,
        /// Write to this file instead of stdout.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        #[arg(long)]
        catalogues: Option<PathBuf>,
        /// Build the report at a control plane, over its log (with its
        /// built-in catalogues).
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// List the catalogues and their controls.
    Catalogues {
        #[arg(long)]
        catalogues: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TrustCmd {
    /// Score, uncertainty, tier and the five dimensions of an agent.
    Show {
        agent: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Which events moved an agent's trust, and by how much (from the audit log).
    Explain {
        agent: String,
        /// Show only the last N events.
        #[arg(short = 'n', long, default_value_t = 30)]
        last: usize,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// An agent's score over time, with a small chart.
    History {
        agent: String,
        #[arg(short = 'n', long, default_value_t = 60)]
        last: usize,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Every agent's score, lowest first.
    List {
        /// Only agents scoring below this.
        #[arg(long)]
        below: Option<f64>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// One agent vouches for another (weighted by the endorser's own score).
    Endorse {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
    },
    /// Record an outside observation about an agent.
    Record {
        agent: String,
        #[arg(long, value_parser = ["task-success", "task-failure", "violation", "auth-failed", "handshake-ok", "handshake-failed"])]
        event: String,
        /// For violations: low, medium, high or critical.
        #[arg(long, value_parser = ["low", "medium", "high", "critical"], default_value = "medium")]
        severity: String,
        #[arg(long, default_value = "recorded by operator")]
        reason: String,
    },
    /// Recompute every score from the audit log's trust events and compare
    /// with the live scores (exits 1 if any differs).
    Recompute {
        /// Required: the audit log is the only source (a reminder of what this does).
        #[arg(long, required = true)]
        from_audit: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Print the last entries (one line each); `-f` keeps printing new ones.
    Tail {
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: u64,
        #[arg(short = 'f', long)]
        follow: bool,
        /// Read a control plane's log instead of this home's (no `-f`).
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Print one entry in full (by URL: checked here to hash to its leaf).
    Show {
        index: u64,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Print an inclusion proof for an entry, against the latest signed
    /// checkpoint (or `--size`), as JSON that `audit verify-proof` checks offline.
    Proof {
        index: u64,
        #[arg(long)]
        size: Option<u64>,
        /// With --control-plane: the verifier key to check the control
        /// plane's checkpoint with (`name+id+key`, a DID, or a file); without
        /// it, the key the control plane names (said so in the output).
        #[arg(long)]
        pubkey: Option<String>,
        /// Fetch the proof from a control plane and verify it here.
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Check a proof file offline: the checkpoint signature, the entry's leaf
    /// hash and the inclusion proof.
    VerifyProof {
        /// The JSON printed by `audit proof` (path, `@path` or `-`).
        proof: String,
        /// Verifier key (`name+id+key`), a did:mesh/did:key, or a file holding one.
        #[arg(long)]
        pubkey: Option<String>,
    },
    /// Verify the whole log offline: every record, the Merkle tree, and the
    /// signed checkpoints. Reports the first bad index. Exits 1 on failure.
    Verify {
        /// Checkpoint notes to check against (default: all stored ones).
        #[arg(long)]
        checkpoint: Vec<PathBuf>,
        /// Verifier key (`name+id+key`), a did:mesh/did:key, or a file holding one
        /// (default: the mesh key from config.toml).
        #[arg(long)]
        pubkey: Option<String>,
        /// Audit directory (default: <home>/audit); no mesh home needed with --pubkey.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Verify a control plane's log here: its latest checkpoint's
        /// signature, every entry up to it, and the recomputed root.
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Export entries as JSON Lines or CloudEvents (one JSON object per line).
    Export {
        #[arg(long, value_parser = ["jsonl", "cloudevents"], default_value = "jsonl")]
        format: String,
        /// First index to export.
        #[arg(long, default_value_t = 0)]
        from: u64,
    },
    /// Sign a checkpoint of the log now, with the mesh key.
    Checkpoint,
    /// Print the verifier key third parties need to check checkpoints.
    Pubkey,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Validate policy files: unknown keys and attributes, type errors,
    /// malformed limits, rules that can never match or are shadowed.
    Lint {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run a case file (requests and expected decisions) against a policy.
    /// Exits 1 when any case fails.
    Test {
        file: PathBuf,
        /// YAML case file (see docs/policy-language.md, "Testing policies").
        #[arg(long)]
        cases: PathBuf,
    },
    /// Decide one request and show every rule: matched or not, and why.
    Explain {
        file: PathBuf,
        /// JSON request ({"agent": {…}, "action": {…}, …}): a path, `@path` or `-`.
        #[arg(long)]
        request: String,
        /// Decide as of this time (unix seconds or RFC 3339); sets time.* when the request has none.
        #[arg(long)]
        at: Option<String>,
    },
    /// Print the JSON Schema of policy files.
    Schema,
    /// Publish a policy file to a control plane (linted here first, with
    /// the same compiler): gateways attached to it load it within a second.
    Publish {
        file: PathBuf,
        #[command(flatten)]
        cp: ControlPlaneArgs,
    },
    /// Show the policy a control plane publishes (its version and text).
    Show {
        #[command(flatten)]
        cp: ControlPlaneArgs,
    },
    /// Compare a policy file with the one a control plane publishes: rules
    /// added, removed and changed (by policy and rule name), and policy
    /// settings changed. Exits 1 when they differ.
    Diff {
        file: PathBuf,
        #[command(flatten)]
        cp: ControlPlaneArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum SponsorCmd {
    /// Create a sponsor with a new Ed25519 key held in this home; with
    /// --control-plane, register it there by its public key only (the
    /// private key stays in this home, the sponsor's own).
    Create {
        /// The sponsor's e-mail address (their name in the mesh).
        email: String,
        /// What this sponsor may grant its agents, comma-separated (default: `*`).
        #[arg(long, value_delimiter = ',')]
        capabilities: Option<Vec<String>>,
        /// Register the sponsor at this control plane (admin token needed).
        #[arg(long)]
        control_plane: Option<String>,
        /// File with the admin token (default: AGENTMESH_CONTROL_PLANE_TOKEN,
        /// else this home's admin.token).
        #[arg(long)]
        control_plane_token_file: Option<PathBuf>,
    },
    /// List sponsors.
    List {
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Show one sponsor and the agents it sponsors.
    Show {
        email: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum AgentCmd {
    /// Create an agent with a new key held in the mesh home, sponsored by a
    /// sponsor's signature.
    Create(NewAgentArgs),
    /// Register an agent whose key is held elsewhere, from its public JWK.
    Import {
        #[command(flatten)]
        agent: NewAgentArgs,
        /// File with the agent's public JWK (OKP/Ed25519), or `-` for stdin.
        #[arg(long)]
        jwk: String,
    },
    /// List agents.
    List {
        /// Only agents with this status.
        #[arg(long, value_parser = ["active", "suspended", "revoked"])]
        status: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Show an agent, its sponsorship attestation and whether it verifies.
    Show {
        /// Agent name or DID.
        agent: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Print an agent's DID document or public JWK.
    Export {
        /// Agent name or DID.
        agent: String,
        #[arg(long, value_parser = ["did-document", "jwk"], default_value = "did-document")]
        format: String,
    },
    /// Revoke an agent and every agent below it (permanent).
    Revoke {
        agent: String,
        #[arg(long, default_value = "revoked by operator")]
        reason: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Suspend an agent (reversible with `reactivate`).
    Suspend {
        agent: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Reactivate a suspended agent.
    Reactivate {
        agent: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

impl AgentCmd {
    /// The control plane this command acts on, if not this home.
    pub fn remote(&self) -> Option<&RemoteArgs> {
        let r = match self {
            AgentCmd::List { remote, .. }
            | AgentCmd::Show { remote, .. }
            | AgentCmd::Revoke { remote, .. }
            | AgentCmd::Suspend { remote, .. }
            | AgentCmd::Reactivate { remote, .. } => remote,
            AgentCmd::Create(_) | AgentCmd::Import { .. } | AgentCmd::Export { .. } => {
                return None;
            }
        };
        r.control_plane.is_some().then_some(r)
    }
}

/// Acting on a control plane instead of this home (same flags, same
/// output).
#[derive(Debug, Clone, Args)]
pub struct RemoteArgs {
    /// Act on this control plane (`http://host:7400`) instead of this home.
    #[arg(long, env = "AGENTMESH_CONTROL_PLANE")]
    pub control_plane: Option<String>,
    /// File with the admin token (default: AGENTMESH_CONTROL_PLANE_TOKEN,
    /// else this home's admin.token).
    #[arg(long)]
    pub control_plane_token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct NewAgentArgs {
    /// Agent name: letters, digits, `.`, `-`, `_` (it becomes part of the SPIFFE ID).
    pub name: String,
    /// E-mail of the sponsor who answers for this agent.
    #[arg(long)]
    pub sponsor: String,
    /// Capabilities, comma-separated (`read:customer-data,write:reports`).
    #[arg(long, value_delimiter = ',', required = true)]
    pub capabilities: Vec<String>,
    /// Parent agent (name or DID); the new agent cannot hold more than it.
    #[arg(long)]
    pub parent: Option<String>,
    /// Registration lifetime, e.g. `90d` (default: no expiry, or the parent's).
    #[arg(long)]
    pub expires_in: Option<String>,
}

#[derive(Debug, Args)]
pub struct DelegateArgs {
    /// Issuer: a sponsor e-mail (root link) or an agent name/DID.
    #[arg(long)]
    pub from: String,
    /// Audience agent, by name or DID.
    #[arg(long)]
    pub to: String,
    /// Capabilities to grant, comma-separated (default: all the issuer holds).
    #[arg(long, value_delimiter = ',')]
    pub capabilities: Option<Vec<String>>,
    /// Lifetime, e.g. `30m`, `1h`, `2d` (default from config.toml: 1h).
    #[arg(long)]
    pub ttl: Option<String>,
    /// Further delegations allowed below the audience (default: one less than the parent's).
    #[arg(long)]
    pub max_depth: Option<u8>,
    /// Token held by `--from` to extend (text, `@file` or `-`). Without it
    /// the issuer's sponsor signs a root link to the issuer first.
    #[arg(long)]
    pub token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum DelegationCmd {
    /// Verify a token against the registry: every signature, narrowing,
    /// depth, time, revocation. Exits 1 and says why when it fails.
    Verify {
        /// Token text, `@file` or `-` for stdin.
        token: String,
        /// Verify as of this time (unix seconds or RFC 3339) instead of now.
        #[arg(long)]
        at: Option<String>,
        /// Also check a holder proof (`amhp1.…`) for `--request-digest`.
        #[arg(long, requires = "request_digest")]
        proof: Option<String>,
        /// Hex SHA-256 of the request the holder proof covers.
        #[arg(long)]
        request_digest: Option<String>,
    },
    /// Decode a token without the registry (no verification).
    Inspect { token: String },
    /// Make a holder proof with an agent's key held in the mesh home.
    Prove {
        /// The holder agent (name or DID); its key must be in the mesh home.
        #[arg(long)]
        agent: String,
        /// Token text, `@file` or `-`.
        #[arg(long)]
        token: String,
        /// Hex SHA-256 of the request being made.
        #[arg(long)]
        request_digest: String,
    },
    /// Revoke a link (default: a token's last link) or a link hash.
    Revoke {
        /// Token text, `@file`, `-`, or a 64-hex link hash.
        token: String,
        /// Which link of the token (0 is the sponsor's root link).
        #[arg(long)]
        link: Option<usize>,
        #[arg(long, default_value = "revoked by operator")]
        reason: String,
    },
    /// List revoked links.
    Revoked,
}

#[derive(Debug, Subcommand)]
pub enum DidCmd {
    /// Print the DID document of a did:mesh / did:key (no network needed).
    Resolve { did: String },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    // What libraries log through `tracing` (background loops that failed,
    // suspensions, anomalies) goes to stderr: warnings and errors by
    // default, more with RUST_LOG (e.g. `RUST_LOG=agentmesh_engine=debug`).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    if let Err(e) = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true)
        .try_init()
    {
        eprintln!("agentmesh: logging could not start: {e}");
    }
    // Long-running servers get both cores; everything else one thread.
    let serving = matches!(
        &cli.command,
        Command::Mcp(McpCmd::Wrap { .. } | McpCmd::Gateway { .. })
            | Command::A2a(_)
            | Command::Iatp(IatpCmd::Serve { .. })
            | Command::Serve(_)
            | Command::Demo { .. }
    );
    let built = if serving {
        // AGENTMESH_WORKER_THREADS overrides the default of 2 (this
        // machine class has 2 cores).
        let workers = std::env::var("AGENTMESH_WORKER_THREADS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| (1..=64).contains(n))
            .unwrap_or(2);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    let runtime = match built {
        Ok(r) => r,
        Err(e) => return output::fail(json, &anyhow::anyhow!("cannot start runtime: {e}")),
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(out) => out.print(json),
        Err(e) => output::fail(json, &e),
    }
}
