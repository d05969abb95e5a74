//! Fail-closed verification of a delegation token against the registry.

use crate::token::{StepError, Token, check_step, did_of};
use crate::wire::{DecodeError, DecodedLink, LINK_DOMAIN};
use agentmesh_capability::{Capability, covers, covers_all, display_list, uncovered};
use agentmesh_identity::{Did, PublicKey};
use std::sync::Arc;

/// Registry status of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    Active,
    Suspended,
    Revoked,
}

/// What the verifier needs to know about a sponsor.
#[derive(Debug, Clone)]
pub struct SponsorEntry {
    pub email: Arc<str>,
    /// What the sponsor may grant at all.
    pub capabilities: Arc<[Capability]>,
    pub active: bool,
}

/// What the verifier needs to know about an agent.
#[derive(Debug, Clone)]
pub struct AgentEntry {
    pub name: Arc<str>,
    pub sponsor_did: Did,
    /// The capabilities the sponsor attested when the agent was created.
    pub capabilities: Arc<[Capability]>,
    pub status: AgentStatus,
    /// When the agent's registration ends (unix seconds), if it does.
    pub expires_at: Option<u64>,
}

/// The registry as the verifier sees it. Implementations are snapshots or
/// caches; the verifier never does I/O.
pub trait Directory {
    fn sponsor(&self, did: &Did) -> Option<SponsorEntry>;
    fn agent(&self, did: &Did) -> Option<AgentEntry>;
    fn is_link_revoked(&self, link_hash: &[u8; 32]) -> bool;
    /// Changes whenever a revocation or status change happens, so caches
    /// know when to re-check what they hold.
    fn generation(&self) -> u64 {
        0
    }
}

/// Verification settings.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
    /// Unix seconds.
    pub now: u64,
    /// Tolerated clock skew for not-before only (expiry is never extended).
    pub not_before_skew: u64,
}

impl VerifyOptions {
    pub fn at(now: u64) -> Self {
        Self {
            now,
            not_before_skew: 30,
        }
    }
}

/// Why a token is rejected. Each variant names the link (0 is the root,
/// signed by the sponsor) and says what failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("malformed token: {0}")]
    Decode(#[from] DecodeError),
    #[error("link {link}: {role} key is not a valid Ed25519 key: {reason}")]
    InvalidKey {
        link: usize,
        role: &'static str,
        reason: String,
    },
    #[error(
        "link {link}: signature by {issuer} does not verify (the link was altered or signed by another key)"
    )]
    BadSignature { link: usize, issuer: Did },
    #[error("link 0: issuer {0} is not a registered sponsor")]
    UnknownSponsor(Did),
    #[error("link 0: sponsor {0} is deactivated")]
    SponsorInactive(String),
    #[error("link {link}: audience {did} is not a registered agent")]
    UnknownAgent { link: usize, did: Did },
    #[error("link 0: agent `{agent}` is sponsored by {actual}, not by the root issuer {issuer}")]
    SponsorMismatch {
        agent: String,
        actual: Did,
        issuer: Did,
    },
    #[error("link 0: grants {uncovered} beyond what {whose} holds ({held})")]
    RootExceeds {
        whose: String,
        uncovered: String,
        held: String,
    },
    #[error("link 0 names a previous link; a root link's previous hash must be zero")]
    RootHasParent,
    #[error(
        "link {link}: previous-link hash does not match link {prev} (links were reordered, removed or spliced)"
    )]
    BrokenHash { link: usize, prev: usize },
    #[error("link {link}: issued by {issuer}, but link {prev} was issued to {audience}")]
    BrokenChain {
        link: usize,
        prev: usize,
        issuer: Did,
        audience: Did,
    },
    #[error("link {link}: {source}")]
    Step { link: usize, source: StepError },
    #[error("link {link}: {did} appears twice in the chain (cycle)")]
    Cycle { link: usize, did: Did },
    #[error("link {link}: not valid before {not_before} (now {now})")]
    NotYetValid {
        link: usize,
        not_before: u64,
        now: u64,
    },
    #[error("link {link}: expired at {expires_at} (now {now})")]
    Expired {
        link: usize,
        expires_at: u64,
        now: u64,
    },
    #[error("link {link}: not-before {not_before} is not before expiry {expires_at}")]
    EmptyWindow {
        link: usize,
        not_before: u64,
        expires_at: u64,
    },
    #[error("link {link} ({hash}) is revoked; every delegation below it is void")]
    LinkRevoked { link: usize, hash: String },
    #[error("link {link}: agent `{name}` ({did}) registration expired at {expires_at}")]
    AgentExpired {
        link: usize,
        name: String,
        did: Did,
        expires_at: u64,
    },
    #[error("link {link}: agent `{name}` ({did}) is {status:?}")]
    AgentNotActive {
        link: usize,
        name: String,
        did: Did,
        status: AgentStatus,
    },
}

