//! Bad document edits and positions over the real binary's stdio: each
//! case checks what the client is told and that the server's view of the
//! document (read back with the test-only `slm-ls/test/documentText`) is
//! exactly what it should be, then that the server still answers.
//!
//! Also enormous documents (tens of MB) and very long lines: edits stay
//! fast and memory stays bounded. No model needed.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::{json, Value};

const ENV: &[(&str, &str)] = &[
    ("SLM_LS_MODEL", "/nonexistent/slm-ls-test.gguf"),
    ("SLM_LS_TEST_HOOKS", "1"),
];
const URI: &str = "file:///work/doc.py";

fn started() -> TestServer {
    let mut s = TestServer::spawn(&[], ENV);
    s.initialize(json!({}), json!({}));
    s
}

fn text_of(s: &mut TestServer, uri: &str) -> Value {
    s.request("slm-ls/test/documentText", json!({ "uri": uri }))
}

fn range(l0: u32, c0: u32, l1: u32, c1: u32, text: &str) -> Value {
    json!([{ "range": { "start": { "line": l0, "character": c0 }, "end": { "line": l1, "character": c1 } }, "text": text }])
}

/// Wait for a `window/showMessage` containing `needle`.
fn told(s: &mut TestServer, needle: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if s.notifications.iter().any(|m| {
            m["method"] == "window/showMessage"
                && m["params"]["message"]
                    .as_str()
                    .is_some_and(|t| t.contains(needle))
        }) {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        if let Some(m) = s.recv(left.min(Duration::from_millis(100))) {
            s.notifications.push(m);
        }
    }
}

fn completion_error(s: &mut TestServer, uri: &str, line: u32, character: u32) -> Value {
    let r = s.request_full(
        "textDocument/completion",
        json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": character } }),
    );
    r["error"].clone()
}

#[test]
fn positions_past_the_end() {
    let mut s = started();
    s.open(URI, "python", "abc\ndef\n");
    // A column past the end of its line clamps to the line end (LSP rule).
    s.change(URI, 2, range(0, 99, 0, 120, "!"));
    assert_eq!(text_of(&mut s, URI)["text"], "abc!\ndef\n");
    // A line past the end of the document: refused, text untouched.
    s.change(URI, 3, range(7, 0, 7, 0, "x"));
    assert!(told(
        &mut s,
        "position line 7 is past the end of the document (3 lines)"
    ));
    let t = text_of(&mut s, URI);
    assert_eq!(t["text"], "abc!\ndef\n");
    assert_eq!(t["version"], 2, "a refused edit does not bump the version");
    // The same position in a request: InvalidParams with the same words.
    let e = completion_error(&mut s, URI, 40, 0);
    assert_eq!(e["code"], -32602, "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("past the end"),
        "{e}"
    );
    // u32::MAX everywhere.
    s.change(URI, 4, range(0, u32::MAX, 0, u32::MAX, "?"));
    assert_eq!(text_of(&mut s, URI)["text"], "abc!?\ndef\n");
    let e = completion_error(&mut s, URI, u32::MAX, u32::MAX);
    assert_eq!(e["code"], -32602, "{e}");
}

#[test]
fn reversed_ranges_are_refused() {
    let mut s = started();
    s.open(URI, "python", "hello world\n");
    s.change(URI, 2, range(0, 8, 0, 2, "X"));
    assert!(told(&mut s, "range start 0:8 is after its end 0:2"));
    assert_eq!(text_of(&mut s, URI)["text"], "hello world\n");
    s.change(URI, 3, range(0, 0, 0, 5, "HELLO"));
    assert_eq!(text_of(&mut s, URI)["text"], "HELLO world\n");
}

#[test]
fn edits_to_documents_never_opened() {
    let mut s = started();
    s.change("file:///never.py", 2, range(0, 0, 0, 0, "x"));
    assert!(told(
        &mut s,
        "document file:///never.py is not open (send textDocument/didOpen first)"
    ));
    let e = completion_error(&mut s, "file:///never.py", 0, 0);
    assert_eq!(e["code"], -32602);
    assert!(
        e["message"].as_str().unwrap().contains("is not open"),
        "{e}"
    );
    // Close of a never-opened document: harmless.
    s.notify(
        "textDocument/didClose",
        json!({ "textDocument": { "uri": "file:///never.py" } }),
    );
    let stats = s.request("slm-ls/stats", json!(null));
    assert_eq!(stats["openDocuments"], 0);
    // Edits after close are refused too.
    s.open(URI, "python", "x\n");
    s.notify(
        "textDocument/didClose",
        json!({ "textDocument": { "uri": URI } }),
    );
    s.change(URI, 2, range(0, 0, 0, 0, "y"));
    assert!(told(&mut s, &format!("document {URI} is not open")));
}

