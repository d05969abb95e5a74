//! The commands. Each returns an [`Output`] with the same facts as text and
//! JSON; errors carry enough context to act on.

use crate::output::{Output, opt_time, table, time};
use crate::{
    AgentCmd, Cli, Command, DelegateArgs, DelegationCmd, DidCmd, NewAgentArgs, SponsorCmd,
};
use agentmesh_capability::{Capability, display_list};
use agentmesh_delegation::{AgentStatus, HolderProof, ReplayGuard, Token, VerifiedChain, hex};
use agentmesh_identity::{Did, DidDocument, Jwk};
use agentmesh_store::{
    AgentRecord, KeyCustody, KeyKind, Mesh, MeshError, MeshHome, NewAgent, NewDelegation,
    SponsorRecord, parse_hex32, unix_now,
};
use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use std::io::Read;

/// Largest token, JWK or other input read from a file or stdin.
const MAX_INPUT: u64 = 64 * 1024;

pub async fn run(cli: Cli) -> Result<Output> {
    let now = unix_now();
    match cli.command {
        Command::Init { trust_domain } => init(&cli.home, &trust_domain, now).await,
        Command::Status => status(&open(&cli.home).await?).await,
        Command::Sponsor(crate::SponsorCmd::Create {
            email,
            capabilities,
            control_plane: Some(url),
            control_plane_token_file,
        }) => {
            let cp = crate::ControlPlaneArgs {
                control_plane: url,
                control_plane_token_file,
            };
            crate::cp_client_cmd::sponsor_register(&cli.home, &email, capabilities, &cp).await
        }
        Command::Sponsor(crate::SponsorCmd::List { remote }) if remote.control_plane.is_some() => {
            crate::remote_cmd::sponsors(&cli.home, &remote).await
        }
        Command::Sponsor(crate::SponsorCmd::Show { email, remote })
            if remote.control_plane.is_some() =>
        {
            crate::remote_cmd::sponsor_show(&cli.home, &remote, &email).await
        }
        Command::Sponsor(cmd) => {
            let mesh = open(&cli.home).await?;
            let out = sponsor(&mesh, cmd, now).await?;
            checkpoint_if_written(&mesh)?;
            Ok(out)
        }
        Command::Agent(cmd) if cmd.remote().is_some() => {
            crate::remote_cmd::agent(&cli.home, cmd).await
        }
        Command::Agent(cmd) => {
            let mesh = open(&cli.home).await?;
            let out = agent(&mesh, cmd, now).await?;
            checkpoint_if_written(&mesh)?;
            Ok(out)
        }
        Command::Delegate(args) => {
            let mesh = open(&cli.home).await?;
            let out = delegate(&mesh, args, now).await?;
            checkpoint_if_written(&mesh)?;
            Ok(out)
        }
        Command::Delegation(cmd) => delegation(&cli.home, cmd, now).await,
        Command::Did(DidCmd::Resolve { did }) => did_resolve(&did),
        Command::Policy(
            cmd @ (crate::PolicyCmd::Publish { .. }
            | crate::PolicyCmd::Show { .. }
            | crate::PolicyCmd::Diff { .. }),
        ) => crate::remote_cmd::policy(&cli.home, cmd).await,
        Command::Policy(cmd) => crate::policy_cmd::run(cmd, now),
        Command::Audit(cmd) => crate::audit_cmd::run(&cli.home, cmd).await,
        Command::Compliance(cmd) => crate::compliance_cmd::run(&cli.home, cmd).await,
        Command::Mcp(crate::McpCmd::Gateway {
            config,
            control_plane: Some(url),
            control_plane_token_file,
        }) => {
            crate::gateway_cmd::run_attached(
                &cli.home,
                &config,
                &url,
                control_plane_token_file.as_deref(),
            )
            .await
        }
        Command::Mcp(crate::McpCmd::DemoServer { data }) => {
            crate::demo_server::run(&data)?;
            Ok(Output::new(Value::Null, ""))
        }
        Command::Mcp(cmd) => crate::mcp_cmd::run(open(&cli.home).await?, cmd).await,
        Command::A2a(crate::A2aCmd::Gateway {
            config,
            upstream,
            listen,
            policy,
            control_plane,
            control_plane_token_file,
        }) => {
            let attached = match &control_plane {
                Some(url) => Some(
                    crate::attach::connect(&cli.home, url, control_plane_token_file.as_deref())
                        .await?,
                ),
                None => None,
            };
            let mesh = match &attached {
                Some(att) => att.mesh.clone(),
                None => open(&cli.home).await?,
            };
            crate::a2a_cmd::run(
                mesh,
                attached,
                config.as_deref(),
                upstream.as_deref(),
                listen,
                policy.as_deref(),
            )
            .await
        }
        Command::Iatp(crate::IatpCmd::Serve {
            agent,
            listen,
            public_urls,
            min_trust,
            challenge_ttl,
            attestation_ttl,
        }) => {
            crate::iatp_cmd::serve(
                open(&cli.home).await?,
                crate::iatp_cmd::ServeArgs {
                    agent,
                    listen,
                    public_urls,
                    min_trust,
                    challenge_ttl_secs: challenge_ttl,
                    attestation_ttl_secs: attestation_ttl,
                },
            )
            .await
        }
        Command::Iatp(crate::IatpCmd::Handshake {
            peer,
            agent,
            expect,
            min_trust,
            control_plane,
            authority,
        }) => {
            crate::iatp_cmd::handshake(
                open(&cli.home).await?,
                &peer,
                &agent,
                expect.as_deref(),
                min_trust,
                crate::iatp_cmd::Vouching {
                    control_plane,
                    authority,
                },
            )
            .await
        }
        Command::Iatp(crate::IatpCmd::Manifest { source }) => {
            crate::iatp_cmd::manifest(&source).await
        }
        Command::Demo {
            keep_running,
            dir,
            listen,
        } => crate::demo::run(dir, keep_running, listen).await,
        Command::Serve(a) => {
            crate::serve_cmd::run(
                &cli.home,
                crate::serve_cmd::ServeArgs {
                    listen: a.listen,
                    allow_remote: a.allow_remote,
                    allowed_hosts: a.allowed_hosts,
                    database: a.database,
                    admin_token_file: a.admin_token_file,
                    replica: a.replica,
                    credential_ttl: a.credential_ttl,
                    credential_rate: a.credential_rate,
                    header_read_timeout: a.header_read_timeout,
                },
            )
            .await
        }
        Command::Approvals(crate::ApprovalsCmd::List { all, remote })
            if remote.control_plane.is_some() =>
        {
            crate::remote_cmd::approvals_list(&cli.home, &remote, all).await
        }
        Command::Approvals(cmd) => crate::mcp_cmd::approvals(&open(&cli.home).await?, cmd).await,
        Command::Credential(crate::CredentialCmd::Request {
            agent,
            cp,
            audience,
        }) => crate::cp_client_cmd::credential_request(&cli.home, &agent, &cp, audience).await,
        Command::Registrations(cmd) => crate::cp_client_cmd::registrations(&cli.home, cmd).await,
        Command::Gateways(crate::GatewaysCmd::Issue { name, ttl, cp }) => {
            crate::cp_client_cmd::gateway_issue(&cli.home, &name, &ttl, &cp).await
        }
        Command::Credential(crate::CredentialCmd::Revoke {
            credential,
            reason,
            control_plane: Some(url),
            control_plane_token_file,
        }) => {
            let cp = crate::ControlPlaneArgs {
                control_plane: url,
                control_plane_token_file,
            };
            crate::cp_client_cmd::credential_revoke(&cli.home, &credential, reason, &cp).await
        }
        Command::Credential(cmd) => crate::mcp_cmd::credential(&open(&cli.home).await?, cmd).await,
        Command::Trust(crate::TrustCmd::Show { agent, remote })
            if remote.control_plane.is_some() =>
        {
            crate::remote_cmd::trust_show(&cli.home, &remote, &agent).await
        }
        Command::Trust(crate::TrustCmd::History {
            agent,
            last,
            remote,
        }) if remote.control_plane.is_some() => {
            crate::remote_cmd::trust_history(&cli.home, &remote, &agent, last).await
        }
        Command::Trust(crate::TrustCmd::Explain {
            agent,
            last,
            remote,
        }) if remote.control_plane.is_some() => {
            crate::remote_cmd::trust_explain(&cli.home, &remote, &agent, last).await
        }
        Command::Trust(crate::TrustCmd::List { below, remote })
            if remote.control_plane.is_some() =>
        {
            crate::remote_cmd::trust_list(&cli.home, &remote, below).await
        }
        Command::Trust(cmd) => {
            let mesh = open(&cli.home).await?;
            let out = crate::trust_cmd::run(&mesh, cmd).await?;
            checkpoint_if_written(&mesh)?;
            Ok(out)
        }
    }
}

