//! Stream framing: Server-Sent Events (OpenAI, Anthropic, llama-server)
//! and newline-delimited JSON (Ollama), read line by line from a blocking
//! response body.
//!
//! The SSE parser follows the WHATWG rules that matter here: `field: value`
//! lines, one optional space after the colon, `data` lines of one event
//! joined with `\n`, comment lines starting with `:`, an empty line ends
//! the event, CRLF or LF line ends.

use std::io::{BufRead, BufReader, ErrorKind, Read};

use super::{Cancel, RemoteError};

/// One dispatched SSE event. `event` is `"message"` when no `event:` field
/// was given.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

#[derive(Debug, Default)]
pub struct SseParser {
    event: Option<String>,
    data: Option<String>,
}

impl SseParser {
    /// Feed one line (without its terminator); returns an event when the
    /// line ends one.
    pub fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None; // comment / keep-alive
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            _ => {} // id, retry, unknown fields: ignored
        }
        None
    }

    /// End of stream: an event still being built is dispatched (lenient:
    /// some servers omit the final blank line).
    pub fn finish(&mut self) -> Option<SseEvent> {
        self.dispatch()
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        let data = self.data.take()?;
        Some(SseEvent {
            event: event.unwrap_or_else(|| "message".into()),
            data,
        })
    }
}

/// What a line handler wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Stop reading (the answer is complete, or long enough); the rest of
    /// the body is dropped with the connection.
    Stop,
}

/// How reading ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// End of the body after a complete line.
    Eof,
    /// The handler said stop.
    Stopped,
    /// The body ended in the middle of a line (not passed to the handler):
    /// a stream cut off mid-event, or a JSON body without a final newline.
    EofMidLine(String),
}

/// Longest line we accept; a provider that sends more without a newline
/// is not speaking the format we expect.
const MAX_LINE: usize = 8 << 20;

/// Read `reader` line by line (terminator stripped) until EOF or until `f`
/// says stop. Checks `cancel` before every line. Read timeouts become
/// [`RemoteError::Timeout`], a connection lost mid-body
/// [`RemoteError::Truncated`].
pub fn read_lines(
    reader: impl Read,
    cancel: &Cancel,
    url: &str,
    timeout_ms: u64,
    mut f: impl FnMut(&str) -> Result<Flow, RemoteError>,
) -> Result<Ended, RemoteError> {
    let mut r = BufReader::new(reader);
    let mut buf = Vec::new();
    loop {
        if cancel.is_cancelled() {
            return Err(RemoteError::Cancelled);
        }
        buf.clear();
        let n = match r
            .by_ref()
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
        {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
                return Err(RemoteError::Timeout {
                    url: url.to_string(),
                    ms: timeout_ms,
                });
            }
            Err(e) => {
                return Err(RemoteError::Truncated(format!(
                    "the connection broke mid-stream ({e})"
                )))
            }
        };
        if cancel.is_cancelled() {
            return Err(RemoteError::Cancelled);
        }
        if n == 0 {
            return Ok(Ended::Eof);
        }
        if buf.len() > MAX_LINE {
            return Err(RemoteError::Malformed(format!(
                "a stream line is longer than {MAX_LINE} bytes"
            )));
        }
        let complete = buf.ends_with(b"\n");
        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            buf.pop();
        }
        let line = std::str::from_utf8(&buf)
            .map_err(|_| RemoteError::Malformed("the stream is not valid UTF-8".into()))?;
        if !complete {
            return Ok(Ended::EofMidLine(line.to_string()));
        }
        if f(line)? == Flow::Stop {
            return Ok(Ended::Stopped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(text: &str) -> Vec<SseEvent> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        read_lines(text.as_bytes(), &Cancel::default(), "u", 1, |l| {
            out.extend(p.line(l));
            Ok(Flow::Continue)
        })
        .unwrap();
        out.extend(p.finish());
        out
    }

    #[test]
    fn data_event_comment_and_crlf() {
        let ev = events(
            ": ping\r\nevent: content_block_delta\r\ndata: {\"a\":1}\r\n\r\ndata:x\ndata: y\n\n",
        );
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].event, "content_block_delta");
        assert_eq!(ev[0].data, "{\"a\":1}");
        assert_eq!(ev[1].event, "message");
        assert_eq!(ev[1].data, "x\ny", "multi-line data is joined with \\n");
    }

    #[test]
    fn last_event_without_blank_line_is_dispatched() {
        let ev = events("data: [DONE]\n");
        assert_eq!(
            ev,
            vec![SseEvent {
                event: "message".into(),
                data: "[DONE]".into()
            }]
        );
    }

    #[test]
    fn a_body_cut_mid_line_is_reported() {
        let mut seen = Vec::new();
        let end = read_lines(
            "a\nb\ndata: {\"cho".as_bytes(),
            &Cancel::default(),
            "u",
            1,
            |l| {
                seen.push(l.to_string());
                Ok(Flow::Continue)
            },
        )
        .unwrap();
        assert_eq!(seen, vec!["a", "b"]);
        assert_eq!(end, Ended::EofMidLine("data: {\"cho".into()));
    }

    #[test]
    fn event_without_data_is_not_dispatched() {
        assert!(events("event: ping\n\n").is_empty());
    }

    #[test]
    fn cancel_stops_reading() {
        let c = Cancel::default();
        c.cancel();
        let e = read_lines("data: x\n".as_bytes(), &c, "u", 1, |_| Ok(Flow::Continue)).unwrap_err();
        assert_eq!(e, RemoteError::Cancelled);
    }

    #[test]
    fn invalid_utf8_is_malformed() {
        let e = read_lines(&b"data: \xff\xfe\n"[..], &Cancel::default(), "u", 1, |_| {
            Ok(Flow::Continue)
        })
        .unwrap_err();
        assert!(matches!(e, RemoteError::Malformed(_)), "{e:?}");
    }
}
