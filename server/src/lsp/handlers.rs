//! LSP handlers as plain functions over [`State`].
//!
//! Every request is answered exactly once: with a result, with an error
//! that says what went wrong, or (when superseded or cancelled) with
//! `RequestCancelled` (-32800).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::{json, Value};
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Result};
use tower_lsp_server::ls_types as lsp;

use super::proto;
use super::state::{EngineState, State};
use crate::complete::{self, Completion};
use crate::config::Config;
use crate::document::Snapshot;
use crate::engine::{EngineSettings, InferenceHandle};

pub const CMD_EXPLAIN: &str = "slm-ls.explain";
pub const CMD_ACCEPTED: &str = "slm-ls.accepted";

fn invalid_params(msg: impl Into<String>) -> Error {
    Error {
        code: ErrorCode::InvalidParams,
        message: msg.into().into(),
        data: None,
    }
}

fn request_failed(msg: impl Into<String>) -> Error {
    Error {
        code: ErrorCode::ServerError(-32803),
        message: msg.into().into(),
        data: None,
    }
}

// ---------------------------------------------------------------------------
// State mutation: synchronous, in arrival order, no `.await` before the
// document store is updated.
// ---------------------------------------------------------------------------

pub fn did_open(state: &State, p: lsp::DidOpenTextDocumentParams) {
    let d = p.text_document;
    state
        .docs
        .open(d.uri.as_str(), &d.text, d.version, &d.language_id);
}

/// Applies the edits; returns the char index just after the last edit
/// (our best guess of the cursor) or the error to report.
pub fn did_change(
    state: &State,
    p: lsp::DidChangeTextDocumentParams,
) -> std::result::Result<Option<usize>, String> {
    let uri = p.text_document.uri.as_str().to_string();
    let enc = state.encoding();
    let last = p.content_changes.last().cloned();
    let edits: Vec<_> = p.content_changes.into_iter().map(proto::edit).collect();
    state
        .docs
        .apply(&uri, p.text_document.version, &edits, enc)
        .map_err(|e| format!("slm-ls: {e}"))?;
    // Guess the cursor: the end of the last inserted text.
    let Some(last) = last else { return Ok(None) };
    let Some(range) = last.range else {
        return Ok(None);
    };
    let snap = state.docs.snapshot(&uri).map_err(|e| e.to_string())?;
    let start = snap.doc.char_index(proto::position(range.start), enc).ok();
    Ok(start.map(|s| s + last.text.chars().count()))
}

pub fn did_close(state: &State, p: lsp::DidCloseTextDocumentParams) {
    let uri = p.text_document.uri.as_str();
    let size = state
        .docs
        .snapshot(uri)
        .map(|s| s.doc.rope.len_bytes())
        .unwrap_or(0);
    state.docs.close(uri);
    if let Ok(engine) = state.engine() {
        engine.forget(uri);
    }
    if size >= RELEASE_MEMORY_AFTER_BYTES || state.docs.is_empty() {
        release_free_memory();
    }
}

/// Closing a document at least this large, or the last open one, hands
/// freed memory back to the OS.
const RELEASE_MEMORY_AFTER_BYTES: usize = 1 << 20;

/// A rope is thousands of ~1 kB nodes; glibc keeps freed small blocks in
/// its arenas, so without this the memory of a closed 30 MB file stays
/// with the process (measured: RSS did not move after close). Runs off the
/// async workers; a no-op elsewhere than glibc.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tokio::task::spawn_blocking(|| {
        // SAFETY: malloc_trim only returns free memory to the OS; it is
        // thread-safe and has no preconditions.
        unsafe {
            libc::malloc_trim(0);
        }
    });
}

/// Merge new settings; returns whether the engine must be reloaded.
pub fn apply_settings(state: &State, value: &Value) -> std::result::Result<bool, String> {
    let new = Config::from_json(value)?;
    let mut cfg = state.config.write().unwrap();
    // A new model, or a switch between the local engine and a server.
    let local = |c: &Config| c.completion.backend == crate::remote::CompletionBackend::Local;
    let reload = cfg.model != new.model || local(&cfg) != local(&new);
    *cfg = new;
    Ok(reload)
}

