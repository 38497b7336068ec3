//! The `LanguageServer` impl: one line per method, delegating to
//! `handlers.rs`, `completion.rs` and `explain.rs`, plus the stdio entry
//! point and custom methods.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::Value;
use tower_lsp_server::jsonrpc::{Error, Result};
use tower_lsp_server::ls_types as lsp;
use tower_lsp_server::{Client, LanguageServer, LspService, Server};

use super::completion::{self, CMD_ACCEPTED};
use super::explain::{self, CMD_EXPLAIN};
use super::handlers;
use super::lifetime::{self, End};
use super::proto;
use super::state::{CliOverrides, State};

pub struct Backend {
    state: Arc<State>,
}

/// Run a handler future, turning a panic into an internal error instead of
/// taking the whole server (and every open document) down with it.
async fn guarded<T>(name: &str, fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(fut).catch_unwind().await {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic_message(&*panic);
            tracing::error!("internal error in {name}: {msg}");
            Err(Error {
                code: tower_lsp_server::jsonrpc::ErrorCode::InternalError,
                message: format!("slm-ls internal error in {name}: {msg}").into(),
                data: None,
            })
        }
    }
}

/// Run a notification handler, turning a panic into a logged error and a
/// message to the user instead of the end of the process.
async fn guarded_notification(
    state: &State,
    name: &str,
    fut: impl std::future::Future<Output = ()>,
) {
    use futures::FutureExt;
    if let Err(panic) = std::panic::AssertUnwindSafe(fut).catch_unwind().await {
        let msg = panic_message(&*panic);
        tracing::error!("internal error in {name}: {msg}");
        state
            .client
            .show_message(
                lsp::MessageType::ERROR,
                format!("slm-ls internal error in {name}: {msg} (the server goes on; please report this)"),
            )
            .await;
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

impl LanguageServer for Backend {
    async fn initialize(&self, params: lsp::InitializeParams) -> Result<lsp::InitializeResult> {
        guarded("initialize", async { self.initialize_inner(params) }).await
    }

    async fn initialized(&self, _: lsp::InitializedParams) {
        let state = self.state.clone();
        tokio::spawn(handlers::load_engine(state));
        // [index] issue 19: the workspace index, on its own thread.
        handlers::start_index(&self.state);
        tokio::spawn(handlers::watch_files(self.state.clone()));
    }

    async fn shutdown(&self) -> Result<()> {
        guarded("shutdown", async {
            self.state.shutdown_received.store(true, Ordering::SeqCst);
            // Cancel the engine's work, but do not stop its thread: that
            // would wait for the `decode` chunk in progress (llama.cpp
            // cannot abort it). The process ends at `exit` (lifetime.rs).
            self.state.cancel_engine_work();
            Ok(())
        })
        .await
    }

    // --- State mutation: applied synchronously before any `.await`. ---
    // Notifications have no response to carry an error, and tower-lsp
    // does not catch panics: an unguarded panic here would unwind through
    // the whole server and end the process. `guarded_notification` logs it
    // and tells the user instead.

    async fn did_open(&self, p: lsp::DidOpenTextDocumentParams) {
        guarded_notification(&self.state, "didOpen", async {
            let uri = p.text_document.uri.as_str().to_string();
            handlers::did_open(&self.state, p);
            handlers::warm(&self.state, &uri, None);
        })
        .await
    }

    async fn did_change(&self, p: lsp::DidChangeTextDocumentParams) {
        guarded_notification(&self.state, "didChange", async {
            let uri = p.text_document.uri.as_str().to_string();
            let version = p.text_document.version;
            match handlers::did_change(&self.state, p) {
                Ok(cursor) => self.warm_after_pause(uri, version, cursor),
                Err(e) => {
                    tracing::warn!("{e}");
                    self.state
                        .client
                        .show_message(lsp::MessageType::WARNING, e)
                        .await;
                }
            }
        })
        .await
    }

    async fn did_save(&self, p: lsp::DidSaveTextDocumentParams) {
        guarded_notification(&self.state, "didSave", async {
            handlers::file_changed(&self.state, &p.text_document.uri);
        })
        .await
    }

    async fn did_change_watched_files(&self, p: lsp::DidChangeWatchedFilesParams) {
        guarded_notification(&self.state, "didChangeWatchedFiles", async {
            for c in &p.changes {
                handlers::file_changed(&self.state, &c.uri);
            }
        })
        .await
    }

    async fn did_close(&self, p: lsp::DidCloseTextDocumentParams) {
        guarded_notification(&self.state, "didClose", async {
            handlers::did_close(&self.state, p);
        })
        .await
    }

    async fn did_change_configuration(&self, p: lsp::DidChangeConfigurationParams) {
        guarded_notification(&self.state, "didChangeConfiguration", async {
            let applied = handlers::apply_settings(&self.state, &p.settings);
            // [index] `context.workspace` may have been turned on.
            handlers::start_index(&self.state);
            match applied {
                Ok(true) => {
                    tokio::spawn(handlers::load_engine(self.state.clone()));
                }
                Ok(false) => {}
                Err(e) => {
                    self.state
                        .client
                        .show_message(lsp::MessageType::ERROR, e)
                        .await
                }
            }
        })
        .await
    }

    // --- Latency-sensitive requests. ---

    async fn completion(
        &self,
        p: lsp::CompletionParams,
    ) -> Result<Option<lsp::CompletionResponse>> {
        guarded("completion", completion::completion(self.state.clone(), p)).await
    }

    // [remote] issue 5: "Explain with <model>" (lsp/explain.rs).
    async fn code_action(
        &self,
        p: lsp::CodeActionParams,
    ) -> Result<Option<lsp::CodeActionResponse>> {
        let state = self.state.clone();
        guarded("codeAction", async move { explain::code_action(&state, p) }).await
    }

    async fn execute_command(&self, p: lsp::ExecuteCommandParams) -> Result<Option<Value>> {
        guarded(
            "executeCommand",
            handlers::execute_command(self.state.clone(), p),
        )
        .await
    }
}

impl Backend {
    fn initialize_inner(&self, params: lsp::InitializeParams) -> Result<lsp::InitializeResult> {
        let enc = proto::negotiate_encoding(&params.capabilities);
        *self.state.encoding.write().unwrap() = enc;
        // Details on stderr only when the client asked for a trace (editors
        // such as Helix show every stderr line in their log, as an error).
        if matches!(
            params.trace,
            Some(lsp::TraceValue::Messages | lsp::TraceValue::Verbose)
        ) {
            super::client_log::set_stderr_verbose(true);
        }
        let progress = params
            .capabilities
            .window
            .as_ref()
            .and_then(|w| w.work_done_progress)
            .unwrap_or(false);
        self.state
            .client_progress
            .store(progress, std::sync::atomic::Ordering::Relaxed);
        let show_document = params
            .capabilities
            .window
            .as_ref()
            .and_then(|w| w.show_document.as_ref())
            .is_some_and(|s| s.support);
        self.state
            .client_show_document
            .store(show_document, std::sync::atomic::Ordering::Relaxed);
        let watch = params
            .capabilities
            .workspace
            .as_ref()
            .and_then(|w| w.did_change_watched_files.as_ref())
            .and_then(|d| d.dynamic_registration)
            .unwrap_or(false);
        self.state
            .client_watch_files
            .store(watch, std::sync::atomic::Ordering::Relaxed);
        #[allow(deprecated)]
        let root = params
            .workspace_folders
            .as_ref()
            .and_then(|f| f.first())
            .map(|f| f.uri.as_str().to_string())
            .or_else(|| params.root_uri.as_ref().map(|u| u.as_str().to_string()));
        *self.state.root_uri.write().unwrap() = root;
        if let Some(opts) = &params.initialization_options {
            if let Err(e) = handlers::apply_settings(&self.state, opts) {
                // Bad settings are reported, not fatal: defaults stay in force.
                tracing::warn!("{e}");
            }
        }
        Ok(lsp::InitializeResult {
            offset_encoding: None,
            server_info: Some(lsp::ServerInfo {
                name: "slm-ls".into(),
                version: Some(env!("CARGO_PKG_VERSION").into()),
            }),
            capabilities: lsp::ServerCapabilities {
                position_encoding: Some(proto::encoding_kind(enc)),
                text_document_sync: Some(lsp::TextDocumentSyncCapability::Options(
                    lsp::TextDocumentSyncOptions {
                        open_close: Some(true),
                        change: Some(lsp::TextDocumentSyncKind::INCREMENTAL),
                        save: Some(lsp::TextDocumentSyncSaveOptions::Supported(true)),
                        ..Default::default()
                    },
                )),
                completion_provider: Some(lsp::CompletionOptions {
                    trigger_characters: Some(
                        [".", "(", " ", ":", "="]
                            .iter()
                            .map(|s| s.to_string())
                            .collect(),
                    ),
                    ..Default::default()
                }),
                inline_completion_provider: Some(lsp::OneOf::Left(true)),
                // [remote] issue 5: "Explain with <model>" on a selection.
                code_action_provider: Some(lsp::CodeActionProviderCapability::Simple(true)),
                execute_command_provider: Some(lsp::ExecuteCommandOptions {
                    commands: vec![CMD_EXPLAIN.into(), CMD_ACCEPTED.into()],
                    ..Default::default()
                }),
                ..Default::default()
            },
        })
    }

    async fn inline_completion(
        &self,
        p: lsp::InlineCompletionParams,
    ) -> Result<Option<lsp::InlineCompletionResponse>> {
        guarded(
            "inlineCompletion",
            completion::inline_completion(self.state.clone(), p),
        )
        .await
    }

    async fn stats(&self) -> Result<Value> {
        guarded("stats", handlers::stats(self.state.clone())).await
    }

    // --- Test hooks (only registered with SLM_LS_TEST_HOOKS=1). ---

    async fn test_panic(&self, p: Option<Value>) -> Result<Value> {
        guarded(
            "slm-ls/test/panic",
            async move { super::test_hooks::panic(p) },
        )
        .await
    }

    async fn test_panic_notification(&self, p: Option<Value>) {
        guarded_notification(&self.state, "slm-ls/test/panicNotification", async move {
            let _ = super::test_hooks::panic(p);
        })
        .await
    }

    async fn test_prompt_head(&self, p: Value) -> Result<Value> {
        guarded("slm-ls/test/promptHead", async {
            super::test_hooks::prompt_head(&self.state, &p)
        })
        .await
    }

    async fn test_document_text(&self, p: Value) -> Result<Value> {
        guarded("slm-ls/test/documentText", async {
            super::test_hooks::document_text(&self.state, &p)
        })
        .await
    }

    /// When the user pauses typing, prefill what the next request will need.
    fn warm_after_pause(&self, uri: String, version: i32, cursor: Option<usize>) {
        let state = self.state.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let same = state
                .docs
                .snapshot(&uri)
                .map(|s| s.doc.version == version)
                .unwrap_or(false);
            if same {
                handlers::warm(&state, &uri, cursor);
            }
        });
    }
}

