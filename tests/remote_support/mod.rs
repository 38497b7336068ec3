//! A fake model provider for the remote tests: an HTTP/1.1 server on
//! `127.0.0.1:0` that records every request and answers in the real wire
//! formats (OpenAI SSE, Anthropic typed SSE, Ollama NDJSON, llama-server
//! SSE), with chunked streaming, delays, error bodies, hangs and cut-offs.
//!
//! Each connection gets its own thread, so a hanging reply does not stop
//! the server from answering (or counting) the next connection.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How to answer one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A complete response with `Content-Length`.
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        content_type: String,
        body: String,
    },
    /// `200` with a chunked body written piece by piece, each after its delay.
    Stream {
        content_type: String,
        chunks: Vec<(Duration, String)>,
        end: End,
    },
    /// Read the request, then say nothing for this long (the client's
    /// timeout should fire first), then close.
    Hang(Duration),
}

/// How a streamed body ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum End {
    /// The terminating zero-length chunk: a complete HTTP body.
    Clean,
    /// The connection is dropped mid-body (no terminating chunk).
    Abort,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Reply {
        Reply::Full {
            status,
            headers: vec![],
            content_type: "application/json".into(),
            body: body.to_string(),
        }
    }
    pub fn with_header(mut self, k: &str, v: &str) -> Reply {
        if let Reply::Full { headers, .. } = &mut self {
            headers.push((k.into(), v.into()));
        }
        self
    }
    /// SSE: each event string is sent as its own chunk, `delay` apart.
    pub fn sse(events: Vec<String>, delay: Duration) -> Reply {
        Reply::Stream {
            content_type: "text/event-stream".into(),
            chunks: events.into_iter().map(|e| (delay, e)).collect(),
            end: End::Clean,
        }
    }
    pub fn ndjson(lines: Vec<String>, delay: Duration) -> Reply {
        Reply::Stream {
            content_type: "application/x-ndjson".into(),
            chunks: lines.into_iter().map(|l| (delay, l + "\n")).collect(),
            end: End::Clean,
        }
    }
    pub fn aborted(mut self) -> Reply {
        if let Reply::Stream { end, .. } = &mut self {
            *end = End::Abort;
        }
        self
    }
}

// --- Wire formats -----------------------------------------------------------

fn data(v: Value) -> String {
    format!("data: {v}\n\n")
}

