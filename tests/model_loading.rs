//! Requests that arrive while the model loads wait for it (up to
//! `completion.loadWaitMs`) instead of failing; past the bound the answer
//! is empty (`isIncomplete` for the menu, so the editor asks again);
//! `$/cancelRequest` ends the wait; only a model that failed to load is an
//! error, and its message says how to fix it, naming the setting that
//! points at a wrong file.
//!
//! Real binary, real default model, over LSP.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::{json, Value};

const URI: &str = "file:///work/load/a.py";
const TEXT: &str = "def add(first, second):\n    \"\"\"Return the sum.\"\"\"\n    return \n";

/// Initialize and open a document, as an editor does right at start.
fn fresh(settings: Value, args: &[&str], env: &[(&str, &str)]) -> TestServer {
    let mut s = TestServer::spawn(args, env);
    s.initialize(settings, json!({}));
    s.open(URI, "python", TEXT);
    s
}

fn menu(s: &mut TestServer) -> i64 {
    s.request_async(
        "textDocument/completion",
        json!({ "textDocument": { "uri": URI }, "position": { "line": 2, "character": 11 }, "context": { "triggerKind": 1 } }),
    )
}

fn inline(s: &mut TestServer) -> i64 {
    s.request_async(
        "textDocument/inlineCompletion",
        json!({ "textDocument": { "uri": URI }, "position": { "line": 2, "character": 11 }, "context": { "triggerKind": 1 } }),
    )
}

#[test]
fn requests_right_after_initialize_wait_for_the_model() {
    common::model_path();
    let t = Instant::now();
    let mut s = fresh(json!({ "completion": { "maxTokens": 12 } }), &[], &[]);
    let (m, i) = (menu(&mut s), inline(&mut s));
    let r = s.response(m, Duration::from_secs(60));
    eprintln!("first menu answer {:?} after start: {r}", t.elapsed());
    assert!(r.get("error").is_none(), "no error while loading: {r}");
    assert_eq!(r["result"]["isIncomplete"], true, "{r}");
    assert_eq!(
        r["result"]["items"].as_array().map(Vec::len),
        Some(1),
        "the model loaded within completion.loadWaitMs and answered: {r}"
    );
    let r = s.response(i, Duration::from_secs(60));
    eprintln!("first inline answer {:?} after start", t.elapsed());
    assert!(r.get("error").is_none(), "{r}");
    assert!(r["result"]["items"][0]["insertText"].is_string(), "{r}");
    assert!(s.shutdown().success());
}

#[test]
fn past_the_bound_the_answer_is_empty_and_incomplete() {
    common::model_path();
    let mut s = fresh(json!({ "completion": { "loadWaitMs": 0 } }), &[], &[]);
    let (m, i) = (menu(&mut s), inline(&mut s));
    let r = s.response(m, Duration::from_secs(10));
    // Loading a model takes far longer than answering this.
    assert_eq!(
        r["result"],
        json!({ "isIncomplete": true, "items": [] }),
        "{r}"
    );
    let r = s.response(i, Duration::from_secs(10));
    assert_eq!(r["result"], json!({ "items": [] }), "{r}");
    // Once loaded, the same request gets a suggestion.
    s.wait_ready();
    let id = menu(&mut s);
    let r = s.response(id, Duration::from_secs(60));
    assert_eq!(
        r["result"]["items"].as_array().map(Vec::len),
        Some(1),
        "{r}"
    );
    assert!(s.shutdown().success());
}

#[test]
fn cancel_request_ends_the_wait() {
    common::model_path();
    let mut s = fresh(json!({ "completion": { "loadWaitMs": 60000 } }), &[], &[]);
    let id = menu(&mut s);
    let t = Instant::now();
    s.notify("$/cancelRequest", json!({ "id": id }));
    let r = s.response(id, Duration::from_secs(10));
    eprintln!("cancelled {:?} after $/cancelRequest: {r}", t.elapsed());
    assert_eq!(r["error"]["code"], -32800, "{r}");
    assert!(s.shutdown().success());
}

/// Only a model that failed to load is an error. A wrong path the user set
/// is blamed on the setting that set it, not answered with "fetch".
#[test]
fn a_wrong_model_path_names_where_it_was_configured() {
    let missing = "/nonexistent/slm-ls-test/model.gguf";
    for (args, env, settings, named) in [
        (vec!["--model", missing], vec![], json!({}), "--model"),
        (
            vec![],
            vec![],
            json!({ "model": { "path": missing } }),
            "model.path",
        ),
        (
            vec![],
            vec![("SLM_LS_MODEL", missing)],
            json!({}),
            "SLM_LS_MODEL",
        ),
    ] {
        let mut s = fresh(settings, &args, &env);
        let id = inline(&mut s);
        let r = s.response(id, Duration::from_secs(30));
        let msg = r["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("an error: {r}"));
        eprintln!("{named}: {msg}");
        assert!(
            msg.contains(missing) && msg.contains(&format!("configured with {named}")),
            "the message names the file and {named}: {msg}"
        );
        assert!(msg.contains("correct"), "and says what to do: {msg}");
        let id = menu(&mut s);
        let r = s.response(id, Duration::from_secs(30));
        assert_eq!(r["error"]["code"], -32803, "{r}");
        assert!(s.shutdown().success());
    }
}