// ---------------------------------------------------------------------------
// Latency-sensitive requests.
// ---------------------------------------------------------------------------

/// Resolve a document position to (snapshot, cursor char index).
fn locate(state: &State, td: &lsp::TextDocumentPositionParams) -> Result<(Snapshot, usize)> {
    let snap = state
        .docs
        .snapshot(td.text_document.uri.as_str())
        .map_err(|e| invalid_params(e.to_string()))?;
    let cursor = snap
        .doc
        .char_index(proto::position(td.position), state.encoding())
        .map_err(|e| invalid_params(e.to_string()))?;
    Ok((snap, cursor))
}

/// Shared by `textDocument/inlineCompletion` and `textDocument/completion`:
/// the suggestion text at the cursor, streamed through `$/progress` when
/// the client passed a work-done token.
async fn suggest(
    state: &Arc<State>,
    snap: &Snapshot,
    cursor: usize,
    progress: Option<lsp::ProgressToken>,
) -> Result<Option<String>> {
    let config = state.config();
    if !config.completion.enabled {
        return Ok(None);
    }
    // [remote] issue 5: a team inference server instead of the local engine.
    if config.completion.backend != crate::remote::CompletionBackend::Local {
        return super::explain::suggest_remote(state, snap, cursor, progress, &config).await;
    }
    let engine = state.engine().map_err(request_failed)?;
    let root = state.root_uri.read().unwrap().clone();
    let path = proto::display_path(&snap.uri, root.as_deref());
    let others = other_docs(state, &snap.uri, root.as_deref(), &[]);
    let prep = complete::prepare_with(&snap.doc, cursor, &config, &path, &others);
    if let Some(hit) = state
        .typed_ahead
        .get(prep.key)
        .filter(|_| config.completion.typed_ahead)
    {
        engine
            .stats
            .typed_ahead_hits
            .fetch_add(1, Ordering::Relaxed);
        return Ok(Some(hit));
    }

    // Partial results go through a channel to one forwarding task so they
    // reach the client in order, and all of them before the final answer.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let forward = progress.map(|token| {
        let client = state.client.clone();
        tokio::spawn(async move {
            send_progress(
                &client,
                &token,
                lsp::WorkDoneProgress::Begin(lsp::WorkDoneProgressBegin {
                    title: "slm-ls completion".into(),
                    ..Default::default()
                }),
            )
            .await;
            while let Some(text) = rx.recv().await {
                // Coalesce: only the newest text matters.
                let mut latest = text;
                while let Ok(t) = rx.try_recv() {
                    latest = t;
                }
                send_progress(
                    &client,
                    &token,
                    lsp::WorkDoneProgress::Report(lsp::WorkDoneProgressReport {
                        message: Some(latest),
                        ..Default::default()
                    }),
                )
                .await;
            }
            send_progress(
                &client,
                &token,
                lsp::WorkDoneProgress::End(lsp::WorkDoneProgressEnd { message: None }),
            )
            .await;
        })
    });
    let streaming = forward.is_some();
    let result = complete::run(&engine, &snap.uri, &prep, |partial| {
        if streaming {
            let _ = tx.send(partial.to_string());
        }
    })
    .await;
    drop(tx);
    if let Some(f) = forward {
        let _ = f.await;
    }
    match result {
        Completion::Text { text, .. } => {
            state.typed_ahead.insert(&prep, &path, &text);
            Ok(Some(text))
        }
        Completion::Cancelled => Err(Error::request_cancelled()),
        Completion::Failed(e) => Err(request_failed(format!("slm-ls: completion failed: {e}"))),
    }
}

/// [context] The other open documents, for cross-file snippets, except
/// those matching one of the user's `never_send` patterns (the built-in
/// secrets list is `context::crossfile`'s job: it applies it always).
pub(super) fn other_docs(
    state: &State,
    uri: &str,
    root: Option<&str>,
    never_send: &[String],
) -> Vec<crate::context::OtherDoc> {
    state
        .docs
        .others(uri, 64)
        .into_iter()
        .filter_map(|(uri, doc)| {
            let path = proto::display_path(&uri, root);
            let refused = !never_send.is_empty()
                && std::iter::once(path.clone())
                    .chain(super::explain::file_path(&uri))
                    .any(|p| crate::remote::glob::never_send(&p, never_send).is_some());
            (!refused).then_some(crate::context::OtherDoc { path, doc })
        })
        .collect()
}

