//! What Helix needs from `textDocument/completion`, checked over LSP with the
//! real binary and default model. Helix has no inline completion: slm-ls's
//! suggestion shows as one item in its completion menu, merged with the
//! items of the language's other servers.
//!
//! Helix (helix-lsp) offers `positionEncodings: ["utf-8", "utf-32",
//! "utf-16"]`, so columns here are UTF-8 bytes; it filters the menu with a
//! fuzzy match of the word before the cursor against each item's
//! `filterText` (else its `label`); it applies `textEdit` (whose range must
//! end at the cursor); it shows `documentation` beside the menu; and while
//! a list is `isIncomplete` it asks again as the user types.

mod common;

use common::TestServer;
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
    // What `[language-server.slm-ls.config]` in languages.toml sends.
    start_with(json!({ "completion": { "maxTokens": 24 } }))
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

/// The checks every item must pass to look right in Helix's menu.
fn check_item(item: &Value, line: u32, word_start: u32, cursor: u32, word: &str) -> String {
    assert_eq!(
        item["filterText"],
        json!(word),
        "filterText is the typed word: {item}"
    );
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
