//! Attaching a gateway (MCP or A2A: the same steps) to a control plane:
//! its registry is the control plane's (a cached snapshot, reloaded on
//! every pushed change and kept while the control plane is down),
//! credentials are checked against the control plane's key, its published
//! policy replaces the local file, and the gateway's own audit log (in its
//! local home, with its checkpoint key and tool pins) is shipped to it.
//! A gateway holds a gateway credential (`amgw1.`), never the admin token.

use agentmesh_engine::Engine;
use agentmesh_iatp::http::Service;
use agentmesh_identity::{KeyPair, PublicKey};
use agentmesh_policy::{PolicyHandle, PolicySet};
use agentmesh_server::client::{
    AuditShipper, ControlPlane, FeedEvent, RemoteRegistry, follow_events,
};
use agentmesh_server::gateway_credential::GatewayClaims;
use agentmesh_store::{Mesh, MeshHome, StoreError, unix_now};
use anyhow::{Context, Result, anyhow};
use std::path::Path;
use std::sync::Arc;

/// A gateway's link to its control plane, before its engine starts.
pub struct Attachment {
    pub url: String,
    pub cp: ControlPlane,
    pub remote: Arc<RemoteRegistry>,
    /// The local home over the control plane's registry.
    pub mesh: Mesh,
    pub mesh_did: String,
    /// The control plane's key: credentials are checked against it.
    pub authority: PublicKey,
    /// What this gateway's own credential says (its name, its id).
    pub gateway: GatewayClaims,
    /// Ships the gateway's audit log (set by [`Attachment::start`]).
    shipper: std::sync::Mutex<Option<AuditShipper>>,
}

impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment")
            .field("url", &self.url)
            .field("mesh_did", &self.mesh_did)
            .finish()
    }
}

/// Connects to the control plane at `url` with the gateway credential from
/// `AGENTMESH_CONTROL_PLANE_TOKEN` or `token_file`. Fails closed: without
/// the authority key and a first snapshot there is nothing to enforce.
pub async fn connect(home: &Path, url: &str, token_file: Option<&Path>) -> Result<Attachment> {
    let token = match std::env::var("AGENTMESH_CONTROL_PLANE_TOKEN") {
        Ok(t) if !t.is_empty() => t,
        _ => {
            let path = token_file.ok_or_else(|| {
                anyhow!("--control-plane needs a gateway credential (`agentmesh gateways issue <name>`): set AGENTMESH_CONTROL_PLANE_TOKEN or --control-plane-token-file")
            })?;
            std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?
                .trim()
                .to_owned()
        }
    };
    // A gateway holds no more authority than its job: a gateway credential,
    // never the admin token (a compromised gateway, or an upstream that
    // reads its environment, must not get the keys to the mesh).
    if !token.starts_with(agentmesh_server::gateway_credential::GATEWAY_PREFIX) {
        return Err(anyhow!(
            "--control-plane needs a gateway credential (amgw1.…), not the admin token: issue one with `agentmesh gateways issue <name> --control-plane {url}` and give it as AGENTMESH_CONTROL_PLANE_TOKEN or --control-plane-token-file"
        ));
    }
    let cp = ControlPlane::new(url, Some(&token)).map_err(|e| anyhow!("{e}"))?;
    let (mesh_did, authority) = cp
        .authority()
        .await
        .map_err(|e| anyhow!("{e}; the gateway needs the control plane to start"))?;
    // Checked here, not only by the control plane: an expired or foreign
    // credential is named before anything starts.
    let gateway = agentmesh_server::gateway_credential::verify(&token, &authority, unix_now())
        .map_err(|e| {
            anyhow!("the gateway credential does not hold at the control plane {url}: {e}")
        })?;
    let remote = Arc::new(RemoteRegistry::new(cp.clone()));
    remote.snapshot().await.map_err(|e| anyhow!("{e}"))?;
    let local = match MeshHome::open(home) {
        Ok(h) => h,
        Err(StoreError::NoHome(_)) => MeshHome::init(home, "agentmesh.local", unix_now()).await?,
        Err(e) => return Err(e.into()),
    };
    let mesh = Mesh::new(local, remote.clone());
    Ok(Attachment {
        url: url.to_owned(),
        cp,
        remote,
        mesh,
        mesh_did,
        authority,
        gateway,
        shipper: std::sync::Mutex::new(None),
    })
}

