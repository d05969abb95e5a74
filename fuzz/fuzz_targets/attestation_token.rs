//! `amat1.` IATP attestations and `amgv1.` gateway vouchers (the same
//! framing). The signature is checked last, after the
//! payload is parsed and checked for canonical form, so arbitrary payloads
//! wrapped here in the framing reach the parser.
#![no_main]

use agentmesh_iatp::voucher::{VOUCHER_PREFIX, Voucher};
use agentmesh_iatp::wire::{ATTESTATION_PREFIX, Attestation};
use agentmesh_identity::KeyPair;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let (payload, sig) = rest.split_at(rest.len() / 2);
        format!(
            "{ATTESTATION_PREFIX}{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(sig)
        )
    };
    if let Ok((a, _issuer)) = Attestation::decode(&text) {
        let _ = a.check("aud", 1_800_000_000);
        let _ = a.trust();
    }
    let voucher = text.replacen(ATTESTATION_PREFIX, VOUCHER_PREFIX, 1);
    let mesh = KeyPair::from_seed(&[7; 32]);
    let _ = Voucher::open(&voucher, &[*mesh.public()], &mesh.did(), 1_800_000_000);
});
