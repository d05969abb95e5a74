//! The event feed a gateway follows (`GET /v1/events`): arbitrary bytes in
//! arbitrary chunks never panic the reader, and a change event is reported
//! once whatever the chunking. (Fuzz target: `sse_stream`.)

use agentmesh_server::client::drain_feed_events;
use proptest::prelude::*;

proptest! {
    #[test]
    fn arbitrary_streams_never_panic(
        b in prop::collection::vec(prop_oneof![any::<u8>(), Just(b'\n')], 0..500),
        chunk in 1usize..40,
    ) {
        let mut buf = Vec::new();
        for part in b.chunks(chunk) {
            buf.extend_from_slice(part);
            drain_feed_events(&mut buf);
            // Whatever is left holds no complete event.
            prop_assert!(!buf.windows(2).any(|w| w == b"\n\n"));
        }
    }

    #[test]
    fn change_events_arrive_once_whatever_the_chunking(
        kinds in prop::collection::vec("[a-z_]{1,12}", 1..5),
        chunk in 1usize..20,
    ) {
        let mut wire = String::from(": keepalive\n\nevent: hello\ndata: {}\n\n");
        for k in &kinds {
            wire.push_str(&format!("event: change\ndata: {{\"kind\":\"{k}\"}}\n\n"));
        }
        let mut buf = Vec::new();
        let mut got = Vec::new();
        for part in wire.as_bytes().chunks(chunk) {
            buf.extend_from_slice(part);
            got.extend(drain_feed_events(&mut buf));
        }
        prop_assert_eq!(got, kinds);
        prop_assert!(buf.is_empty());
    }
}
