//! Bad input at the protocol level, over the real binary's stdio: every
//! case checks the error the client gets (or the log line, where JSON-RPC
//! has no way to answer) and that the server still answers afterwards.
//!
//! None of these need the model: the server is pointed at a missing one,
//! so they run in milliseconds.

mod common;

use std::time::Duration;

use common::TestServer;
use serde_json::{json, Value};

const NO_MODEL: (&str, &str) = ("SLM_LS_MODEL", "/nonexistent/slm-ls-test.gguf");
const HOOKS: (&str, &str) = ("SLM_LS_TEST_HOOKS", "1");

fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    v.extend_from_slice(body);
    v
}

fn started(env: &[(&str, &str)]) -> TestServer {
    let mut env = env.to_vec();
    env.push(NO_MODEL);
    let mut s = TestServer::spawn(&[], &env);
    s.initialize(json!({}), json!({}));
    s
}

/// The server answers a normal request: it is alive and in sync.
fn assert_answers(s: &mut TestServer) -> Value {
    let r = s.request_full("slm-ls/stats", json!(null));
    assert!(
        r.get("result").is_some(),
        "server did not answer stats: {r}"
    );
    r["result"].clone()
}

/// Error responses with `id: null` (answers to unreadable input) seen so
/// far; waits for the next request round-trip so they have arrived.
fn null_id_errors(s: &mut TestServer) -> Vec<Value> {
    assert_answers(s);
    s.notifications
        .iter()
        .filter(|m| m.get("method").is_none() && m["id"].is_null())
        .cloned()
        .collect()
}

/// Wait up to 10 s for a message matching `pred` (seen before or arriving).
fn wait_for(s: &mut TestServer, pred: impl Fn(&Value) -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if s.notifications.iter().any(&pred) {
            return true;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        if let Some(m) = s.recv(left.min(Duration::from_millis(100))) {
            s.notifications.push(m);
        }
    }
}

