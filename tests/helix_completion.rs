//! What Helix needs from `textDocument/completion`, checked over LSP with the
//! real binary and default model. Helix has no inline completion: slm-ls's
//! suggestion shows as one item in its completion menu, merged with the
//! items of the language's other servers.
//!
//! Helix (helix-lsp) offers `positionEncodings: ["utf-8", "utf-32",
//! "utf-16"]`, so columns here are UTF-8 bytes; it filters the menu with a
//! fuzzy match of the word before the cursor against each item's
//! `filterText` (else its `label`); it applies `textEdit` after restoring
//! the document as it was when it sent the request (so the range is the
//! request's, ending at its cursor); it shows `documentation` beside the
//! menu; while a list is `isIncomplete` it asks again as the user types;
//! and it sends no new request while one is pending.

mod common;
mod remote_support;

use common::TestServer;
use remote_support::{openai_chat, FakeServer, Reply};
use serde_json::{json, Value};

/// The client capabilities Helix 24.x/25.x sends (the parts that matter here).
fn helix_capabilities() -> Value {
    json!({
        "general": { "positionEncodings": ["utf-8", "utf-32", "utf-16"] },
        "window": { "workDoneProgress": true, "showDocument": { "support": true } },
        "workspace": { "configuration": true, "didChangeConfiguration": { "dynamicRegistration": false } },
        "textDocument": {
            "completion": {
                "completionItem": {
                    "snippetSupport": true,
                    "resolveSupport": { "properties": ["documentation", "detail", "additionalTextEdits"] },
                    "insertReplaceSupport": true,
                    "deprecatedSupport": true,
                    "tagSupport": { "valueSet": [1] },
                    "labelDetailsSupport": true
                },
                "completionItemKind": {},
                "contextSupport": true
            },
            "codeAction": { "codeActionLiteralSupport": { "codeActionKind": { "valueSet": ["", "quickfix", "refactor", "source"] } } },
            "publishDiagnostics": {}
        }
    })
}

fn start() -> TestServer {
    // Like `[language-server.slm-ls.config]` in languages.toml (fewer
    // tokens, to keep the tests short), with a generous time budget: these
    // tests are about the menu item, and on
    // a loaded machine the default 3 s can cut a suggestion mid-expression
    // (it is then not shown at all; `postprocess` fixtures cover that).
    start_with(json!({ "completion": { "maxTokens": 24, "maxTimeMs": 20000 } }))
}

fn start_with(config: Value) -> TestServer {
    common::model_path();
    let mut s = TestServer::spawn(&[], &[]);
    let r = s.initialize(config, helix_capabilities());
    assert_eq!(
        r["capabilities"]["positionEncoding"], "utf-8",
        "Helix gets UTF-8 positions"
    );
    let triggers = r["capabilities"]["completionProvider"]["triggerCharacters"]
        .as_array()
        .expect("completion trigger characters");
    assert!(triggers.contains(&json!(".")));
    s.wait_ready();
    s
}

fn complete(
    s: &mut TestServer,
    uri: &str,
    line: u32,
    byte_col: u32,
    trigger: Option<&str>,
) -> Value {
    let context = match trigger {
        Some(c) => json!({ "triggerKind": 2, "triggerCharacter": c }),
        None => json!({ "triggerKind": 1 }),
    };
    s.request(
        "textDocument/completion",
        json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": byte_col }, "context": context }),
    )
}

/// Whether Helix's menu keeps `item` once the word before the cursor is
/// `typed`: its filter is a fuzzy match (nucleo, case-insensitive) of that
/// word against `filterText`; the characters must appear in order.
fn helix_keeps(item: &Value, typed: &str) -> bool {
    let filter = item["filterText"]
        .as_str()
        .or(item["label"].as_str())
        .unwrap_or("")
        .to_lowercase();
    let mut rest = filter.chars();
    typed
        .to_lowercase()
        .chars()
        .all(|c| rest.by_ref().any(|f| f == c))
}