#[test]
fn versions_going_backwards_are_refused() {
    let mut s = started();
    s.open(URI, "python", "v1\n");
    s.change(URI, 5, range(0, 2, 0, 2, "+5"));
    s.change(URI, 3, range(0, 0, 0, 0, "stale"));
    assert!(told(
        &mut s,
        "document version went backwards (3 after 5); edit ignored"
    ));
    let t = text_of(&mut s, URI);
    assert_eq!(t["text"], "v1+5\n");
    assert_eq!(t["version"], 5);
    // Equal versions are accepted (some clients do not bump per change).
    s.change(URI, 5, range(0, 0, 0, 0, "="));
    assert_eq!(text_of(&mut s, URI)["text"], "=v1+5\n");
}

#[test]
fn did_open_twice_replaces_the_document() {
    let mut s = started();
    s.open(URI, "python", "first\n");
    s.change(URI, 7, range(0, 0, 0, 0, "x"));
    s.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": URI, "languageId": "rust", "version": 1, "text": "second\n" } }),
    );
    let t = text_of(&mut s, URI);
    assert_eq!(t["text"], "second\n");
    assert_eq!(t["version"], 1, "the reopened version is in force");
    assert_eq!(t["languageId"], "rust");
    assert_eq!(s.request("slm-ls/stats", json!(null))["openDocuments"], 1);
}

#[test]
fn surrogates_in_positions_and_text() {
    let mut s = started();
    // UTF-16 (the default): 😀 is two code units.
    s.open(URI, "python", "a😀b\n");
    // Column 2 is inside the surrogate pair: rounds up to after the emoji.
    s.change(URI, 2, range(0, 2, 0, 2, "|"));
    assert_eq!(text_of(&mut s, URI)["text"], "a😀|b\n");
    // A lone surrogate in the text (as JavaScript clients can send it):
    // replaced by U+FFFD, one UTF-16 unit for one, so later columns agree.
    let body = format!(
        r#"{{"jsonrpc":"2.0","method":"textDocument/didChange","params":{{"textDocument":{{"uri":"{URI}","version":3}},"contentChanges":[{{"range":{{"start":{{"line":0,"character":0}},"end":{{"line":0,"character":0}}}},"text":"\ud800"}}]}}}}"#
    );
    let mut msg = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    msg.extend_from_slice(body.as_bytes());
    s.send_raw(&msg);
    assert_eq!(text_of(&mut s, URI)["text"], "\u{FFFD}a😀|b\n");
    // Client's view: [lone, a, 😀(2), |, b]: 'b' is at column 5.
    s.change(URI, 4, range(0, 5, 0, 6, "B"));
    assert_eq!(text_of(&mut s, URI)["text"], "\u{FFFD}a😀|B\n");
}

