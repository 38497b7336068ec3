//! A hardened front end for LSP base-protocol framing on stdio.
//!
//! **Why this exists.** tower-lsp-server reads stdin through
//! `tokio_util::codec::FramedRead`, which ends the stream after the first
//! decode error: one body that is not valid JSON, one missing or
//! unparsable `Content-Length`, more than two headers, or invalid UTF-8
//! made the server exit (status 0, no reply), dropping every open
//! document. Editors do send such things now and then (a plugin bug, a
//! half-written message when a pipe breaks), so we put our own decoder in
//! front: it reads the real stdin, answers what is malformed with a
//! JSON-RPC error and a log line, resynchronises on the next
//! `Content-Length` header, and forwards to tower-lsp only messages that
//! tower-lsp is known to accept (checked with tower-lsp's own `Request`
//! and `Response` types), re-framed with a canonical header.
//!
//! Bounded memory: a header block may be at most [`MAX_HEADER_BYTES`]; a
//! body larger than the message limit (`SLM_LS_MAX_MESSAGE_BYTES`, default
//! [`DEFAULT_MAX_MESSAGE_BYTES`]) is skipped as it streams past, never
//! buffered, and answered with an error.
//!
//! Output: tower-lsp writes whole frames into an in-process pipe; one task
//! copies them to the real stdout frame by frame and puts our own error
//! replies between frames, so the two writers never interleave bytes.
//!
//! What cannot be recovered (documented in docs/guarantees.md): a request
//! whose framing is damaged is lost with its id (the error reply carries
//! `id: null`), and a `Content-Length` that is larger than the body that
//! follows swallows the start of the next message(s) until the bytes add
//! up; the next intact header resynchronises.

use std::collections::VecDeque;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tower_lsp_server::jsonrpc::{Request, Response};

/// Largest header block (all header lines) we buffer before giving up on it.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// Default largest message body: room for documents of tens of MB (JSON
/// escaping can double their size) while keeping one message's memory
/// bounded.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

const CONTENT_LENGTH: &[u8] = b"Content-Length";
/// Input buffer capacity kept between messages.
const KEEP_BUFFER_BYTES: usize = 1024 * 1024;

/// JSON-RPC error codes we answer with.
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;

/// The message limit in force: `SLM_LS_MAX_MESSAGE_BYTES` or the default.
pub fn max_message_bytes() -> usize {
    std::env::var("SLM_LS_MAX_MESSAGE_BYTES")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES)
}

/// What the decoder produced from the input so far.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A message tower-lsp will accept: its body, to be re-framed.
    Message(Vec<u8>),
    /// A notification that was well-formed JSON-RPC but whose params do not
    /// fit its LSP type: dropped, and the user is told (no response exists
    /// for a notification).
    Dropped { message: String },
    /// Something malformed: answer it with this JSON-RPC error.
    Invalid {
        /// The request id when the body was JSON with an `id`, else `null`.
        id: Value,
        code: i64,
        message: String,
    },
}

impl Frame {
    fn invalid(id: Value, code: i64, message: impl Into<String>) -> Frame {
        Frame::Invalid {
            id,
            code,
            message: message.into(),
        }
    }
}

/// tower-lsp's (crate-private) message type, rebuilt from its public parts
/// with the same derive, so "we accept" implies "tower-lsp accepts".
#[derive(Deserialize)]
#[serde(untagged)]
#[allow(dead_code)]
enum Message {
    Response(Response),
    Request(Request),
}

#[derive(Debug)]
enum State {
    /// Waiting for a complete header block.
    Header,
    /// Waiting for `n` bytes of body.
    Body(usize),
    /// Discarding `left` more bytes of an oversized body of `total` bytes.
    Skip { left: usize, total: usize },
}

/// Incremental, panic-free decoder of the LSP base protocol. Feed it bytes
/// with [`push`](FrameDecoder::push), take frames with
/// [`next_frame`](FrameDecoder::next_frame). Every call to `next_frame`
/// either returns `None` (needs more input) or consumes at least one byte,
/// so it cannot loop forever on garbage.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: VecDeque<u8>,
    state: State,
    max_message: usize,
    /// Counters, for tests and the closing log line.
    pub messages: u64,
    pub errors: u64,
}