impl VerifyError {
    /// A stable, machine-readable reason code (for metrics, audit and test
    /// vectors). Codes never change meaning once published.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::Decode(_) => "malformed",
            VerifyError::InvalidKey { .. } => "invalid_key",
            VerifyError::BadSignature { .. } => "bad_signature",
            VerifyError::UnknownSponsor(_) => "unknown_sponsor",
            VerifyError::SponsorInactive(_) => "sponsor_inactive",
            VerifyError::UnknownAgent { .. } => "unknown_agent",
            VerifyError::SponsorMismatch { .. } => "sponsor_mismatch",
            VerifyError::RootExceeds { .. } => "root_exceeds_registration",
            VerifyError::RootHasParent => "root_has_parent",
            VerifyError::BrokenHash { .. } => "broken_hash",
            VerifyError::BrokenChain { .. } => "broken_chain",
            VerifyError::Step { source, .. } => match source {
                StepError::Widened { .. } => "widened",
                StepError::DepthExhausted => "depth_exhausted",
                StepError::DepthWidened { .. } => "depth_widened",
                StepError::TimeWidened { .. } => "time_widened",
            },
            VerifyError::Cycle { .. } => "cycle",
            VerifyError::NotYetValid { .. } => "not_yet_valid",
            VerifyError::Expired { .. } => "expired",
            VerifyError::EmptyWindow { .. } => "empty_window",
            VerifyError::LinkRevoked { .. } => "link_revoked",
            VerifyError::AgentExpired { .. } => "agent_expired",
            VerifyError::AgentNotActive { status, .. } => match status {
                AgentStatus::Suspended => "agent_suspended",
                _ => "agent_revoked",
            },
        }
    }
}

/// One verified link, for display and audit.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LinkSummary {
    pub issuer: Did,
    pub issuer_name: String,
    pub audience: Did,
    pub audience_name: String,
    pub capabilities: Vec<Capability>,
    pub not_before: u64,
    pub expires_at: u64,
    pub max_depth: u8,
    pub hash: String,
}

/// A token that passed verification, and what it grants.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifiedChain {
    pub sponsor: Did,
    pub sponsor_email: String,
    pub holder: Did,
    pub holder_name: String,
    /// What the holder may do: the last link's capabilities.
    pub capabilities: Vec<Capability>,
    /// Latest not-before and earliest expiry along the chain.
    pub not_before: u64,
    pub expires_at: u64,
    pub links: Vec<LinkSummary>,
    #[serde(skip)]
    pub(crate) link_hashes: Vec<[u8; 32]>,
    #[serde(skip)]
    pub(crate) agents: Vec<Did>,
    /// Earliest registration expiry of the agents in the chain.
    #[serde(skip)]
    pub(crate) agents_expire_at: u64,
}

impl VerifiedChain {
    /// True when the chain grants `requested`.
    pub fn permits(&self, requested: &Capability) -> bool {
        self.capabilities.iter().any(|g| covers(g, requested))
    }

    /// True when the chain grants every capability in `requested`.
    pub fn permits_all(&self, requested: &[Capability]) -> bool {
        covers_all(&self.capabilities, requested)
    }