/// The checks every item must pass to look right in Helix's menu.
fn check_item(item: &Value, line: u32, word_start: u32, cursor: u32, word: &str) -> String {
    let range = &item["textEdit"]["range"];
    assert_eq!(
        range["start"],
        json!({ "line": line, "character": word_start }),
        "the edit starts at the word (UTF-8 column): {item}"
    );
    assert_eq!(
        range["end"],
        json!({ "line": line, "character": cursor }),
        "the edit ends at the cursor (UTF-8 column): {item}"
    );
    let new_text = item["textEdit"]["newText"].as_str().unwrap().to_string();
    assert!(
        new_text.starts_with(word),
        "newText keeps the typed word: {item}"
    );
    assert!(
        new_text.len() > word.len(),
        "the edit adds the suggestion: {item}"
    );
    let label = item["label"].as_str().unwrap();
    assert!(!label.contains('\n'), "one-line label: {item}");
    assert!(!label.trim().is_empty(), "non-empty label: {item}");
    assert!(label.chars().count() <= 80, "label fits the menu: {item}");
    let suggestion = &new_text[word.len()..];
    assert_eq!(
        item["filterText"],
        json!(format!(
            "{word}{}",
            suggestion.lines().next().unwrap_or("").trim_end()
        )),
        "filterText is the typed word and the suggestion's first line: {item}"
    );
    let first_line = new_text.lines().next().unwrap_or("").trim();
    if suggestion.lines().next().unwrap_or("").trim().is_empty() {
        // A suggestion starting with a line break (a block body): `word ↵ next line`.
        let next = suggestion
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap();
        let shown = label.trim_end_matches('…');
        assert!(
            label.contains('↵'),
            "a leading line break shows as ↵: {label:?}"
        );
        assert!(
            next.starts_with(shown.rsplit("↵ ").next().unwrap()),
            "the label shows the first non-blank line: label {label:?}, newText {new_text:?}"
        );
    } else {
        assert!(
            first_line.starts_with(label.trim_end_matches('…')),
            "the label is the suggestion's first line: label {label:?}, newText {new_text:?}"
        );
    }
    assert!(
        label.starts_with(word),
        "the label starts with the typed word {word:?}: {label:?}"
    );
    assert!(
        item.get("insertText").is_none() || item["insertText"].is_null(),
        "textEdit only: {item}"
    );
    assert_ne!(
        item["insertTextFormat"],
        json!(2),
        "plain text, not a snippet ($ and braces in code stay literal): {item}"
    );
    let doc = &item["documentation"];
    assert_eq!(doc["kind"], "markdown", "Markdown documentation: {item}");
    let doc_text = doc["value"].as_str().unwrap();
    assert!(
        doc_text.contains(new_text.trim_end()),
        "the documentation shows the whole (multi-line) suggestion: doc {doc_text:?}, newText {new_text:?}"
    );
    new_text
}