/// After a command that recorded audit entries, sign a checkpoint with the
/// mesh key so the new entries are covered by a signed tree head.
fn checkpoint_if_written(mesh: &Mesh) -> Result<()> {
    if mesh.audit_opened() {
        mesh.checkpoint().context("signing the audit checkpoint")?;
    }
    Ok(())
}

pub(crate) async fn open(home: &std::path::Path) -> Result<Mesh> {
    let home = MeshHome::open(home)?;
    Ok(Mesh::open(home).await?)
}

async fn init(root: &std::path::Path, trust_domain: &str, now: u64) -> Result<Output> {
    let home = MeshHome::init(root, trust_domain, now).await?;
    let cfg = home.config();
    let text = format!(
        "Created mesh home {}\n  trust domain  {}\n  mesh DID      {}\n\nNext: agentmesh sponsor create <email>",
        root.display(),
        cfg.trust_domain,
        cfg.mesh_did
    );
    Ok(Output::new(
        json!({
            "home": root,
            "trust_domain": cfg.trust_domain,
            "mesh_did": cfg.mesh_did,
            "created_at": time(cfg.created_at),
        }),
        text,
    ))
}

async fn status(mesh: &Mesh) -> Result<Output> {
    let reg = mesh.registry();
    let sponsors = reg.list_sponsors().await?;
    let agents = reg.list_agents().await?;
    let revoked_links = reg.revoked_links().await?.len();
    let count = |s: AgentStatus| agents.iter().filter(|a| a.status == s).count();
    let cfg = mesh.home().config();
    let (active, suspended, revoked) = (
        count(AgentStatus::Active),
        count(AgentStatus::Suspended),
        count(AgentStatus::Revoked),
    );
    let text = format!(
        "mesh home     {}\ntrust domain  {}\nmesh DID      {}\nregistry      {}\nsponsors      {}\nagents        {} active, {} suspended, {} revoked\nrevoked links {}",
        mesh.home().root().display(),
        cfg.trust_domain,
        cfg.mesh_did,
        mesh.home().registry_path().display(),
        sponsors.len(),
        active,
        suspended,
        revoked,
        revoked_links
    );
    Ok(Output::new(
        json!({
            "home": mesh.home().root(),
            "trust_domain": cfg.trust_domain,
            "mesh_did": cfg.mesh_did,
            "registry": mesh.home().registry_path(),
            "sponsors": sponsors.len(),
            "agents": {"active": active, "suspended": suspended, "revoked": revoked},
            "revoked_links": revoked_links,
        }),
        text,
    ))
}