impl FrameDecoder {
    pub fn new(max_message: usize) -> FrameDecoder {
        FrameDecoder {
            buf: VecDeque::new(),
            state: State::Header,
            max_message: max_message.max(1),
            messages: 0,
            errors: 0,
        }
    }

    /// Append input. Bytes of an oversized body are dropped on arrival.
    pub fn push(&mut self, mut data: &[u8]) {
        if let State::Skip { left, total } = &mut self.state {
            let n = (*left).min(data.len());
            *left -= n;
            data = &data[n..];
            if *left == 0 {
                let total = *total;
                self.state = State::Header;
                tracing::debug!("skipped an oversized message of {total} bytes");
            }
        }
        self.buf.extend(data);
    }

    /// Bytes buffered and not yet decoded (bounded by the limits).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// At end of input: what was left half-received, if anything.
    pub fn finish(&self) -> Option<String> {
        match self.state {
            State::Body(n) => Some(format!(
                "input ended in the middle of a message body ({} of {n} bytes received)",
                self.buf.len()
            )),
            State::Skip { left, total } => Some(format!(
                "input ended in the middle of an oversized message ({} of {total} bytes received)",
                total - left
            )),
            State::Header if self.buf.iter().any(|b| !b.is_ascii_whitespace()) => Some(format!(
                "input ended in the middle of a header ({} bytes: {:?})",
                self.buf.len(),
                preview(&self.buf.iter().take(80).copied().collect::<Vec<u8>>())
            )),
            State::Header => None,
        }
    }

    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            match self.state {
                State::Skip { .. } => return None,
                State::Body(n) => {
                    if self.buf.len() < n {
                        return None;
                    }
                    let body: Vec<u8> = self.buf.drain(..n).collect();
                    self.state = State::Header;
                    // Do not keep a huge message's buffer for the session.
                    if self.buf.capacity() > KEEP_BUFFER_BYTES
                        && self.buf.len() <= KEEP_BUFFER_BYTES
                    {
                        self.buf.shrink_to(KEEP_BUFFER_BYTES);
                    }
                    let frame = check_body(body);
                    match &frame {
                        Frame::Message(_) => self.messages += 1,
                        Frame::Invalid { .. } | Frame::Dropped { .. } => self.errors += 1,
                    }
                    return Some(frame);
                }
                State::Header => {
                    let data = self.buf.make_contiguous();
                    // Blank lines between messages are harmless: skip them.
                    let lead = data
                        .iter()
                        .take_while(|b| matches!(b, b'\r' | b'\n'))
                        .count();
                    if lead > 0 {
                        self.buf.drain(..lead);
                        continue;
                    }
                    let data = self.buf.make_contiguous();
                    let Some(end) = find(data, b"\r\n\r\n") else {
                        if data.len() > MAX_HEADER_BYTES {
                            let msg = format!(
                                "header block longer than {MAX_HEADER_BYTES} bytes without an end (\\r\\n\\r\\n): {:?}",
                                preview(data)
                            );
                            self.resync();
                            return Some(self.error(PARSE_ERROR, msg));
                        }
                        return None;
                    };
                    if end > MAX_HEADER_BYTES {
                        let msg = format!(
                            "header block of {end} bytes exceeds the limit of {MAX_HEADER_BYTES}"
                        );
                        self.resync();
                        return Some(self.error(PARSE_ERROR, msg));
                    }
                    match parse_headers(&data[..end]) {
                        Ok(len) => {
                            self.buf.drain(..end + 4);
                            if len > self.max_message {
                                // Skip what is buffered, then the rest as it arrives.
                                let have = self.buf.len().min(len);
                                self.buf.drain(..have);
                                self.state = if have == len {
                                    State::Header
                                } else {
                                    State::Skip {
                                        left: len - have,
                                        total: len,
                                    }
                                };
                                return Some(self.error(
                                    PARSE_ERROR,
                                    format!(
                                        "message of {len} bytes exceeds the limit of {} bytes (SLM_LS_MAX_MESSAGE_BYTES); it was skipped",
                                        self.max_message
                                    ),
                                ));
                            }
                            self.state = State::Body(len);
                        }
                        Err(e) => {
                            let msg = format!("{e} in header {:?}", preview(&data[..end]));
                            self.resync();
                            return Some(self.error(PARSE_ERROR, msg));
                        }
                    }
                }
            }
        }
    }

    fn error(&mut self, code: i64, msg: String) -> Frame {
        self.errors += 1;
        Frame::invalid(Value::Null, code, msg)
    }

    /// After a bad header: drop bytes up to the next `Content-Length` that
    /// is not at offset 0 (so at least one byte goes). With none in sight,
    /// keep only a tail that could be the start of one.
    fn resync(&mut self) {
        let data = self.buf.make_contiguous();
        let drop = match find(&data[1.min(data.len())..], CONTENT_LENGTH) {
            Some(i) => i + 1,
            // Keep the longest tail that could begin a `Content-Length`
            // whose rest has not arrived yet.
            None => {
                let keep = (1..CONTENT_LENGTH.len().min(data.len()))
                    .rev()
                    .find(|&k| data.ends_with(&CONTENT_LENGTH[..k]))
                    .unwrap_or(0);
                (data.len() - keep).max(1)
            }
        };
        let drop = drop.min(self.buf.len());
        self.buf.drain(..drop);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A short, printable excerpt of raw input for error messages.
fn preview(data: &[u8]) -> String {
    let s = String::from_utf8_lossy(&data[..data.len().min(60)]).into_owned();
    if data.len() > 60 {
        format!("{s}…")
    } else {
        s
    }
}

/// Header lines `Name: value` separated by CRLF; `Content-Length` is
/// required (names are case-insensitive, as in HTTP); `Content-Type` must
/// be UTF-8 if given; other headers are ignored.
fn parse_headers(block: &[u8]) -> Result<usize, String> {
    let text = std::str::from_utf8(block).map_err(|_| "header is not valid UTF-8".to_string())?;
    let mut len = None;
    for line in text.split("\r\n") {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!(
                "malformed header line {line:?} (expected `Name: value`)"
            ));
        };
        let value = value.trim();
        if name.trim().eq_ignore_ascii_case("Content-Length") {
            let n = value
                .parse::<usize>()
                .map_err(|_| format!("invalid Content-Length {value:?} (expected a byte count)"))?;
            if len.is_some_and(|l| l != n) {
                return Err("conflicting Content-Length headers".into());
            }
            len = Some(n);
        } else if name.trim().eq_ignore_ascii_case("Content-Type") {
            let charset = value
                .split(';')
                .skip(1)
                .filter_map(|p| p.trim().strip_prefix("charset="))
                .next();
            if let Some(cs) = charset {
                let cs = cs.trim_matches('"');
                if !cs.eq_ignore_ascii_case("utf-8") && !cs.eq_ignore_ascii_case("utf8") {
                    return Err(format!("unsupported charset {cs:?} (only utf-8)"));
                }
            }
        }
    }
    len.ok_or_else(|| "missing Content-Length header".to_string())
}

