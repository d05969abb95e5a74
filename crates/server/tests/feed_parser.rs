//! The event feed a gateway follows (`GET /v1/events`): arbitrary bytes in
//! arbitrary chunks never panic the reader, and a change event is reported
//! once whatever the chunking and the line endings (LF, CRLF, CR).
//! (Fuzz target: `sse_stream`.)

use agentmesh_server::client::FeedReader;
use proptest::prelude::*;

proptest! {
    #[test]
    fn arbitrary_streams_never_panic(
        b in prop::collection::vec(prop_oneof![any::<u8>(), Just(b'\n'), Just(b'\r')], 0..500),
        chunk in 1usize..40,
    ) {
        let mut reader = FeedReader::default();
        for part in b.chunks(chunk) {
            if reader.feed(part).is_err() {
                break;
            }
        }
    }

    #[test]
    fn change_events_arrive_once_whatever_the_chunking(
        kinds in prop::collection::vec("[a-z_]{1,12}", 1..5),
        chunk in 1usize..20,
        ending in prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
    ) {
        let mut wire = String::from(": keepalive\n\nevent: hello\ndata: {}\n\n");
        for k in &kinds {
            wire.push_str(&format!("event: change\ndata: {{\"kind\":\"{k}\"}}\n\n"));
        }
        // A trailing comment, so a final lone CR is followed by more bytes
        // (a parser cannot know a CR at the very end is not half a CRLF).
        wire.push_str(": end\n\n");
        let wire = wire.replace('\n', ending);
        let mut reader = FeedReader::default();
        let mut got = Vec::new();
        for part in wire.as_bytes().chunks(chunk) {
            got.extend(reader.feed(part).expect("a well-formed stream"));
        }
        prop_assert_eq!(got, kinds);
    }
}