#[test]
fn helix_menu_item_after_a_word_with_utf8_columns() {
    let mut s = start();
    let uri = "file:///work/helix/files.py";
    // Non-ASCII before the cursor on its line: UTF-8 and UTF-16 columns differ.
    let before_cursor = "    résumé = os.list";
    let text = format!("import os\n\n\ndef list_files(path):\n    \"\"\"Liste les fichiers d'un répertoire.\"\"\"\n{before_cursor}\n");
    s.open(uri, "python", &text);
    let line = 5;
    let cursor = before_cursor.len() as u32; // bytes
    assert_ne!(cursor, before_cursor.encode_utf16().count() as u32);
    let r = complete(&mut s, uri, line, cursor, None);
    assert_eq!(
        r["isIncomplete"], true,
        "Helix must ask again as the user types: {r}"
    );
    let items = r["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "one suggestion: {r}");
    let new_text = check_item(&items[0], line, cursor - 4, cursor, "list");

    // While the user types the suggestion, the item shown stays in Helix's
    // menu (its filter grows with the word before the cursor).
    let typed: String = new_text["list".len()..]
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .take(3)
        .collect();
    for n in 1..=typed.chars().count() {
        let word: String = format!("list{}", typed.chars().take(n).collect::<String>());
        assert!(
            helix_keeps(&items[0], &word),
            "the item vanished after typing {word:?} of its own suggestion: {}",
            items[0]
        );
    }
    assert!(
        !helix_keeps(&items[0], "listzzq"),
        "a word the suggestion does not continue filters it out"
    );

    // The user types the suggestion's next character: Helix asks again
    // (isIncomplete) and the item must follow the longer word.
    let next: String = new_text["list".len()..].chars().take(1).collect();
    assert!(!next.is_empty());
    s.change(
        uri,
        2,
        json!([{ "range": { "start": { "line": line, "character": cursor }, "end": { "line": line, "character": cursor } }, "text": next }]),
    );
    let cursor2 = cursor + next.len() as u32;
    let r = complete(&mut s, uri, line, cursor2, None);
    assert_eq!(r["isIncomplete"], true);
    let items = r["items"].as_array().unwrap();
    if let Some(item) = items.first() {
        let word = if next.chars().all(|c| c.is_alphanumeric() || c == '_') {
            format!("list{next}")
        } else {
            String::new()
        };
        let start = if word.is_empty() { cursor2 } else { cursor - 4 };
        check_item(item, line, start, cursor2, &word);
    }
    assert!(s.shutdown().success());
}

#[test]
fn helix_menu_item_after_a_trigger_character() {
    let mut s = start();
    let uri = "file:///work/helix/greet.py";
    let before_cursor = "    print(";
    let text = format!("def greet(name):\n    \"\"\"Say hello to name.\"\"\"\n{before_cursor}\n");
    s.open(uri, "python", &text);
    let line = 2;
    let cursor = before_cursor.len() as u32;
    let r = complete(&mut s, uri, line, cursor, Some("("));
    assert_eq!(r["isIncomplete"], true, "{r}");
    let items = r["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "one suggestion: {r}");
    // No word before the cursor: empty filter text, an empty range at the cursor.
    check_item(&items[0], line, cursor, cursor, "");
    assert!(s.shutdown().success());
}

#[test]
fn helix_multi_line_suggestion_label_and_documentation() {
    // A generous time budget: a loaded CI machine must not cut the block short.
    let mut s = start_with(
        json!({ "completion": { "maxTokens": 24, "maxTimeMs": 20000, "multiline": true } }),
    );
    let uri = "file:///work/helix/prime.py";
    let last = "    for i in range(2, n):";
    let text = format!("def is_prime(n):\n    \"\"\"Return True if n is prime.\"\"\"\n    if n < 2:\n        return False\n{last}\n");
    s.open(uri, "python", &text);
    // At the end of a `for` header: the suggestion is the loop body, on the next lines.
    let col = last.len() as u32;
    let r = complete(&mut s, uri, 4, col, None);
    let items = r["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "one suggestion: {r}");
    let new_text = check_item(&items[0], 4, col, col, "");
    eprintln!("suggestion: {new_text:?}");
    assert!(
        new_text.trim_end().contains('\n'),
        "a multi-line suggestion: {new_text:?}"
    );
    let label = items[0]["label"].as_str().unwrap();
    assert!(
        label.starts_with("↵ "),
        "a block body starts on the next line: {label:?}"
    );
    assert!(s.shutdown().success());
}

/// Helix lists code actions with `space a` (`only` unset); Explain must be one
/// of them on a selection once a remote model is configured.
#[test]
fn helix_code_action_offers_explain_on_a_selection() {
    let mut s = start_with(json!({
        "completion": { "maxTokens": 8 },
        "remote": { "provider": "openai", "endpoint": "http://127.0.0.1:9", "model": "big-model", "apiKeyEnv": "" }
    }));
    let uri = "file:///work/helix/act.py";
    s.open(uri, "python", "def add(a, b):\n    return a + b\n");
    let r = s.request(
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": uri }, "range": { "start": { "line": 0, "character": 0 }, "end": { "line": 1, "character": 16 } },
                "context": { "diagnostics": [], "triggerKind": 1 } }),
    );
    let actions = r
        .as_array()
        .unwrap_or_else(|| panic!("no code actions: {r}"));
    let explain = actions
        .iter()
        .find(|a| a["command"]["command"] == "slm-ls.explain")
        .unwrap_or_else(|| panic!("no Explain action: {r}"));
    assert!(
        explain["title"].as_str().unwrap().contains("big-model"),
        "{explain}"
    );
    let args = &explain["command"]["arguments"][0];
    assert_eq!(args["uri"], uri);
    assert_eq!(args["range"]["end"], json!({ "line": 1, "character": 16 }));
    assert!(s.shutdown().success());
}

fn complete_async(
    s: &mut TestServer,
    uri: &str,
    line: u32,
    col: u32,
    trigger: Option<&str>,
) -> i64 {
    let context = match trigger {
        Some(c) => json!({ "triggerKind": 2, "triggerCharacter": c }),
        None => json!({ "triggerKind": 1 }),
    };
    s.request_async(
        "textDocument/completion",
        json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": col }, "context": context }),
    )
}

/// Insert `text` at (line, col) as one `didChange` (a keystroke or a paste).
fn insert(s: &mut TestServer, uri: &str, version: i32, line: u32, col: u32, text: &str) {
    s.change(
        uri,
        version,
        json!([{ "range": { "start": { "line": line, "character": col }, "end": { "line": line, "character": col } }, "text": text }]),
    );
}

fn stats(s: &mut TestServer) -> Value {
    s.request("slm-ls/stats", json!(null))["completion"].clone()
}

/// A Python file long enough that a completion at its end needs a cold
/// prefill of the whole prefix budget (seconds on a 2-core machine).
fn big_python(functions: usize) -> String {
    (0..functions)
        .map(|i| {
            format!(
                "def function_number_{i}(argument, scale={}):\n    \"\"\"Scale argument by {i}.\"\"\"\n    return argument * scale + {}\n\n\n",
                i % 7,
                i * 3
            )
        })
        .collect()
}

/// Helix sends the request on a space and, while it is pending, starts no
/// other: if the user types on in a way the suggestion cannot follow, the
/// server must answer that request at once (empty and incomplete), so the
/// next keystroke can start a new one. A deletion answers it even before
/// the model has produced anything; text typed at the cursor as soon as the
/// model's text disagrees with it.
#[test]
fn helix_typing_past_a_pending_request_answers_it_at_once() {
    let mut s = start_with(
        json!({ "completion": { "maxTokens": 48, "maxTimeMs": 20000, "multiline": false } }),
    );
    let uri = "file:///work/helix/big.py";
    let mut text = big_python(400);
    let line = text.matches('\n').count() as u32;
    text.push_str("result = ");
    s.open(uri, "python", &text);
    let col = "result = ".len() as u32;
    let before = stats(&mut s);

    // A deletion (backspace over the space) while the cold prefill runs.
    let id = complete_async(&mut s, uri, line, col, Some(" "));
    std::thread::sleep(std::time::Duration::from_millis(100));
    let t = std::time::Instant::now();
    s.change(
        uri,
        2,
        json!([{ "range": { "start": { "line": line, "character": col - 1 }, "end": { "line": line, "character": col } }, "text": "" }]),
    );
    let r = s.response(id, std::time::Duration::from_secs(60));
    let after_delete = t.elapsed();
    eprintln!("answered {after_delete:?} after the deletion");
    assert_eq!(r["result"]["isIncomplete"], true, "{r}");
    assert_eq!(r["result"]["items"], json!([]), "{r}");
    assert!(
        after_delete < std::time::Duration::from_millis(800),
        "a request the user deleted past is answered at once, not after its prefill: {after_delete:?}"
    );
    insert(&mut s, uri, 3, line, col - 1, " ");

    // Text typed at the cursor that the suggestion cannot continue.
    let id = complete_async(&mut s, uri, line, col, Some(" "));
    for (i, c) in "zqx".chars().enumerate() {
        insert(
            &mut s,
            uri,
            4 + i as i32,
            line,
            col + i as u32,
            &c.to_string(),
        );
    }
    let t = std::time::Instant::now();
    let r = s.response(id, std::time::Duration::from_secs(60));
    eprintln!("answered {:?} after typing zqx: {r}", t.elapsed());
    assert_eq!(r["result"]["isIncomplete"], true, "{r}");
    let items = r["result"]["items"].as_array().unwrap();
    assert!(
        items.iter().all(|i| !helix_keeps(i, "zqx")),
        "nothing the model says after `result = ` continues `zqx`: {r}"
    );
    // The stale generation was stopped, not run to its end (the engine
    // counts it when it sees the cancellation, between two tokens).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let after = stats(&mut s);
        if after["cancelled"].as_u64() > before["cancelled"].as_u64() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the stale generation was not cancelled: {before} → {after}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(s.shutdown().success());
}

/// The answer to a request that arrives after the user typed its first
/// character (Helix shows it then, filtered by the word before its cursor)
/// must still match: its `filterText` starts with what was typed, and its
/// edit is over the document as it was at the request (Helix restores that
/// state before applying it).
#[test]
fn helix_late_answer_still_matches_the_typed_word() {
    let mut s = start_with(json!({
        "completion": { "maxTokens": 16, "maxTimeMs": 20000, "multiline": false, "typedAhead": false },
        "context": { "extraTokens": 0 }
    }));
    let uri = "file:///work/helix/late.py";
    let text = "def add(first, second):\n    \"\"\"Return the sum of first and second.\"\"\"\n    return \n";
    let (line, col) = (2, "    return ".len() as u32);
    s.open(uri, "python", text);
    // What the model says here (the request is answered before any edit).
    let r = complete(&mut s, uri, line, col, Some(" "));
    let Some(item) = r["items"].as_array().unwrap().first().cloned() else {
        panic!("no suggestion after `return `: {r}");
    };
    let suggestion = item["textEdit"]["newText"].as_str().unwrap().to_string();
    let first: String = suggestion.chars().take(1).collect();
    assert!(
        first.chars().all(|c| c.is_alphanumeric() || c == '_'),
        "expected a word after `return `, got {suggestion:?}"
    );
    // Again from a clean state (same prompt, so the same greedy text), and
    // this time the user types its first character right after the request.
    s.notify(
        "textDocument/didClose",
        json!({ "textDocument": { "uri": uri } }),
    );
    s.open(uri, "python", text);
    let id = complete_async(&mut s, uri, line, col, Some(" "));
    insert(&mut s, uri, 2, line, col, &first);
    let r = s.response(id, std::time::Duration::from_secs(60));
    let items = r["result"]["items"].as_array().unwrap();
    assert_eq!(
        items.len(),
        1,
        "the answer survives a keystroke that follows it: {r}"
    );
    let item = &items[0];
    assert!(
        helix_keeps(item, &first),
        "Helix filters with the word typed since ({first:?}): {item}"
    );
    assert_eq!(
        item["textEdit"]["range"],
        json!({ "start": { "line": line, "character": col }, "end": { "line": line, "character": col } }),
        "the edit is over the request's document: {item}"
    );
    assert!(item["textEdit"]["newText"]
        .as_str()
        .unwrap()
        .starts_with(&first));
    assert!(s.shutdown().success());
}

/// Helix ignores the item's `command`, so acceptance is seen in the edit
/// that applies the item. Each shown suggestion counts once, whether the
/// edit, the command, or both report it; typing a suggestion by hand is
/// not accepting it.
#[test]
fn helix_acceptance_is_counted_from_the_edit_once() {
    let mut s = start();
    let uri = "file:///work/helix/accept.py";
    let before_cursor = "    return os.path.jo";
    let text = format!("import os\n\n\ndef join_all(parts):\n{before_cursor}\n");
    s.open(uri, "python", &text);
    let (line, col) = (4, before_cursor.len() as u32);
    let r = complete(&mut s, uri, line, col, None);
    let item = r["items"][0].clone();
    assert!(item.is_object(), "a suggestion to accept: {r}");
    assert_eq!(stats(&mut s)["accepted"], 0);
    // Helix applies the item: its textEdit, as one change.
    s.change(
        uri,
        2,
        json!([{ "range": item["textEdit"]["range"], "text": item["textEdit"]["newText"] }]),
    );
    let st = stats(&mut s);
    assert_eq!(st["accepted"], 1, "accepted from the edit: {st}");
    assert!(st["shown"].as_u64().unwrap() >= 1, "{st}");
    // A client that also runs the command does not count it twice.
    let cmd = &item["command"];
    s.request(
        "workspace/executeCommand",
        json!({ "command": cmd["command"], "arguments": cmd["arguments"] }),
    );
    assert_eq!(stats(&mut s)["accepted"], 1);

    // Ghost text (VS Code, Neovim): the client inserts the rest, then runs
    // the command.
    let text = "def square(x):\n    return \n";
    let uri2 = "file:///work/helix/accept2.py";
    s.open(uri2, "python", text);
    let col = "    return ".len() as u32;
    let r = s.inline_completion(uri2, 1, col);
    let item = r["result"]["items"][0].clone();
    let insert_text = item["insertText"].as_str().unwrap_or("").to_string();
    if insert_text.chars().count() >= 2 {
        insert(&mut s, uri2, 2, 1, col, &insert_text);
        let cmd = &item["command"];
        s.request(
            "workspace/executeCommand",
            json!({ "command": cmd["command"], "arguments": cmd["arguments"] }),
        );
        assert_eq!(stats(&mut s)["accepted"], 2, "edit then command: once");
    }
    let accepted = stats(&mut s)["accepted"].clone();

    // Typing a shown suggestion one character at a time is not accepting it.
    let uri3 = "file:///work/helix/typed.py";
    s.open(uri3, "python", "def cube(x):\n    return \n");
    let r = s.inline_completion(uri3, 1, col);
    let typed = r["result"]["items"][0]["insertText"]
        .as_str()
        .unwrap_or("")
        .to_string();
    for (i, c) in typed.chars().take(6).enumerate() {
        insert(
            &mut s,
            uri3,
            2 + i as i32,
            1,
            col + i as u32,
            &c.to_string(),
        );
    }
    assert_eq!(
        stats(&mut s)["accepted"],
        accepted,
        "typing is not accepting"
    );
    assert!(s.shutdown().success());
}

/// Helix logs every stderr line of a server at ERROR level: without
/// `RUST_LOG`, slm-ls writes only warnings and errors there, unless the
/// client asked for a trace.
#[test]
fn helix_stderr_is_quiet_unless_a_trace_is_asked_for() {
    common::model_path();
    let bin = env!("CARGO_BIN_EXE_slm-ls");
    for trace in ["off", "verbose"] {
        // `env -u`: the harness sets RUST_LOG; Helix does not.
        let mut s = TestServer::spawn_program("env", &["-u", "RUST_LOG", bin], &[]);
        let init = json!({ "processId": null, "rootUri": "file:///work", "capabilities": helix_capabilities(),
                           "initializationOptions": { "completion": { "maxTokens": 8 } }, "trace": trace });
        s.request("initialize", init);
        s.notify("initialized", json!({}));
        s.wait_ready();
        let uri = "file:///work/helix/quiet.py";
        s.open(uri, "python", "def double(x):\n    return \n");
        complete(&mut s, uri, 1, 11, Some(" "));
        assert!(s.shutdown().success());
        std::thread::sleep(std::time::Duration::from_millis(200));
        let log = s.log_text();
        let info = log.lines().filter(|l| l.contains(" INFO ")).count();
        if trace == "off" {
            assert_eq!(info, 0, "info lines on stderr by default:\n{log}");
        } else {
            assert!(
                info > 0,
                "a client that asks for a trace gets details:\n{log}"
            );
        }
    }
}

const KEY_ENV: &str = "SLM_TEST_HELIX_KEY";
const DB_PY: &str = "import sqlite3\n\n\ndef connect(path):\n    \"\"\"Open the app database.\"\"\"\n    conn = sqlite3.connect(path)\n    conn.row_factory = sqlite3.Row\n    return conn\n";

/// A server for Explain only (no model needed), initialized as Helix does.
fn explain_server(remote: Value, env: &[(&str, &str)]) -> TestServer {
    let mut env = env.to_vec();
    env.push(("SLM_LS_MODEL", "/nonexistent/model.gguf"));
    let mut s = TestServer::spawn(&[], &env);
    s.initialize(json!({ "remote": remote }), helix_capabilities());
    s
}

/// Explain as Helix runs it: `space a` lists the code actions for the
/// selection (`only` unset), the user picks Explain, and Helix executes its
/// command without a work-done token and ignores the result. Returns the
/// response to the command.
fn helix_explain(s: &mut TestServer, uri: &str, range: Value, extra: Value) -> Value {
    let r = s.request(
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": uri }, "range": range, "context": { "diagnostics": [], "triggerKind": 1 } }),
    );
    let action = r
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|a| a["command"]["command"] == "slm-ls.explain")
        })
        .unwrap_or_else(|| panic!("no Explain action: {r}"))
        .clone();
    let mut args = action["command"]["arguments"][0].clone();
    assert_eq!(
        args["show"], "document",
        "Helix drops command results: {args}"
    );
    for (k, v) in extra.as_object().unwrap() {
        args[k] = v.clone();
    }
    let id = s.request_async(
        "workspace/executeCommand",
        json!({ "command": "slm-ls.explain", "arguments": [args] }),
    );
    let r = s.response(id, std::time::Duration::from_secs(60));
    // Notifications sent just before the response may follow it.
    let end = std::time::Instant::now() + std::time::Duration::from_millis(300);
    while let Some(m) = s.recv(end.saturating_duration_since(std::time::Instant::now())) {
        if let Some(req_id) = m.get("id").filter(|_| m.get("method").is_some()) {
            s.send(&json!({ "jsonrpc": "2.0", "id": req_id, "result": null }));
        }
        if m.get("method").is_some() {
            s.notifications.push(m);
        }
    }
    r
}

