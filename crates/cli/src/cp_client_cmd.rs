//! The CLI as a client of a control plane: an agent registering with proof
//! of possession and asking for credentials, a sponsor approving with its
//! key, an operator listing and rejecting.

use crate::output::{Output, table, time};
use crate::{ControlPlaneArgs, RegistrationsCmd};
use agentmesh_identity::KeyPair;
use agentmesh_server::client::ControlPlane;
use agentmesh_server::pop::{
    CredentialRequest, RegistrationRequest, approval_message, sign_approval,
};
use agentmesh_store::{KeyKind, MeshHome, StoreError, unix_now};
use anyhow::{Context, Result, anyhow};
use hyper::Method;
use serde_json::{Value, json};
use std::path::Path;

/// A client of the control plane `args` names, with the admin token from
/// `AGENTMESH_CONTROL_PLANE_TOKEN`, `--control-plane-token-file`, or this
/// home's `admin.token`. The home's token is sent only to the control plane
/// of this home's own mesh (checked by its public `/v1/authority` first):
/// pointing a command at another URL never hands it this mesh's keys.
pub(crate) async fn client(home: &Path, args: &ControlPlaneArgs) -> Result<ControlPlane> {
    let explicit = match std::env::var("AGENTMESH_CONTROL_PLANE_TOKEN") {
        Ok(t) if !t.is_empty() => Some(t),
        _ => match &args.control_plane_token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => None,
        },
    };
    if explicit.is_some() {
        return ControlPlane::new(&args.control_plane, explicit.as_deref())
            .map_err(|e| anyhow!("{e}"));
    }
    let Ok(home_token) = std::fs::read_to_string(home.join("admin.token")) else {
        return ControlPlane::new(&args.control_plane, None).map_err(|e| anyhow!("{e}"));
    };
    let anonymous = ControlPlane::new(&args.control_plane, None).map_err(|e| anyhow!("{e}"))?;
    let theirs = mesh_did(&anonymous).await?;
    let ours = MeshHome::open(home)
        .ok()
        .map(|h| h.config().mesh_did.to_string());
    if ours.as_deref() != Some(theirs.as_str()) {
        return Err(anyhow!(
            "{} is the control plane of mesh {theirs}, not of this home's mesh ({}): this home's admin token is not sent there; give that control plane's token (AGENTMESH_CONTROL_PLANE_TOKEN or --control-plane-token-file)",
            args.control_plane,
            ours.as_deref().unwrap_or("none")
        ));
    }
    ControlPlane::new(&args.control_plane, Some(home_token.trim())).map_err(|e| anyhow!("{e}"))
}

async fn open_or_init(home: &Path) -> Result<MeshHome> {
    match MeshHome::open(home) {
        Ok(h) => Ok(h),
        Err(StoreError::NoHome(_)) => {
            Ok(MeshHome::init(home, "agentmesh.local", unix_now()).await?)
        }
        Err(e) => Err(e.into()),
    }
}

