//! The remote model stays out of the local path: with a remote provider
//! configured, normal completion makes no request at all, and a stalled
//! remote call does not slow local completion down. Uses the real default
//! model (like `lsp_e2e.rs`) and a fake provider on 127.0.0.1.

mod common;
mod remote_support;

use std::time::{Duration, Instant};

use common::{fixture, TestServer};
use remote_support::{openai_chat, FakeServer, Reply};
use serde_json::{json, Value};

const URI: &str = "file:///work/src/fib.py";
const KEY_ENV: &str = "SLM_TEST_REMOTE_KEY";

fn start(remote_url: &str, timeout_ms: u64) -> TestServer {
    common::model_path();
    let mut s = TestServer::spawn(&[], &[(KEY_ENV, "sk-test-abcdefghijklmnopqrstuvwx2345")]);
    s.initialize(
        json!({
            "completion": { "maxTokens": 12 },
            "remote": { "provider": "openai", "endpoint": remote_url, "model": "gpt-test", "apiKeyEnv": KEY_ENV, "timeoutMs": timeout_ms },
        }),
        json!({}),
    );
    s.wait_ready();
    s
}

fn items(r: &Value) -> &Vec<Value> {
    r["result"]["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {r}"))
}

#[test]
fn normal_completion_makes_no_remote_request() {
    let fake = FakeServer::always(Reply::sse(openai_chat(&["unused"]), Duration::ZERO));
    let mut s = start(&fake.url, 30_000);
    let (text, line, col) =
        fixture("def fibonacci(n):\n    if n < 2:\n        return n\n    return fib$0\n");
    s.open(URI, "python", &text);
    for _ in 0..3 {
        let r = s.inline_completion(URI, line, col);
        assert_eq!(items(&r).len(), 1, "{r}");
    }
    s.change(URI, 2, json!([{ "range": { "start": { "line": line, "character": col }, "end": { "line": line, "character": col } }, "text": "o" }]));
    s.request("textDocument/completion", json!({ "textDocument": { "uri": URI }, "position": { "line": line, "character": col + 1 } }));
    // Offering the action is not using it.
    let actions = s.request(
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": URI }, "range": { "start": { "line": 0, "character": 0 }, "end": { "line": 2, "character": 0 } }, "context": { "diagnostics": [] } }),
    );
    assert_eq!(actions[0]["title"], "Explain with gpt-test");
    let stats = s.request("slm-ls/stats", json!(null));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        fake.connections(),
        0,
        "a remote connection was made without a remote command"
    );

    // Local tokens are counted and priced as cost saved; nothing remote yet.
    let remote = &stats["remote"];
    assert!(
        remote["localCompletionTokens"].as_u64().unwrap() > 0,
        "{stats}"
    );
    assert!(
        remote["estimatedCostSaved"].as_f64().unwrap() > 0.0,
        "{stats}"
    );
    assert_eq!(remote["remoteTokens"], 0);
    assert!(s.shutdown().success());
}

#[test]
fn local_completion_answers_while_an_explain_is_stalled() {
    // The provider accepts and then says nothing for a minute.
    let fake = FakeServer::always(Reply::Hang(Duration::from_secs(60)));
    let mut s = start(&fake.url, 50_000);
    let (text, line, col) =
        fixture("def fibonacci(n):\n    if n < 2:\n        return n\n    return fib$0\n");
    s.open(URI, "python", &text);
    // A warm-up completion so the timing below measures a normal request.
    items(&s.inline_completion(URI, line, col));

    // Explains on the slow provider: a newer one supersedes an older one,
    // which answers RequestCancelled at once (not when its socket gives up).
    let explain = |s: &mut TestServer| {
        s.request_async(
            "workspace/executeCommand",
            json!({ "command": "slm-ls.explain", "arguments": [{ "uri": URI, "range": { "start": { "line": 1, "character": 0 }, "end": { "line": 3, "character": 0 } } }] }),
        )
    };
    // Count the provider's requests as we go: reading the count after
    // sending raced with the request's arrival (CI waited for one too many).
    let mut seen = fake.requests().len();
    for _ in 0..3 {
        let old = explain(&mut s);
        seen += 1;
        fake.wait_requests(seen, Duration::from_secs(10));
        let _newer = explain(&mut s);
        let t = Instant::now();
        let r = s.response(old, Duration::from_secs(10));
        assert_eq!(r["error"]["code"], -32800, "{r}");
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "a superseded explain waited for its socket"
        );
        // The newer one reaches the provider before the next supersedes it.
        seen += 1;
        fake.wait_requests(seen, Duration::from_secs(10));
    }
    let stuck = vec![explain(&mut s)];
    std::thread::sleep(Duration::from_millis(300));

    // Local completion is unaffected while explains hang: edits apply and
    // completions answer.
    let open_text = "import os\n\ndef list_files(path):\n    return os.li";
    s.open("file:///work/src/ls.py", "python", open_text);
    let t = Instant::now();
    for ch in ["s", "t"] {
        let col = open_text.lines().last().unwrap().len() as u32 + if ch == "s" { 0 } else { 1 };
        s.change("file:///work/src/ls.py", if ch == "s" { 2 } else { 3 }, json!([{ "range": { "start": { "line": 3, "character": col }, "end": { "line": 3, "character": col } }, "text": ch }]));
        let r = s.request_full(
            "textDocument/completion",
            json!({ "textDocument": { "uri": "file:///work/src/ls.py" }, "position": { "line": 3, "character": col + 1 } }),
        );
        assert!(r["result"]["items"].is_array(), "{r}");
    }
    let r = s.inline_completion(URI, line, col);
    assert_eq!(items(&r).len(), 1, "{r}");
    let took = t.elapsed();
    // Blocked behind the stalled call it would take >= 50 s (timeoutMs);
    // the margin is for slow, loaded CI machines.
    assert!(
        took < Duration::from_secs(40),
        "local completion was held up: {took:?}"
    );
    assert_eq!(s.request("slm-ls/stats", json!(null))["openDocuments"], 2);

    // The explain was still pending all along: cancelling it now gets
    // RequestCancelled, not a result.
    for id in &stuck {
        s.notify("$/cancelRequest", json!({ "id": id }));
    }
    for id in stuck {
        let r = s.response(id, Duration::from_secs(10));
        assert_eq!(r["error"]["code"], -32800, "{r}");
    }
    assert!(s.shutdown().success());
}
