//! `slm-ls.explain`, the "Explain with <model>" code action, and the LSP
//! side of the remote completion backends.
//!
//! These are the only handlers that reach a remote model, and only because
//! the user asked: an explicit command, or a `completion.backend` other
//! than `local`. The blocking HTTP work runs on its own thread
//! ([`off_runtime`]) with a cancel flag tied to the request's future
//! ([`CancelOnDrop`]), so a slow provider never holds up the runtime, and
//! `$/cancelRequest` stops it at the next streamed line.
//!
//! Every request is answered exactly once: with the result, with
//! `RequestCancelled` when cancelled or superseded, or with a
//! `RequestFailed` error whose message says what went wrong and whose
//! `data.kind` names the fault (see `docs/lsp-extensions.md`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Result};
use tower_lsp_server::ls_types as lsp;
use tower_lsp_server::Client;

use super::handlers::CMD_EXPLAIN;
use super::proto;
use super::state::State;
use crate::complete;
use crate::config::Config;
use crate::document::Snapshot;
use crate::postprocess;
use crate::remote::{self, Cancel, CancelOnDrop, RemoteError};

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
            tracing::info!("the client did not open the explain answer: {shown:?}");
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

/// `RequestFailed` with the fault's kind in `data`, or `RequestCancelled`.
fn remote_error(prefix: &str, e: &RemoteError) -> Error {
    if *e == RemoteError::Cancelled {
        return Error::request_cancelled();
    }
    Error {
        code: ErrorCode::ServerError(-32803),
        message: format!("{prefix}: {e}").into(),
        data: Some(json!({ "kind": kind(e) })),
    }
}

/// A stable name per fault, for clients and tests.
fn kind(e: &RemoteError) -> &'static str {
    match e {
        RemoteError::NotConfigured(_) => "notConfigured",
        RemoteError::NoKey { .. } => "noKey",
        RemoteError::NeverSend { .. } => "neverSend",
        RemoteError::Unreachable { .. } => "unreachable",
        RemoteError::Timeout { .. } => "timeout",
        RemoteError::Auth { .. } => "auth",
        RemoteError::RateLimited { .. } => "rateLimited",
        RemoteError::Server { .. } => "server",
        RemoteError::Http { .. } => "http",
        RemoteError::Provider(_) => "provider",
        RemoteError::Malformed(_) => "malformed",
        RemoteError::Truncated(_) => "truncated",
        RemoteError::Cancelled => "cancelled",
    }
}

/// `file:///a/b%20c.py` → `/a/b c.py`; other schemes have no path.
pub(super) fn file_path(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("file://")?;
    let bytes = rest.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn paths(state: &State, uri: &str) -> (String, Option<String>) {
    let root = state.root_uri.read().unwrap().clone();
    (proto::display_path(uri, root.as_deref()), file_path(uri))
}

/// Run blocking remote work on a thread of its own and await its result.
/// Not `spawn_blocking`: the runtime waits for those when it shuts down,
/// and a socket stuck in a read (up to `timeoutMs`) would hold up the
/// editor's `exit`. A detached thread just dies with the process.
async fn off_runtime<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> std::result::Result<T, RemoteError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("slm-ls-remote".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| {
            RemoteError::Provider(format!("cannot start a thread for the request: {e}"))
        })?;
    rx.await
        .map_err(|_| RemoteError::Provider("the request thread panicked".into()))
}

/// The newest request per slot (`explain`, or `complete:<uri>`): a new one
/// supersedes the old, which answers `RequestCancelled` at once.
///
/// Answering at once matters: tower-lsp runs at most 4 requests at a time,
/// and a superseded request that waited for its thread (stuck in a read
/// for up to `timeoutMs`) would keep one of those slots from completions.
/// A running request's cancel flag and the wake-up for its waiting handler.
type Running = (Cancel, Arc<tokio::sync::Notify>);

static LATEST: LazyLock<Mutex<HashMap<String, Running>>> = LazyLock::new(Default::default);