async fn mesh_did(cp: &ControlPlane) -> Result<String> {
    Ok(cp.call(Method::GET, "/v1/authority", None).await?["mesh"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

async fn nonce(cp: &ControlPlane, kind: &str) -> Result<String> {
    Ok(cp
        .call(Method::POST, &format!("/v1/{kind}/challenge"), None)
        .await?["nonce"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

pub async fn registrations(home: &Path, cmd: RegistrationsCmd) -> Result<Output> {
    match cmd {
        RegistrationsCmd::Request {
            name,
            sponsor,
            capabilities,
            cp,
        } => {
            let h = open_or_init(home).await?;
            let cp = client(home, &cp).await?;
            let kind = KeyKind::Agent(&name);
            let key = if h.key_path(kind).exists() {
                h.read_key(kind)?
            } else {
                let k = KeyPair::generate().map_err(|e| anyhow!("{e}"))?;
                h.write_key(kind, &k)?;
                k
            };
            let mesh = mesh_did(&cp).await?;
            let req = RegistrationRequest {
                name: name.clone(),
                sponsor,
                capabilities,
                did: key.did().to_string(),
                parent: None,
                expires_at: None,
                nonce: nonce(&cp, "registrations").await?,
                timestamp: unix_now(),
                signature: String::new(),
            }
            .sign(&key, &mesh);
            let r = cp
                .call(
                    Method::POST,
                    "/v1/registrations",
                    Some(&serde_json::to_value(&req)?),
                )
                .await?;
            let text = format!(
                "registration {} for `{name}` ({}) is pending its sponsor's approval; the agent's key is in {}",
                r["id"].as_str().unwrap_or(""),
                key.did(),
                h.key_path(kind).display()
            );
            Ok(Output::new(r, text))
        }
        RegistrationsCmd::List { all, cp } => {
            let cp = client(home, &cp).await?;
            let r = cp
                .call(Method::GET, &format!("/v1/registrations?all={all}"), None)
                .await?;
            let rows: Vec<Vec<String>> = r["registrations"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| {
                            vec![
                                x["id"].as_str().unwrap_or("").to_owned(),
                                x["name"].as_str().unwrap_or("").to_owned(),
                                x["sponsor"].as_str().unwrap_or("").to_owned(),
                                x["state"].as_str().unwrap_or("").to_owned(),
                                time(x["created_at"].as_u64().unwrap_or(0)),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            let text = table(&["ID", "NAME", "SPONSOR", "STATE", "REQUESTED"], &rows);
            Ok(Output::new(r, text))
        }
        RegistrationsCmd::Approve { id, cp } => {
            let h = MeshHome::open(home)?;
            let cp = client(home, &cp).await?;
            let reg = cp
                .call(Method::GET, &format!("/v1/registrations/{id}"), None)
                .await?;
            let sponsor = reg["sponsor"].as_str().unwrap_or_default().to_owned();
            let key = h.read_key(KeyKind::Sponsor(&sponsor)).with_context(|| {
                format!("the sponsor's key ({sponsor}) must be in this home to sign the approval")
            })?;
            let did = agentmesh_identity::Did::parse(reg["agent_did"].as_str().unwrap_or_default())
                .map_err(|e| anyhow!("registration DID: {e}"))?;
            let caps: Vec<String> = reg["capabilities"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let name = reg["name"].as_str().unwrap_or_default();
            let msg = approval_message(&mesh_did(&cp).await?, &id, &did, name, &caps);
            let r = cp
                .call(
                    Method::POST,
                    &format!("/v1/registrations/{id}/approve"),
                    Some(&json!({"sponsor_signature": sign_approval(&key, &msg)})),
                )
                .await?;
            let text = format!("approved by {sponsor} (signed with its key): `{name}` is active");
            Ok(Output::new(r, text))
        }
        RegistrationsCmd::Reject { id, reason, cp } => {
            let cp = client(home, &cp).await?;
            let r = cp
                .call(
                    Method::POST,
                    &format!("/v1/registrations/{id}/reject"),
                    Some(&json!({"reason": reason})),
                )
                .await?;
            Ok(Output::new(r, format!("registration {id} rejected")))
        }
    }
}

/// `agentmesh credential request <agent>`.
pub async fn credential_request(
    home: &Path,
    agent: &str,
    cp: &ControlPlaneArgs,
    audience: Option<String>,
) -> Result<Output> {
    let h = MeshHome::open(home)?;
    let key = h
        .read_key(KeyKind::Agent(agent))
        .with_context(|| format!("agent `{agent}`'s key must be in this home"))?;
    let cp = client(home, cp).await?;
    let mesh = mesh_did(&cp).await?;
    let req = CredentialRequest {
        did: key.did().to_string(),
        audience,
        ttl_secs: None,
        nonce: nonce(&cp, "credentials").await?,
        timestamp: unix_now(),
        signature: String::new(),
    }
    .sign(&key, &mesh);
    let r: Value = cp
        .call(
            Method::POST,
            "/v1/credentials",
            Some(&serde_json::to_value(&req)?),
        )
        .await?;
    let text = r["credential"].as_str().unwrap_or("").to_owned();
    let note = format!(
        "credential for `{agent}`, expires {}; ask again after {}",
        time(r["expires_at"].as_u64().unwrap_or(0)),
        time(r["refresh_after"].as_u64().unwrap_or(0))
    );
    Ok(Output::new(r, text).with_note(note))
}

/// `agentmesh gateways issue <name>`: a gateway credential from the control
/// plane (admin token needed). Only the credential goes to stdout.
pub async fn gateway_issue(
    home: &Path,
    name: &str,
    ttl: &str,
    cp: &ControlPlaneArgs,
) -> Result<Output> {
    let ttl = humantime::parse_duration(ttl)
        .map_err(|e| anyhow!("--ttl `{ttl}`: {e}"))?
        .as_secs();
    let cp = client(home, cp).await?;
    let r: Value = cp
        .call(
            Method::POST,
            "/v1/gateways",
            Some(&json!({"name": name, "ttl_secs": ttl})),
        )
        .await?;
    let text = r["credential"].as_str().unwrap_or("").to_owned();
    Ok(Output::new(r.clone(), text).with_note(format!(
        "gateway credential `{}` for `{name}`, expires {}; give it to the gateway as AGENTMESH_CONTROL_PLANE_TOKEN or --control-plane-token-file, revoke it with `agentmesh credential revoke {} --control-plane …`",
        r["id"].as_str().unwrap_or(""),
        time(r["expires_at"].as_u64().unwrap_or(0)),
        r["id"].as_str().unwrap_or(""),
    )))
}

/// `agentmesh credential revoke <id|text> --control-plane URL`.
pub async fn credential_revoke(
    home: &Path,
    credential: &str,
    reason: Option<String>,
    cp: &ControlPlaneArgs,
) -> Result<Output> {
    let cp = client(home, cp).await?;
    let mut body = if credential.contains('.') {
        json!({"credential": credential})
    } else {
        json!({"id": credential})
    };
    if let Some(r) = reason {
        body["reason"] = Value::from(r);
    }
    let r: Value = cp
        .call(Method::POST, "/v1/credentials/revoke", Some(&body))
        .await?;
    let text = format!(
        "revoked credential {} at the control plane",
        r["id"].as_str().unwrap_or(credential)
    );
    Ok(Output::new(r, text))
}

/// `agentmesh sponsor create <email> --control-plane URL`: the key is made
/// and kept in this home (the sponsor's own); the control plane gets only
/// the public key, so only this home can sign the sponsor's approvals.
pub async fn sponsor_register(
    home: &Path,
    email: &str,
    capabilities: Option<Vec<String>>,
    cp: &ControlPlaneArgs,
) -> Result<Output> {
    let h = open_or_init(home).await?;
    let email = agentmesh_identity::validate_email(email).map_err(|e| anyhow!("{e}"))?;
    let kind = KeyKind::Sponsor(&email);
    let key = match h.read_key(kind) {
        Ok(k) => k,
        Err(_) => {
            let k = KeyPair::generate().map_err(|e| anyhow!("{e}"))?;
            h.write_key(kind, &k)?;
            k
        }
    };
    let client = client(home, cp).await?;
    let mut body = json!({"email": email, "did": key.did().to_string()});
    if let Some(c) = capabilities {
        body["capabilities"] = json!(c);
    }
    let r: Value = client
        .call(Method::POST, "/v1/sponsors", Some(&body))
        .await?;
    let text = format!(
        "Registered sponsor {email} at {}\n  DID  {}\n  key  {} (0600, stays here)",
        cp.control_plane,
        key.did(),
        h.key_path(kind).display()
    );
    Ok(Output::new(r, text))
}