/// OpenAI chat-completions stream of `pieces`, with usage and `[DONE]`.
pub fn openai_chat(pieces: &[&str]) -> Vec<String> {
    let mut ev = vec![data(
        json!({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]}),
    )];
    for p in pieces {
        ev.push(data(json!({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": null}]})));
    }
    ev.push(data(json!({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})));
    ev.push(data(json!({"id": "c1", "object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150}})));
    ev.push("data: [DONE]\n\n".into());
    ev
}

/// Anthropic Messages stream of `pieces`.
pub fn anthropic_messages(pieces: &[&str]) -> Vec<String> {
    let ev = |name: &str, v: Value| format!("event: {name}\ndata: {v}\n\n");
    let mut out = vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude-test", "stop_reason": null, "usage": {"input_tokens": 200, "output_tokens": 1}}}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ev("ping", json!({"type": "ping"})),
    ];
    for p in pieces {
        out.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}})));
    }
    out.push(ev(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    out.push(ev("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 40}})));
    out.push(ev("message_stop", json!({"type": "message_stop"})));
    out
}

/// Ollama `/api/chat` NDJSON lines of `pieces`.
pub fn ollama_chat(pieces: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = pieces
        .iter()
        .map(|p| json!({"model": "llama3", "created_at": "2024-01-01T00:00:00Z", "message": {"role": "assistant", "content": p}, "done": false}).to_string())
        .collect();
    out.push(json!({"model": "llama3", "created_at": "2024-01-01T00:00:01Z", "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": "stop", "total_duration": 1, "prompt_eval_count": 90, "eval_count": 20}).to_string());
    out
}

/// llama-server `/infill` SSE of `pieces`.
pub fn llama_infill(pieces: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = pieces
        .iter()
        .map(|p| data(json!({"index": 0, "content": p, "stop": false, "id_slot": 0})))
        .collect();
    out.push(data(json!({"index": 0, "content": "", "stop": true, "tokens_predicted": 9, "tokens_evaluated": 50, "stop_type": "limit"})));
    out
}

/// OpenAI `/v1/completions` SSE of `pieces`.
pub fn openai_completions(pieces: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = pieces
        .iter()
        .map(|p| data(json!({"id": "cmpl-1", "object": "text_completion", "choices": [{"index": 0, "text": p, "finish_reason": null}]})))
        .collect();
    out.push(data(json!({"id": "cmpl-1", "object": "text_completion", "choices": [{"index": 0, "text": "", "finish_reason": "length"}]})));
    out.push("data: [DONE]\n\n".into());
    out
}

/// Ollama `/api/generate` NDJSON lines of `pieces`.
pub fn ollama_generate(pieces: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = pieces
        .iter()
        .map(|p| json!({"model": "m", "response": p, "done": false}).to_string())
        .collect();
    out.push(json!({"model": "m", "response": "", "done": true, "done_reason": "stop", "prompt_eval_count": 40, "eval_count": 8}).to_string());
    out
}

// --- The server ----------------------------------------------------------------

type Handler = dyn Fn(&Recorded, usize) -> Reply + Send + Sync;

struct Shared {
    connections: AtomicUsize,
    requests: Mutex<Vec<Recorded>>,
    handler: Box<Handler>,
    stop: AtomicBool,
    /// Connections whose reply was cut short by the client hanging up.
    client_hung_up: AtomicUsize,
}

pub struct FakeServer {
    pub url: String,
    port: u16,
    shared: Arc<Shared>,
}

impl FakeServer {
    /// Start a server whose `handler` gets each request and its 0-based
    /// index among all requests so far.
    pub fn start(
        handler: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static,
    ) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            connections: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            handler: Box::new(handler),
            stop: AtomicBool::new(false),
            client_hung_up: AtomicUsize::new(0),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                s.connections.fetch_add(1, Ordering::SeqCst);
                let s = s.clone();
                std::thread::spawn(move || serve(conn, &s));
            }
        });
        FakeServer {
            url: format!("http://127.0.0.1:{port}"),
            port,
            shared,
        }
    }

    /// Always the same reply.
    pub fn always(reply: Reply) -> FakeServer {
        FakeServer::start(move |_, _| reply.clone())
    }

    /// Replies in order; the last one repeats.
    pub fn sequence(replies: Vec<Reply>) -> FakeServer {
        FakeServer::start(move |_, i| replies[i.min(replies.len() - 1)].clone())
    }

    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn client_hung_up(&self) -> usize {
        self.shared.client_hung_up.load(Ordering::SeqCst)
    }

    /// Wait until at least `n` requests arrived.
    pub fn wait_requests(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let end = Instant::now() + timeout;
        loop {
            let r = self.requests();
            if r.len() >= n {
                return r;
            }
            assert!(
                Instant::now() < end,
                "fake server got {} requests, expected {n}",
                r.len()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wake the accept loop
    }
}

fn read_request(conn: &TcpStream) -> Option<Recorded> {
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Recorded {
        method,
        path,
        headers,
        body,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        529 => "Overloaded",
        _ => "Status",
    }
}

fn serve(mut conn: TcpStream, s: &Shared) {
    let Some(req) = read_request(&conn) else {
        return;
    };
    let index = {
        let mut all = s.requests.lock().unwrap();
        all.push(req.clone());
        all.len() - 1
    };
    match (s.handler)(&req, index) {
        Reply::Full {
            status,
            headers,
            content_type,
            body,
        } => {
            let mut head = format!(
                "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n",
                reason(status),
                body.len()
            );
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(body.as_bytes());
        }
        Reply::Stream {
            content_type,
            chunks,
            end,
        } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n"
            );
            if conn.write_all(head.as_bytes()).is_err() {
                return;
            }
            for (delay, chunk) in chunks {
                std::thread::sleep(delay);
                let framed = format!("{:x}\r\n{chunk}\r\n", chunk.len());
                if conn
                    .write_all(framed.as_bytes())
                    .and_then(|_| conn.flush())
                    .is_err()
                {
                    s.client_hung_up.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            }
            match end {
                End::Clean => {
                    let _ = conn.write_all(b"0\r\n\r\n");
                }
                End::Abort => {
                    // Half a chunk, then hang up.
                    let _ = conn.write_all(b"40\r\ndata: {\"choi");
                    let _ = conn.flush();
                    let _ = conn.shutdown(Shutdown::Both);
                    return;
                }
            }
        }
        Reply::Hang(d) => {
            let end = Instant::now() + d;
            // Notice a client that gave up: a read returns 0 when it closes.
            conn.set_read_timeout(Some(Duration::from_millis(50))).ok();
            let mut buf = [0u8; 64];
            while Instant::now() < end {
                match conn.read(&mut buf) {
                    Ok(0) => {
                        s.client_hung_up.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    _ => continue,
                }
            }
        }
    }
    let _ = conn.flush();
    let _ = conn.shutdown(Shutdown::Write);
}