async fn send_progress(
    client: &tower_lsp_server::Client,
    token: &lsp::ProgressToken,
    value: lsp::WorkDoneProgress,
) {
    client
        .send_notification::<lsp::notification::Progress>(lsp::ProgressParams {
            token: token.clone(),
            value: lsp::ProgressParamsValue::WorkDone(value),
        })
        .await;
}

pub async fn inline_completion(
    state: Arc<State>,
    p: lsp::InlineCompletionParams,
) -> Result<Option<lsp::InlineCompletionResponse>> {
    let (snap, cursor) = locate(&state, &p.text_document_position)?;
    let Some(text) = suggest(
        &state,
        &snap,
        cursor,
        p.work_done_progress_params.work_done_token,
    )
    .await?
    else {
        return Ok(None);
    };
    if text.is_empty() {
        return Ok(Some(lsp::InlineCompletionResponse::List(
            lsp::InlineCompletionList { items: vec![] },
        )));
    }
    if let Ok(e) = state.engine() {
        e.stats.shown.fetch_add(1, Ordering::Relaxed);
    }
    let pos = p.text_document_position.position;
    let item = lsp::InlineCompletionItem {
        insert_text: text.clone(),
        filter_text: None,
        range: Some(lsp::Range::new(pos, pos)),
        command: Some(accepted_command(&snap.uri, &text)),
        insert_text_format: None,
    };
    Ok(Some(lsp::InlineCompletionResponse::List(
        lsp::InlineCompletionList { items: vec![item] },
    )))
}

fn accepted_command(uri: &str, text: &str) -> lsp::Command {
    lsp::Command {
        title: "slm-ls: suggestion accepted".into(),
        command: CMD_ACCEPTED.into(),
        arguments: Some(vec![json!({ "uri": uri, "chars": text.chars().count() })]),
    }
}

/// `textDocument/completion`, shaped for menu-based clients (Helix): the
/// label is the suggestion's first line, the edit replaces the word being
/// typed with that word plus the suggestion (so fuzzy filtering on
/// `filterText` keeps the item), and the list is incomplete so the client
/// asks again as the user types.
pub async fn completion(
    state: Arc<State>,
    p: lsp::CompletionParams,
) -> Result<Option<lsp::CompletionResponse>> {
    let (snap, cursor) = locate(&state, &p.text_document_position)?;
    tracing::debug!(uri = %snap.uri, cursor, "completion request");
    let Some(text) = suggest(
        &state,
        &snap,
        cursor,
        p.work_done_progress_params.work_done_token,
    )
    .await?
    else {
        return Ok(None);
    };
    let list = |items| {
        Ok(Some(lsp::CompletionResponse::List(lsp::CompletionList {
            is_incomplete: true,
            items,
        })))
    };
    if text.trim().is_empty() {
        return list(vec![]);
    }
    let enc = state.encoding();
    // The identifier characters right before the cursor.
    let rope = &snap.doc.rope;
    let mut word_start = cursor;
    // Bounded: on a multi-megabyte line of identifier characters an
    // unbounded walk costs O(line) per request.
    let floor = cursor.saturating_sub(MAX_WORD_CHARS);
    while word_start > floor {
        let c = rope.char(word_start - 1);
        if c.is_alphanumeric() || c == '_' {
            word_start -= 1;
        } else {
            break;
        }
    }
    let word: String = rope.slice(word_start..cursor).to_string();
    let start = proto::to_position(snap.doc.position(word_start, enc));
    let end = p.text_document_position.position;
    let label = menu_label(&word, &text);
    let item = lsp::CompletionItem {
        label,
        kind: Some(lsp::CompletionItemKind::TEXT),
        detail: Some("slm-ls".into()),
        documentation: Some(lsp::Documentation::MarkupContent(lsp::MarkupContent {
            kind: lsp::MarkupKind::Markdown,
            value: format!("```{}\n{}{}\n```", snap.doc.language_id, word, text),
        })),
        filter_text: Some(word.clone()),
        sort_text: Some("0".into()),
        preselect: Some(true),
        text_edit: Some(lsp::CompletionTextEdit::Edit(lsp::TextEdit {
            range: lsp::Range::new(start, end),
            new_text: format!("{word}{text}"),
        })),
        command: Some(accepted_command(&snap.uri, &text)),
        ..Default::default()
    };
    list(vec![item])
}