fn parse_caps(list: &[String]) -> Result<Vec<Capability>> {
    let caps = list
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| Capability::parse(s).map_err(|e| anyhow!(e)))
        .collect::<Result<Vec<_>>>()?;
    if caps.is_empty() {
        bail!("no capabilities given");
    }
    Ok(caps)
}

fn parse_duration(s: &str, what: &str) -> Result<u64> {
    let d = humantime::parse_duration(s)
        .with_context(|| format!("{what} `{s}` is not a duration (examples: 30m, 1h, 7d)"))?;
    if d.as_secs() == 0 {
        bail!("{what} must be at least one second");
    }
    Ok(d.as_secs())
}

async fn sponsor(mesh: &Mesh, cmd: SponsorCmd, now: u64) -> Result<Output> {
    match cmd {
        SponsorCmd::Create {
            email,
            capabilities,
            ..
        } => {
            let caps = capabilities.as_deref().map(parse_caps).transpose()?;
            let s = mesh.create_sponsor(&email, caps, now).await?;
            let key = mesh.home().key_path(KeyKind::Sponsor(&s.email));
            Ok(Output::new(
                json!({"sponsor": s, "key_file": key}),
                format!(
                    "Created sponsor {}\n  DID           {}\n  may grant     {}\n  key           {} (0600)",
                    s.email,
                    s.did,
                    display_list(&s.capabilities),
                    key.display()
                ),
            ))
        }
        SponsorCmd::List { .. } => Ok(sponsors_listing(
            mesh.registry().list_sponsors().await?,
            &mesh.registry().list_agents().await?,
        )),
        SponsorCmd::Show { email, .. } => {
            let s = mesh
                .registry()
                .sponsor_by_email(&email)
                .await?
                .ok_or_else(|| MeshError::UnknownSponsor(email.clone()))?;
            Ok(sponsor_shown(&s, &mesh.registry().list_agents().await?))
        }
    }
}