#[test]
fn full_text_changes_and_mixed_batches() {
    let mut s = started();
    s.open(URI, "python", "old\n");
    // A batch: full replace, then an incremental edit against the new text.
    s.change(
        URI,
        2,
        json!([{ "text": "line one\nline two\n" }, { "range": { "start": { "line": 1, "character": 5 }, "end": { "line": 1, "character": 8 } }, "text": "2" }]),
    );
    assert_eq!(text_of(&mut s, URI)["text"], "line one\nline 2\n");
    // A batch whose second edit is bad: the first stays applied (it was valid
    // against the client's state), the user is told, the version is not bumped.
    s.change(URI, 3, json!([{ "range": { "start": { "line": 0, "character": 0 }, "end": { "line": 0, "character": 0 } }, "text": ">" }, { "range": { "start": { "line": 50, "character": 0 }, "end": { "line": 50, "character": 0 } }, "text": "!" }]));
    assert!(told(&mut s, "past the end of the document"));
    let t = text_of(&mut s, URI);
    assert_eq!(t["text"], ">line one\nline 2\n");
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A 32 MB document: opened, edited at its start, middle and end, with
/// each edit round-trip fast (edits touch O(log n) of the rope), memory a
/// small multiple of the text, and memory given back after close.
#[test]
fn enormous_documents_stay_fast_and_bounded() {
    let mut s = started();
    let base = rss_kb(s.pid());
    let line = "let value_of_some_kind = compute(alpha, beta, gamma) + 12345;\n";
    let lines = 32 * 1024 * 1024 / line.len();
    let text = line.repeat(lines);
    let t0 = Instant::now();
    s.open(URI, "rust", &text);
    s.request("slm-ls/stats", json!(null));
    let open_ms = t0.elapsed().as_millis();
    let after_open = rss_kb(s.pid());
    // Edits spread over the document; each followed by a request round-trip.
    let t0 = Instant::now();
    let n = 200u32;
    for i in 0..n {
        let l = (i as usize * 7919 % lines) as u32;
        s.change(URI, 2 + i as i32, range(l, 4, l, 9, "VALUE"));
        s.request("slm-ls/stats", json!(null));
    }
    let per_edit_ms = t0.elapsed().as_secs_f64() * 1000.0 / n as f64;
    // Requests that read a window around a cursor: refused on the missing
    // model after locating the cursor, so this times the document side.
    let t0 = Instant::now();
    for i in 0..50u32 {
        let l = (i as usize * 104729 % lines) as u32;
        let e = completion_error(&mut s, URI, l, 10);
        assert_eq!(e["code"], -32803, "{e}");
    }
    let per_request_ms = t0.elapsed().as_secs_f64() * 1000.0 / 50.0;
    let peak = rss_kb(s.pid());
    s.notify(
        "textDocument/didClose",
        json!({ "textDocument": { "uri": URI } }),
    );
    s.request("slm-ls/stats", json!(null));
    std::thread::sleep(Duration::from_millis(300));
    let after_close = rss_kb(s.pid());
    eprintln!(
        "32 MB document: open {open_ms} ms, {per_edit_ms:.2} ms per edit, {per_request_ms:.2} ms per request; RSS base {base} kB, open {after_open} kB, peak {peak} kB, closed {after_close} kB"
    );
    assert!(per_edit_ms < 50.0, "edits are slow: {per_edit_ms:.1} ms");
    assert!(
        per_request_ms < 50.0,
        "requests are slow: {per_request_ms:.1} ms"
    );
    let text_kb = text.len() as u64 / 1024;
    assert!(
        peak - base < 4 * text_kb,
        "memory for a {text_kb} kB document grew by {} kB",
        peak - base
    );
    // The document's memory is returned on close; what stays is the
    // protocol input buffer sized by the largest message received (tower-lsp
    // keeps its read buffer), about one message: reused, never grown.
    assert!(
        after_close < base + text_kb * 3 / 2,
        "memory not returned after close: base {base} kB, after close {after_close} kB"
    );
    // Open, edit and close five more such documents: memory levels off
    // (the input buffers settle at their largest size) and does not climb.
    let mut rounds = Vec::new();
    for round in 0..5 {
        let uri = format!("file:///work/big{round}.rs");
        s.open(&uri, "rust", &text);
        s.change(&uri, 2, range(10, 0, 10, 0, "// edited\n"));
        s.request("slm-ls/stats", json!(null));
        s.notify(
            "textDocument/didClose",
            json!({ "textDocument": { "uri": uri } }),
        );
        s.request("slm-ls/stats", json!(null));
        std::thread::sleep(Duration::from_millis(200));
        rounds.push(rss_kb(s.pid()));
    }
    eprintln!("RSS after each of 5 more open/edit/close rounds: {rounds:?} kB");
    let (first, last) = (rounds[0], *rounds.last().unwrap());
    assert!(
        last < first + text_kb / 8,
        "memory climbs with each large document: {rounds:?} kB"
    );
    assert!(
        last < base + 3 * text_kb,
        "memory after closing every document is {last} kB (base {base} kB)"
    );
    assert!(s.shutdown().success());
}

/// A 4 MB single line: edits at its end stay fast (columns are found by
/// the rope's index, not by walking the line).
#[test]
fn very_long_lines_stay_fast() {
    let mut s = started();
    let long = "x".repeat(4 * 1024 * 1024);
    s.open(URI, "text", &format!("{long}\nshort\n"));
    let t0 = Instant::now();
    let n = 200u32;
    let end = long.len() as u32;
    for i in 0..n {
        s.change(URI, 2 + i as i32, range(0, end + i, 0, end + i, "y"));
        s.request("slm-ls/stats", json!(null));
    }
    let per_edit_ms = t0.elapsed().as_secs_f64() * 1000.0 / n as f64;
    let t = text_of(&mut s, URI);
    let got = t["text"].as_str().unwrap();
    assert_eq!(got.len(), long.len() + n as usize + 7);
    assert!(got.ends_with(&format!("{}\nshort\n", "y".repeat(n as usize))));
    eprintln!("4 MB line: {per_edit_ms:.2} ms per edit at its end");
    assert!(
        per_edit_ms < 10.0,
        "edits at the end of a long line are slow: {per_edit_ms:.1} ms"
    );
}
