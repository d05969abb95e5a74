//! Making tokens: a root link signed by a sponsor, then links that narrow.

use crate::wire::{
    self, DecodeError, DecodedLink, LINK_DOMAIN, Link, MAX_CAPS_PER_LINK, MAX_LINKS,
};
use agentmesh_capability::{Capability, covers_all, display_list, normalize, uncovered};
use agentmesh_identity::{Did, KeyPair};

/// A delegation token: its text and its decoded links.
#[derive(Debug, Clone)]
pub struct Token {
    text: String,
    links: Vec<DecodedLink>,
}

/// Why a token could not be made. Each is also a reason verification rejects
/// a hand-forged token (see [`crate::VerifyError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    #[error("a delegation must grant at least one capability")]
    NoCapabilities,
    #[error("a link may grant at most {MAX_CAPS_PER_LINK} capabilities")]
    TooManyCapabilities,
    #[error(transparent)]
    Step(#[from] StepError),
    #[error("the token already holds {MAX_LINKS} links")]
    TooManyLinks,
    #[error("only the token's holder {holder} can extend it; this key is {signer}")]
    NotHolder { holder: Did, signer: Did },
    #[error("an agent cannot delegate to itself")]
    SelfDelegation,
    #[error("{0} already appears in this chain; delegating back would make a cycle")]
    Cycle(Did),
    #[error("not-before {not_before} is not before expiry {expires_at}")]
    EmptyWindow { not_before: u64, expires_at: u64 },
}

/// Why one link may not follow another. Shared by issuing and verifying so
/// the two can never disagree about narrowing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error("widens the delegation: {uncovered} not covered by the parent's grant ({parent})")]
    Widened { uncovered: String, parent: String },
    #[error("the parent link allows no further delegation (its max depth is 0)")]
    DepthExhausted,
    #[error("max depth {child} is not below the parent's {parent}")]
    DepthWidened { child: u8, parent: u8 },
    #[error(
        "validity {child_nbf}..{child_exp} reaches outside the parent's {parent_nbf}..{parent_exp}"
    )]
    TimeWidened {
        child_nbf: u64,
        child_exp: u64,
        parent_nbf: u64,
        parent_exp: u64,
    },
}

/// Checks that `child` may follow `parent`: capabilities, depth and time
/// only ever narrow.
pub fn check_step(parent: &Link, child: &Link) -> Result<(), StepError> {
    if !covers_all(&parent.capabilities, &child.capabilities) {
        let missing: Vec<Capability> = uncovered(&parent.capabilities, &child.capabilities)
            .into_iter()
            .cloned()
            .collect();
        return Err(StepError::Widened {
            uncovered: display_list(&missing),
            parent: display_list(&parent.capabilities),
        });
    }
    if parent.max_depth == 0 {
        return Err(StepError::DepthExhausted);
    }
    if child.max_depth >= parent.max_depth {
        return Err(StepError::DepthWidened {
            child: child.max_depth,
            parent: parent.max_depth,
        });
    }
    if child.not_before < parent.not_before || child.expires_at > parent.expires_at {
        return Err(StepError::TimeWidened {
            child_nbf: child.not_before,
            child_exp: child.expires_at,
            parent_nbf: parent.not_before,
            parent_exp: parent.expires_at,
        });
    }
    Ok(())
}

/// What a new link grants.
#[derive(Debug, Clone)]
pub struct Grant {
    pub audience: Did,
    pub capabilities: Vec<Capability>,
    pub not_before: u64,
    pub expires_at: u64,
    /// Further delegations allowed below the audience. `None` on a child link
    /// means one less than the parent's.
    pub max_depth: Option<u8>,
}

impl Token {
    /// Issues a root link: `sponsor` grants `grant` to its audience.
    /// `max_depth` defaults to 3 on a root.
    pub fn issue_root(sponsor: &KeyPair, grant: Grant) -> Result<Self, IssueError> {
        let link = make_link(sponsor, &grant, [0u8; 32], grant.max_depth.unwrap_or(3))?;
        if link.audience == link.issuer {
            return Err(IssueError::SelfDelegation);
        }
        Ok(Self::from_links(vec![link]))
    }

