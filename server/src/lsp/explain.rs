//! `slm-ls.explain` and the "Explain with <model>" code action.
//!
//! The only handlers that reach a remote chat model, and only because the
//! user asked. The blocking HTTP work runs on its own thread
//! (`remote_call::off_runtime`) with a cancel flag tied to the request's
//! future ([`CancelOnDrop`]), so a slow provider never holds up the
//! runtime, and `$/cancelRequest` stops it at the next streamed line.
//!
//! Clients whose code-action menus drop command results (Helix, Neovim's
//! menu; the action then carries `show: "document"`) also get the answer
//! as a Markdown document (`window/showDocument`), a failure as a
//! `window/showMessage`, and, without a token of their own, progress the
//! server creates, so something is on screen while the model works.
//!
//! Every request is answered exactly once: with the result, with
//! `RequestCancelled` when cancelled or superseded, or with a
//! `RequestFailed` error whose message says what went wrong and whose
//! `data.kind` names the fault (see `docs/lsp-extensions.md`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Result};
use tower_lsp_server::ls_types as lsp;

use super::progress::{self, Progress};
use super::proto;
use super::remote_call::{latest_wins, off_runtime, remote_error};
use super::state::State;
use crate::remote::{self, Cancel, CancelOnDrop, RemoteError};

pub const CMD_EXPLAIN: &str = "slm-ls.explain";

/// Arguments of `slm-ls.explain`: `[{ uri, range, dryRun?, show? }]`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExplainArgs {
    uri: String,
    range: lsp::Range,
    #[serde(default)]
    dry_run: bool,
    /// `"document"`: also write the answer to a Markdown file and ask the
    /// client to open it (`window/showDocument`), for clients that drop
    /// command results (Helix, Neovim's code-action menu).
    #[serde(default)]
    show: Option<String>,
}

/// Answers older than a day are litter: remove them (best effort).
fn remove_old_answers(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(24 * 3600));
        if old && e.path().extension().is_some_and(|x| x == "md") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Write `markdown` to a file of its own under the temp dir and ask the
/// client to open it. Not awaited by the command: the client answers
/// `showDocument` after it has the command's result, in some clients.
fn show_as_document(state: &State, source_path: &str, markdown: &str) {
    static SEQ: AtomicU64 = AtomicU64::new(1);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join("slm-ls-explain");
    let stem: String = source_path
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("code")
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let file = dir.join(format!("{}-{seq}-{stem}.md", std::process::id()));
    remove_old_answers(&dir);
    let written = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&file, markdown));
    let uri = match written.map(|_| lsp::Uri::from_file_path(&file)) {
        Ok(Some(uri)) => uri,
        Ok(None) | Err(_) => {
            tracing::warn!(
                "slm-ls.explain: cannot write the answer to {}",
                file.display()
            );
            return;
        }
    };
    let client = state.client.clone();
    tokio::spawn(async move {
        let shown = client
            .show_document(lsp::ShowDocumentParams {
                uri,
                external: Some(false),
                take_focus: Some(true),
                selection: None,
            })
            .await;
        if !matches!(shown, Ok(true)) {
            tracing::warn!("the client did not open the explain answer: {shown:?}");
        }
    });
}

fn invalid_params(msg: impl Into<String>) -> Error {
    Error {
        code: ErrorCode::InvalidParams,
        message: msg.into().into(),
        data: None,
    }
}

// ---------------------------------------------------------------------------
// slm-ls.explain
// ---------------------------------------------------------------------------

/// `workspace/executeCommand` `slm-ls.explain`: `[{uri, range, dryRun?}]` →
/// `{markdown, model, provider, usage}`, or with `dryRun` the exact request
/// that would be sent (nothing is sent). Streams the Markdown so far as
/// `$/progress` reports when the client passed a `workDoneToken`.
pub async fn execute(state: Arc<State>, p: lsp::ExecuteCommandParams) -> Result<Option<Value>> {
    // A client that may drop the command's result (the code action set
    // `show: "document"`) would drop its error too: show it.
    let menu = p
        .arguments
        .first()
        .and_then(|a| a.get("show"))
        .is_some_and(|s| s == "document");
    let result = explain(state.clone(), p, menu).await;
    if let Err(e) = &result {
        if menu && e.code != ErrorCode::RequestCancelled {
            state
                .client
                .show_message(lsp::MessageType::ERROR, e.message.to_string())
                .await;
        }
    }
    result
}

