//! The inference engine: a handle on the rest of the server's side, an
//! actor thread that owns llama.cpp on the other.
//!
//! **Invariant: only the actor thread touches llama-cpp-2 objects.** The
//! context borrows the model and is not `Sync`; every request reaches it as
//! a [`Msg`] over a channel, every answer comes back as [`Event`]s.
//!
//! Requests are latest-wins per document: submitting a completion for a
//! document cancels that document's previous one. llama.cpp cannot abort a
//! running `decode`, so the actor prefills in chunks of `model.batchSize`
//! tokens and checks the cancel flag between chunks and between sampled
//! tokens.

mod actor;
pub mod prompt;
pub mod reuse;
pub mod speculate;
pub mod stats;
pub mod stop;
#[cfg(test)]
mod vocab_tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

pub use prompt::{FimFamily, PromptInput, Snippet};
pub use stats::Stats;
pub use stop::StopRules;

use crate::config::Config;

/// Everything the actor needs to load a model and size its context.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub model_path: PathBuf,
    pub threads: i32,
    pub context_tokens: u32,
    pub batch_size: u32,
    pub gpu_layers: u32,
    pub cache_slots: u32,
    pub cache_reuse: bool,
    pub cache_reuse_min_chunk: u32,
    pub fim_override: Option<FimFamily>,
}

impl EngineSettings {
    pub fn from_config(config: &Config, model_path: PathBuf) -> Result<EngineSettings, String> {
        let fim_override = FimFamily::parse(&config.model.fim_format).ok_or_else(|| {
            format!(
                "unknown model.fimFormat \"{}\" (expected auto, none, starcoder, qwen, codegemma, deepseek, codellama, codestral)",
                config.model.fim_format
            )
        })?;
        Ok(EngineSettings {
            model_path,
            threads: config.threads(),
            context_tokens: config.model.context_tokens.max(256),
            batch_size: config.model.batch_size.clamp(8, 2048),
            gpu_layers: config.model.gpu_layers,
            cache_slots: config.model.cache_slots.clamp(1, 64),
            cache_reuse: config.model.cache_reuse,
            cache_reuse_min_chunk: config.model.cache_reuse_min_chunk,
            fim_override,
        })
    }
}

/// What the engine reports about itself once loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineInfo {
    pub model_name: String,
    pub fim: FimFamily,
    pub n_ctx_train: u32,
    pub n_params: u64,
    pub load_ms: u64,
}

/// Per-request generation parameters.
#[derive(Debug, Clone)]
pub struct GenParams {
    pub max_tokens: u32,
    /// Tokens drafted per step for speculative decoding; 0 turns it off.
    pub draft_tokens: u32,
    pub max_time_ms: u64,
    pub stop: StopRules,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    EndOfGeneration,
    MaxTokens,
    TimeBudget,
    StopRule,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub text: String,
    pub stop: StopReason,
    pub prompt_tokens: usize,
    pub reused_tokens: usize,
    pub evaluated_tokens: usize,
    pub generated_tokens: usize,
    pub prefill_ms: f64,
    pub total_ms: f64,
}

#[derive(Debug, Clone)]
pub enum Event {
    /// Newly generated text (a UTF-8-complete delta).
    Delta(String),
    Done(Outcome),
    Cancelled,
    Failed(String),
}

/// Shared cancel flag. Set by a newer request for the same document, by the
/// LSP layer on `$/cancelRequest` (through [`CompletionStream`]'s drop), or
/// at shutdown.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

pub(crate) enum Msg {
    Complete(Job),
    /// Prefill only, at lowest priority: abandoned as soon as any other
    /// message arrives.
    Warm(Job),
    Shutdown,
}

pub(crate) struct Job {
    key: String,
    input: PromptInput,
    params: GenParams,
    cancel: CancelToken,
    events: tokio::sync::mpsc::UnboundedSender<Event>,
    submitted: std::time::Instant,
}

/// The receiving end of one completion. Dropping it cancels the request,
/// which is how a `$/cancelRequest` (tower-lsp drops the handler future)
/// reaches the actor.
pub struct CompletionStream {
    pub events: tokio::sync::mpsc::UnboundedReceiver<Event>,
    cancel: CancelToken,
}