    /// Hash of the last link (what holder proofs bind to).
    pub fn leaf_hash(&self) -> [u8; 32] {
        self.link_hashes.last().copied().unwrap_or([0u8; 32])
    }

    /// Number of delegation hops below the sponsor's root link.
    pub fn depth(&self) -> usize {
        self.links.len().saturating_sub(1)
    }
}

/// Verifies a token's text. See [`verify_token`].
pub fn verify(
    text: &str,
    directory: &dyn Directory,
    opts: VerifyOptions,
) -> Result<VerifiedChain, VerifyError> {
    let token = Token::parse(text)?;
    verify_token(&token, directory, opts)
}

/// Verifies every link: signatures, the sponsor at the root, the registry
/// record of every agent, hash linkage, narrowing of capabilities, depth and
/// time at every hop, time now, revocation and cycles. Fails closed on the
/// first problem.
pub fn verify_token(
    token: &Token,
    directory: &dyn Directory,
    opts: VerifyOptions,
) -> Result<VerifiedChain, VerifyError> {
    let links = token.links();
    // Signatures first, so a tampered link is reported as tampered rather
    // than as whatever field the tampering happened to change.
    for (i, d) in links.iter().enumerate() {
        verify_signature(i, d)?;
    }

    let root = &links[0].link;
    let sponsor_did = did_of(&root.issuer);
    if root.prev_hash != [0u8; 32] {
        return Err(VerifyError::RootHasParent);
    }
    let sponsor = directory
        .sponsor(&sponsor_did)
        .ok_or(VerifyError::UnknownSponsor(sponsor_did))?;
    if !sponsor.active {
        return Err(VerifyError::SponsorInactive(sponsor.email.to_string()));
    }
    if !covers_all(&sponsor.capabilities, &root.capabilities) {
        return Err(VerifyError::RootExceeds {
            whose: format!("sponsor {}", sponsor.email),
            uncovered: display_list(&owned(uncovered(&sponsor.capabilities, &root.capabilities))),
            held: display_list(&sponsor.capabilities),
        });
    }

    let mut summaries = Vec::with_capacity(links.len());
    let mut agents: Vec<Did> = Vec::with_capacity(links.len());
    let mut seen: Vec<[u8; 32]> = vec![root.issuer];
    let mut names: Vec<Arc<str>> = vec![sponsor.email.clone()];
    let (mut nbf, mut exp) = (0u64, u64::MAX);
    let mut agents_expire_at = u64::MAX;

    for (i, d) in links.iter().enumerate() {
        let link = &d.link;
        let audience = did_of(&link.audience);
        if seen.contains(&link.audience) {
            return Err(VerifyError::Cycle {
                link: i,
                did: audience,
            });
        }
        seen.push(link.audience);
        let agent = directory
            .agent(&audience)
            .ok_or(VerifyError::UnknownAgent {
                link: i,
                did: audience,
            })?;
        if i == 0 {
            if agent.sponsor_did != sponsor_did {
                return Err(VerifyError::SponsorMismatch {
                    agent: agent.name.to_string(),
                    actual: agent.sponsor_did,
                    issuer: sponsor_did,
                });
            }
            if !covers_all(&agent.capabilities, &link.capabilities) {
                return Err(VerifyError::RootExceeds {
                    whose: format!("agent `{}`'s sponsored registration", agent.name),
                    uncovered: display_list(&owned(uncovered(
                        &agent.capabilities,
                        &link.capabilities,
                    ))),
                    held: display_list(&agent.capabilities),
                });
            }
        } else {
            let prev = &links[i - 1];
            if link.issuer != prev.link.audience {
                return Err(VerifyError::BrokenChain {
                    link: i,
                    prev: i - 1,
                    issuer: did_of(&link.issuer),
                    audience: did_of(&prev.link.audience),
                });
            }
            if link.prev_hash != prev.hash {
                return Err(VerifyError::BrokenHash {
                    link: i,
                    prev: i - 1,
                });
            }
            check_step(&prev.link, link).map_err(|source| VerifyError::Step { link: i, source })?;
        }
        if link.not_before >= link.expires_at {
            return Err(VerifyError::EmptyWindow {
                link: i,
                not_before: link.not_before,
                expires_at: link.expires_at,
            });
        }
        if opts.now.saturating_add(opts.not_before_skew) < link.not_before {
            return Err(VerifyError::NotYetValid {
                link: i,
                not_before: link.not_before,
                now: opts.now,
            });
        }
        if opts.now >= link.expires_at {
            return Err(VerifyError::Expired {
                link: i,
                expires_at: link.expires_at,
                now: opts.now,
            });
        }
        agents_expire_at = agents_expire_at.min(agent.expires_at.unwrap_or(u64::MAX));
        nbf = nbf.max(link.not_before);
        exp = exp.min(link.expires_at);
        agents.push(audience);
        let issuer_name = names[i].to_string();
        names.push(agent.name.clone());
        summaries.push(LinkSummary {
            issuer: did_of(&link.issuer),
            issuer_name,
            audience,
            audience_name: agent.name.to_string(),
            capabilities: link.capabilities.clone(),
            not_before: link.not_before,
            expires_at: link.expires_at,
            max_depth: link.max_depth,
            hash: hex(&d.hash),
        });
    }

    let link_hashes: Vec<[u8; 32]> = links.iter().map(|d| d.hash).collect();
    check_live(&link_hashes, &agents, directory, opts.now)?;

    let last = &links[links.len() - 1].link;
    Ok(VerifiedChain {
        sponsor: sponsor_did,
        sponsor_email: sponsor.email.to_string(),
        holder: did_of(&last.audience),
        holder_name: names[names.len() - 1].to_string(),
        capabilities: last.capabilities.clone(),
        not_before: nbf,
        expires_at: exp,
        links: summaries,
        link_hashes,
        agents,
        agents_expire_at,
    })
}

