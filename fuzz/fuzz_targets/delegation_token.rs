//! `amdt1.` delegation tokens (text and binary forms) and `amhp1.`-style
//! holder proofs: syntax only, as a gateway does before any signature work.
#![no_main]

use agentmesh_delegation::{HolderProof, Token, wire};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(links) = wire::decode(data) {
        assert!(!links.is_empty(), "a token has at least one link");
    }
    let text = String::from_utf8_lossy(data);
    if let Ok(token) = Token::parse(&text) {
        assert_eq!(token.as_str(), text, "a token keeps its text");
        let _ = token.holder();
        let _ = token.leaf_hash();
    }
    if let Ok(proof) = HolderProof::parse(&text) {
        assert_eq!(proof.to_text(), text, "a holder proof has one text");
    }
});