/// The menu label of a completion item: the typed word and the suggestion's
/// first line. A suggestion that starts with a line break (a block body after
/// `:` or `{`) would have a blank label; it shows as `word ↵ next line`.
/// At most 80 characters, cut with `…`.
fn menu_label(word: &str, text: &str) -> String {
    let first = format!("{word}{}", text.lines().next().unwrap_or(""));
    let first = first.trim();
    let label = if text.lines().next().unwrap_or("").trim().is_empty() {
        let next = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("");
        if first.is_empty() {
            format!("↵ {next}")
        } else {
            format!("{first} ↵ {next}")
        }
    } else {
        first.to_string()
    };
    if label.chars().count() > 80 {
        let mut cut: String = label.chars().take(79).collect();
        cut.push('…');
        cut
    } else {
        label
    }
}

/// Longest "word being typed" the completion item's edit replaces.
const MAX_WORD_CHARS: usize = 256;

/// `workspace/executeCommand`.
pub async fn execute_command(
    state: Arc<State>,
    p: lsp::ExecuteCommandParams,
) -> Result<Option<Value>> {
    match p.command.as_str() {
        CMD_ACCEPTED => {
            if let Ok(e) = state.engine() {
                e.stats.accepted.fetch_add(1, Ordering::Relaxed);
            }
            Ok(None)
        }
        // [remote] issue 5: explain with the configured remote model.
        CMD_EXPLAIN => super::explain::execute(state, p).await,
        other => Err(invalid_params(format!("unknown command {other}"))),
    }
}

/// `slm-ls/stats`: counters and latency percentiles since start.
pub async fn stats(state: Arc<State>) -> Result<Value> {
    let docs = state.docs.len();
    let (model, report) = match state.engine() {
        Ok(e) => (
            json!({ "name": e.info.model_name, "fim": e.info.fim.to_string(), "loadMs": e.info.load_ms }),
            serde_json::to_value(e.stats.report()).unwrap_or_default(),
        ),
        Err(msg) => match *state.engine.read().unwrap() {
            // A completion server instead of a local model: ready, not an error.
            EngineState::Unused(backend) => (
                json!({ "name": format!("completion server ({backend})"), "backend": backend }),
                Value::Null,
            ),
            _ => (json!({ "error": msg }), Value::Null),
        },
    };
    // [remote] issue 5: remote token counts and the estimated cost saved by
    // serving completions locally (remote/stats.rs).
    let local_tokens = state
        .engine()
        .map(|e| e.stats.report())
        .map(|r| r.prompt_tokens + r.generated_tokens);
    let remote = crate::remote::stats::report(
        &crate::remote::stats::STATS,
        state.config().remote.price_per_1k_tokens,
        local_tokens.unwrap_or(0),
    );
    Ok(json!({ "openDocuments": docs, "model": model, "completion": report, "remote": remote }))
}

// ---------------------------------------------------------------------------
// Background work.
// ---------------------------------------------------------------------------

