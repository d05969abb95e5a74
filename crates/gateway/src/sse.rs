//! Server-sent events, the one parser and encoder every listener and client
//! uses (MCP and A2A upstream streams, the control plane's change feed): an
//! incremental parser (LF, CRLF and CR line endings, split anywhere) and the
//! encoder for what a gateway sends on. Events are forwarded one by one
//! as they complete (never buffered to the end of the stream); comments
//! (keep-alives) and priming events (an `id:` with empty data) pass through.

/// One event, or a comment line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    pub id: Option<String>,
    pub event: Option<String>,
    /// The data lines joined with `\n`; `None` when the event had none.
    pub data: Option<String>,
    pub retry: Option<String>,
    /// A `:` comment (keep-alive); when set, the other fields are empty.
    pub comment: Option<String>,
}

impl Event {
    /// The wire form, ending with the blank line.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Some(c) = &self.comment {
            out.push(':');
            out.push_str(c);
            out.push_str("\n\n");
            return out;
        }
        if let Some(e) = &self.event {
            out.push_str("event: ");
            out.push_str(e);
            out.push('\n');
        }
        if let Some(i) = &self.id {
            out.push_str("id: ");
            out.push_str(i);
            out.push('\n');
        }
        if let Some(r) = &self.retry {
            out.push_str("retry: ");
            out.push_str(r);
            out.push('\n');
        }
        if let Some(d) = &self.data {
            for line in d.split('\n') {
                out.push_str("data: ");
                out.push_str(line);
                out.push('\n');
            }
        }
        out.push('\n');
        out
    }

    /// A `message` event carrying one JSON-RPC message.
    pub fn message(data: String) -> Self {
        Event {
            event: Some("message".into()),
            data: Some(data),
            ..Event::default()
        }
    }
}

/// Why a stream was abandoned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("an SSE event exceeded {0} bytes")]
    TooLarge(usize),
    #[error("the SSE stream is not UTF-8")]
    NotUtf8,
}

/// Incremental parser: feed bytes as they arrive, take complete events.
#[derive(Debug)]
pub struct Parser {
    buf: Vec<u8>,
    current: Event,
    has_field: bool,
    max_event: usize,
    event_bytes: usize,
}

impl Parser {
    pub fn new(max_event: usize) -> Self {
        Self {
            buf: Vec::new(),
            current: Event::default(),
            has_field: false,
            max_event,
            event_bytes: 0,
        }
    }

    /// Adds bytes; returns the events they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Event>, SseError> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(nl) = self.buf.iter().position(|&b| b == b'\n' || b == b'\r') {
            // A CR LF pair is one line ending; a lone CR at the end of the
            // buffer may be followed by LF in the next chunk.
            let mut skip = 1;
            if self.buf[nl] == b'\r' {
                match self.buf.get(nl + 1) {
                    Some(b'\n') => skip = 2,
                    None => break,
                    _ => {}
                }
            }
            let line: Vec<u8> = self.buf.drain(..nl + skip).take(nl).collect();
            let line = String::from_utf8(line).map_err(|_| SseError::NotUtf8)?;
            self.event_bytes += line.len() + 1;
            if self.event_bytes > self.max_event {
                return Err(SseError::TooLarge(self.max_event));
            }
            self.line(&line, &mut out);
        }
        if self.buf.len() + self.event_bytes > self.max_event {
            return Err(SseError::TooLarge(self.max_event));
        }
        Ok(out)
    }

    fn line(&mut self, line: &str, out: &mut Vec<Event>) {
        if line.is_empty() {
            if self.has_field {
                out.push(std::mem::take(&mut self.current));
            }
            self.has_field = false;
            self.event_bytes = 0;
            return;
        }
        if let Some(c) = line.strip_prefix(':') {
            out.push(Event {
                comment: Some(c.to_owned()),
                ..Event::default()
            });
            self.event_bytes = 0;
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        self.has_field = true;
        match field {
            "data" => match &mut self.current.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.current.data = Some(value.to_owned()),
            },
            "id" => self.current.id = Some(value.to_owned()),
            "event" => self.current.event = Some(value.to_owned()),
            "retry" => self.current.retry = Some(value.to_owned()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let wire = "id: p1\ndata: \n\n: keep-alive\n\nevent: message\nid: 2\ndata: {\"a\":\ndata: 1}\n\nretry: 500\n\n";
        for split in 0..wire.len() {
            let mut p = Parser::new(1 << 20);
            let mut evs = p.feed(&wire.as_bytes()[..split]).expect("first");
            evs.extend(p.feed(&wire.as_bytes()[split..]).expect("second"));
            assert_eq!(evs.len(), 4, "split at {split}: {evs:?}");
            assert_eq!(evs[0].id.as_deref(), Some("p1"));
            assert_eq!(evs[0].data.as_deref(), Some(""), "priming event");
            assert_eq!(evs[1].comment.as_deref(), Some(" keep-alive"));
            assert_eq!(evs[2].data.as_deref(), Some("{\"a\":\n1}"));
            assert_eq!(evs[3].retry.as_deref(), Some("500"));
        }
    }

    #[test]
    fn crlf_and_encoding_round_trip() {
        let mut p = Parser::new(1 << 20);
        let evs = p
            .feed(b"event: message\r\nid: 9\r\ndata: {\"x\":1}\r\n\r\n")
            .expect("parse");
        assert_eq!(evs.len(), 1);
        let again = Parser::new(1 << 20)
            .feed(evs[0].encode().as_bytes())
            .expect("reparse");
        assert_eq!(again, evs);
    }

    #[test]
    fn oversized_or_binary_streams_are_refused() {
        let mut p = Parser::new(64);
        assert!(p.feed(&[b'd'; 100]).is_err());
        let mut p = Parser::new(64);
        assert_eq!(p.feed(b"data: \xff\xfe\n\n"), Err(SseError::NotUtf8));
    }
}
