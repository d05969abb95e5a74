//! Server-sent events as they arrive from an upstream (MCP Streamable HTTP,
//! A2A streaming) and from the control plane's event feed, in chunks split
//! at arbitrary points. Never a panic; the parser's bound holds.
#![no_main]

use agentmesh_gateway::sse::{Event, Parser};
use libfuzzer_sys::fuzz_target;

const MAX_EVENT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    // The first byte chooses the chunk size, so splits land everywhere.
    let Some((&n, body)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(n % 32) + 1;
    let mut parser = Parser::new(MAX_EVENT);
    for part in body.chunks(chunk) {
        match parser.feed(part) {
            Ok(events) => {
                for e in events {
                    let size = e.data.as_ref().map_or(0, String::len);
                    assert!(size <= MAX_EVENT, "an event over the bound");
                    // What the gateway re-encodes reads back as the same
                    // event; an event of only unknown fields has nothing to
                    // encode and reads back as nothing.
                    let again = Parser::new(usize::MAX).feed(e.encode().as_bytes());
                    let want = if e == Event::default() {
                        vec![]
                    } else {
                        vec![e.clone()]
                    };
                    assert_eq!(again, Ok(want), "encode∘parse");
                }
            }
            Err(_) => break,
        }
    }
    let mut reader = agentmesh_server::client::FeedReader::default();
    for part in body.chunks(chunk) {
        if reader.feed(part).is_err() {
            break;
        }
    }
});