/// Validate a body: UTF-8, JSON, and a JSON-RPC message tower-lsp accepts.
/// Lone UTF-16 surrogate escapes (`"\ud800"`), which JavaScript clients can
/// produce and serde_json rejects, are replaced by U+FFFD: one UTF-16 unit
/// for one, so the client's UTF-16 columns stay in sync with our rope.
pub fn check_body(mut body: Vec<u8>) -> Frame {
    if let Err(e) = std::str::from_utf8(&body) {
        return Frame::invalid(
            Value::Null,
            PARSE_ERROR,
            format!(
                "message body is not valid UTF-8 (at byte {})",
                e.valid_up_to()
            ),
        );
    }
    let first = match serde_json::from_slice::<Message>(&body) {
        Ok(m) => return checked_notification(m, body),
        Err(e) => e,
    };
    if replace_lone_surrogates(&mut body) > 0 {
        if let Ok(m) = serde_json::from_slice::<Message>(&body) {
            tracing::warn!("replaced lone UTF-16 surrogate escapes in a message with U+FFFD");
            return checked_notification(m, body);
        }
    }
    match serde_json::from_slice::<Value>(&body) {
        Err(e) => Frame::invalid(
            Value::Null,
            PARSE_ERROR,
            format!("message body is not valid JSON: {e}"),
        ),
        Ok(v) => {
            let id = v.get("id").cloned().unwrap_or(Value::Null);
            // Echo the id only if it is a legal JSON-RPC id.
            let id = match id {
                Value::Number(_) | Value::String(_) => id,
                _ => Value::Null,
            };
            let why = if !v.is_object() {
                "a JSON-RPC message must be a JSON object (batches are not supported by LSP)"
                    .to_string()
            } else if v.get("jsonrpc") != Some(&json!("2.0")) {
                "a JSON-RPC message needs \"jsonrpc\": \"2.0\"".to_string()
            } else {
                format!("not a valid JSON-RPC request, notification or response: {first}")
            };
            Frame::invalid(id, INVALID_REQUEST, why)
        }
    }
}

