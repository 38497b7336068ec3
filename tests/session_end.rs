//! The server does not outlive its editor: at the end of input, on `exit`
//! without `shutdown`, and on SIGTERM, slm-ls cancels its work and exits
//! within a second, even while the inference thread is in the middle of a
//! long prefill (llama.cpp cannot abort a running `decode`; these tests use
//! 512-token decode chunks and a prompt of thousands of tokens, so the
//! prefill runs for seconds).
//!
//! Real binary, real default model, over LSP.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::json;

const URI: &str = "file:///work/end/big.py";

/// Within this the process must be gone.
const EXIT_WITHIN: Duration = Duration::from_secs(1);

/// A document whose last line needs a prompt of the whole (large) prefix
/// budget, none of which the open-time warm-up has prefilled.
fn big_python() -> String {
    (0..1500)
        .map(|i| {
            format!(
                "def handler_{i}(request, retries={}):\n    \"\"\"Handle request number {i}.\"\"\"\n    return request.send(retries * {}, timeout={})\n\n\n",
                i % 5,
                i * 7,
                i % 13
            )
        })
        .collect::<String>()
        + "def main():\n    "
}

/// Start with large context budgets and big decode chunks, open the big
/// document, ask for a completion at its end, and return once the prefill
/// is surely running (the request has not been answered).
fn start_a_long_prefill() -> TestServer {
    common::model_path();
    let mut s = TestServer::start(json!({
        "model": { "contextTokens": 8192, "batchSize": 512, "cacheSlots": 1 },
        "context": { "prefixTokens": 7000, "suffixTokens": 256, "extraTokens": 0 },
        "completion": { "maxTokens": 64, "maxTimeMs": 60000 }
    }));
    s.wait_ready();
    let text = big_python();
    let line = text.matches('\n').count() as u32;
    s.open(URI, "python", &text);
    s.request_async(
        "textDocument/inlineCompletion",
        json!({ "textDocument": { "uri": URI }, "position": { "line": line, "character": 4 }, "context": { "triggerKind": 1 } }),
    );
    std::thread::sleep(Duration::from_millis(1500));
    // Still running: nothing but notifications so far.
    while let Some(m) = s.recv(Duration::from_millis(10)) {
        assert!(
            m.get("method").is_some(),
            "the completion finished before the test could end the session; make the prompt longer: {m}"
        );
    }
    assert!(s.is_alive());
    s
}

fn exited_within(s: &mut TestServer, since: Instant, what: &str) -> std::process::ExitStatus {
    let status = s
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("slm-ls still runs 30 s after {what}"));
    let took = since.elapsed();
    eprintln!("exited {took:?} after {what}: {status}");
    assert!(
        took <= EXIT_WITHIN,
        "slm-ls took {took:?} to exit after {what} (limit {EXIT_WITHIN:?})"
    );
    status
}

#[test]
fn end_of_input_during_a_long_prefill_exits_within_a_second() {
    let mut s = start_a_long_prefill();
    let t = Instant::now();
    s.close_stdin();
    let status = exited_within(&mut s, t, "the end of input");
    assert!(status.success(), "{status}");
}

#[test]
fn exit_without_shutdown_during_a_long_prefill_exits_within_a_second() {
    let mut s = start_a_long_prefill();
    let t = Instant::now();
    s.notify("exit", json!(null));
    let status = exited_within(&mut s, t, "`exit` without `shutdown`");
    assert_eq!(
        status.code(),
        Some(1),
        "LSP: exit without shutdown is status 1"
    );
}

#[test]
fn sigterm_during_a_long_prefill_exits_within_a_second() {
    let mut s = start_a_long_prefill();
    let t = Instant::now();
    // SAFETY: kill(2) on our own child's pid.
    let r = unsafe { libc::kill(s.pid() as i32, libc::SIGTERM) };
    assert_eq!(r, 0, "kill failed");
    let status = exited_within(&mut s, t, "SIGTERM");
    assert_eq!(status.code(), Some(128 + 15), "{status}");
}

/// `shutdown` during a long prefill answers promptly (it does not wait for
/// the decode chunk to end), and `exit` then ends the process with 0.
#[test]
fn shutdown_and_exit_during_a_long_prefill_are_prompt() {
    let mut s = start_a_long_prefill();
    let t = Instant::now();
    let status = s.shutdown();
    let took = t.elapsed();
    eprintln!("shutdown + exit took {took:?}: {status}");
    assert!(status.success(), "{status}");
    assert!(took <= EXIT_WITHIN + Duration::from_millis(500), "{took:?}");
}
