//! Trust configuration: forgetting, prior, dimension weights, tiers, the
//! suspension floor and detector thresholds. Validated when loaded.

use crate::Dimension;
use serde::{Deserialize, Serialize};

/// A named band of trust.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub name: String,
    /// Lowest composite score in this tier.
    pub min_score: f64,
    /// Highest composite uncertainty allowed in this tier: a new agent,
    /// about which little is known, cannot be "trusted" however its few
    /// events went.
    #[serde(default = "one")]
    pub max_uncertainty: f64,
}

fn one() -> f64 {
    1.0
}

/// Weights of the five dimensions in the composite score (sum to 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    pub policy_compliance: f64,
    pub security_posture: f64,
    pub output_quality: f64,
    pub resource_efficiency: f64,
    pub collaboration: f64,
}

impl Weights {
    pub fn get(&self, d: Dimension) -> f64 {
        match d {
            Dimension::PolicyCompliance => self.policy_compliance,
            Dimension::SecurityPosture => self.security_posture,
            Dimension::OutputQuality => self.output_quality,
            Dimension::ResourceEfficiency => self.resource_efficiency,
            Dimension::Collaboration => self.collaboration,
        }
    }
}

/// Anomaly detector thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// Length of a rate window, seconds.
    pub rate_window_secs: u64,
    /// Windows of history before spikes are judged.
    pub rate_warmup_windows: u32,
    /// A window is a spike above mean + k·σ …
    pub rate_sigmas: f64,
    /// … and at least this many calls above the mean.
    pub rate_min_excess: f64,
    /// Calls observed in earlier windows before spikes are judged at all: a new or quiet agent
    /// has no baseline, and getting busy is not an attack.
    pub rate_warmup_calls: u32,
    /// … and at least this many times the mean (so an agent that was idle
    /// for a while, whose mean decayed toward 0, may pick up its usual pace).
    pub rate_ratio: f64,
    /// Calls seen before a never-seen tool is flagged.
    pub new_tool_warmup: u32,
    /// Denials within `denial_window_secs` that make a burst.
    pub denial_burst: u32,
    pub denial_window_secs: u64,
    /// Calls seen before unusual hours are judged.
    pub hours_warmup: u32,
    /// An hour holding less than this share of past activity is unusual.
    pub unusual_hour_share: f64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            rate_window_secs: 60,
            rate_warmup_windows: 10,
            rate_sigmas: 4.0,
            rate_min_excess: 10.0,
            rate_warmup_calls: 100,
            rate_ratio: 5.0,
            new_tool_warmup: 50,
            denial_burst: 5,
            denial_window_secs: 60,
            hours_warmup: 200,
            unusual_hour_share: 0.01,
        }
    }
}

/// The whole trust configuration (`[trust]` in config.toml, or trust.toml).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustConfig {
    /// Evidence halves every this many seconds without new events; an idle
    /// agent drifts back toward the prior.
    pub half_life_secs: f64,
    /// The prior mean (what we assume of an agent we know nothing about).
    pub base_rate: f64,
    /// The prior's weight in events (Jøsang's W; 2 is the uniform prior).
    pub prior_weight: f64,
    pub weights: Weights,
    /// Lowest first.
    pub tiers: Vec<Tier>,
    /// Below this composite score the agent and its credentials are
    /// suspended. `None` disables it.
    pub suspend_below: Option<f64>,
    /// Conduct evidence (policy compliance and security posture, positive
    /// and negative, decayed) needed before a drop below the floor suspends:
    /// one ordinary denial of a new agent is not enough. A violation or
    /// anomaly of high or critical severity suspends regardless.
    pub suspend_min_evidence: f64,
    /// Diminishing returns: within a window of this many seconds, the n-th
    /// positive event about the same thing (action, peer) adds 1/n of its
    /// weight (handshakes and endorsements: once per peer) …
    pub gain_window_secs: u64,
    /// … and a dimension gains at most this much positive evidence.
    pub max_gain_per_window: f64,
    pub detectors: DetectorConfig,
}

impl Default for TrustConfig {
    fn default() -> Self {
        let tier = |name: &str, min_score: f64, max_uncertainty: f64| Tier {
            name: name.into(),
            min_score,
            max_uncertainty,
        };
        Self {
            half_life_secs: 7.0 * 86_400.0,
            base_rate: 0.5,
            prior_weight: 2.0,
            weights: Weights {
                policy_compliance: 0.30,
                security_posture: 0.25,
                output_quality: 0.20,
                resource_efficiency: 0.10,
                collaboration: 0.15,
            },
            tiers: vec![
                tier("untrusted", 0.0, 1.0),
                tier("probation", 0.3, 1.0),
                tier("standard", 0.5, 1.0),
                tier("trusted", 0.7, 0.4),
                tier("verified_partner", 0.9, 0.15),
            ],
            suspend_below: Some(0.3),
            suspend_min_evidence: 10.0,
            gain_window_secs: 3600,
            max_gain_per_window: 5.0,
            detectors: DetectorConfig::default(),
        }
    }
}