/// Messages handled at once (see `serve_stdio`).
const MAX_CONCURRENT_MESSAGES: usize = 32;

/// Serve LSP on stdin/stdout until the session ends (see
/// [`lifetime`](super::lifetime)); returns the process's exit status. The
/// caller ends the process with [`lifetime::exit_now`] rather than by
/// dropping the runtime, which would wait for blocking tasks (a model
/// still loading) and the inference thread.
///
/// stdin goes through [`framing`](super::framing) first: tower-lsp's own
/// decoder ends the session on the first malformed message, ours answers
/// it and carries on (see that module). tower-lsp's output goes through an
/// in-process pipe so our error replies are written between whole frames.
pub async fn serve_stdio(cli: CliOverrides) -> i32 {
    let hooks = super::test_hooks::enabled();
    // The session state, for the end of the session (cancel the engine's
    // work, read whether `shutdown` came): tower-lsp owns the service.
    let session: Arc<OnceLock<Arc<State>>> = Default::default();
    let builder = LspService::build({
        let session = session.clone();
        move |client: Client| {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            super::client_log::set_sink(tx);
            let c = client.clone();
            tokio::spawn(async move {
                while let Some((level, msg)) = rx.recv().await {
                    let typ = if level == tracing::Level::ERROR {
                        lsp::MessageType::ERROR
                    } else {
                        lsp::MessageType::WARNING
                    };
                    c.log_message(typ, msg).await;
                }
            });
            let state = Arc::new(State::new(client, cli));
            let _ = session.set(state.clone());
            Backend { state }
        }
    })
    .custom_method("textDocument/inlineCompletion", Backend::inline_completion)
    .custom_method("slm-ls/stats", Backend::stats);
    let builder = if hooks {
        tracing::warn!("SLM_LS_TEST_HOOKS is set: test-only requests are enabled");
        builder
            .custom_method(super::test_hooks::PANIC, Backend::test_panic)
            .custom_method(
                super::test_hooks::PANIC_NOTIFICATION,
                Backend::test_panic_notification,
            )
            .custom_method(
                super::test_hooks::DOCUMENT_TEXT,
                Backend::test_document_text,
            )
            .custom_method(super::test_hooks::PROMPT_HEAD, Backend::test_prompt_head)
    } else {
        builder
    };
    let (service, socket) = builder.finish();

    let (server_in, pump_in) = tokio::io::duplex(256 * 1024);
    let (pump_out, server_out) = tokio::io::duplex(256 * 1024);
    let (replies_tx, replies_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut input = tokio::spawn(super::framing::pump_input(
        super::framing::spawn_stdin_reader(),
        pump_in,
        replies_tx,
    ));
    let output = tokio::spawn(super::framing::pump_output(
        pump_out,
        tokio::io::stdout(),
        replies_rx,
    ));
    // tower-lsp runs at most `concurrency_level` messages at once, and a
    // notification waits behind running requests: with its default of 4,
    // four slow completions held every `didChange` back (measured in
    // tests/stress_lsp.rs). Edits still apply in arrival order (each
    // handler mutates the store synchronously on its first poll).
    let serve = Server::new(server_in, server_out, socket)
        .concurrency_level(MAX_CONCURRENT_MESSAGES)
        .serve(service);
    // Boxed, so that dropping it below drops the future (and its pipes).
    let mut serve = Box::pin(serve);
    let end = tokio::select! {
        () = &mut serve => End::Served,
        ended = &mut input => match ended {
            Ok(super::framing::InputEnd::Exit) => End::Exit,
            // End of input, or tower-lsp stopped reading (it got `exit`).
            Ok(_) | Err(_) => End::Eof,
        },
        signal = lifetime::signal() => signal,
    };
    // tower-lsp's `serve` returns as soon as our input pipe closes, which
    // can win the race against the reader that closed it: ask the reader
    // why (end of input is a clean end, `exit` without `shutdown` is not).
    let served = end == End::Served;
    let end = match end {
        End::Served => match tokio::time::timeout(Duration::from_millis(100), &mut input).await {
            Ok(Ok(super::framing::InputEnd::Exit)) => End::Exit,
            Ok(_) => End::Eof,
            Err(_) => End::Served,
        },
        other => other,
    };
    tracing::debug!(?end, "the session ends");
    let shutdown_received = session
        .get()
        .is_some_and(|s| s.shutdown_received.load(Ordering::SeqCst));
    if let Some(state) = session.get() {
        state.cancel_engine_work();
    }
    if !served {
        // Let tower-lsp answer what the cancellation ended, briefly.
        let _ = tokio::time::timeout(lifetime::GRACE, &mut serve).await;
    }
    // Dropping `serve` closes tower-lsp's output pipe: the output pump
    // writes what is left and returns.
    drop(serve);
    let _ = tokio::time::timeout(lifetime::FLUSH, output).await;
    input.abort();
    // Keep the session state alive to the end: dropping it would drop the
    // engine's last handle, which joins the inference thread, which first
    // finishes its `decode` chunk (measured: 5 s for a 512-token chunk).
    std::mem::forget(session);
    lifetime::exit_code(end, shutdown_received)
}