/// Load (or reload) the model off the request path, reporting `$/progress`.
pub async fn load_engine(state: Arc<State>) {
    let config = state.config();
    let path = state.model_path(&config);
    let generation = state.engine_generation.fetch_add(1, Ordering::SeqCst) + 1;
    let backend = config.completion.backend;
    if backend != crate::remote::CompletionBackend::Local {
        // Completions come from a server: do not spend RAM and a core on a
        // model nobody asks. Dropping a loaded one joins its thread.
        tracing::info!("completion.backend is {}: no local model", backend.name());
        let old = std::mem::replace(
            &mut *state.engine.write().unwrap(),
            EngineState::Unused(backend.name()),
        );
        tokio::task::spawn_blocking(move || drop(old)).await.ok();
        return;
    }
    let settings = match EngineSettings::from_config(&config, path.clone()) {
        Ok(s) => s,
        Err(e) => return engine_failed(&state, generation, e).await,
    };
    *state.engine.write().unwrap() = EngineState::Loading(0);
    let token = lsp::ProgressToken::String(format!("slm-ls/load/{generation}"));
    let progress_ok = state.client_progress.load(Ordering::Relaxed)
        && state
            .client
            .create_work_done_progress(token.clone())
            .await
            .is_ok();
    if progress_ok {
        send_progress(
            &state.client,
            &token,
            lsp::WorkDoneProgress::Begin(lsp::WorkDoneProgressBegin {
                title: "slm-ls: loading model".into(),
                message: Some(path.display().to_string()),
                percentage: Some(0),
                cancellable: Some(false),
            }),
        )
        .await;
    }
    let (ptx, mut prx) = tokio::sync::mpsc::unbounded_channel::<u8>();
    let forward = {
        let state = state.clone();
        let token = token.clone();
        tokio::spawn(async move {
            while let Some(pct) = prx.recv().await {
                if let EngineState::Loading(_) = &*state.engine.read().unwrap() {}
                state.load_percent.store(pct, Ordering::Relaxed);
                if progress_ok {
                    send_progress(
                        &state.client,
                        &token,
                        lsp::WorkDoneProgress::Report(lsp::WorkDoneProgressReport {
                            percentage: Some(pct as u32),
                            ..Default::default()
                        }),
                    )
                    .await;
                }
            }
        })
    };
    let mut last = u8::MAX;
    let loaded = tokio::task::spawn_blocking(move || {
        InferenceHandle::spawn(
            settings,
            Box::new(move |f| {
                let pct = (f * 100.0).clamp(0.0, 100.0) as u8;
                if pct / 10 != last / 10 {
                    last = pct;
                    let _ = ptx.send(pct);
                }
            }),
        )
    })
    .await
    .unwrap_or_else(|e| Err(format!("the model loader panicked: {e}")));
    let _ = forward.await;
    if progress_ok {
        let message = match &loaded {
            Ok(h) => format!("{} ready ({} ms)", h.info.model_name, h.info.load_ms),
            Err(_) => "failed".to_string(),
        };
        send_progress(
            &state.client,
            &token,
            lsp::WorkDoneProgress::End(lsp::WorkDoneProgressEnd {
                message: Some(message),
            }),
        )
        .await;
    }
    match loaded {
        Ok(handle) => {
            if state.engine_generation.load(Ordering::SeqCst) != generation {
                return; // superseded by a newer load
            }
            tracing::info!(model = %handle.info.model_name, fim = %handle.info.fim, load_ms = handle.info.load_ms, "engine ready");
            *state.engine.write().unwrap() = EngineState::Ready(Arc::new(handle));
            // Warm every open document now that there is a model.
            for uri in state.docs.uris() {
                warm(&state, &uri, None);
            }
        }
        Err(e) => engine_failed(&state, generation, e).await,
    }
}

async fn engine_failed(state: &State, generation: u64, e: String) {
    if state.engine_generation.load(Ordering::SeqCst) != generation {
        return;
    }
    tracing::error!("model not loaded: {e}");
    *state.engine.write().unwrap() = EngineState::Failed(e.clone());
    state
        .client
        .show_message(
            lsp::MessageType::ERROR,
            format!("slm-ls: completions are off, the model did not load: {e}"),
        )
        .await;
}

/// Prefill the likely prompt for `uri` at `cursor` (default: the end of the
/// first prefix window) at lowest priority.
pub fn warm(state: &State, uri: &str, cursor: Option<usize>) {
    let Ok(engine) = state.engine() else { return };
    let Ok(snap) = state.docs.snapshot(uri) else {
        return;
    };
    let config = state.config();
    let cursor = cursor.unwrap_or_else(|| {
        let budget = config.context.prefix_tokens as usize * crate::context::CHARS_PER_TOKEN / 2;
        let c = budget.min(snap.doc.rope.len_chars());
        snap.doc.rope.line_to_char(snap.doc.rope.char_to_line(c))
    });
    let root = state.root_uri.read().unwrap().clone();
    let path = proto::display_path(uri, root.as_deref());
    let others = other_docs(state, uri, root.as_deref(), &[]);
    let prep = complete::prepare_with(&snap.doc, cursor, &config, &path, &others);
    engine.warm(uri, prep.ctx.input);
}