/// tower-lsp drops a notification whose params do not fit its type without
/// a word (JSON-RPC cannot answer a notification). For the document-sync
/// notifications that is a silent desync, so check them here and tell the
/// user instead.
fn checked_notification(m: Message, body: Vec<u8>) -> Frame {
    use tower_lsp_server::ls_types as lsp;
    fn fits<T: serde::de::DeserializeOwned>(params: Option<&Value>) -> Result<(), String> {
        T::deserialize(params.unwrap_or(&Value::Null))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
    let Message::Request(req) = &m else {
        return Frame::Message(body);
    };
    if req.id().is_some() {
        return Frame::Message(body);
    }
    let params = req.params();
    let check = match req.method() {
        "textDocument/didOpen" => fits::<lsp::DidOpenTextDocumentParams>(params),
        "textDocument/didChange" => fits::<lsp::DidChangeTextDocumentParams>(params),
        "textDocument/didClose" => fits::<lsp::DidCloseTextDocumentParams>(params),
        _ => Ok(()),
    };
    match check {
        Ok(()) => Frame::Message(body),
        Err(e) => {
            let uri = params
                .and_then(|p| p.pointer("/textDocument/uri"))
                .and_then(Value::as_str)
                .unwrap_or("a document");
            Frame::Dropped {
                message: format!(
                    "ignored a {} notification with invalid params ({e}); the server's copy of {uri} may now differ from the editor's: close and reopen it",
                    req.method()
                ),
            }
        }
    }
}

/// Replace `\uD800`–`\uDFFF` escapes that are not part of a valid pair with
/// `\uFFFD` (same length, so nothing moves). Returns how many were replaced.
/// Only backslashes inside JSON strings can start escapes, and an escaped
/// backslash (`\\`) is skipped as a unit, so the scan is exact.
pub fn replace_lone_surrogates(body: &mut [u8]) -> usize {
    fn hex4(b: &[u8]) -> Option<u16> {
        let s = std::str::from_utf8(b.get(..4)?).ok()?;
        u16::from_str_radix(s, 16).ok()
    }
    let mut count = 0;
    let mut i = 0;
    while i + 1 < body.len() {
        if body[i] != b'\\' {
            i += 1;
            continue;
        }
        if body[i + 1] != b'u' {
            i += 2;
            continue;
        }
        let Some(cu) = hex4(&body[i + 2..]) else {
            i += 2;
            continue;
        };
        let is_high = (0xD800..0xDC00).contains(&cu);
        let is_low = (0xDC00..0xE000).contains(&cu);
        if is_high {
            let next_low = body.get(i + 6..i + 8) == Some(b"\\u")
                && hex4(body.get(i + 8..).unwrap_or(&[]))
                    .is_some_and(|c| (0xDC00..0xE000).contains(&c));
            if next_low {
                i += 12;
                continue;
            }
        }
        if is_high || is_low {
            body[i + 2..i + 6].copy_from_slice(b"FFFD");
            count += 1;
        }
        i += 6;
    }
    count
}

/// The bytes of one framed `window/showMessage` error notification.
pub fn show_message(message: &str) -> Vec<u8> {
    let body = json!({
        "jsonrpc": "2.0",
        "method": "window/showMessage",
        "params": { "type": 1, "message": format!("slm-ls: {message}") },
    })
    .to_string();
    let mut out = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// The bytes of one framed JSON-RPC error response.
pub fn error_response(id: &Value, code: i64, message: &str) -> Vec<u8> {
    let body = json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": { "code": code, "message": format!("slm-ls: {message}") },
    })
    .to_string();
    let mut out = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// Read stdin on a plain thread (a blocking read that tokio could not
/// cancel would otherwise hold up the exit), in chunks, with backpressure.
pub fn spawn_stdin_reader() -> tokio::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    std::thread::Builder::new()
        .name("slm-ls-stdin".into())
        .spawn(move || {
            use std::io::Read;
            let mut stdin = std::io::stdin().lock();
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                match stdin.read(&mut chunk) {
                    Ok(0) => return,
                    Ok(n) => {
                        if tx.blocking_send(chunk[..n].to_vec()).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        tracing::error!("reading stdin failed: {e}; exiting");
                        return;
                    }
                }
            }
        })
        .expect("cannot start the stdin reader thread");
    rx
}