impl Drop for CompletionStream {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The server's side of the engine. Cheap to share behind an `Arc`; dropping
/// the last one stops the actor thread.
pub struct InferenceHandle {
    tx: Mutex<mpsc::Sender<Msg>>,
    /// Messages sent but not yet taken by the actor: lets a warm-up notice
    /// that real work is waiting without touching the channel.
    pending: Arc<AtomicUsize>,
    /// The latest request per document, so a newer one can cancel it.
    latest: Mutex<HashMap<String, CancelToken>>,
    pub info: EngineInfo,
    pub stats: Arc<Stats>,
    thread: Option<JoinHandle<()>>,
}

impl InferenceHandle {
    /// Load the model on a new actor thread; blocks until it is loaded (call
    /// it from a blocking task). `progress` sees load fractions in 0..=1.
    pub fn spawn(
        settings: EngineSettings,
        progress: Box<dyn FnMut(f32) + Send>,
    ) -> Result<InferenceHandle, String> {
        check_model_file(&settings.model_path)?;
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let stats = Arc::new(Stats::default());
        let thread = std::thread::Builder::new()
            .name("slm-ls-inference".into())
            .spawn({
                let pending = pending.clone();
                let stats = stats.clone();
                move || actor::run(settings, rx, pending, stats, progress, ready_tx)
            })
            .map_err(|e| format!("cannot start the inference thread: {e}"))?;
        match ready_rx.recv() {
            Ok(Ok(info)) => Ok(InferenceHandle {
                tx: Mutex::new(tx),
                pending,
                latest: Mutex::new(HashMap::new()),
                info,
                stats,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err("the inference thread died while loading the model".into()),
        }
    }

    /// Start a completion for document `key`, cancelling its previous one.
    pub fn complete(&self, key: &str, input: PromptInput, params: GenParams) -> CompletionStream {
        let (cancel, events) = self.submit(key, input, params, false);
        CompletionStream { events, cancel }
    }

    /// Prefill `input` for `key` in the background so the next real request
    /// finds it cached. Cancelled by any newer request.
    pub fn warm(&self, key: &str, input: PromptInput) {
        let params = GenParams {
            max_tokens: 0,
            draft_tokens: 0,
            max_time_ms: 0,
            stop: StopRules::default(),
        };
        // Nobody waits for a warm-up: its events are dropped, and only a
        // newer request for the document (or any message) cancels it.
        let _ = self.submit(key, input, params, true);
    }

    fn submit(
        &self,
        key: &str,
        input: PromptInput,
        params: GenParams,
        warm: bool,
    ) -> (CancelToken, tokio::sync::mpsc::UnboundedReceiver<Event>) {
        let cancel = CancelToken::default();
        {
            let mut latest = self.latest.lock().unwrap();
            if warm && latest.get(key).is_some_and(|c| !c.is_cancelled()) {
                // A real request for this document is queued or running and
                // will fill the cache itself: a warm-up must not cancel it.
                cancel.cancel();
            } else if let Some(old) = latest.insert(key.to_string(), cancel.clone()) {
                old.cancel();
            }
        }
        let (events_tx, events) = tokio::sync::mpsc::unbounded_channel();
        let job = Job {
            key: key.to_string(),
            input,
            params,
            cancel: cancel.clone(),
            events: events_tx.clone(),
            submitted: std::time::Instant::now(),
        };
        self.pending.fetch_add(1, Ordering::SeqCst);
        let msg = if warm {
            Msg::Warm(job)
        } else {
            Msg::Complete(job)
        };
        if self.tx.lock().unwrap().send(msg).is_err() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            let _ = events_tx.send(Event::Failed("the inference thread has stopped".into()));
        }
        (cancel, events)
    }

    /// Forget a closed document's request bookkeeping.
    pub fn forget(&self, key: &str) {
        if let Some(old) = self.latest.lock().unwrap().remove(key) {
            old.cancel();
        }
    }
}

impl Drop for InferenceHandle {
    fn drop(&mut self) {
        for (_, c) in self.latest.lock().unwrap().drain() {
            c.cancel();
        }
        let _ = self.tx.lock().unwrap().send(Msg::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Clear errors for the common ways a model path is wrong, before llama.cpp
/// sees it (llama.cpp only says "failed to load").
pub fn check_model_file(path: &std::path::Path) -> Result<(), String> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(|e| {
        format!(
            "model file {} cannot be read: {e}. Run `slm-ls models fetch` for the default model, or set model.path / SLM_LS_MODEL",
            path.display()
        )
    })?;
    if !meta.is_file() {
        return Err(format!("model path {} is not a file", path.display()));
    }
    let mut magic = [0u8; 4];
    let mut f = std::fs::File::open(path)
        .map_err(|e| format!("cannot open model file {}: {e}", path.display()))?;
    if f.read_exact(&mut magic).is_err() || &magic != b"GGUF" {
        return Err(format!(
            "{} is not a GGUF model file (it does not start with the GGUF magic); re-download it with `slm-ls models fetch`",
            path.display()
        ));
    }
    Ok(())
}
