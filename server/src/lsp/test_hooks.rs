//! Test-only requests, registered only when the environment variable
//! `SLM_LS_TEST_HOOKS=1` is set (never by editors). They let the
//! reliability and stress suites (`tests/reliability_*.rs`,
//! `tests/stress_*.rs`) reach paths a well-behaved client cannot:
//!
//! - `slm-ls/test/panic` (request): panics inside a guarded handler, to
//!   prove a panic is answered as an internal error and the server goes on.
//! - `slm-ls/test/panicNotification` (notification): the same inside the
//!   guard used by every notification handler (`didOpen`, `didChange`, …).
//! - `slm-ls/test/documentText` (request, `{ "uri": … }`): the server's
//!   view of a document (`text`, `version`, `languageId`), so a test can
//!   check that it equals the client's after thousands of edits.
//! - `slm-ls/test/promptHead` (request, `{ "uri": …, "line": … }`): the
//!   prompt head (cross-file snippets, `[{ "path", "text" }]`) the
//!   document's last prompt near `line` used, so a test can show that a
//!   definition from an unopened file reached the prompt (issue 19).

use serde_json::{json, Value};
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Result};

use super::state::State;

pub const PANIC: &str = "slm-ls/test/panic";
pub const PANIC_NOTIFICATION: &str = "slm-ls/test/panicNotification";
pub const DOCUMENT_TEXT: &str = "slm-ls/test/documentText";
pub const PROMPT_HEAD: &str = "slm-ls/test/promptHead";

pub fn enabled() -> bool {
    std::env::var("SLM_LS_TEST_HOOKS").is_ok_and(|v| v == "1")
}

pub fn panic(p: Option<Value>) -> Result<Value> {
    let what = p
        .as_ref()
        .and_then(|v| v.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("test panic")
        .to_string();
    panic!("{what}");
}

pub fn document_text(state: &State, p: &Value) -> Result<Value> {
    let uri = p.get("uri").and_then(Value::as_str).ok_or_else(|| Error {
        code: ErrorCode::InvalidParams,
        message: "slm-ls/test/documentText needs { \"uri\": string }".into(),
        data: None,
    })?;
    let snap = state.docs.snapshot(uri).map_err(|e| Error {
        code: ErrorCode::InvalidParams,
        message: e.to_string().into(),
        data: None,
    })?;
    Ok(json!({
        "text": snap.doc.rope.to_string(),
        "version": snap.doc.version,
        "languageId": snap.doc.language_id,
    }))
}

pub fn prompt_head(state: &State, p: &Value) -> Result<Value> {
    let (Some(uri), Some(line)) = (
        p.get("uri").and_then(Value::as_str),
        p.get("line").and_then(Value::as_u64),
    ) else {
        return Err(Error {
            code: ErrorCode::InvalidParams,
            message: "slm-ls/test/promptHead needs { \"uri\": string, \"line\": number }".into(),
            data: None,
        });
    };
    let head = state.heads.kept(uri, line as usize).unwrap_or_default();
    Ok(json!(head
        .iter()
        .map(|s| json!({ "path": s.path, "text": s.text }))
        .collect::<Vec<_>>()))
}