/// `sponsor show` as printed, from this home's registry or a control
/// plane's: the sponsor and the agents it answers for.
pub(crate) fn sponsor_shown(s: &SponsorRecord, all_agents: &[AgentRecord]) -> Output {
    let agents: Vec<&AgentRecord> = all_agents.iter().filter(|a| a.sponsor == s.email).collect();
    let names: Vec<String> = agents
        .iter()
        .map(|a| format!("{} ({})", a.name, status_word(a.status)))
        .collect();
    Output::new(
        json!({"sponsor": s, "agents": agents.iter().map(|a| &a.name).collect::<Vec<_>>()}),
        format!(
            "sponsor       {}\nDID           {}\nmay grant     {}\ncreated       {}\nactive        {}\nagents        {}",
            s.email,
            s.did,
            display_list(&s.capabilities),
            time(s.created_at),
            s.active,
            if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            }
        ),
    )
}

pub(crate) fn status_word(s: AgentStatus) -> &'static str {
    match s {
        AgentStatus::Active => "active",
        AgentStatus::Suspended => "suspended",
        AgentStatus::Revoked => "revoked",
    }
}

fn new_agent(args: NewAgentArgs, now: u64) -> Result<NewAgent> {
    let expires_at = args
        .expires_in
        .as_deref()
        .map(|s| parse_duration(s, "--expires-in").map(|d| now + d))
        .transpose()?;
    Ok(NewAgent {
        name: args.name,
        sponsor: args.sponsor,
        capabilities: parse_caps(&args.capabilities)?,
        parent: args.parent,
        expires_at,
    })
}

