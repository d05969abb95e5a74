//! The trust model: per dimension, Beta evidence with exponential
//! forgetting, read as a subjective-logic opinion.
//!
//! For a dimension with positive evidence `r`, negative evidence `s`, prior
//! weight `W` and base rate `a`:
//!
//! ```text
//! belief b = r / (r + s + W)      disbelief d = s / (r + s + W)
//! uncertainty u = W / (r + s + W) expected E = b + a·u = (r + a·W) / (r + s + W)
//! ```
//!
//! `E` is the mean of Beta(r + a·W, s + (1−a)·W). Evidence decays with
//! elapsed time `Δt`: `r ← r·2^(−Δt/h)`, `s ← s·2^(−Δt/h)`, so an idle agent
//! returns to the prior (`E → a`, `u → 1`), and decay depends only on the
//! elapsed time (applying it twice at the same instant changes nothing).
//!
//! The composite score is the weighted mean `Σ w_d·E_d` scaled by a
//! conduct factor `c = min(1, E_compliance/a, E_security/a)`: good output
//! or endorsements cannot buy back misconduct, and an agent whose
//! compliance or security has fallen below the neutral prior loses trust in
//! proportion. The composite uncertainty is `Σ w_d·u_d`.

use crate::config::TrustConfig;
use serde::{Deserialize, Serialize};

/// The five dimensions of trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    PolicyCompliance,
    SecurityPosture,
    OutputQuality,
    ResourceEfficiency,
    Collaboration,
}

impl Dimension {
    pub const ALL: [Dimension; 5] = [
        Dimension::PolicyCompliance,
        Dimension::SecurityPosture,
        Dimension::OutputQuality,
        Dimension::ResourceEfficiency,
        Dimension::Collaboration,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Dimension::PolicyCompliance => "policy_compliance",
            Dimension::SecurityPosture => "security_posture",
            Dimension::OutputQuality => "output_quality",
            Dimension::ResourceEfficiency => "resource_efficiency",
            Dimension::Collaboration => "collaboration",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Evidence for one dimension.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Positive evidence (decayed).
    pub r: f64,
    /// Negative evidence (decayed).
    pub s: f64,
}

/// One agent's trust state: evidence per dimension as of `at_ms`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentTrust {
    pub dims: [Evidence; 5],
    /// Time (unix ms) the evidence is decayed to.
    pub at_ms: u64,
    /// Events applied so far.
    pub events: u64,
    /// The score fell below the suspension floor with enough evidence (or
    /// by a severe event), and no human has reinstated the agent since.
    /// While set, the trust gate refuses the agent's calls.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub breached: bool,
    /// Positive evidence gained in the current window (diminishing
    /// returns; see [`Gains`]).
    #[serde(default, skip_serializing_if = "Gains::is_empty")]
    pub gains: Gains,
}

/// Most distinct things (actions, peers) remembered per window; beyond
/// that, each new one counts as a repeat (half weight).
pub const GAIN_MEMORY: usize = 64;

/// Positive evidence gained within the current window: per dimension, and
/// how often each thing (hashed `about`) has been rewarded. The `n`-th
/// reward about the same thing in a window adds `1/n` of its weight
/// (handshakes and endorsements: only the first), and a dimension gains at
/// most `max_gain_per_window` in a window. Part of the state, so the fold
/// stays a pure function of the events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Gains {
    /// Window number (`at_ms / (gain_window_secs·1000)`).
    pub window: u64,
    /// Positive evidence added per dimension in this window.
    pub per_dim: [f64; 5],
    /// (FNV-1a hash of kind and `about`, rewards so far), sorted by hash.
    pub seen: Vec<(u32, u32)>,
}

impl Gains {
    pub fn is_empty(&self) -> bool {
        self.window == 0 && self.seen.is_empty() && self.per_dim.iter().all(|g| *g == 0.0)
    }

    /// The weight a positive event of kind `tag` about `about` may add to
    /// `dim` at `at_ms` (and records it). `once`: only the first reward in a
    /// window counts.
    #[allow(clippy::too_many_arguments)]
    pub fn admit(
        &mut self,
        dim: Dimension,
        tag: &str,
        about: &str,
        weight: f64,
        once: bool,
        at_ms: u64,
        cfg: &TrustConfig,
    ) -> f64 {
        let window = at_ms / cfg.gain_window_secs.max(1).saturating_mul(1000);
        if window > self.window {
            *self = Gains {
                window,
                ..Gains::default()
            };
        }
        // Hashed in place (no key string on the hot path).
        let h = fnv_parts(&[tag.as_bytes(), &[0x1f], about.as_bytes()]);
        let n = match self.seen.binary_search_by_key(&h, |(k, _)| *k) {
            Ok(i) => {
                self.seen[i].1 = self.seen[i].1.saturating_add(1);
                self.seen[i].1
            }
            Err(i) if self.seen.len() < GAIN_MEMORY => {
                self.seen.insert(i, (h, 1));
                1
            }
            Err(_) => 2,
        };
        let scaled = if once && n > 1 {
            0.0
        } else {
            weight / f64::from(n)
        };
        let room = (cfg.max_gain_per_window - self.per_dim[dim.index()]).max(0.0);
        let granted = scaled.min(room);
        self.per_dim[dim.index()] += granted;
        granted
    }
}