fn only_error(s: &mut TestServer, expect_code: i64, needle: &str) {
    let errs = null_id_errors(s);
    assert!(
        errs.iter().any(|e| e["error"]["code"] == expect_code
            && e["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(needle))),
        "expected an error {expect_code} mentioning {needle:?}, got {errs:?}"
    );
    s.notifications.clear();
}

#[test]
fn bad_json_is_a_parse_error_and_the_server_goes_on() {
    let mut s = started(&[]);
    s.send_raw(&frame(b"{\"jsonrpc\": \"2.0\", \"id\": 5, \"method\": "));
    only_error(&mut s, -32700, "not valid JSON");
    s.send_raw(&frame(b"\x00\x01binary"));
    only_error(&mut s, -32700, "not valid JSON");
    s.send_raw(&frame(b""));
    only_error(&mut s, -32700, "not valid JSON");
    assert!(s.shutdown().success());
}

#[test]
fn invalid_utf8_body_is_a_parse_error() {
    let mut s = started(&[]);
    s.send_raw(&frame(
        b"{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"params\":\"\xff\xfe\"}",
    ));
    only_error(&mut s, -32700, "not valid UTF-8");
    assert!(s.shutdown().success());
}

#[test]
fn json_that_is_not_json_rpc_is_an_invalid_request_with_its_id() {
    let mut s = started(&[]);
    s.send_raw(&frame(
        br#"{"jsonrpc":"1.0","id":77,"method":"slm-ls/stats"}"#,
    ));
    s.send_raw(&frame(
        br#"[{"jsonrpc":"2.0","id":78,"method":"slm-ls/stats"}]"#,
    ));
    s.send_raw(&frame(br#""just a string""#));
    let r = s.response(77, Duration::from_secs(10));
    assert_eq!(r["error"]["code"], -32600, "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("\"2.0\""),
        "{r}"
    );
    only_error(&mut s, -32600, "JSON object");
    assert!(s.shutdown().success());
}

#[test]
fn missing_or_invalid_content_length_resynchronises() {
    let mut s = started(&[]);
    // No Content-Length at all, then a body: skipped up to the next header.
    s.send_raw(b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":900,\"method\":\"slm-ls/stats\"}");
    only_error(&mut s, -32700, "missing Content-Length");
    s.send_raw(b"Content-Length: twelve\r\n\r\n{}");
    only_error(&mut s, -32700, "invalid Content-Length");
    s.send_raw(b"Content-Length: -5\r\n\r\n");
    only_error(&mut s, -32700, "invalid Content-Length");
    // Garbage lines before a good header.
    s.send_raw(b"hello there\r\nthis is not LSP\r\n");
    only_error(&mut s, -32700, "malformed header line");
    // An unsupported charset.
    s.send_raw(b"Content-Length: 2\r\nContent-Type: application/json; charset=latin1\r\n\r\n{}");
    only_error(&mut s, -32700, "charset");
    // Headers in any case, extra headers, several of them: accepted.
    let body = br#"{"jsonrpc":"2.0","id":901,"method":"slm-ls/stats"}"#;
    let mut msg = format!(
        "content-length: {}\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\nX-Extra: 1\r\nX-More: 2\r\n\r\n",
        body.len()
    )
    .into_bytes();
    msg.extend_from_slice(body);
    s.send_raw(&msg);
    let r = s.response(901, Duration::from_secs(10));
    assert!(r.get("result").is_some(), "{r}");
    assert!(s.shutdown().success());
}

#[test]
fn wrong_content_length_loses_only_the_damaged_messages() {
    let mut s = started(&[]);
    let body = br#"{"jsonrpc":"2.0","id":910,"method":"slm-ls/stats"}"#;
    // Too short: the body is cut, its tail is garbage before the next header.
    let mut short = format!("Content-Length: {}\r\n\r\n", body.len() - 10).into_bytes();
    short.extend_from_slice(body);
    s.send_raw(&short);
    only_error(&mut s, -32700, "not valid JSON");
    // Too long: it swallows the start of the next message; the one after
    // that is intact and answered.
    let mut long = format!("Content-Length: {}\r\n\r\n", body.len() + 30).into_bytes();
    long.extend_from_slice(body);
    s.send_raw(&long);
    s.send_raw(&frame(
        br#"{"jsonrpc":"2.0","id":911,"method":"slm-ls/stats"}"#,
    ));
    s.send_raw(&frame(
        br#"{"jsonrpc":"2.0","id":912,"method":"slm-ls/stats"}"#,
    ));
    let r = s.response(912, Duration::from_secs(10));
    assert!(r.get("result").is_some(), "{r}");
    let errs = null_id_errors(&mut s);
    assert!(!errs.is_empty(), "the damaged message was not reported");
    assert!(s.shutdown().success());
}

#[test]
fn huge_headers_and_oversized_messages_are_bounded() {
    let mut s = started(&[("SLM_LS_MAX_MESSAGE_BYTES", "100000")]);
    // A header line that never ends: 1 MB without \r\n\r\n.
    s.send_raw(&vec![b'X'; 1 << 20]);
    s.send_raw(b"\r\n\r\n");
    only_error(&mut s, -32700, "header block");
    // A 1 MB didOpen over a 100 kB limit: skipped (not buffered), reported.
    let text = "x".repeat(1 << 20);
    let open = json!({"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"textDocument":{"uri":"file:///big.py","languageId":"python","version":1,"text":text}}});
    s.send_raw(&frame(open.to_string().as_bytes()));
    only_error(&mut s, -32700, "exceeds the limit");
    assert_eq!(assert_answers(&mut s)["openDocuments"], 0);
    assert!(s.shutdown().success());
}

#[test]
fn truncated_body_at_end_of_input_exits_with_a_clear_log() {
    let mut s = started(&[]);
    s.send_raw(b"Content-Length: 100\r\n\r\n{\"jsonrpc\":\"2.0\"");
    s.close_stdin();
    let status = s
        .wait_exit(Duration::from_secs(10))
        .expect("server did not exit at end of input");
    assert!(status.success(), "{status}");
    let log = s.log_text();
    assert!(
        log.contains("input ended in the middle of a message body (16 of 100 bytes received)"),
        "{log}"
    );
}

#[test]
fn unknown_methods_and_invalid_params() {
    let mut s = started(&[]);
    let r = s.request_full("textDocument/noSuchThing", json!({}));
    assert_eq!(r["error"]["code"], -32601, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Method not found"),
        "{r}"
    );
    // Unknown notifications, with and without `$/`, are ignored.
    s.notify("$/noSuchNotification", json!({}));
    s.notify("custom/noSuchNotification", json!([1, 2]));
    // Invalid params: a clear message naming the problem.
    let r = s.request_full("textDocument/completion", json!({ "textDocument": 5 }));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid type"),
        "{r}"
    );
    let r = s.request_full("textDocument/inlineCompletion", json!(null));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    let r = s.request_full(
        "workspace/executeCommand",
        json!({ "command": "slm-ls.nope" }),
    );
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown command slm-ls.nope"),
        "{r}"
    );
    // A document-sync notification with invalid params cannot be answered
    // (it is a notification) and tower-lsp would drop it silently: the user
    // is told the document may be out of sync.
    s.open("file:///a.py", "python", "abc\n");
    s.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": "file:///a.py", "version": 2 }, "contentChanges": "nope" }),
    );
    let told = wait_for(&mut s, |m| {
        m["method"] == "window/showMessage"
            && m["params"]["message"].as_str().is_some_and(|t| {
                t.contains("ignored a textDocument/didChange notification with invalid params")
                    && t.contains("file:///a.py")
            })
    });
    assert!(told, "user was not told: {:?}", s.notifications);
    assert_eq!(assert_answers(&mut s)["openDocuments"], 1);
    assert!(s.shutdown().success());
}

#[test]
fn requests_before_initialize_and_after_shutdown() {
    let mut s = TestServer::spawn(&[], &[NO_MODEL]);
    let r = s.request_full("slm-ls/stats", json!(null));
    assert_eq!(r["error"]["code"], -32002, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not initialized"),
        "{r}"
    );
    // Notifications before initialize are dropped, not fatal.
    s.open("file:///early.py", "python", "x\n");
    s.initialize(json!({}), json!({}));
    assert_eq!(assert_answers(&mut s)["openDocuments"], 0);
    // A second initialize is refused.
    let r = s.request_full("initialize", json!({ "capabilities": {} }));
    assert_eq!(r["error"]["code"], -32600, "{r}");
    // After shutdown: requests are invalid, exit ends the process cleanly.
    let r = s.request_full("shutdown", json!(null));
    assert!(r.get("error").is_none(), "{r}");
    let r = s.request_full("slm-ls/stats", json!(null));
    assert_eq!(r["error"]["code"], -32600, "{r}");
    s.notify("exit", json!(null));
    let status = s.wait_exit(Duration::from_secs(10)).expect("no exit");
    assert!(status.success());
}

#[test]
fn exit_without_shutdown_still_ends_the_process() {
    let mut s = started(&[]);
    s.notify("exit", json!(null));
    assert!(s.wait_exit(Duration::from_secs(10)).is_some(), "no exit");
}

#[test]
fn panics_are_internal_errors_and_the_server_goes_on() {
    let mut s = started(&[HOOKS]);
    s.open("file:///p.py", "python", "abc\n");
    let r = s.request_full(
        "slm-ls/test/panic",
        json!({ "message": "boom in a request" }),
    );
    assert_eq!(r["error"]["code"], -32603, "{r}");
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("internal error") && msg.contains("boom in a request"),
        "{r}"
    );
    s.notify(
        "slm-ls/test/panicNotification",
        json!({ "message": "boom in a notification" }),
    );
    let told = wait_for(&mut s, |m| {
        m["method"] == "window/showMessage"
            && m["params"]["message"]
                .as_str()
                .is_some_and(|t| t.contains("boom in a notification"))
    });
    assert!(told, "user was not told: {:?}", s.notifications);
    // No poisoned state: documents still sync, requests still work.
    s.change("file:///p.py", 2, json!([{ "range": { "start": { "line": 0, "character": 3 }, "end": { "line": 0, "character": 3 } }, "text": "d" }]));
    let t = s.request("slm-ls/test/documentText", json!({ "uri": "file:///p.py" }));
    assert_eq!(t["text"], "abcd\n");
    for _ in 0..20 {
        let r = s.request_full("slm-ls/test/panic", json!(null));
        assert_eq!(r["error"]["code"], -32603);
    }
    assert!(s.log_text().contains("internal error in slm-ls/test/panic"));
    assert!(s.shutdown().success());
}

#[test]
fn test_hooks_are_off_by_default() {
    let mut s = started(&[]);
    let r = s.request_full("slm-ls/test/panic", json!(null));
    assert_eq!(r["error"]["code"], -32601, "{r}");
    let r = s.request_full("slm-ls/test/documentText", json!({ "uri": "file:///x" }));
    assert_eq!(r["error"]["code"], -32601, "{r}");
    assert!(s.shutdown().success());
}

/// Many malformed inputs back to back, interleaved with good requests:
/// every good request is answered, and the process never dies.
#[test]
fn a_barrage_of_garbage_never_kills_the_server() {
    let mut s = started(&[]);
    let garbage: Vec<Vec<u8>> = vec![
        frame(b"{"),
        frame(b"null"),
        frame(b"{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"x\"}"),
        frame(b"{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"x\"}"),
        frame(b"{\"jsonrpc\":\"2.0\",\"method\":7}"),
        frame(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":1,\"error\":{}}"),
        b"Content-Length: 99999999999999999999999\r\n\r\n".to_vec(),
        b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n".to_vec(),
        b"\r\n\r\n\r\n".to_vec(),
        b"Content-Length:\r\n\r\n".to_vec(),
        b"\xff\xfe\xfd\r\n\r\n".to_vec(),
        frame("{\"jsonrpc\":\"2.0\",\"method\":\"textDocument/didOpen\",\"params\":{\"textDocument\":{\"uri\":\"file:///g\",\"languageId\":\"x\",\"version\":1,\"text\":\"\\ud800\"}}}".as_bytes()),
    ];
    for round in 0..50 {
        for g in &garbage {
            s.send_raw(g);
        }
        let id = 10_000 + round;
        s.send_raw(&frame(
            json!({"jsonrpc":"2.0","id":id,"method":"slm-ls/stats"})
                .to_string()
                .as_bytes(),
        ));
        let r = s.response(id, Duration::from_secs(10));
        assert!(r.get("result").is_some(), "round {round}: {r}");
    }
    assert!(s.is_alive());
    assert!(s.shutdown().success());
}