async fn agent(mesh: &Mesh, cmd: AgentCmd, now: u64) -> Result<Output> {
    match cmd {
        AgentCmd::Create(args) => {
            let rec = mesh.create_agent(new_agent(args, now)?, now).await?;
            Ok(created(mesh, &rec, "Created"))
        }
        AgentCmd::Import { agent, jwk } => {
            // A file path, `-` for stdin, or the JSON itself.
            let text = if jwk == "-" || jwk.trim_start().starts_with('{') {
                read_input(&jwk)?
            } else {
                read_input(&format!("@{jwk}"))?
            };
            let jwk = Jwk::from_json(&text)?;
            if jwk.d.is_some() {
                bail!(
                    "this JWK holds a private key (`d`); import registers only the public key, so pass the public JWK and keep the private key with the agent"
                );
            }
            let public = jwk.public_key()?;
            let rec = mesh
                .import_agent(new_agent(agent, now)?, public, now)
                .await?;
            Ok(created(mesh, &rec, "Imported"))
        }
        AgentCmd::List { status, .. } => Ok(agents_listing(
            mesh.registry().list_agents().await?,
            status.as_deref(),
        )),
        AgentCmd::Show { agent, .. } => {
            let a = mesh.agent(&agent).await?;
            let attestation = a.sponsorship.verify(now);
            let sponsor_ok = mesh
                .registry()
                .sponsor_by_email(&a.sponsor)
                .await?
                .is_some_and(|s| s.did == a.sponsorship.sponsor_did);
            let parent = match a.parent_did {
                Some(p) => Some(
                    mesh.registry()
                        .agent_by_did(&p)
                        .await?
                        .map(|r| r.name)
                        .unwrap_or_else(|| p.to_string()),
                ),
                None => None,
            };
            let verdict = match (&attestation, sponsor_ok) {
                (Ok(()), true) => format!(
                    "valid, signed by {} ({})",
                    a.sponsor, a.sponsorship.sponsor_did
                ),
                (Ok(()), false) => {
                    "signature valid but the signer is not this sponsor's registered key".into()
                }
                (Err(e), _) => format!("INVALID: {e}"),
            };
            let text = format!(
                "name          {}\nDID           {}\nSPIFFE ID     {}\nstatus        {}{}\nsponsor       {}\nparent        {}\ncapabilities  {}\ncreated       {}\nexpires       {}\nkey           {}\nattestation   {}",
                a.name,
                a.did,
                a.spiffe_id,
                status_word(a.status),
                a.status_reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
                a.sponsor,
                parent.clone().unwrap_or_else(|| "-".into()),
                display_list(&a.capabilities),
                time(a.created_at),
                opt_time(a.expires_at),
                match a.key_custody {
                    KeyCustody::Home => mesh
                        .home()
                        .key_path(KeyKind::Agent(&a.name))
                        .display()
                        .to_string(),
                    KeyCustody::External => "held outside this mesh home".into(),
                },
                verdict
            );
            Ok(Output::new(
                json!({
                    "agent": a,
                    "parent_name": parent,
                    "attestation_valid": attestation.is_ok() && sponsor_ok,
                    "attestation_error": attestation.err().map(|e| e.to_string()),
                }),
                text,
            ))
        }
        AgentCmd::Export { agent, format } => {
            let a = mesh.agent(&agent).await?;
            let value = if format == "jwk" {
                serde_json::to_value(Jwk::public(&a.did.public_key()?))?
            } else {
                serde_json::to_value(DidDocument::for_did(&a.did, Some(&a.spiffe_id)))?
            };
            let text = serde_json::to_string_pretty(&value)?;
            Ok(Output::new(value, text))
        }
        AgentCmd::Revoke { agent, reason, .. } => {
            let names = mesh.revoke_agent(&agent, &reason, now).await?;
            Ok(revoked(names, &reason))
        }
        AgentCmd::Suspend { agent, reason, .. } => {
            let a = mesh
                .set_status(&agent, AgentStatus::Suspended, reason.as_deref(), now)
                .await?;
            Ok(Output::new(
                json!({"agent": a.name, "status": "suspended"}),
                format!("Suspended {}", a.name),
            ))
        }
        AgentCmd::Reactivate { agent, .. } => {
            let a = mesh
                .set_status(&agent, AgentStatus::Active, None, now)
                .await?;
            Ok(Output::new(
                json!({"agent": a.name, "status": "active"}),
                format!("Reactivated {}", a.name),
            ))
        }
    }
}