fn range(l0: u32, c0: u32, l1: u32, c1: u32) -> Value {
    json!({ "start": { "line": l0, "character": c0 }, "end": { "line": l1, "character": c1 } })
}

/// Helix passes no progress token and shows neither the command's result
/// nor its error: the server creates the progress (so the status line shows
/// the work), and shows a failure as a message.
#[test]
fn helix_explain_shows_progress_and_failures() {
    let uri = "file:///work/helix/db.py";
    let pieces = ["`connect` opens", " the database", " with named rows."];
    let fake = FakeServer::always(Reply::sse(
        openai_chat(&pieces),
        std::time::Duration::from_millis(30),
    ));
    let remote = |endpoint: &str, key_env: &str| json!({ "provider": "openai", "endpoint": endpoint, "model": "gpt-test", "apiKeyEnv": key_env });
    let mut s = explain_server(
        remote(&format!("{}/v1", fake.url), KEY_ENV),
        &[(KEY_ENV, "sk-test-0123456789")],
    );
    s.open(uri, "python", DB_PY);
    let r = helix_explain(&mut s, uri, range(3, 0, 7, 15), json!({}));
    assert_eq!(r["result"]["markdown"], pieces.concat(), "{r}");
    let create = s
        .notifications_named("window/workDoneProgress/create")
        .first()
        .map(|m| m["params"]["token"].clone())
        .unwrap_or_else(|| panic!("no progress created: {:?}", s.notifications));
    let progress: Vec<Value> = s
        .notifications_named("$/progress")
        .into_iter()
        .filter(|m| m["params"]["token"] == create)
        .map(|m| m["params"]["value"].clone())
        .collect();
    assert_eq!(
        progress.first().map(|v| v["kind"].clone()),
        Some(json!("begin")),
        "{progress:?}"
    );
    assert_eq!(progress[0]["title"], "Explain with gpt-test");
    assert_eq!(progress.last().unwrap()["kind"], "end", "{progress:?}");
    for report in progress.iter().filter(|v| v["kind"] == "report") {
        let m = report["message"].as_str().unwrap();
        assert!(
            m.ends_with("characters received"),
            "the status line gets a count, not the answer: {m:?}"
        );
    }
    assert!(s.shutdown().success());

    // No key, and an endpoint nothing listens on: the user sees why.
    for (remote, env, expect) in [
        (
            remote(&format!("{}/v1", fake.url), "SLM_TEST_HELIX_UNSET_KEY"),
            vec![],
            "SLM_TEST_HELIX_UNSET_KEY",
        ),
        (
            remote("http://127.0.0.1:9/v1", KEY_ENV),
            vec![(KEY_ENV, "sk-test-0123456789")],
            "cannot reach http://127.0.0.1:9",
        ),
    ] {
        let mut s = explain_server(remote, &env);
        s.open(uri, "python", DB_PY);
        let r = helix_explain(&mut s, uri, range(3, 0, 7, 15), json!({}));
        assert!(r.get("error").is_some(), "{r}");
        let shown: Vec<String> = s
            .notifications_named("window/showMessage")
            .iter()
            .filter(|m| m["params"]["type"] == 1)
            .map(|m| m["params"]["message"].as_str().unwrap().to_string())
            .collect();
        assert!(
            shown
                .iter()
                .any(|m| m.contains("slm-ls.explain") && m.contains(expect)),
            "the failure is shown ({expect}): {shown:?}"
        );
        assert!(s.shutdown().success());
    }
}