async fn explain(
    state: Arc<State>,
    p: lsp::ExecuteCommandParams,
    menu: bool,
) -> Result<Option<Value>> {
    const USAGE: &str =
        "slm-ls.explain expects arguments [{ \"uri\": ..., \"range\": ..., \"dryRun\"?: bool }]";
    let token = p.work_done_progress_params.work_done_token;
    let arg = p
        .arguments
        .into_iter()
        .next()
        .ok_or_else(|| invalid_params(USAGE))?;
    let args: ExplainArgs =
        serde_json::from_value(arg).map_err(|e| invalid_params(format!("{USAGE}: {e}")))?;
    let snap = state
        .docs
        .snapshot(&args.uri)
        .map_err(|e| invalid_params(format!("slm-ls.explain: {e}")))?;
    let enc = state.encoding();
    let start = snap
        .doc
        .char_index(proto::position(args.range.start), enc)
        .map_err(|e| invalid_params(e.to_string()))?;
    let end = snap
        .doc
        .char_index(proto::position(args.range.end), enc)
        .map_err(|e| invalid_params(e.to_string()))?;
    let cfg = state.config().remote;
    let (path, abs) = state.paths(&snap.uri);
    let path_for_show = path.clone();

    // Prompt building scans the document (scope search, redaction): off the
    // runtime too, like the request itself.
    let prepared = {
        let cfg = cfg.clone();
        tokio::task::spawn_blocking(move || {
            let src = remote::explain::Source {
                rope: &snap.doc.rope,
                path: &path,
                abs_path: abs.as_deref(),
                language: &snap.doc.language_id,
                start,
                end,
            };
            remote::explain::prepare(&cfg, &src)
        })
        .await
        .map_err(|e| Error {
            code: ErrorCode::InternalError,
            message: format!("slm-ls.explain: {e}").into(),
            data: None,
        })?
    };
    let prepared = match prepared {
        Ok(p) => p,
        Err(e) => {
            if !args.dry_run {
                remote::stats::STATS.explain(Err(()));
            }
            return Err(remote_error("slm-ls.explain", &e));
        }
    };
    let range = |(a, b): (usize, usize)| json!([a, b]);
    if args.dry_run {
        let plan = &prepared.plan;
        return Ok(Some(json!({
            "dryRun": true,
            "provider": plan.provider.name(),
            "url": plan.url,
            "model": plan.model,
            "apiKeyEnv": cfg.key_env(),
            "body": plan.body,
            "redactions": prepared.redactions,
            "selectionLines": range(prepared.selection_lines),
            "scopeLines": prepared.scope_lines.map(range),
        })));
    }

    let key = match remote::api_key(cfg.key_env().as_deref()) {
        Ok(k) => k,
        Err(e) => {
            remote::stats::STATS.explain(Err(()));
            return Err(remote_error("slm-ls.explain", &e));
        }
    };
    let model = prepared.plan.model.clone();
    // Streamed on the client's token; a menu client without one gets
    // progress the server creates, reporting only how much has arrived
    // (its status line has no room for the answer).
    let title = format!("Explain with {model}");
    let interval = Duration::from_millis(30);
    let progress = match token {
        Some(t) => Some((
            progress::text_task(state.client.clone(), t, title, interval),
            false,
        )),
        None if menu => {
            static SEQ: AtomicU64 = AtomicU64::new(1);
            let name = format!("explain/{}", SEQ.fetch_add(1, Ordering::Relaxed));
            Some((
                progress::server_text_task(state.clone(), name, title, interval),
                true,
            ))
        }
        None => None,
    };
    let counts_only = progress.as_ref().is_some_and(|(_, c)| *c);
    let progress = progress.map(|(p, _)| p);
    let cancel = Cancel::default();
    let _guard = CancelOnDrop(cancel.clone());
    let run = {
        let cfg = cfg.clone();
        let plan = prepared.plan.clone();
        let tx = progress.as_ref().map(|(tx, _)| tx.clone());
        let cancel = cancel.clone();
        off_runtime(move || {
            let mut so_far = String::new();
            let mut on_text = |piece: &str| {
                so_far.push_str(piece);
                if let Some(tx) = &tx {
                    let shown = if counts_only {
                        format!("{} characters received", so_far.chars().count())
                    } else {
                        so_far.clone()
                    };
                    let _ = tx.send(Progress::Text(shown));
                }
            };
            remote::chat::run(&cfg, &plan, key.as_deref(), &cancel, &mut on_text)
        })
    };
    // One explain at a time: a new one supersedes this one.
    let result = latest_wins("explain".into(), &cancel, async {
        run.await.and_then(|r| r)
    })
    .await;
    if let Some((tx, task)) = progress {
        let end = match &result {
            Ok(_) => None,
            Err(RemoteError::Cancelled) => Some("cancelled".to_string()),
            Err(e) => Some(format!("failed: {e}")),
        };
        let _ = tx.send(Progress::End(end));
        drop(tx);
        let _ = task.await;
    }
    match result {
        Ok(out) => {
            remote::stats::STATS.explain(Ok(out.usage));
            let mut markdown = out.text.clone();
            if out.hit_max_tokens() {
                markdown.push_str(&format!(
                    "\n\n*(The answer was cut at remote.maxTokens = {}.)*",
                    cfg.max_tokens
                ));
            }
            if args.show.as_deref() == Some("document") {
                show_as_document(&state, &path_for_show, &markdown);
            }
            Ok(Some(json!({
                "markdown": markdown,
                "model": model,
                "provider": prepared.plan.provider.name(),
                // How many values of which kinds were withheld.
                "redactions": prepared.redactions,
                "usage": {
                    "promptTokens": out.usage.prompt_tokens,
                    "completionTokens": out.usage.completion_tokens,
                    "estimated": out.usage.estimated,
                },
            })))
        }
        Err(e) => {
            remote::stats::STATS.explain(Err(()));
            if e != RemoteError::Cancelled {
                tracing::debug!("explain failed: {e}");
            }
            Err(remote_error("slm-ls.explain", &e))
        }
    }
}