/// An error reply for the output pump, and how it says it has been written.
pub type Reply = (Vec<u8>, tokio::sync::oneshot::Sender<()>);

/// How the input pump ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputEnd {
    /// End of input: the client closed the pipe.
    Eof,
    /// The client sent `exit`: nothing after it is read.
    Exit,
    /// tower-lsp stopped reading.
    Closed,
}

/// Pump: raw client bytes in, canonical frames out to tower-lsp; errors go
/// to `replies` (already framed). After an error it waits until the reply
/// is written before forwarding anything else, so the client sees it before
/// the answer to any later message. Ends at end of input, after forwarding
/// `exit` (the caller ends the session without waiting for tower-lsp, see
/// `lifetime.rs`), or when tower-lsp stops reading.
pub async fn pump_input<W>(
    mut input: tokio::sync::mpsc::Receiver<Vec<u8>>,
    mut to_server: W,
    replies: tokio::sync::mpsc::UnboundedSender<Reply>,
) -> InputEnd
where
    W: AsyncWrite + Unpin,
{
    let mut dec = FrameDecoder::new(max_message_bytes());
    while let Some(chunk) = input.recv().await {
        dec.push(&chunk);
        while let Some(frame) = dec.next_frame() {
            match frame {
                Frame::Message(body) => {
                    let head = format!("Content-Length: {}\r\n\r\n", body.len());
                    if to_server.write_all(head.as_bytes()).await.is_err()
                        || to_server.write_all(&body).await.is_err()
                    {
                        // tower-lsp stopped reading.
                        return InputEnd::Closed;
                    }
                    if is_exit(&body) {
                        let _ = to_server.flush().await;
                        return InputEnd::Exit;
                    }
                }
                Frame::Dropped { message } => {
                    tracing::error!("{message}");
                    let (done, written) = tokio::sync::oneshot::channel();
                    if replies.send((show_message(&message), done)).is_ok() {
                        let _ = written.await;
                    }
                }
                Frame::Invalid { id, code, message } => {
                    tracing::error!("malformed message from the client: {message}");
                    let (done, written) = tokio::sync::oneshot::channel();
                    if replies
                        .send((error_response(&id, code, &message), done))
                        .is_ok()
                    {
                        let _ = written.await;
                    }
                }
            }
        }
    }
    if let Some(msg) = dec.finish() {
        tracing::error!("{msg}; exiting");
    }
    tracing::debug!(
        messages = dec.messages,
        errors = dec.errors,
        "client input closed"
    );
    let _ = to_server.shutdown().await;
    InputEnd::Eof
}

/// Whether a (valid) message body is the `exit` notification. Only short
/// bodies are parsed again: `exit` has no params.
fn is_exit(body: &[u8]) -> bool {
    body.len() <= 256
        && serde_json::from_slice::<Value>(body).is_ok_and(|v| {
            v.get("method").and_then(Value::as_str) == Some("exit") && v.get("id").is_none()
        })
}

/// Copy tower-lsp's output (well-formed frames) to `out`, inserting the
/// frames from `replies` only between whole frames. Returns when tower-lsp's
/// side is closed, after writing every pending reply.
pub async fn pump_output<R, W>(
    mut from_server: R,
    mut out: W,
    mut replies: tokio::sync::mpsc::UnboundedReceiver<Reply>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut open = true;
    while open {
        tokio::select! {
            biased;
            r = from_server.read(&mut chunk) => match r {
                Ok(0) | Err(_) => open = false,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    let mut done = 0;
                    while let Some(len) = whole_frame(&buf[done..]) {
                        if out.write_all(&buf[done..done + len]).await.is_err() {
                            return;
                        }
                        done += len;
                    }
                    buf.drain(..done);
                    let _ = out.flush().await;
                }
            },
            Some((reply, done)) = replies.recv(), if buf.is_empty() => {
                if out.write_all(&reply).await.is_err() {
                    return;
                }
                let _ = out.flush().await;
                let _ = done.send(());
            }
        }
    }
    let _ = out.write_all(&buf).await;
    while let Ok((reply, done)) = replies.try_recv() {
        let _ = out.write_all(&reply).await;
        let _ = done.send(());
    }
    let _ = out.flush().await;
}