    /// Appends a link signed by the current holder, refusing anything that
    /// widens capabilities, depth or time.
    pub fn delegate(&self, holder: &KeyPair, grant: Grant) -> Result<Self, IssueError> {
        let last = &self.last().link;
        if holder.public().as_bytes() != &last.audience {
            return Err(IssueError::NotHolder {
                holder: self.holder(),
                signer: holder.did(),
            });
        }
        if self.links.len() >= MAX_LINKS {
            return Err(IssueError::TooManyLinks);
        }
        if grant.audience.key_bytes() == holder.public().as_bytes() {
            return Err(IssueError::SelfDelegation);
        }
        if self
            .links
            .iter()
            .any(|l| &l.link.issuer == grant.audience.key_bytes())
        {
            return Err(IssueError::Cycle(grant.audience));
        }
        let depth = grant
            .max_depth
            .unwrap_or_else(|| last.max_depth.saturating_sub(1));
        let link = make_link(holder, &grant, self.last().hash, depth)?;
        check_step(last, &link)?;
        let mut links: Vec<Link> = self.links.iter().map(|d| d.link.clone()).collect();
        links.push(link);
        Ok(Self::from_links(links))
    }

    fn from_links(links: Vec<Link>) -> Self {
        let text = wire::encode_text(&links);
        let links = links
            .into_iter()
            .map(|link| {
                let body = link.body();
                DecodedLink {
                    hash: link.hash(),
                    body,
                    link,
                }
            })
            .collect();
        Self { text, links }
    }

    /// Parses the text form (syntax only; see [`crate::verify`]).
    pub fn parse(text: &str) -> Result<Self, DecodeError> {
        let links = wire::decode_text(text)?;
        Ok(Self {
            text: text.to_owned(),
            links,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn links(&self) -> &[DecodedLink] {
        &self.links
    }

    fn last(&self) -> &DecodedLink {
        // A token always has at least one link: issue_root makes one and
        // decoding rejects zero.
        &self.links[self.links.len() - 1]
    }

    /// The DID the token was issued to (the last link's audience).
    pub fn holder(&self) -> Did {
        did_of(&self.last().link.audience)
    }

    /// Hash of the last link; holder proofs bind to it.
    pub fn leaf_hash(&self) -> [u8; 32] {
        self.last().hash
    }

    /// The capabilities the last link grants (meaningful only once verified).
    pub fn capabilities(&self) -> &[Capability] {
        &self.last().link.capabilities
    }
}

fn make_link(
    issuer: &KeyPair,
    grant: &Grant,
    prev_hash: [u8; 32],
    max_depth: u8,
) -> Result<Link, IssueError> {
    let capabilities = normalize(grant.capabilities.clone());
    if capabilities.is_empty() {
        return Err(IssueError::NoCapabilities);
    }
    if capabilities.len() > MAX_CAPS_PER_LINK {
        return Err(IssueError::TooManyCapabilities);
    }
    if grant.not_before >= grant.expires_at {
        return Err(IssueError::EmptyWindow {
            not_before: grant.not_before,
            expires_at: grant.expires_at,
        });
    }
    let mut link = Link {
        issuer: *issuer.public().as_bytes(),
        audience: *grant.audience.key_bytes(),
        not_before: grant.not_before,
        expires_at: grant.expires_at,
        max_depth,
        prev_hash,
        capabilities,
        signature: [0u8; 64],
    };
    link.signature = issuer.sign(LINK_DOMAIN, &link.body());
    Ok(link)
}

/// The DID of 32 key bytes (no point validation: display only).
pub(crate) fn did_of(key: &[u8; 32]) -> Did {
    // `Did::parse` of a freshly encoded key cannot fail for 32 bytes; build
    // it through the public constructor that skips point validation.
    Did::from_key_bytes(key)
}