/// Run `work` as the newest request of `slot`, cancelling the previous one.
async fn latest_wins<T>(
    slot: String,
    cancel: &Cancel,
    work: impl std::future::Future<Output = std::result::Result<T, RemoteError>>,
) -> std::result::Result<T, RemoteError> {
    let superseded = Arc::new(tokio::sync::Notify::new());
    if let Some((old, wake)) = LATEST
        .lock()
        .unwrap()
        .insert(slot.clone(), (cancel.clone(), superseded.clone()))
    {
        old.cancel();
        wake.notify_one();
    }
    let result = tokio::select! {
        r = work => r,
        _ = superseded.notified() => Err(RemoteError::Cancelled),
    };
    let mut latest = LATEST.lock().unwrap();
    if latest.get(&slot).is_some_and(|(c, _)| c.same(cancel)) {
        latest.remove(&slot);
    }
    result
}

// ---------------------------------------------------------------------------
// Streaming text through `$/progress`.
// ---------------------------------------------------------------------------

/// What the forwarding task is told.
pub(super) enum Progress {
    /// The full text so far (only the newest is sent when several queue up).
    Text(String),
    /// End the progress with this message.
    End(Option<String>),
}

/// Start a task that reports text on a client-given work-done `token`:
/// `begin`, then `report`s whose message is the whole text so far, then
/// `end` (when `End` arrives or the sender is dropped). Reports are
/// coalesced and at least `min_interval` apart, so a long answer is not
/// sent quadratically. Await the handle before answering the request so
/// every report reaches the client first.
pub(super) fn progress_task(
    client: Client,
    token: lsp::ProgressToken,
    title: String,
    min_interval: Duration,
) -> (
    tokio::sync::mpsc::UnboundedSender<Progress>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
    let task = tokio::spawn(async move {
        let send = |value: lsp::WorkDoneProgress| {
            let (client, token) = (client.clone(), token.clone());
            async move {
                client
                    .send_notification::<lsp::notification::Progress>(lsp::ProgressParams {
                        token,
                        value: lsp::ProgressParamsValue::WorkDone(value),
                    })
                    .await
            }
        };
        send(lsp::WorkDoneProgress::Begin(lsp::WorkDoneProgressBegin {
            title,
            ..Default::default()
        }))
        .await;
        let mut end_message = None;
        'outer: while let Some(first) = rx.recv().await {
            let mut latest = None;
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    Progress::Text(t) => latest = Some(t),
                    Progress::End(m) => {
                        end_message = m;
                        if let Some(t) = latest {
                            send(lsp::WorkDoneProgress::Report(lsp::WorkDoneProgressReport {
                                message: Some(t),
                                ..Default::default()
                            }))
                            .await;
                        }
                        break 'outer;
                    }
                }
                next = rx.try_recv().ok();
            }
            if let Some(t) = latest {
                send(lsp::WorkDoneProgress::Report(lsp::WorkDoneProgressReport {
                    message: Some(t),
                    ..Default::default()
                }))
                .await;
                if !min_interval.is_zero() {
                    tokio::time::sleep(min_interval).await;
                }
            }
        }
        send(lsp::WorkDoneProgress::End(lsp::WorkDoneProgressEnd {
            message: end_message,
        }))
        .await;
    });
    (tx, task)
}

// ---------------------------------------------------------------------------
// slm-ls.explain
// ---------------------------------------------------------------------------

