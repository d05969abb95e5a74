//! `amcr1.` mesh credentials. Raw text exercises the framing; a payload
//! signed here with the test mesh key gets past the signature check so the
//! claims parser and its canonical-form check see arbitrary bytes too.
#![no_main]

use agentmesh_engine::credential::{self, CREDENTIAL_DOMAIN, CREDENTIAL_PREFIX};
use agentmesh_identity::KeyPair;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mesh = KeyPair::from_seed(&[7; 32]);
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let sig = mesh.sign(CREDENTIAL_DOMAIN, rest);
        format!(
            "{CREDENTIAL_PREFIX}{}.{}",
            URL_SAFE_NO_PAD.encode(rest),
            URL_SAFE_NO_PAD.encode(sig)
        )
    };
    if let Ok(claims) = credential::decode(&text, mesh.public()) {
        // What decodes re-encodes to the same text: one credential, one text.
        assert_eq!(credential::encode(&mesh, &claims), text);
        let _ = credential::check(&claims, "aud", 1_800_000_000);
    }
});
