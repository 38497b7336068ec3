//! LSP handlers as plain functions over [`State`], grouped: state mutation
//! (document sync, settings), commands and stats, background work (model
//! loading, warm-up). The completion requests are in `completion.rs`, the
//! explain command and its code action in `explain.rs`.
//!
//! Every request is answered exactly once: with a result, with an error
//! that says what went wrong, or (when superseded or cancelled) with
//! `RequestCancelled` (-32800).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::{json, Value};
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Result};
use tower_lsp_server::ls_types as lsp;

use super::completion::{self, CMD_ACCEPTED};
use super::explain::{self, CMD_EXPLAIN};
use super::progress;
use super::proto;
use super::state::{self, EngineState, State};
use crate::complete;
use crate::config::Config;
use crate::context::Head;
use crate::engine::{EngineSettings, InferenceHandle};

fn invalid_params(msg: impl Into<String>) -> Error {
    Error {
        code: ErrorCode::InvalidParams,
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
    // [index] The open text may differ from the disk: index it (on the
    // index thread; the copy is the only cost here).
    if let (Some(ix), Some(path)) = (
        state.workspace_index(&state.config()),
        proto::file_path(d.uri.as_str()),
    ) {
        ix.open(path.into(), d.text);
    }
}

/// [index] `didSave`, and `didChangeWatchedFiles` for each file: read the
/// file again (or drop it when it is gone), in the background.
pub fn file_changed(state: &State, uri: &lsp::Uri) {
    if let (Some(ix), Some(path)) = (
        state.workspace_index(&state.config()),
        proto::file_path(uri.as_str()),
    ) {
        ix.refresh(path.into());
    }
}

/// [index] Ask the client to tell us about files changed outside the
/// editor (a `git checkout`, a generator), when it can and the index runs.
pub async fn watch_files(state: Arc<State>) {
    if !state.client_watch_files.load(Ordering::Relaxed) || state.index.read().unwrap().is_none() {
        return;
    }
    let registration = lsp::Registration {
        id: "slm-ls/watch".into(),
        method: "workspace/didChangeWatchedFiles".into(),
        register_options: Some(json!({ "watchers": [{ "globPattern": "**/*" }] })),
    };
    if let Err(e) = state.client.register_capability(vec![registration]).await {
        tracing::debug!("file watchers not registered: {e}");
    }
}

/// [index] Start the workspace index when there is a root folder, the
/// setting is on, and none runs yet: the walk and parse happen on the
/// index's own thread, so this returns at once.
pub fn start_index(state: &State) {
    let config = state.config();
    if !config.context.workspace || config.context.naive {
        return;
    }
    let Some(root) = state
        .root_uri
        .read()
        .unwrap()
        .as_deref()
        .and_then(proto::file_path)
    else {
        return;
    };
    let mut slot = state.index.write().unwrap();
    if slot.is_some() {
        return;
    }
    let limits = crate::index::Limits {
        never_send: config.remote.never_send.clone(),
        ..Default::default()
    };
    let handle = crate::index::IndexHandle::spawn(limits);
    handle.build(root.trim_end_matches('/').into());
    *slot = Some(Arc::new(handle));
}

/// Applies the edits; returns the char index just after the last edit
/// (our best guess of the cursor) or the error to report. Also notices the
/// acceptance of a shown suggestion, and wakes the menu requests that
/// watch for the user typing on (`completion.rs`).
pub fn did_change(
    state: &State,
    p: lsp::DidChangeTextDocumentParams,
) -> std::result::Result<Option<usize>, String> {
    let uri = p.text_document.uri.as_str().to_string();
    let enc = state.encoding();
    let last_range = p.content_changes.last().and_then(|c| c.range);
    let edits: Vec<_> = p.content_changes.into_iter().map(proto::edit).collect();
    let applied = state.docs.apply(&uri, p.text_document.version, &edits, enc);
    state.edits.send_modify(|n| *n += 1);
    applied.map_err(|e| format!("slm-ls: {e}"))?;
    let snap = state.docs.snapshot(&uri).map_err(|e| e.to_string())?;
    let inserted: Vec<&str> = edits.iter().map(|e| e.text.as_str()).collect();
    completion::watch_acceptance(state, &snap.doc, &uri, &inserted);
    // Guess the cursor: the end of the last inserted text.
    let (Some(range), Some(last)) = (last_range, edits.last()) else {
        return Ok(None);
    };
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
    // [index] Unsaved changes are gone with the editor: back to the disk.
    file_changed(state, &p.text_document.uri);
    state.acceptance.forget(uri);
    state.heads.forget(uri);
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
// Commands and stats.
// ---------------------------------------------------------------------------

/// `workspace/executeCommand`.
pub async fn execute_command(
    state: Arc<State>,
    p: lsp::ExecuteCommandParams,
) -> Result<Option<Value>> {
    match p.command.as_str() {
        CMD_ACCEPTED => {
            completion::accepted(&state, p.arguments.as_slice());
            Ok(None)
        }
        // [remote] issue 5: explain with the configured remote model.
        CMD_EXPLAIN => explain::execute(state, p).await,
        other => Err(invalid_params(format!("unknown command {other}"))),
    }
}

/// `slm-ls/stats`: counters and latency percentiles since start.
pub async fn stats(state: Arc<State>) -> Result<Value> {
    let docs = state.docs.len();
    let (model, report) = match state.engine() {
        Ok(e) => (
            json!({ "name": e.info.model_name, "fim": e.info.fim.to_string(), "loadMs": e.info.load_ms,
                    "cpuKernels": crate::engine::cpu::report(),
                    "draft": match &e.info.draft {
                        None => Value::Null,
                        Some(Ok(name)) => json!({ "name": name }),
                        Some(Err(why)) => json!({ "error": why }),
                    } }),
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
    // [index] issue 19: files, definitions, memory, build time.
    let index = match state.index.read().unwrap().as_ref() {
        Some(ix) if state.config().context.workspace => {
            serde_json::to_value(ix.index.stats()).unwrap_or_default()
        }
        _ => json!({ "state": "off" }),
    };
    Ok(
        json!({ "openDocuments": docs, "model": model, "completion": report, "remote": remote, "workspaceIndex": index }),
    )
}

// ---------------------------------------------------------------------------
// Background work.
// ---------------------------------------------------------------------------

/// Load (or reload) the model off the request path, reporting `$/progress`.
pub async fn load_engine(state: Arc<State>) {
    let config = state.config();
    let (path, source) = state.model_path(&config);
    let generation = state.engine_generation.fetch_add(1, Ordering::SeqCst) + 1;
    let backend = config.completion.backend;
    if backend != crate::remote::CompletionBackend::Local {
        // Completions come from a server: do not spend RAM and a core on a
        // model nobody asks. Dropping a loaded one joins its thread.
        tracing::info!("completion.backend is {}: no local model", backend.name());
        state.set_engine(EngineState::Unused(backend.name()));
        return;
    }
    // A path the user set that is wrong: say which setting, not "fetch".
    if let Some(e) = state::configured_model_missing(&path, source) {
        return engine_failed(&state, generation, e).await;
    }
    let settings = match EngineSettings::from_config(&config, path.clone()) {
        Ok(s) => s,
        Err(e) => return engine_failed(&state, generation, e).await,
    };
    state.set_engine(EngineState::Loading(0));
    let token = progress::create(&state, format!("load/{generation}")).await;
    if let Some(token) = &token {
        progress::send(
            &state.client,
            token,
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
                state.load_percent.store(pct, Ordering::Relaxed);
                if let Some(token) = &token {
                    progress::send(
                        &state.client,
                        token,
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
    if let Some(token) = &token {
        let message = match &loaded {
            Ok(h) => format!("{} ready ({} ms)", h.info.model_name, h.info.load_ms),
            Err(_) => "failed".to_string(),
        };
        progress::send(
            &state.client,
            token,
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
            state.set_engine(EngineState::Ready(Arc::new(handle)));
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
    state.set_engine(EngineState::Failed(e.clone()));
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
    let (path, _) = state.paths(uri);
    // An idle pause is where an old prompt head is searched afresh (see
    // `complete::PromptHeads`): this warm-up then prefills it.
    let line = snap
        .doc
        .rope
        .char_to_line(cursor.min(snap.doc.rope.len_chars()));
    let kept = state.heads.kept_at_pause(uri, line);
    let (others, index);
    let head = match &kept {
        Some(k) => Head::Keep(k),
        None => {
            others = state.other_docs(uri, &[]);
            index = state.workspace_index(&config);
            completion::search_head(&others, index.as_deref())
        }
    };
    let prep = complete::prepare_with(&snap.doc, cursor, &config, &path, head, &engine.tokenizer);
    if prep.ctx.skip.is_none() {
        state.heads.remember(uri, line, &prep, kept.is_none());
    }
    engine.warm(uri, prep.ctx.input);
}