/// `workspace/executeCommand` `slm-ls.explain`: `[{uri, range, dryRun?}]` →
/// `{markdown, model, provider, usage}`, or with `dryRun` the exact request
/// that would be sent (nothing is sent). Streams the Markdown so far as
/// `$/progress` reports when the client passed a `workDoneToken`.
pub async fn execute(state: Arc<State>, p: lsp::ExecuteCommandParams) -> Result<Option<Value>> {
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
    let (path, abs) = paths(&state, &snap.uri);
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
    let progress = token.map(|t| {
        progress_task(
            state.client.clone(),
            t,
            format!("Explain with {model}"),
            Duration::from_millis(30),
        )
    });
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
                    let _ = tx.send(Progress::Text(so_far.clone()));
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
                tracing::info!("explain failed: {e}");
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
    let (path, abs) = paths(state, uri);
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

// ---------------------------------------------------------------------------
// Remote completion backends.
// ---------------------------------------------------------------------------

/// `suggest` for `completion.backend` ≠ `local`: the same context
/// extraction, typed-ahead cache and post-processing as the local engine,
/// with the text coming from the configured inference server.
pub async fn suggest_remote(
    state: &Arc<State>,
    snap: &Snapshot,
    cursor: usize,
    progress: Option<lsp::ProgressToken>,
    config: &Config,
) -> Result<Option<String>> {
    let backend = config.completion.backend;
    let prefix = format!("slm-ls: completion server ({})", backend.name());
    let (path, abs) = paths(state, &snap.uri);
    // Cross-file snippets as for the local engine, but never from a file
    // the user's `remote.neverSend` keeps on this machine.
    let root = state.root_uri.read().unwrap().clone();
    let others =
        super::handlers::other_docs(state, &snap.uri, root.as_deref(), &config.remote.never_send);
    let prep = complete::prepare_with(&snap.doc, cursor, config, &path, &others);
    if config.completion.typed_ahead {
        if let Some(hit) = state.typed_ahead.get(prep.key) {
            return Ok(Some(hit));
        }
    }
    let server = config.completion.server.clone();
    let never = std::iter::once(path.as_str())
        .chain(abs.as_deref())
        .find_map(|p| remote::glob::never_send(p, &config.remote.never_send));
    if let Some(pattern) = never {
        tracing::debug!("{path} matches neverSend \"{pattern}\": no remote completion");
        return Ok(Some(String::new()));
    }
    let key =
        remote::api_key(server.key_env().as_deref()).map_err(|e| remote_error(&prefix, &e))?;

    // Secrets out of everything that leaves the machine.
    let lang = snap.doc.language_id.clone();
    let mut input = prep.ctx.input.clone();
    input.prefix = remote::redact::redact(&input.prefix, &lang).text;
    input.suffix = remote::redact::redact(&input.suffix, &lang).text;
    for e in &mut input.extras {
        e.text = remote::redact::redact(&e.text, &lang).text;
    }
    // The tail of `input.prefix`: without the whitespace the prompt leaves out.
    let line_prefix = prep.ctx.line_prefix.strip_suffix(prep.ctx.healed.as_str());
    let line_prefix =
        remote::redact::redact(line_prefix.unwrap_or(&prep.ctx.line_prefix), &lang).text;

    let cancel = Cancel::default();
    let _guard = CancelOnDrop(cancel.clone());
    let progress = progress.map(|t| {
        progress_task(
            state.client.clone(),
            t,
            "slm-ls completion".into(),
            Duration::ZERO,
        )
    });
    let run = {
        let tx = progress.as_ref().map(|(tx, _)| tx.clone());
        let ctx = prep.ctx.clone();
        let params = prep.params.clone();
        let cancel = cancel.clone();
        off_runtime(move || {
            let req = remote::completion::Request {
                input: &input,
                line_prefix: &line_prefix,
                max_tokens: params.max_tokens,
                max_time_ms: params.max_time_ms,
                stop: &params.stop,
            };
            let mut on_text = |raw: &str| {
                if let Some(tx) = &tx {
                    let _ = tx.send(Progress::Text(postprocess::clean(raw, &ctx)));
                }
            };
            remote::completion::complete(
                backend,
                &server,
                &req,
                key.as_deref(),
                &cancel,
                &mut on_text,
            )
        })
    };
    // Latest wins per document, as in the local engine.
    let slot = format!("complete:{}", snap.uri);
    let result = latest_wins(slot, &cancel, async { run.await.and_then(|r| r) }).await;
    if let Some((tx, task)) = progress {
        drop(tx);
        let _ = task.await;
    }
    match result {
        Ok(out) => {
            remote::stats::STATS.completion(Ok(out.usage));
            let text = postprocess::clean(&out.text, &prep.ctx);
            state.typed_ahead.insert(&prep, &path, &text);
            Ok(Some(text))
        }
        Err(RemoteError::Cancelled) => Err(Error::request_cancelled()),
        Err(e) => {
            remote::stats::STATS.completion(Err(()));
            Err(remote_error(&prefix, &e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_uris_decode() {
        assert_eq!(
            file_path("file:///w/a%20b.py").as_deref(),
            Some("/w/a b.py")
        );
        assert_eq!(file_path("file:///w/%2Eenv").as_deref(), Some("/w/.env"));
        assert_eq!(file_path("untitled:1"), None);
    }
}
