//! Session state shared by all handlers.
//!
//! Locks here are `std` locks held only for a clone or a swap, never across
//! an `.await` (a handler that awaited while holding one would stall every
//! other handler on a 2-core machine).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8};
use std::sync::{Arc, RwLock};

use tower_lsp_server::Client;

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

pub struct State {
    pub client: Client,
    pub docs: Arc<DocumentStore>,
    pub config: RwLock<Config>,
    pub cli: CliOverrides,
    pub encoding: RwLock<Encoding>,
    pub engine: RwLock<EngineState>,
    /// Bumped on every (re)load so a slow, superseded load does not
    /// overwrite a newer one's result.
    pub engine_generation: std::sync::atomic::AtomicU64,
    pub typed_ahead: TypedAhead,
    pub root_uri: RwLock<Option<String>>,
    /// Client can show `$/progress` created with `window/workDoneProgress/create`.
    pub client_progress: AtomicBool,
    /// Client opens documents on `window/showDocument` (explain answers).
    pub client_show_document: AtomicBool,
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
            engine_generation: Default::default(),
            typed_ahead: TypedAhead::default(),
            root_uri: RwLock::new(None),
            client_progress: AtomicBool::new(false),
            client_show_document: AtomicBool::new(false),
            load_percent: AtomicU8::new(0),
        }
    }

    pub fn config(&self) -> Config {
        self.config.read().unwrap().clone()
    }

    pub fn encoding(&self) -> Encoding {
        *self.encoding.read().unwrap()
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

    pub fn model_path(&self, config: &Config) -> PathBuf {
        let explicit = self.cli.model.as_deref().or(config.model.path.as_deref());
        crate::models::resolve_model_path(explicit)
    }
}
