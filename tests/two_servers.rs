//! Two editor windows start two servers on the same cores. They take turns
//! to compute (`engine/turns.rs`) instead of spinning against each other,
//! so both answer at about half their solo speed, not many times slower.
//!
//! Real binary, real default model, two clients over LSP at once. The
//! bound asserted is loose (4x solo; without turns it was far worse); the
//! benchmark numbers are in benches/README.md.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::json;

fn server() -> TestServer {
    // Both servers use every core, as editors start them by default (the
    // test suite's SLM_LS_THREADS=1 would hide the contention), and take
    // turns as they do by default (tests/run.sh turns that off elsewhere).
    let mut s = TestServer::spawn(
        &[],
        &[("RUST_LOG", "slm_ls=debug"), ("SLM_LS_TAKE_TURNS", "1")],
    );
    s.initialize(
        json!({
            "model": { "threads": 2 },
            "context": { "extraTokens": 0 },
            "completion": { "maxTokens": 16, "maxTimeMs": 60000 }
        }),
        json!({}),
    );
    s.wait_ready();
    s
}

/// A file with a ~300-token prompt at its end, different per `tag` (no
/// server has it cached).
fn file(tag: &str) -> (String, u32, u32) {
    let mut text: String = (0..30)
        .map(|i| format!("def {tag}_step_{i}(value):\n    return value * {i} + len('{tag}')\n\n"))
        .collect();
    text.push_str(&format!("def {tag}_total(values):\n    return sum("));
    let line = text.matches('\n').count() as u32;
    let col = text.rsplit('\n').next().unwrap().len() as u32;
    (text, line, col)
}

fn ask(s: &mut TestServer, tag: &str) -> i64 {
    let uri = format!("file:///work/two/{tag}.py");
    let (text, line, col) = file(tag);
    s.open(&uri, "python", &text);
    s.request_async(
        "textDocument/inlineCompletion",
        json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": col }, "context": { "triggerKind": 1 } }),
    )
}

#[test]
fn two_servers_on_the_same_cores_take_turns() {
    common::model_path();
    let mut a = server();
    let mut b = server();

    // Solo: one server computes, the other is idle.
    let t = Instant::now();
    let id = ask(&mut a, "solo");
    assert!(a
        .response(id, Duration::from_secs(120))
        .get("error")
        .is_none());
    let solo = t.elapsed();

    // Both at once.
    let t = Instant::now();
    let ida = ask(&mut a, "alpha");
    let idb = ask(&mut b, "beta");
    let ra = a.response(ida, Duration::from_secs(300));
    let ta = t.elapsed();
    let rb = b.response(idb, Duration::from_secs(300));
    let tb = t.elapsed();
    assert!(ra.get("error").is_none(), "{ra}");
    assert!(rb.get("error").is_none(), "{rb}");
    eprintln!("solo {solo:?}; together: a {ta:?}, b {tb:?}");
    let waited = |s: &TestServer| s.log_text().contains("waited for another slm-ls");
    assert!(
        waited(&a) || waited(&b),
        "one server waited for the other's turn"
    );
    let worst = ta.max(tb);
    assert!(
        worst < solo * 4,
        "two servers together took {worst:?}, solo {solo:?}: they slow each other down"
    );
    assert!(a.shutdown().success());
    assert!(b.shutdown().success());
}