impl Attachment {
    /// Once the engine runs: takes the published policy (if any), follows
    /// the change feed (registry reloads, policy changes) and ships the
    /// engine's audit log. Returns the background tasks.
    pub async fn start(
        &self,
        engine: &Engine,
        policy: &Arc<PolicyHandle>,
        audience: &str,
    ) -> Result<Vec<tokio::task::JoinHandle<()>>> {
        // An attached gateway ships its own log to the control plane, so
        // it must hold it (a second process on one home follows the first
        // through the registry, which here is the control plane's).
        let Some(log) = engine.audit() else {
            return Err(anyhow!(
                "another process holds the audit log in {}; an attached gateway ships its own log to the control plane: give it its own --home",
                self.mesh.home().root().display()
            ));
        };
        let published = load_published(&self.cp, policy).await;
        eprintln!(
            "agentmesh: attached to control plane {} ({}){}",
            self.url,
            self.mesh_did,
            if published {
                "; using its published policy"
            } else {
                ""
            }
        );
        let follower = {
            let engine = engine.clone();
            let remote = self.remote.clone();
            let cp = self.cp.clone();
            let policy = policy.clone();
            follow_events(self.cp.clone(), move |event| {
                let engine = engine.clone();
                let remote = remote.clone();
                let cp = cp.clone();
                let policy = policy.clone();
                async move {
                    match event {
                        FeedEvent::Connected | FeedEvent::Change(_) => {
                            if matches!(&event, FeedEvent::Connected)
                                || matches!(&event, FeedEvent::Change(k) if k == "policy" || k == "resync")
                            {
                                load_published(&cp, &policy).await;
                            }
                            remote.invalidate();
                            if let Err(e) = engine.refresh().await {
                                tracing::warn!(error = %e, "could not reload the registry from the control plane; enforcing with cached state");
                            }
                        }
                        FeedEvent::Disconnected => {
                            tracing::warn!(
                                "control plane stream lost; enforcing with cached state"
                            );
                        }
                    }
                }
            })
        };
        let shipper = AuditShipper::new(
            self.cp.clone(),
            log,
            self.mesh.home().root().join("shipped-audit.cursor"),
            audience.to_owned(),
        );
        *self.shipper.lock().unwrap_or_else(|p| p.into_inner()) = Some(shipper.clone());
        Ok(vec![
            follower,
            shipper.run(std::time::Duration::from_secs(1)),
        ])
    }
}

impl Attachment {
    /// At shutdown, after serving stopped: ships what the log holds that the
    /// control plane has not got yet (within 5 s; what does not go stays in
    /// the gateway's log and goes at the next start).
    pub async fn ship_remaining(&self) {
        let shipper = self
            .shipper
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(shipper) = shipper else {
            return;
        };
        // Decisions made just before serving stopped may still be queued on
        // the log's writer (appended within milliseconds): ship until the
        // log has stopped growing for 200 ms.
        let settle = async {
            let mut shipped = 0;
            let mut quiet = 0;
            while quiet < 2 {
                let n = shipper.ship_pending().await?;
                shipped += n;
                quiet = if n == 0 { quiet + 1 } else { 0 };
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Ok::<u64, agentmesh_server::client::ClientError>(shipped)
        };
        match tokio::time::timeout(std::time::Duration::from_secs(5), settle).await {
            Ok(Ok(n)) => tracing::debug!(entries = n, "last audit entries shipped"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not ship the last audit entries; they go at the next start")
            }
            Err(_) => tracing::warn!(
                "shipping the last audit entries took over 5 s; the rest go at the next start"
            ),
        }
    }

    /// Keeps the gateway's IATP verifier vouched for by the control plane:
    /// a voucher for `key` (the verifier's key) now and again before each
    /// one expires, so agents registered at the control plane admit this
    /// gateway in a handshake although no registry lists its key. Without
    /// a voucher the gateway still verifies provers; provers that do not
    /// know its key refuse it (`unknown_agent`), which is logged here.
    pub fn keep_vouched(&self, service: Arc<Service>, key: KeyPair) -> tokio::task::JoinHandle<()> {
        let cp = self.cp.clone();
        let credential = self.gateway.id.clone();
        tokio::spawn(async move {
            loop {
                let wait = match cp.vouch(&key, &credential).await {
                    Ok((text, exp)) => {
                        service.verifier.set_voucher(Some(text));
                        tracing::debug!(expires_at = exp, "IATP voucher renewed");
                        // Renew at half its life (at least 10 s apart).
                        exp.saturating_sub(unix_now()).max(20) / 2
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the control plane did not vouch for this gateway's IATP key; agents that do not list it will refuse handshakes; retrying in 10 s");
                        10
                    }
                };
                tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
            }
        })
    }
}

/// Replaces the policy with the control plane's published one, if any.
async fn load_published(cp: &ControlPlane, policy: &Arc<PolicyHandle>) -> bool {
    let Ok(doc) = cp.call(hyper::Method::GET, "/v1/policy", None).await else {
        return false;
    };
    let Some(yaml) = doc["yaml"].as_str() else {
        return false;
    };
    match PolicySet::from_yaml(yaml, "control-plane policy") {
        Ok(set) => {
            if set.version != policy.current().version {
                let v = policy.replace(set);
                eprintln!("agentmesh: control-plane policy in force (version {v})");
            }
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "the control plane's policy is invalid here; keeping the current one");
            false
        }
    }
}
