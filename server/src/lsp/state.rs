//! Session state shared by all handlers.
//!
//! Locks here are `std` locks held only for a clone or a swap, never across
//! an `.await` (a handler that awaited while holding one would stall every
//! other handler on a 2-core machine).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tower_lsp_server::Client;

use super::acceptance::Acceptance;
use super::proto;
use crate::complete::TypedAhead;
use crate::config::Config;
use crate::document::{DocumentStore, Encoding};
use crate::engine::InferenceHandle;

/// Where the model is in its life.
#[derive(Clone)]
pub enum EngineState {
    NotLoaded,
    /// Loading, with the last reported percentage.
    Loading(u8),
    Ready(Arc<InferenceHandle>),
    Failed(String),
    /// `completion.backend` is a completion server: no local model is
    /// loaded (RAM and a core stay free); the name of the backend.
    Unused(&'static str),
}

/// Overrides from the command line; they win over client settings.
#[derive(Debug, Clone, Default)]
pub struct CliOverrides {
    pub model: Option<PathBuf>,
}

/// Where the model path in force was set, so a wrong one can be blamed on
/// the right setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSource {
    /// `--model PATH` on the command line.
    Cli,
    /// The `model.path` setting.
    Setting,
    /// The `SLM_LS_MODEL` environment variable.
    Env,
    /// Nothing set: the default model in the model directory.
    Default,
}

impl ModelSource {
    fn name(self) -> &'static str {
        match self {
            ModelSource::Cli => "--model",
            ModelSource::Setting => "model.path",
            ModelSource::Env => "SLM_LS_MODEL",
            ModelSource::Default => "the default model",
        }
    }
}

/// The model path in force (`--model`, else `model.path`, else
/// `SLM_LS_MODEL`, else the default model) and where it came from.
pub fn model_source(cli: Option<&Path>, setting: Option<&Path>) -> (PathBuf, ModelSource) {
    let source = if cli.is_some() {
        ModelSource::Cli
    } else if setting.is_some() {
        ModelSource::Setting
    } else if std::env::var_os("SLM_LS_MODEL").is_some_and(|p| !p.is_empty()) {
        ModelSource::Env
    } else {
        ModelSource::Default
    };
    (crate::models::resolve_model_path(cli.or(setting)), source)
}

/// When the user pointed at a model file that cannot be read, the message
/// that says so and names the setting; `None` when the file is there (or
/// when it is the default model, whose fix is `slm-ls models fetch`, said by
/// the engine's own check).
pub fn configured_model_missing(path: &Path, source: ModelSource) -> Option<String> {
    if source == ModelSource::Default {
        return None;
    }
    let e = std::fs::metadata(path).err()?;
    let fix = match source {
        ModelSource::Cli => "correct the --model argument (in your editor, the server command)",
        ModelSource::Setting => "correct model.path in your editor's slm-ls settings",
        _ => "correct the SLM_LS_MODEL environment variable",
    };
    Some(format!(
        "the model file {} configured with {} cannot be read: {e}. Check the path: {fix}, or remove it to use the default model (fetched with `slm-ls models fetch`)",
        path.display(),
        source.name()
    ))
}

pub struct State {
    pub client: Client,
    pub docs: Arc<DocumentStore>,
    pub config: RwLock<Config>,
    pub cli: CliOverrides,
    pub encoding: RwLock<Encoding>,
    /// Change it with [`State::set_engine`] only: that also wakes the
    /// requests waiting for the model ([`State::wait_engine`]).
    pub engine: RwLock<EngineState>,
    /// Bumped on every change of `engine`; requests that arrived while the
    /// model loads wait on it instead of polling.
    engine_changed: tokio::sync::watch::Sender<u64>,
    /// Bumped on every applied `didChange`: a menu completion watches it
    /// to notice that the user typed on (see `completion.rs`).
    pub edits: tokio::sync::watch::Sender<u64>,
    /// Bumped on every (re)load so a slow, superseded load does not
    /// overwrite a newer one's result.
    pub engine_generation: std::sync::atomic::AtomicU64,
    pub typed_ahead: TypedAhead,
    /// The prompt head each document's requests keep while the user types.
    pub heads: crate::complete::PromptHeads,
    /// Shown suggestions, to notice from later edits that one was accepted.
    pub acceptance: Acceptance,
    pub root_uri: RwLock<Option<String>>,
    /// [index] issue 19: the workspace index, started by `initialized`
    /// when there is a root folder and `context.workspace` is on. Its own
    /// thread writes it; requests only read it.
    pub index: RwLock<Option<Arc<crate::index::IndexHandle>>>,
    /// The client registers file watchers on request (`didChangeWatchedFiles`).
    pub client_watch_files: AtomicBool,
    /// Client can show `$/progress` created with `window/workDoneProgress/create`.
    pub client_progress: AtomicBool,
    /// Client opens documents on `window/showDocument` (explain answers).
    pub client_show_document: AtomicBool,
    /// `shutdown` was received: `exit` then ends the process with status 0.
    pub shutdown_received: AtomicBool,
    pub load_percent: AtomicU8,
}

