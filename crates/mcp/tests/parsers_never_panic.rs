//! JSON-RPC messages and SSE streams from clients and upstreams, and the
//! gateway's YAML, never panic their parsers; what the gateway encodes it
//! reads back unchanged. (Fuzz targets: `jsonrpc_message`, `sse_stream`,
//! `config`.)

use agentmesh_gateway::sse::{Event, Parser};
use agentmesh_mcp::config::GatewayConfig;
use agentmesh_mcp::message;
use proptest::prelude::*;

fn jsonrpc_like() -> impl Strategy<Value = String> {
    let id = prop_oneof![
        Just("1".to_owned()),
        Just("\"7\"".to_owned()),
        Just("null".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("1e400".to_owned()),
        Just("-0".to_owned()),
        any::<i64>().prop_map(|i| i.to_string()),
    ];
    let method = prop_oneof![
        Just("\"tools/call\"".to_owned()),
        Just("\"notifications/initialized\"".to_owned()),
        Just("1".to_owned()),
        Just("null".to_owned()),
        "\"\\PC{0,12}\""
            .prop_map(|s| serde_json::to_string(&s[1..s.len() - 1]).unwrap_or_default()),
    ];
    let member = prop_oneof![
        Just("\"jsonrpc\":\"2.0\"".to_owned()),
        Just("\"jsonrpc\":\"1.0\"".to_owned()),
        id.prop_map(|i| format!("\"id\":{i}")),
        method.prop_map(|m| format!("\"method\":{m}")),
        Just("\"params\":{\"name\":\"x\",\"arguments\":{}}".to_owned()),
        Just("\"params\":[]".to_owned()),
        Just("\"result\":{}".to_owned()),
        Just("\"error\":{\"code\":1,\"message\":\"m\"}".to_owned()),
        Just("\"error\":null".to_owned()),
    ];
    prop::collection::vec(member, 0..7).prop_map(|m| format!("{{{}}}", m.join(",")))
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = message::parse(&b);
    }

    #[test]
    fn jsonrpc_shaped_messages_never_panic(text in jsonrpc_like()) {
        match message::parse(text.as_bytes()) {
            Ok(m) => {
                if let Some(id) = &m.id {
                    prop_assert!(!id.get().is_empty());
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        if let Some(obj) = message::raw_object(&text) {
            let again = message::encode_raw(&obj);
            prop_assert!(message::raw_object(&again).is_some());
        }
    }

    /// Any bytes, in chunks of any size: events never exceed the bound.
    #[test]
    fn sse_streams_never_panic(
        b in prop::collection::vec(prop_oneof![any::<u8>(), Just(b'\n'), Just(b'\r'), Just(b':')], 0..400),
        chunk in 1usize..40,
    ) {
        let mut p = Parser::new(256);
        for part in b.chunks(chunk) {
            match p.feed(part) {
                Ok(events) => {
                    for e in events {
                        prop_assert!(e.data.as_ref().map_or(0, String::len) <= 256);
                    }
                }
                Err(_) => break,
            }
        }
    }

    /// encode∘parse: what the gateway sends on is read back as the same
    /// event, whatever chunking the network applies.
    #[test]
    fn sse_events_round_trip(
        event in prop::option::of("[a-z/]{1,12}"),
        id in prop::option::of("[a-zA-Z0-9-]{0,12}"),
        data in prop::option::of("[^\r\n]{0,40}(\n[^\r\n]{0,40}){0,3}"),
        chunk in 1usize..16,
    ) {
        let e = Event { id, event, data, ..Event::default() };
        prop_assume!(e.id.is_some() || e.event.is_some() || e.data.is_some());
        let wire = e.encode();
        let mut p = Parser::new(1 << 16);
        let mut got = Vec::new();
        for part in wire.as_bytes().chunks(chunk) {
            got.extend(p.feed(part).expect("our own encoding parses"));
        }
        prop_assert_eq!(got, vec![e]);
    }

    #[test]
    fn gateway_yaml_never_panics(s in "\\PC{0,300}") {
        if let Err(e) = GatewayConfig::parse(&s) {
            prop_assert!(!e.to_string().is_empty());
        }
    }
}
