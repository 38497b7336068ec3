//! End-to-end: the real binary, the real default model, LSP over stdio.

mod common;

use std::time::Duration;

use common::{fixture, TestServer};
use serde_json::{json, Value};

const URI: &str = "file:///work/src/fib.py";

#[test]
fn handshake_advertises_the_capabilities() {
    let mut s = TestServer::spawn(&[], &[]);
    let r = s.initialize(
        json!({}),
        json!({ "general": { "positionEncodings": ["utf-8", "utf-16"] } }),
    );
    let caps = &r["capabilities"];
    assert_eq!(
        caps["positionEncoding"], "utf-8",
        "UTF-8 is chosen when offered"
    );
    assert_eq!(caps["textDocumentSync"]["change"], 2, "incremental sync");
    assert_eq!(caps["textDocumentSync"]["openClose"], true);
    assert_eq!(caps["inlineCompletionProvider"], true);
    assert!(caps["completionProvider"].is_object());
    let cmds = caps["executeCommandProvider"]["commands"]
        .as_array()
        .unwrap();
    assert!(cmds.contains(&json!("slm-ls.explain")));
    assert_eq!(r["serverInfo"]["name"], "slm-ls");
    let status = s.shutdown();
    assert!(status.success(), "clean exit after shutdown/exit: {status}");
}

#[test]
fn utf16_is_the_default_encoding() {
    let mut s = TestServer::spawn(&[], &[]);
    let r = s.initialize(json!({}), json!({ "textDocument": {} }));
    assert_eq!(r["capabilities"]["positionEncoding"], "utf-16");
}

#[test]
fn open_edit_and_complete_with_the_real_model() {
    common::model_path();
    let mut s = TestServer::start(json!({ "completion": { "maxTokens": 48, "maxTimeMs": 30000 } }));
    s.wait_ready();
    let (text, line, col) =
        fixture("def fibonacci(n):\n    if n < 2:\n        return n\n    return fib$0\n");
    // Open without the last three characters, then type them as edits.
    let open_text = text.replacen("return fib\n", "return \n", 1);
    s.open(URI, "python", &open_text);
    for (i, ch) in ["f", "i", "b"].iter().enumerate() {
        let c = col - 3 + i as u32;
        s.change(URI, 2 + i as i32, json!([{ "range": { "start": { "line": line, "character": c }, "end": { "line": line, "character": c } }, "text": ch }]));
    }
    let r = s.inline_completion(URI, line, col);
    let items = r["result"]["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {r}"));
    assert_eq!(items.len(), 1);
    let item = &items[0];
    let insert = item["insertText"].as_str().unwrap();
    assert!(
        !insert.trim().is_empty(),
        "the model suggested nothing: {r}"
    );
    assert_eq!(
        item["range"]["start"],
        json!({ "line": line, "character": col })
    );
    assert_eq!(
        item["range"]["end"],
        json!({ "line": line, "character": col })
    );
    assert_eq!(item["command"]["command"], "slm-ls.accepted");
    assert!(s.shutdown().success());
}

#[test]
fn completion_items_edit_up_to_the_cursor() {
    common::model_path();
    let mut s = TestServer::start(json!({ "completion": { "maxTokens": 12 } }));
    s.wait_ready();
    let (text, line, col) = fixture("import os\n\ndef list_files(path):\n    return os.list$0\n");
    s.open(URI, "python", &text);
    let r = s.request(
        "textDocument/completion",
        json!({ "textDocument": { "uri": URI }, "position": { "line": line, "character": col } }),
    );
    assert_eq!(r["isIncomplete"], true);
    let item = &r["items"][0];
    let new_text = item["textEdit"]["newText"].as_str().unwrap();
    assert_eq!(
        item["filterText"],
        json!(new_text.lines().next().unwrap().trim_end()),
        "filterText is the word being typed and the suggestion's first line"
    );
    assert_eq!(
        item["textEdit"]["range"]["end"],
        json!({ "line": line, "character": col })
    );
    assert_eq!(
        item["textEdit"]["range"]["start"],
        json!({ "line": line, "character": col - 4 })
    );
    assert!(item["textEdit"]["newText"]
        .as_str()
        .unwrap()
        .starts_with("list"));
}