impl State {
    pub fn new(client: Client, cli: CliOverrides) -> State {
        State {
            client,
            docs: DocumentStore::new(),
            config: RwLock::new(Config::default()),
            cli,
            encoding: RwLock::new(Encoding::Utf16),
            engine: RwLock::new(EngineState::NotLoaded),
            engine_changed: tokio::sync::watch::Sender::new(0),
            edits: tokio::sync::watch::Sender::new(0),
            engine_generation: Default::default(),
            typed_ahead: TypedAhead::default(),
            heads: Default::default(),
            acceptance: Acceptance::default(),
            root_uri: RwLock::new(None),
            index: RwLock::new(None),
            client_watch_files: AtomicBool::new(false),
            client_progress: AtomicBool::new(false),
            client_show_document: AtomicBool::new(false),
            shutdown_received: AtomicBool::new(false),
            load_percent: AtomicU8::new(0),
        }
    }

    pub fn config(&self) -> Config {
        self.config.read().unwrap().clone()
    }

    pub fn encoding(&self) -> Encoding {
        *self.encoding.read().unwrap()
    }

    /// Replace the engine state and wake the requests waiting for the
    /// model. The old state is dropped on the blocking pool: dropping the
    /// last handle of a loaded engine joins its thread, which finishes its
    /// current `decode` chunk first (seconds, for a large `batchSize`).
    pub fn set_engine(&self, new: EngineState) {
        let old = std::mem::replace(&mut *self.engine.write().unwrap(), new);
        self.engine_changed.send_modify(|n| *n += 1);
        tokio::task::spawn_blocking(move || drop(old));
    }

    /// The engine if ready, else the message to show the user.
    pub fn engine(&self) -> Result<Arc<InferenceHandle>, String> {
        match &*self.engine.read().unwrap() {
            EngineState::Ready(h) => Ok(h.clone()),
            EngineState::Loading(p) => Err(format!("slm-ls: the model is still loading ({p}%)")),
            EngineState::Failed(e) => Err(format!("slm-ls: no model: {e}")),
            EngineState::NotLoaded => Err("slm-ls: the model is not loaded yet".into()),
            EngineState::Unused(backend) => Err(format!(
                "slm-ls: no local model is loaded: completions come from the completion server (completion.backend = {backend})"
            )),
        }
    }

    /// The engine, waiting for it up to `bound` while the model loads:
    /// `Ok(None)` when it is still loading after that, `Err` (the message
    /// for the user) when there is no model to wait for. Dropping the
    /// future (`$/cancelRequest`) ends the wait.
    pub async fn wait_engine(
        &self,
        bound: Duration,
    ) -> Result<Option<Arc<InferenceHandle>>, String> {
        let mut changed = self.engine_changed.subscribe();
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let loading = matches!(
                &*self.engine.read().unwrap(),
                EngineState::Loading(_) | EngineState::NotLoaded
            );
            if !loading {
                return self.engine().map(Some);
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => continue,
                // Timed out (or the state is gone with the session).
                Ok(Err(_)) | Err(_) => return Ok(None),
            }
        }
    }

    /// Cancel everything the engine is doing or has queued (every open
    /// document's job and warm-up), without waiting for it: the end of the
    /// session does not wait for a `decode` llama.cpp cannot abort.
    pub fn cancel_engine_work(&self) {
        if let Ok(engine) = self.engine() {
            for uri in self.docs.uris() {
                engine.forget(&uri);
            }
        }
    }

    /// [index] The workspace index to resolve names with, when
    /// `context.workspace` is on and one was started.
    pub fn workspace_index(&self, config: &Config) -> Option<Arc<crate::index::IndexHandle>> {
        if !config.context.workspace {
            return None;
        }
        self.index.read().unwrap().clone()
    }

    /// The model path in force and where it was set.
    pub fn model_path(&self, config: &Config) -> (PathBuf, ModelSource) {
        model_source(self.cli.model.as_deref(), config.model.path.as_deref())
    }

    /// The document's path for prompts (workspace-relative) and its
    /// absolute path when it is a file.
    pub fn paths(&self, uri: &str) -> (String, Option<String>) {
        let root = self.root_uri.read().unwrap().clone();
        (
            proto::display_path(uri, root.as_deref()),
            proto::file_path(uri),
        )
    }

    /// [context] The other open documents, for cross-file snippets, except
    /// those matching one of the user's `never_send` patterns (the built-in
    /// secrets list is `context::crossfile`'s job: it applies it always).
    pub fn other_docs(&self, uri: &str, never_send: &[String]) -> Vec<crate::context::OtherDoc> {
        let root = self.root_uri.read().unwrap().clone();
        self.docs
            .others(uri, 64)
            .into_iter()
            .filter_map(|(uri, doc)| {
                let path = proto::display_path(&uri, root.as_deref());
                let refused = !never_send.is_empty()
                    && std::iter::once(path.clone())
                        .chain(proto::file_path(&uri))
                        .any(|p| crate::remote::glob::never_send(&p, never_send).is_some());
                (!refused).then_some(crate::context::OtherDoc { path, doc })
            })
            .collect()
    }
}