/// `textDocument/codeAction`: "Explain with <model>" on a non-empty
/// selection, when a remote model is configured and the file may be sent.
pub fn code_action(
    state: &State,
    p: lsp::CodeActionParams,
) -> Result<Option<lsp::CodeActionResponse>> {
    let cfg = state.config().remote;
    // Actions without a kind are filtered out by clients that ask for `only`.
    if !cfg.is_configured() || p.range.start == p.range.end || p.context.only.is_some() {
        return Ok(None);
    }
    let uri = p.text_document.uri.as_str();
    let (path, abs) = state.paths(uri);
    if std::iter::once(path.as_str())
        .chain(abs.as_deref())
        .any(|p| remote::glob::never_send(p, &cfg.never_send).is_some())
    {
        return Ok(None);
    }
    let title = format!("Explain with {}", cfg.model.trim());
    let command = lsp::Command {
        title: title.clone(),
        command: CMD_EXPLAIN.into(),
        arguments: Some(vec![
            if state.client_show_document.load(Ordering::Relaxed) {
                // The client may drop the command's result: open it as a file too.
                json!({ "uri": uri, "range": p.range, "show": "document" })
            } else {
                json!({ "uri": uri, "range": p.range })
            },
        ]),
    };
    Ok(Some(vec![lsp::CodeActionOrCommand::CodeAction(
        lsp::CodeAction {
            title,
            command: Some(command),
            ..Default::default()
        },
    )]))
}
