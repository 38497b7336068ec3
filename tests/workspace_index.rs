//! End-to-end (issue 19): with a workspace root, a definition from a file
//! the editor never opened reaches the prompt and the suggestion. The real
//! binary and the default model, over LSP.

mod common;

use std::time::{Duration, Instant};

use common::{fixture, Scratch, TestServer};
use serde_json::{json, Value};

const ESCAPES: &str = r#"import re

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def strip_ansi_codes(text):
    """Return text without ANSI colour escape sequences."""
    return _ANSI.sub("", text)
"#;

const REPORT: &str = r#""""Summaries of captured terminal output."""
from .escapes import strip_ansi_codes


def summarize(captured):
    lines = []
    for raw in captured.splitlines():
        plain = $0
        if plain:
            lines.append(plain)
    return lines
"#;

/// Poll `slm-ls/stats` until the index is built.
fn wait_indexed(s: &mut TestServer) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = s.request("slm-ls/stats", json!(null));
        let ix = st["workspaceIndex"].clone();
        if ix["state"] == "ready" {
            return ix;
        }
        assert!(Instant::now() < deadline, "index not ready: {ix}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_definition_from_an_unopened_file_reaches_the_prompt_and_the_suggestion() {
    let dir = Scratch::new("workspace-index");
    std::fs::create_dir_all(dir.join("textkit")).unwrap();
    std::fs::write(dir.join("textkit/__init__.py"), "").unwrap();
    std::fs::write(dir.join("textkit/escapes.py"), ESCAPES).unwrap();
    let (report, line, col) = fixture(REPORT);
    std::fs::write(dir.join("textkit/report.py"), &report).unwrap();
    let root = format!("file://{}", dir.display());
    let uri = format!("{root}/textkit/report.py");

    let mut s = TestServer::spawn(&[], &[("SLM_LS_TEST_HOOKS", "1")]);
    s.initialize_at(&root, json!({}), json!({}));
    let ix = wait_indexed(&mut s);
    assert_eq!(ix["files"], 3, "{ix}");
    assert!(ix["definitions"].as_u64().unwrap() >= 3, "{ix}");
    assert!(ix["bytes"].as_u64().unwrap() > 0, "{ix}");
    s.wait_ready();

    // Only report.py is open; escapes.py is known through the index alone.
    s.open(&uri, "python", &report);
    let r = s.inline_completion(&uri, line, col);
    let text = r["result"]["items"][0]["insertText"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let head = s.request(
        "slm-ls/test/promptHead",
        json!({ "uri": uri, "line": line }),
    );
    let head = head.as_array().cloned().unwrap_or_default();
    assert!(
        head.iter().any(|h| h["path"] == "textkit/escapes.py"
            && h["text"]
                .as_str()
                .unwrap()
                .contains("def strip_ansi_codes(text):\n    \"\"\"Return text without ANSI colour escape sequences.\"\"\"")),
        "the definition is in the prompt head: {head:#?}"
    );
    assert!(
        text.starts_with("strip_ansi_codes("),
        "the suggestion calls the helper: {text:?}"
    );
    assert!(s.shutdown().success());
}

#[test]
fn with_context_workspace_off_there_is_no_index() {
    let dir = Scratch::new("workspace-off");
    std::fs::write(dir.join("a.py"), "def f():\n    pass\n").unwrap();
    let root = format!("file://{}", dir.display());
    let mut s = TestServer::spawn(&[], &[]);
    s.initialize_at(
        &root,
        json!({ "context": { "workspace": false } }),
        json!({}),
    );
    let st = s.request("slm-ls/stats", json!(null));
    assert_eq!(st["workspaceIndex"]["state"], "off", "{st}");
    assert!(s.shutdown().success());
}
