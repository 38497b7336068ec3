//! One document's long prefill does not hold up another document: the
//! engine serves the newest request first and the preempted prompt resumes
//! from the chunks it had already evaluated (they stay in its KV slot).
//!
//! Real binary, real default model, over LSP. Timings are printed, not
//! asserted tightly (speed belongs to `benches/`); what is asserted is the
//! order of the answers and the resumed work.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::json;

const BIG: &str = "file:///work/preempt/big.py";

/// A document whose last line needs the whole prefix budget, so its cold
/// prefill takes many chunks.
fn big_python() -> String {
    (0..400)
        .map(|i| {
            format!(
                "def handler_{i}(request, retries={}):\n    return request.send(retries * {}, timeout={})\n\n\n",
                i % 5,
                i * 7,
                i % 13
            )
        })
        .collect::<String>()
        + "def main():\n    "
}

fn small_python(name: &str) -> String {
    format!("def {name}(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n    return ")
}

fn inline(s: &mut TestServer, uri: &str, line: u32, character: u32) -> i64 {
    s.request_async(
        "textDocument/inlineCompletion",
        json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": character }, "context": { "triggerKind": 1 } }),
    )
}

#[test]
fn a_small_document_is_answered_during_another_documents_long_prefill() {
    common::model_path();
    let mut s = TestServer::spawn(&[], &[("RUST_LOG", "slm_ls=info")]);
    s.initialize(
        json!({
            // 64-token chunks (the default batch size), a prefix budget of
            // ~900 tokens: the big prompt takes many chunks to prefill.
            "model": { "batchSize": 64, "cacheSlots": 4 },
            "context": { "prefixTokens": 900, "suffixTokens": 64, "extraTokens": 0 },
            "completion": { "maxTokens": 8, "maxTimeMs": 20000 }
        }),
        json!({}),
    );
    s.wait_ready();

    // The small document's cold time, alone.
    let alone = "file:///work/preempt/alone.py";
    s.open(alone, "python", &small_python("add"));
    let t = Instant::now();
    let id = inline(&mut s, alone, 2, 11);
    s.response(id, Duration::from_secs(60));
    let alone_ms = t.elapsed().as_millis();

    // A long prefill for the big document...
    let text = big_python();
    let last = text.matches('\n').count() as u32;
    s.open(BIG, "python", &text);
    let t_big = Instant::now();
    let big = inline(&mut s, BIG, last, 4);
    std::thread::sleep(Duration::from_millis(2500));
    assert!(!s.answered(big), "the big prefill is still running");

    // ...then a request for a small document (other text: no reuse).
    let small = "file:///work/preempt/small.py";
    s.open(small, "python", &small_python("plus"));
    let t_small = Instant::now();
    let id = inline(&mut s, small, 2, 11);
    let r = s.response(id, Duration::from_secs(120));
    let small_ms = t_small.elapsed().as_millis();
    assert!(r.get("error").is_none(), "{r}");
    assert!(
        !s.answered(big),
        "the small document was answered before the big one (in {small_ms} ms)"
    );
    let r = s.response(big, Duration::from_secs(300));
    assert!(r.get("error").is_none(), "{r}");
    let big_ms = t_big.elapsed().as_millis();
    eprintln!(
        "small alone {alone_ms} ms; small during the big prefill {small_ms} ms; big {big_ms} ms"
    );

    let stats = s.request("slm-ls/stats", json!(null));
    assert!(
        stats["completion"]["preempted"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    // The big request resumed: its answer reused the chunks evaluated before
    // it gave way (the log line of each completion says how many).
    let log = s.log_text();
    let resumed = log
        .lines()
        .filter(|l| l.contains("completion") && !l.contains("preempted=0"))
        .find(|l| l.contains("preempted="))
        .unwrap_or_else(|| panic!("no completion line of a preempted job in the log:\n{log}"));
    let reused: u64 = resumed
        .split("reused=")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no reused= in {resumed:?}"));
    assert!(
        reused >= 64,
        "the resumed prefill kept at least one chunk: {resumed}"
    );
    assert!(s.shutdown().success());
}