/// With a bare cursor Helix's "selection" is the one character under it:
/// that is the cursor, and the enclosing function is explained (the prompt
/// is the one an empty range gives).
#[test]
fn helix_explain_on_a_bare_cursor_explains_the_enclosing_scope() {
    let uri = "file:///work/helix/db.py";
    let remote = json!({ "provider": "openai", "endpoint": "http://127.0.0.1:9/v1", "model": "gpt-test", "apiKeyEnv": "" });
    let mut s = explain_server(remote, &[]);
    s.open(uri, "python", DB_PY);
    let user_message = |r: &Value| -> String {
        r["result"]["body"]["messages"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["role"] == "user"))
            .and_then(|m| m["content"].as_str())
            .unwrap_or_else(|| panic!("{r}"))
            .to_string()
    };
    let cursor = helix_explain(&mut s, uri, range(5, 4, 5, 5), json!({ "dryRun": true }));
    let id = s.request_async(
        "workspace/executeCommand",
        json!({ "command": "slm-ls.explain", "arguments": [{ "uri": uri, "range": range(5, 4, 5, 4), "dryRun": true }] }),
    );
    let empty = s.response(id, std::time::Duration::from_secs(30));
    assert_eq!(user_message(&cursor), user_message(&empty));
    assert!(
        user_message(&cursor).contains("def connect(path):"),
        "{}",
        user_message(&cursor)
    );
    assert!(s.shutdown().success());
}