/// Whether a completion item replaces exactly `word`, which starts at
/// (line, start) and ends at the cursor: its range ends where the server
/// saw the cursor, so a request that saw the text before `word` was typed
/// (cursor clamped to a shorter line) fails this.
fn edits_word(item: &Value, line: u32, start: u32, word: &str) -> bool {
    let end = start + word.len() as u32;
    item["textEdit"]["range"]
        == json!({ "start": { "line": line, "character": start }, "end": { "line": line, "character": end } })
        && item["textEdit"]["newText"]
            .as_str()
            .is_some_and(|t| t.starts_with(word))
}

/// Rapid didChange + completion pairs: every completion must see the edit
/// sent just before it (tower-lsp runs handlers concurrently; our edits are
/// applied synchronously in arrival order).
#[test]
fn each_completion_sees_its_own_edit() {
    common::model_path();
    let mut s = TestServer::start(json!({ "completion": { "maxTokens": 2 } }));
    s.wait_ready();
    let n = 12;
    for d in 0..n {
        s.open(&format!("file:///work/d{d}.py"), "python", "x = ");
    }
    // Fire everything without waiting: edit doc d, then ask at the new end.
    let mut ids = Vec::new();
    for d in 0..n {
        let uri = format!("file:///work/d{d}.py");
        let word = format!("tok{d}");
        s.change(&uri, 2, json!([{ "range": { "start": { "line": 0, "character": 4 }, "end": { "line": 0, "character": 4 } }, "text": word }]));
        let id = s.request_async(
            "textDocument/completion",
            json!({ "textDocument": { "uri": uri }, "position": { "line": 0, "character": 4 + word.len() } }),
        );
        ids.push((id, word));
    }
    for (id, word) in ids {
        let r = s.response(id, Duration::from_secs(120));
        let items = r["result"]["items"]
            .as_array()
            .unwrap_or_else(|| panic!("request {id}: {r}"));
        if let Some(item) = items.first() {
            assert!(
                edits_word(item, 0, 4, &word),
                "completion {id} saw stale text: {r}"
            );
        }
    }
    // Same document, rapid typing: superseded requests are cancelled, every
    // request is answered exactly once, and answered ones saw their edit.
    s.open("file:///work/same.py", "python", "value = ");
    let mut ids = Vec::new();
    let mut col = 8;
    for (v, ch) in "abcdefgh".chars().enumerate() {
        s.change("file:///work/same.py", 2 + v as i32, json!([{ "range": { "start": { "line": 0, "character": col }, "end": { "line": 0, "character": col } }, "text": ch.to_string() }]));
        col += 1;
        ids.push((s.request_async("textDocument/completion", json!({ "textDocument": { "uri": "file:///work/same.py" }, "position": { "line": 0, "character": col } })), "abcdefgh"[..v + 1].to_string()));
    }
    let mut answered = 0;
    for (id, word) in ids {
        let r = s.response(id, Duration::from_secs(120));
        if let Some(err) = r.get("error") {
            assert_eq!(
                err["code"], -32800,
                "only cancellation is an acceptable error: {r}"
            );
        } else {
            answered += 1;
            if let Some(item) = r["result"]["items"].as_array().and_then(|a| a.first()) {
                assert!(edits_word(item, 0, 8, &word), "stale text for {id}: {r}");
            }
        }
    }
    assert!(answered >= 1, "the last request must be answered");
    // No response arrives twice.
    while let Some(m) = s.recv(Duration::from_millis(300)) {
        assert!(m.get("method").is_some(), "unexpected extra response: {m}");
    }
}