/// FNV-1a over the concatenation of `parts`.
pub(crate) fn fnv_parts(parts: &[&[u8]]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in parts.iter().flat_map(|p| p.iter()) {
        h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    }
    h
}

/// A score as reported (also by the control plane's API, read back by the
/// CLI: the same type on both sides).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Composite expected trust, 0–1.
    pub score: f64,
    /// Composite uncertainty, 0–1 (1 = nothing known).
    pub uncertainty: f64,
    pub tier: String,
    /// Per dimension: (expected value, uncertainty).
    pub dimensions: Vec<DimensionScore>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DimensionScore {
    pub dimension: Dimension,
    pub score: f64,
    pub uncertainty: f64,
    pub positive: f64,
    pub negative: f64,
}

/// The factor by which evidence shrinks over `dt_ms`.
pub fn decay_factor(dt_ms: u64, half_life_secs: f64) -> f64 {
    if dt_ms == 0 {
        1.0
    } else {
        (-(dt_ms as f64 / 1000.0) / half_life_secs).exp2()
    }
}

impl AgentTrust {
    /// Decays the evidence to `now_ms`. Times earlier than the state's are
    /// ignored (time never runs backwards), so this is idempotent.
    pub fn decay_to(&mut self, now_ms: u64, cfg: &TrustConfig) {
        if now_ms <= self.at_ms {
            return;
        }
        let f = decay_factor(now_ms - self.at_ms, cfg.half_life_secs);
        for e in &mut self.dims {
            e.r *= f;
            e.s *= f;
        }
        self.at_ms = now_ms;
    }

    /// Expected value and uncertainty of dimension `d` after decaying by `f`.
    fn dim(&self, d: Dimension, f: f64, cfg: &TrustConfig) -> (f64, f64) {
        let e = self.dims[d.index()];
        let (r, s) = (e.r * f, e.s * f);
        let total = r + s + cfg.prior_weight;
        (
            (r + cfg.base_rate * cfg.prior_weight) / total,
            cfg.prior_weight / total,
        )
    }

    /// Evidence about the agent's conduct (positive and negative, policy
    /// compliance and security posture), decayed to `now_ms`: what a
    /// suspension by score needs enough of.
    pub fn conduct_evidence(&self, now_ms: u64, cfg: &TrustConfig) -> f64 {
        let f = decay_factor(now_ms.saturating_sub(self.at_ms), cfg.half_life_secs);
        [Dimension::PolicyCompliance, Dimension::SecurityPosture]
            .iter()
            .map(|d| {
                let e = self.dims[d.index()];
                (e.r + e.s) * f
            })
            .sum()
    }

    /// Composite (score, uncertainty) at `now_ms`, without allocating.
    pub fn composite(&self, now_ms: u64, cfg: &TrustConfig) -> (f64, f64) {
        let f = decay_factor(now_ms.saturating_sub(self.at_ms), cfg.half_life_secs);
        let (mut score, mut unc) = (0.0, 0.0);
        let mut conduct: f64 = 1.0;
        for d in Dimension::ALL {
            let w = cfg.weights.get(d);
            let (e, u) = self.dim(d, f, cfg);
            score += w * e;
            unc += w * u;
            if matches!(d, Dimension::PolicyCompliance | Dimension::SecurityPosture)
                && cfg.base_rate > 0.0
            {
                conduct = conduct.min(e / cfg.base_rate);
            }
        }
        ((score * conduct).clamp(0.0, 1.0), unc.clamp(0.0, 1.0))
    }

    /// The full score at `now_ms`.
    pub fn score(&self, now_ms: u64, cfg: &TrustConfig) -> Score {
        let f = decay_factor(now_ms.saturating_sub(self.at_ms), cfg.half_life_secs);
        let (score, uncertainty) = self.composite(now_ms, cfg);
        Score {
            score,
            uncertainty,
            tier: tier_of(score, uncertainty, cfg).to_owned(),
            dimensions: Dimension::ALL
                .iter()
                .map(|&d| {
                    let (e, u) = self.dim(d, f, cfg);
                    let ev = self.dims[d.index()];
                    DimensionScore {
                        dimension: d,
                        score: e,
                        uncertainty: u,
                        positive: ev.r * f,
                        negative: ev.s * f,
                    }
                })
                .collect(),
        }
    }
}

/// The highest tier whose score and uncertainty bounds the values meet.
pub fn tier_of(score: f64, uncertainty: f64, cfg: &TrustConfig) -> &str {
    cfg.tiers
        .iter()
        .rev()
        .find(|t| score >= t.min_score && uncertainty <= t.max_uncertainty)
        .map(|t| t.name.as_str())
        .unwrap_or_else(|| {
            cfg.tiers
                .first()
                .map(|t| t.name.as_str())
                .unwrap_or("untrusted")
        })
}