/// `sponsor list`, from this home or a control plane.
pub(crate) fn sponsors_listing(
    sponsors: Vec<agentmesh_store::SponsorRecord>,
    agents: &[AgentRecord],
) -> Output {
    let rows: Vec<Vec<String>> = sponsors
        .iter()
        .map(|s| {
            vec![
                s.email.clone(),
                agents
                    .iter()
                    .filter(|a| a.sponsor == s.email)
                    .count()
                    .to_string(),
                display_list(&s.capabilities),
                s.did.to_string(),
            ]
        })
        .collect();
    let text = if rows.is_empty() {
        "No sponsors yet: agentmesh sponsor create <email>".to_owned()
    } else {
        table(&["SPONSOR", "AGENTS", "MAY GRANT", "DID"], &rows)
    };
    Output::new(json!({ "sponsors": sponsors }), text)
}

/// `agent list`, from this home or a control plane.
pub(crate) fn agents_listing(agents: Vec<AgentRecord>, status: Option<&str>) -> Output {
    let agents: Vec<AgentRecord> = agents
        .into_iter()
        .filter(|a| status.is_none_or(|s| s == status_word(a.status)))
        .collect();
    let names: std::collections::HashMap<Did, String> =
        agents.iter().map(|a| (a.did, a.name.clone())).collect();
    let rows: Vec<Vec<String>> = agents
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                status_word(a.status).to_owned(),
                a.sponsor.clone(),
                a.parent_did
                    .map(|p| names.get(&p).cloned().unwrap_or_else(|| p.to_string()))
                    .unwrap_or_else(|| "-".into()),
                display_list(&a.capabilities),
                a.did.to_string(),
            ]
        })
        .collect();
    let text = if rows.is_empty() {
        "No agents.".to_owned()
    } else {
        table(
            &["NAME", "STATUS", "SPONSOR", "PARENT", "CAPABILITIES", "DID"],
            &rows,
        )
    };
    Output::new(json!({ "agents": agents }), text)
}

/// `agent revoke`, from this home or a control plane.
pub(crate) fn revoked(names: Vec<String>, reason: &str) -> Output {
    let text = match names.as_slice() {
        [] => "Nothing revoked".to_owned(),
        [one] => format!("Revoked {one}"),
        [first, rest @ ..] => format!("Revoked {first} and its descendants: {}", rest.join(", ")),
    };
    Output::new(json!({"revoked": names, "reason": reason}), text)
}

fn created(mesh: &Mesh, a: &AgentRecord, verb: &str) -> Output {
    let key = match a.key_custody {
        KeyCustody::Home => format!(
            "{} (0600)",
            mesh.home().key_path(KeyKind::Agent(&a.name)).display()
        ),
        KeyCustody::External => "held by the agent (public key imported)".into(),
    };
    Output::new(
        json!({"agent": a}),
        format!(
            "{verb} agent {}\n  DID           {}\n  SPIFFE ID     {}\n  sponsor       {} (attestation signed)\n  capabilities  {}\n  key           {}",
            a.name,
            a.did,
            a.spiffe_id,
            a.sponsor,
            display_list(&a.capabilities),
            key
        ),
    )
}

async fn delegate(mesh: &Mesh, args: DelegateArgs, now: u64) -> Result<Output> {
    let ttl = match &args.ttl {
        Some(s) => parse_duration(s, "--ttl")?,
        None => mesh.home().config().defaults.delegation_ttl_secs,
    };
    let parent_token = args.token.as_deref().map(read_input).transpose()?;
    let capabilities = args.capabilities.as_deref().map(parse_caps).transpose()?;
    let token = mesh
        .delegate(
            NewDelegation {
                from: args.from,
                to: args.to,
                capabilities,
                ttl_secs: ttl,
                max_depth: args.max_depth,
                parent_token,
            },
            now,
        )
        .await?;
    let chain = mesh.verify(token.as_str(), now).await?;
    // The token alone on stdout, so `agentmesh delegate … > token` works;
    // the explanation on stderr.
    eprintln!("{}", describe_chain(&chain));
    Ok(Output::new(
        json!({"token": token.as_str(), "chain": chain}),
        token.as_str().to_owned(),
    ))
}