/// The checks that can change after a token was verified: revoked links,
/// agents that stopped being active and registrations that ran out. Cheap (lookups only), so caches re-run
/// it whenever the directory's generation moves.
pub(crate) fn check_live(
    link_hashes: &[[u8; 32]],
    agents: &[Did],
    directory: &dyn Directory,
    now: u64,
) -> Result<(), VerifyError> {
    for (i, h) in link_hashes.iter().enumerate() {
        if directory.is_link_revoked(h) {
            return Err(VerifyError::LinkRevoked {
                link: i,
                hash: hex(h),
            });
        }
    }
    for (i, did) in agents.iter().enumerate() {
        match directory.agent(did) {
            None => return Err(VerifyError::UnknownAgent { link: i, did: *did }),
            Some(a) if a.status != AgentStatus::Active => {
                return Err(VerifyError::AgentNotActive {
                    link: i,
                    name: a.name.to_string(),
                    did: *did,
                    status: a.status,
                });
            }
            Some(a) => {
                if let Some(expires_at) = a.expires_at.filter(|e| now >= *e) {
                    return Err(VerifyError::AgentExpired {
                        link: i,
                        name: a.name.to_string(),
                        did: *did,
                        expires_at,
                    });
                }
            }
        }
    }
    Ok(())
}

fn verify_signature(i: usize, d: &DecodedLink) -> Result<(), VerifyError> {
    let issuer = PublicKey::from_bytes(&d.link.issuer).map_err(|e| VerifyError::InvalidKey {
        link: i,
        role: "issuer",
        reason: e.to_string(),
    })?;
    PublicKey::from_bytes(&d.link.audience).map_err(|e| VerifyError::InvalidKey {
        link: i,
        role: "audience",
        reason: e.to_string(),
    })?;
    issuer
        .verify(LINK_DOMAIN, &d.body, &d.link.signature)
        .map_err(|_| VerifyError::BadSignature {
            link: i,
            issuer: did_of(&d.link.issuer),
        })
}

fn owned(caps: Vec<&Capability>) -> Vec<Capability> {
    caps.into_iter().cloned().collect()
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}
