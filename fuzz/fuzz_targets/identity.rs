//! DIDs, SPIFFE IDs and JWKs as peers and operators write them.
#![no_main]

use agentmesh_identity::{Did, Jwk, SpiffeId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = Did::parse(s) {
        // One DID, one text.
        assert_eq!(Did::parse(&d.to_string()).ok(), Some(d.clone()));
        let _ = d.public_key();
    }
    if let Ok(id) = SpiffeId::parse(s) {
        assert_eq!(SpiffeId::parse(&id.to_string()).ok(), Some(id));
    }
    let _ = Jwk::from_json(s);
    let _ = agentmesh_identity::validate_agent_name(s);
    let _ = agentmesh_identity::validate_email(s);
});