#[test]
fn streams_partial_text_through_work_done_progress() {
    common::model_path();
    let mut s = TestServer::start(
        json!({ "completion": { "maxTokens": 24 }, "model": { "cacheSlots": 2 } }),
    );
    s.wait_ready();
    let (text, line, col) =
        fixture("# Print the numbers one to ten\nfor i in range(1, 11):\n    $0");
    s.open(URI, "python", &text);
    let r = s.request_full(
        "textDocument/inlineCompletion",
        json!({ "textDocument": { "uri": URI }, "position": { "line": line, "character": col }, "context": { "triggerKind": 1 }, "workDoneToken": "tok-1" }),
    );
    let final_text = r["result"]["items"][0]["insertText"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let reports: Vec<String> = s
        .notifications_named("$/progress")
        .into_iter()
        .filter(|n| n["params"]["token"] == "tok-1" && n["params"]["value"]["kind"] == "report")
        .map(|n| {
            n["params"]["value"]["message"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        !reports.is_empty(),
        "no partial text was streamed before the response"
    );
    for part in &reports {
        assert!(
            final_text.starts_with(part.trim_end()),
            "partial {part:?} is not a prefix of {final_text:?}"
        );
    }
    let ends = s
        .notifications_named("$/progress")
        .into_iter()
        .filter(|n| n["params"]["value"]["kind"] == "end")
        .count();
    assert!(ends >= 1, "progress must end");
}

#[test]
fn cancel_request_is_answered_with_request_cancelled() {
    common::model_path();
    let mut s = TestServer::start(json!({ "completion": { "maxTokens": 64, "maxTimeMs": 10000 } }));
    s.wait_ready();
    let big: String = (0..300)
        .map(|i| format!("def function_number_{i}(argument):\n    return argument * {i}\n"))
        .collect();
    s.open(URI, "python", &big);
    // Let the open-time warm-up finish so cancellation hits the request.
    std::thread::sleep(Duration::from_millis(200));
    let id = s.request_async(
        "textDocument/inlineCompletion",
        json!({ "textDocument": { "uri": URI }, "position": { "line": 600, "character": 0 }, "context": { "triggerKind": 1 } }),
    );
    std::thread::sleep(Duration::from_millis(50));
    s.notify("$/cancelRequest", json!({ "id": id }));
    let r = s.response(id, Duration::from_secs(60));
    assert_eq!(r["error"]["code"], -32800, "{r}");
    // The server still answers.
    let stats = s.request("slm-ls/stats", json!(null));
    assert_eq!(stats["openDocuments"], 1);
}

fn error_message(r: &Value) -> String {
    r["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn missing_model_is_a_clear_error_and_documents_still_sync() {
    let mut s = TestServer::spawn(&[], &[("SLM_LS_MODEL", "/nonexistent/model.gguf")]);
    s.initialize(json!({}), json!({}));
    s.open(URI, "python", "x = 1\n");
    s.change(URI, 2, json!([{ "range": { "start": { "line": 0, "character": 4 }, "end": { "line": 0, "character": 5 } }, "text": "2" }]));
    // Wait until the failed load has been reported.
    let mut shown = None;
    for _ in 0..100 {
        let stats = s.request("slm-ls/stats", json!(null));
        if stats["model"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot be read"))
        {
            shown = Some(stats);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(shown.is_some(), "model error never reported");
    let r = s.inline_completion(URI, 0, 5);
    let msg = error_message(&r);
    assert!(
        msg.contains("/nonexistent/model.gguf") && msg.contains("models fetch"),
        "{r}"
    );
    let show: Vec<_> = s.notifications_named("window/showMessage");
    assert!(
        show.iter().any(|n| n["params"]["message"]
            .as_str()
            .unwrap()
            .contains("did not load")),
        "user was not told"
    );
    assert_eq!(s.request("slm-ls/stats", json!(null))["openDocuments"], 1);
    assert!(s.shutdown().success());
}

#[test]
fn corrupt_model_is_a_clear_error() {
    let dir = common::Scratch::new("corrupt");
    let bad = dir.join("bad.gguf");
    std::fs::write(&bad, b"GGUF\x03\x00\x00\x00garbage-garbage-garbage").unwrap();
    let not_gguf = dir.join("text.gguf");
    std::fs::write(&not_gguf, b"hello, I am not a model").unwrap();
    for (path, expect) in [(&bad, "could not load"), (&not_gguf, "not a GGUF")] {
        let mut s = TestServer::spawn(&["--model", path.to_str().unwrap()], &[]);
        s.initialize(json!({}), json!({}));
        s.open(URI, "python", "x = 1\n");
        let mut msg = String::new();
        for _ in 0..100 {
            let r = s.inline_completion(URI, 0, 5);
            msg = error_message(&r);
            if !msg.contains("loading") && !msg.contains("not loaded yet") {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(msg.contains(expect), "{path:?}: {msg}");
        assert!(s.is_alive());
    }
}

fn completion_stats(s: &mut TestServer) -> Value {
    s.request("slm-ls/stats", json!(null))["completion"].clone()
}

fn inline_at_end(s: &mut TestServer, uri: &str, text: &str) -> Value {
    let line = text.matches('\n').count() as u32;
    let col = text.rsplit('\n').next().unwrap().encode_utf16().count() as u32;
    s.inline_completion(uri, line, col)
}

/// Budgets are in the model's tokens, counted, not guessed from characters:
/// dense code (~1.5 chars per token) used to come out ~1.5x over budget.
#[test]
fn dense_code_stays_within_the_prompt_token_budget() {
    common::model_path();
    let mut s = TestServer::start(json!({
        "context": { "prefixTokens": 200, "suffixTokens": 32, "extraTokens": 0 },
        "completion": { "maxTokens": 4, "maxTimeMs": 20000 }
    }));
    s.wait_ready();
    let text: String = (0..500)
        .map(|i| format!("a{}=b[{}]+c{};d=e*f;\n", i % 10, i % 7, i % 3))
        .collect();
    let uri = "file:///work/src/dense.py";
    s.open(uri, "python", &text);
    let before = completion_stats(&mut s)["promptTokens"].as_u64().unwrap();
    let r = inline_at_end(&mut s, uri, &text);
    assert!(r.get("error").is_none(), "{r}");
    let prompt = completion_stats(&mut s)["promptTokens"].as_u64().unwrap() - before;
    // 200 prefix + 32 suffix tokens, and the format's few markers.
    assert!(
        prompt <= 200 + 32 + 8,
        "prompt of {prompt} tokens for a 232-token budget"
    );
    assert!(prompt >= 100, "the budget is used: {prompt} tokens");
    assert!(s.shutdown().success());
}

/// Typing on a line re-evaluates what follows the cursor (the suffix), never
/// the prompt head (cross-file snippets, the window): the head is kept while
/// the user types near one place, and the window start does not depend on
/// the cursor's line.
#[test]
fn typing_on_a_line_keeps_the_prompt_head_cached() {
    common::model_path();
    let mut s = TestServer::start(json!({
        "context": { "prefixTokens": 384, "suffixTokens": 64, "extraTokens": 128 },
        "completion": { "maxTokens": 4, "maxTimeMs": 20000 }
    }));
    s.wait_ready();
    let helpers = "def compute_total(items):\n    return sum(i.price * i.count for i in items)\n\n\ndef format_report(total, currency):\n    return f\"{total:.2f} {currency}\"\n\n\ndef apply_discount(total, rate):\n    return total * (1 - rate)\n";
    s.open("file:///work/src/helpers.py", "python", helpers);
    let mut text = String::from("from helpers import compute_total, format_report, apply_discount\n\n\ndef checkout(cart, currency):\n    \"\"\"Total the cart and print a report.\"\"\"\n    ");
    let after = "\n    print(report)\n    return total\n";
    let uri = "file:///work/src/shop.py";
    s.open(uri, "python", &format!("{text}{after}"));
    let r = inline_at_end(&mut s, uri, &text);
    assert!(r.get("error").is_none(), "{r}");
    let mut version = 2;
    for ch in "total = compute_total(cart)".chars() {
        let line = text.matches('\n').count() as u32;
        let col = text.rsplit('\n').next().unwrap().len() as u32;
        s.change(
            uri,
            version,
            json!([{ "range": { "start": { "line": line, "character": col }, "end": { "line": line, "character": col } }, "text": ch.to_string() }]),
        );
        version += 1;
        text.push(ch);
        let before = completion_stats(&mut s);
        let r = inline_at_end(&mut s, uri, &text);
        assert!(r.get("error").is_none(), "{r}");
        let now = completion_stats(&mut s);
        let d = |k: &str| now[k].as_u64().unwrap() - before[k].as_u64().unwrap();
        if d("completed") == 0 {
            continue; // answered from the typed-ahead cache
        }
        // The suffix (64 tokens at most) and the typed token or two.
        assert!(
            d("evaluatedTokens") <= 64 + 16,
            "typing {ch:?} re-evaluated {} of {} prompt tokens",
            d("evaluatedTokens"),
            d("promptTokens")
        );
    }
    assert!(s.shutdown().success());
}