/// Length of the complete frame at the start of `buf` (our own encoder's
/// output: `Content-Length: N\r\n\r\n` + N bytes), if it is all there.
fn whole_frame(buf: &[u8]) -> Option<usize> {
    let end = find(buf, b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let len: usize = head
        .split("\r\n")
        .find_map(|l| l.strip_prefix("Content-Length: "))?
        .trim()
        .parse()
        .ok()?;
    (buf.len() >= end + 4 + len).then_some(end + 4 + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &str) -> Vec<u8> {
        let mut v = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
        v.extend_from_slice(body.as_bytes());
        v
    }

    fn decode_all(input: &[u8], max: usize) -> Vec<Frame> {
        let mut d = FrameDecoder::new(max);
        d.push(input);
        std::iter::from_fn(|| d.next_frame()).collect()
    }

    const OK: &str = r#"{"jsonrpc":"2.0","id":1,"method":"slm-ls/stats"}"#;

    fn is_ok(f: &Frame) -> bool {
        matches!(f, Frame::Message(b) if b == OK.as_bytes())
    }

    fn err_text(f: &Frame) -> String {
        match f {
            Frame::Invalid { message, .. } => message.clone(),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn the_exit_notification_is_recognised() {
        assert!(is_exit(br#"{"jsonrpc":"2.0","method":"exit"}"#));
        assert!(is_exit(
            br#"{"jsonrpc":"2.0","method":"exit","params":null}"#
        ));
        // A request named exit, or another method, is not the notification.
        assert!(!is_exit(br#"{"jsonrpc":"2.0","id":3,"method":"exit"}"#));
        assert!(!is_exit(br#"{"jsonrpc":"2.0","method":"shutdown"}"#));
        assert!(!is_exit(OK.as_bytes()));
    }

    /// The pump stops reading after `exit` and says so; at the end of input
    /// it says that.
    #[tokio::test]
    async fn the_input_pump_tells_exit_from_end_of_input() {
        let run = |input: Vec<u8>| async move {
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            tx.send(input).await.unwrap();
            drop(tx);
            let (replies, _keep) = tokio::sync::mpsc::unbounded_channel();
            let (to_server, mut from_pump) = tokio::io::duplex(1 << 16);
            let end = pump_input(rx, to_server, replies).await;
            let mut forwarded = Vec::new();
            from_pump.read_to_end(&mut forwarded).await.unwrap();
            (end, forwarded)
        };
        let exit = r#"{"jsonrpc":"2.0","method":"exit"}"#;
        let mut input = frame(OK);
        input.extend(frame(exit));
        input.extend(frame(OK));
        let (end, forwarded) = run(input).await;
        assert_eq!(end, InputEnd::Exit);
        let expected = [frame(OK), frame(exit)].concat();
        assert_eq!(forwarded, expected, "nothing after exit is forwarded");
        let (end, _) = run(frame(OK)).await;
        assert_eq!(end, InputEnd::Eof);
    }

    #[test]
    fn good_messages_pass_byte_by_byte() {
        let mut input = frame(OK);
        input.extend(frame(OK));
        let mut d = FrameDecoder::new(1 << 20);
        let mut out = Vec::new();
        for b in input {
            d.push(&[b]);
            while let Some(f) = d.next_frame() {
                out.push(f);
            }
        }
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(is_ok));
    }

    #[test]
    fn bad_json_is_answered_and_the_next_message_survives() {
        let mut input = frame("{bad json");
        input.extend(frame(OK));
        let out = decode_all(&input, 1 << 20);
        assert!(err_text(&out[0]).contains("not valid JSON"));
        assert!(is_ok(&out[1]));
    }

    #[test]
    fn missing_and_invalid_content_length_resync() {
        let mut input = b"Content-Type: application/json\r\n\r\n{}".to_vec();
        input.extend(b"Content-Length: abc\r\n\r\n");
        input.extend(b"garbage line\r\n");
        input.extend(frame(OK));
        let out = decode_all(&input, 1 << 20);
        assert!(
            err_text(&out[0]).contains("missing Content-Length"),
            "{out:?}"
        );
        assert!(
            err_text(&out[1]).contains("invalid Content-Length"),
            "{out:?}"
        );
        assert!(is_ok(out.last().unwrap()), "{out:?}");
    }

    #[test]
    fn oversized_messages_are_skipped_without_buffering() {
        let big = format!("{{\"x\":\"{}\"}}", "a".repeat(5000));
        let mut d = FrameDecoder::new(1000);
        d.push(format!("Content-Length: {}\r\n\r\n", big.len()).as_bytes());
        let e = d.next_frame().unwrap();
        assert!(err_text(&e).contains("exceeds the limit"));
        for c in big.as_bytes().chunks(100) {
            d.push(c);
            assert_eq!(d.buffered(), 0, "oversized body must not be buffered");
            assert!(d.next_frame().is_none());
        }
        d.push(&frame(OK));
        assert!(is_ok(&d.next_frame().unwrap()));
    }

    #[test]
    fn huge_header_is_bounded() {
        let mut d = FrameDecoder::new(1 << 20);
        d.push(&vec![b'x'; MAX_HEADER_BYTES + 10]);
        assert!(err_text(&d.next_frame().unwrap()).contains("header block"));
        assert!(d.buffered() < CONTENT_LENGTH.len());
        d.push(&frame(OK));
        assert!(is_ok(&d.next_frame().unwrap()));
    }

    #[test]
    fn invalid_request_keeps_its_id() {
        let out = decode_all(&frame(r#"{"jsonrpc":"1.0","id":7,"method":"x"}"#), 1 << 20);
        match &out[0] {
            Frame::Invalid { id, code, message } => {
                assert_eq!(id, &json!(7));
                assert_eq!(*code, INVALID_REQUEST);
                assert!(message.contains("2.0"));
            }
            f => panic!("{f:?}"),
        }
        let out = decode_all(&frame("[1,2]"), 1 << 20);
        assert!(err_text(&out[0]).contains("JSON object"));
    }

    #[test]
    fn lone_surrogates_become_replacement_chars() {
        let body =
            r#"{"jsonrpc":"2.0","method":"x","params":{"t":"a\ud800b\\ud800\udc00\ud83d\ude00"}}"#;
        let out = decode_all(&frame(body), 1 << 20);
        let Frame::Message(b) = &out[0] else {
            panic!("{out:?}")
        };
        let v: Value = serde_json::from_slice(b).unwrap();
        // the lone one is replaced; the escaped backslash and the pairs stay.
        assert_eq!(v["params"]["t"], "a\u{FFFD}b\\ud800\u{FFFD}😀");
    }

    #[test]
    fn sync_notifications_with_bad_params_are_reported() {
        let body = r#"{"jsonrpc":"2.0","method":"textDocument/didChange","params":{"textDocument":{"uri":"file:///a.py","version":2},"contentChanges":"nope"}}"#;
        let out = decode_all(&frame(body), 1 << 20);
        match &out[0] {
            Frame::Dropped { message } => {
                assert!(
                    message.contains("file:///a.py") && message.contains("didChange"),
                    "{message}"
                )
            }
            f => panic!("{f:?}"),
        }
        // Other notifications and requests pass (tower-lsp answers requests).
        let body = r#"{"jsonrpc":"2.0","id":3,"method":"textDocument/completion","params":5}"#;
        assert!(matches!(
            &decode_all(&frame(body), 1 << 20)[0],
            Frame::Message(_)
        ));
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut input = b"Content-Length: 3\r\n\r\n\xff\xfe{".to_vec();
        input.extend(frame(OK));
        let out = decode_all(&input, 1 << 20);
        assert!(err_text(&out[0]).contains("UTF-8"));
        assert!(is_ok(&out[1]));
    }

    #[test]
    fn finish_reports_truncation() {
        let mut d = FrameDecoder::new(1 << 20);
        d.push(b"Content-Length: 100\r\n\r\n{\"jsonrpc\"");
        assert!(d.next_frame().is_none());
        assert!(d.finish().unwrap().contains("10 of 100 bytes"));
    }

    #[test]
    fn output_frames_are_detected_whole() {
        let f = frame(OK);
        assert_eq!(whole_frame(&f), Some(f.len()));
        assert_eq!(whole_frame(&f[..f.len() - 1]), None);
    }
}