/// Why a configuration was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("trust config: {0}")]
    Invalid(String),
    #[error("trust config is not valid TOML: {0}")]
    Toml(String),
}

impl TrustConfig {
    /// Checks every value; the weights must sum to 1.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if !(self.half_life_secs.is_finite() && self.half_life_secs > 0.0) {
            return bad(format!(
                "half_life_secs must be positive, got {}",
                self.half_life_secs
            ));
        }
        if !(0.0..=1.0).contains(&self.base_rate) {
            return bad(format!(
                "base_rate must be within 0–1, got {}",
                self.base_rate
            ));
        }
        if !(self.prior_weight.is_finite() && self.prior_weight > 0.0) {
            return bad(format!(
                "prior_weight must be positive, got {}",
                self.prior_weight
            ));
        }
        let mut sum = 0.0;
        for d in Dimension::ALL {
            let w = self.weights.get(d);
            if !(0.0..=1.0).contains(&w) {
                return bad(format!(
                    "weight of {} must be within 0–1, got {w}",
                    d.name()
                ));
            }
            sum += w;
        }
        if (sum - 1.0).abs() > 1e-9 {
            return bad(format!(
                "dimension weights must sum to 1, they sum to {sum}"
            ));
        }
        if self.tiers.is_empty() {
            return bad("at least one tier is needed".into());
        }
        if self.tiers[0].min_score != 0.0 {
            return bad("the lowest tier must start at min_score 0".into());
        }
        for w in self.tiers.windows(2) {
            if w[1].min_score <= w[0].min_score {
                return bad(format!(
                    "tiers must be in increasing min_score order (`{}` after `{}`)",
                    w[1].name, w[0].name
                ));
            }
        }
        for t in &self.tiers {
            if t.name.trim().is_empty()
                || !(0.0..=1.0).contains(&t.min_score)
                || !(0.0..=1.0).contains(&t.max_uncertainty)
            {
                return bad(format!(
                    "tier `{}` has an empty name or a value outside 0–1",
                    t.name
                ));
            }
        }
        let mut names: Vec<&str> = self.tiers.iter().map(|t| t.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return bad("tier names must be unique".into());
        }
        if let Some(f) = self.suspend_below
            && !(0.0..=1.0).contains(&f)
        {
            return bad(format!("suspend_below must be within 0–1, got {f}"));
        }
        if !(self.suspend_min_evidence.is_finite() && self.suspend_min_evidence >= 0.0) {
            return bad(format!(
                "suspend_min_evidence must be zero or more, got {}",
                self.suspend_min_evidence
            ));
        }
        if self.gain_window_secs == 0
            || !(self.max_gain_per_window.is_finite() && self.max_gain_per_window > 0.0)
        {
            return bad("gain_window_secs and max_gain_per_window must be positive".into());
        }
        let d = &self.detectors;
        if !(d.rate_ratio.is_finite() && d.rate_ratio >= 1.0) {
            return bad(format!(
                "detectors.rate_ratio must be at least 1, got {}",
                d.rate_ratio
            ));
        }
        if d.rate_window_secs == 0 || d.denial_window_secs == 0 || d.denial_burst == 0 {
            return bad("detector windows and the denial burst size must be positive".into());
        }
        Ok(())
    }

    /// Parses and validates TOML (unknown keys rejected).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let c: TrustConfig = toml::from_str(text).map_err(|e| ConfigError::Toml(e.to_string()))?;
        c.validate()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_caught() {
        TrustConfig::default().validate().expect("defaults");
        let mut c = TrustConfig::default();
        c.weights.collaboration = 0.5;
        assert!(
            c.validate()
                .expect_err("sum")
                .to_string()
                .contains("sum to 1")
        );
        let mut c = TrustConfig::default();
        c.tiers.swap(1, 2);
        assert!(c.validate().is_err());
        let c = TrustConfig {
            half_life_secs: 0.0,
            ..TrustConfig::default()
        };
        assert!(c.validate().is_err());
        assert!(
            TrustConfig::from_toml("half_life_sec = 5").is_err(),
            "unknown key"
        );
        let c = TrustConfig::from_toml("half_life_secs = 3600.0\nsuspend_below = 0.2")
            .expect("partial config");
        assert_eq!(c.half_life_secs, 3600.0);
        assert_eq!(c.suspend_below, Some(0.2));
    }
}