fn describe_chain(chain: &VerifiedChain) -> String {
    let mut s = String::new();
    for (i, l) in chain.links.iter().enumerate() {
        let from = if i == 0 {
            format!("sponsor {}", l.issuer_name)
        } else {
            l.issuer_name.clone()
        };
        s.push_str(&format!(
            "  link {i}: {from} → {}  [{}]  depth≤{}  until {}\n",
            l.audience_name,
            display_list(&l.capabilities),
            l.max_depth,
            time(l.expires_at)
        ));
    }
    s.push_str(&format!(
        "holder {} ({}) may: {}\nvalid {} → {}",
        chain.holder_name,
        chain.holder,
        display_list(&chain.capabilities),
        time(chain.not_before),
        time(chain.expires_at)
    ));
    s
}

pub(crate) fn parse_time(s: &str) -> Result<u64> {
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    let t = humantime::parse_rfc3339_weak(s)
        .with_context(|| format!("`{s}` is neither unix seconds nor an RFC 3339 time"))?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0))
}

fn parse_digest(s: &str) -> Result<[u8; 32]> {
    parse_hex32(s.trim())
        .ok_or_else(|| anyhow!("request digest must be 64 hex characters (a SHA-256)"))
}

async fn delegation(home: &std::path::Path, cmd: DelegationCmd, now: u64) -> Result<Output> {
    match cmd {
        DelegationCmd::Verify {
            token,
            at,
            proof,
            request_digest,
        } => {
            let mesh = open(home).await?;
            let text = read_input(&token)?;
            let at = at.as_deref().map(parse_time).transpose()?.unwrap_or(now);
            let chain = match mesh.verify(&text, at).await {
                Ok(c) => c,
                Err(MeshError::SelfCheck(e)) => {
                    return Ok(Output::new(
                        json!({"valid": false, "code": e.code(), "error": e.to_string()}),
                        format!("INVALID: {e}"),
                    )
                    .with_code(1));
                }
                Err(e) => return Err(e.into()),
            };
            let mut holder = Value::Null;
            let mut proof_line = String::new();
            if let (Some(p), Some(d)) = (proof, request_digest) {
                let digest = parse_digest(&d)?;
                let checked = HolderProof::parse(&p)
                    .and_then(|p| ReplayGuard::new(300, 16).verify(&chain, &p, &digest, at));
                match checked {
                    Ok(()) => {
                        holder = json!({"valid": true});
                        proof_line = format!("\nholder proof: valid, signed by {}", chain.holder);
                    }
                    Err(e) => {
                        return Ok(Output::new(
                            json!({"valid": false, "chain": chain, "holder_proof": {"valid": false, "error": e.to_string()}}),
                            format!("{}\nINVALID holder proof: {e}", describe_chain(&chain)),
                        )
                        .with_code(1));
                    }
                }
            }
            Ok(Output::new(
                json!({"valid": true, "chain": chain, "holder_proof": holder}),
                format!("VALID\n{}{proof_line}", describe_chain(&chain)),
            ))
        }
        DelegationCmd::Inspect { token } => {
            let text = read_input(&token)?;
            let token = Token::parse(&text)?;
            let links: Vec<Value> = token
                .links()
                .iter()
                .map(|d| {
                    let l = &d.link;
                    json!({
                        "issuer": Did::from_key_bytes(&l.issuer),
                        "audience": Did::from_key_bytes(&l.audience),
                        "capabilities": l.capabilities,
                        "not_before": time(l.not_before),
                        "expires_at": time(l.expires_at),
                        "max_depth": l.max_depth,
                        "prev_hash": hex(&l.prev_hash),
                        "hash": hex(&d.hash),
                    })
                })
                .collect();
            let mut s = format!(
                "{} link(s), {} bytes (NOT verified: use `delegation verify`)\n",
                links.len(),
                text.len()
            );
            for (i, d) in token.links().iter().enumerate() {
                let l = &d.link;
                s.push_str(&format!(
                    "link {i}\n  issuer    {}\n  audience  {}\n  grants    {}\n  valid     {} → {}\n  max depth {}\n  hash      {}\n",
                    Did::from_key_bytes(&l.issuer),
                    Did::from_key_bytes(&l.audience),
                    display_list(&l.capabilities),
                    time(l.not_before),
                    time(l.expires_at),
                    l.max_depth,
                    hex(&d.hash)
                ));
            }
            Ok(Output::new(json!({"verified": false, "links": links}), s))
        }
        DelegationCmd::Prove {
            agent,
            token,
            request_digest,
        } => {
            let mesh = open(home).await?;
            let a = mesh.agent(&agent).await?;
            let key = mesh.home().read_key(KeyKind::Agent(&a.name))?;
            let token = Token::parse(&read_input(&token)?)?;
            if token.holder() != a.did {
                bail!(
                    "the token was issued to {}, not to `{}`; only its audience can prove possession",
                    token.holder(),
                    a.name
                );
            }
            let digest = parse_digest(&request_digest)?;
            let proof = HolderProof::create(&key, &token, &digest, now).to_text();
            Ok(Output::new(
                json!({"proof": proof, "timestamp": now}),
                proof,
            ))
        }
        DelegationCmd::Revoke {
            token,
            link,
            reason,
        } => {
            let mesh = open(home).await?;
            let input = read_input(&token)?;
            let r = mesh.revoke_delegation(&input, link, &reason, now).await?;
            checkpoint_if_written(&mesh)?;
            Ok(Output::new(
                json!({"revoked": r}),
                format!(
                    "Revoked link {}; every token through it is now invalid",
                    r.hash
                ),
            ))
        }
        DelegationCmd::Revoked => {
            let mesh = open(home).await?;
            let links = mesh.registry().revoked_links().await?;
            let rows: Vec<Vec<String>> = links
                .iter()
                .map(|l| vec![l.hash.clone(), time(l.revoked_at), l.reason.clone()])
                .collect();
            let text = if rows.is_empty() {
                "No revoked links.".to_owned()
            } else {
                table(&["LINK HASH", "REVOKED", "REASON"], &rows)
            };
            Ok(Output::new(json!({ "revoked_links": links }), text))
        }
    }
}

fn did_resolve(did: &str) -> Result<Output> {
    let parsed = Did::parse(did)?;
    parsed.public_key()?;
    let doc = DidDocument::for_did(&parsed, None);
    let value = serde_json::to_value(&doc)?;
    Ok(Output::new(
        value.clone(),
        serde_json::to_string_pretty(&value)?,
    ))
}

/// Reads an argument that may be literal text, `@file` or `-` (stdin),
/// bounded in size, trimmed.
pub(crate) fn read_input(arg: &str) -> Result<String> {
    let text = if arg == "-" {
        let mut s = String::new();
        std::io::stdin()
            .take(MAX_INPUT + 1)
            .read_to_string(&mut s)
            .context("reading stdin")?;
        s
    } else if let Some(path) = arg.strip_prefix('@') {
        let meta = std::fs::metadata(path).with_context(|| format!("reading {path}"))?;
        if meta.len() > MAX_INPUT {
            bail!("{path} is {} bytes; the limit is {MAX_INPUT}", meta.len());
        }
        std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?
    } else {
        arg.to_owned()
    };
    if text.len() as u64 > MAX_INPUT {
        bail!("input is larger than {MAX_INPUT} bytes");
    }
    Ok(text.trim().to_owned())
}
