//! IATP, the inter-agent trust handshake, in AgentMesh's specified profile
//! (`agentmesh-iatp/1`, docs/wire/iatp.md).
//!
//! One round trip over HTTP (or riding in an A2A message or MCP call):
//! the verifier's signed [`Challenge`], the prover's [`Response`] signed
//! over a transcript that binds both DIDs, both nonces, the profile, the
//! expiry and the channel; the verifier answers with an [`Attestation`]
//! built from **its registry** (trust and capabilities are never taken
//! from the peer), which gateways accept as a short-lived credential.
//! Also: IATP agent manifests, read leniently in both shapes and served.
//!
//! In the Python original the handshake never left the process: the peer
//! was looked up in a local registry and its `respond()` called directly.

#![forbid(unsafe_code)]

#[cfg(feature = "http")]
pub mod http;
pub mod manifest;
pub mod verifier;
pub mod voucher;
pub mod wire;

pub use verifier::{
    Channel, Directory, PeerFacts, VOUCHED_GATEWAY_TIER, Verified, Verifier, VerifierConfig, admit,
    check_verifier,
};
pub use voucher::{VOUCHER_PREFIX, Voucher};
pub use wire::{
    ATTESTATION_PREFIX, Attestation, Challenge, HandshakeError, PROFILE, Response, origin_channel,
    request_channel, transcript,
};

/// URI of the A2A extension that carries IATP (listed in `A2A-Extensions`;
/// the attestation or a request-bound response rides in message metadata
/// under [`METADATA_KEY`]).
pub const A2A_EXTENSION: &str = "https://agentmesh.dev/ext/iatp/v1";
/// Key of the IATP member in A2A message metadata and MCP `_meta`.
pub const METADATA_KEY: &str = "dev.agentmesh/iatp";
