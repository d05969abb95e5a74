//! Configuration every gateway shares, whatever protocol it speaks.

use serde::Deserialize;

/// Settings of the IATP verifier a gateway mounts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IatpSettings {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Agents whose registry trust is below this are refused.
    #[serde(default = "default_min_trust")]
    pub min_trust: f64,
    #[serde(default = "default_attestation_ttl")]
    pub attestation_ttl_secs: u64,
    #[serde(default = "default_challenge_ttl")]
    pub challenge_ttl_secs: u64,
    /// Other origins provers may dial the verifier by (`https://gw.example`,
    /// a proxy): the response's channel binding must name one of these or
    /// the listen address.
    #[serde(default)]
    pub public_urls: Vec<String>,
}

impl Default for IatpSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            min_trust: default_min_trust(),
            attestation_ttl_secs: default_attestation_ttl(),
            challenge_ttl_secs: default_challenge_ttl(),
            public_urls: Vec::new(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_min_trust() -> f64 {
    0.5
}
fn default_attestation_ttl() -> u64 {
    300
}
fn default_challenge_ttl() -> u64 {
    30
}
