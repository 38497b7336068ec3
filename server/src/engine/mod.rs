//! The inference engine: a handle on the rest of the server's side, an
//! actor thread that owns llama.cpp on the other.
//!
//! **Invariant: only the actor thread touches llama-cpp-2 objects** — the
//! one exception is [`Tokenizer`], read-only vocabulary lookups. The
//! context borrows the model and is not `Sync`; every request reaches it as
//! a [`Msg`] over a channel, every answer comes back as [`Event`]s.
//!
//! Requests are latest-wins per document: submitting a completion for a
//! document cancels that document's previous one. Across documents the
//! newest request is served first: a running prefill yields to it between
//! chunks and resumes afterwards from the chunks it already evaluated. llama.cpp cannot abort a
//! running `decode`, so the actor prefills in chunks of `model.batchSize`
//! tokens and checks the cancel flag between chunks and between sampled
//! tokens.

mod actor;
pub mod cpu;
mod drafter;
mod listeners;
pub mod prompt;
pub mod reuse;
pub mod speculate;
pub mod stats;
pub mod stop;
mod turns;
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
    /// PSM prompts put the cursor line's typed part after the middle marker.
    pub fim_line_in_middle: bool,
    pub fim_spm: bool,
    /// `context.fileFrame` (never for the `context.naive` floor).
    pub file_frame: bool,
    /// `model.draft` resolved to a file, and its tokens per step.
    pub draft_path: Option<PathBuf>,
    pub draft_max: u32,
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
            fim_line_in_middle: config.model.fim_line_in_middle,
            // The plain-prompt floor is prefix-first by definition.
            fim_spm: config.model.fim_spm && !config.context.naive,
            file_frame: config.context.file_frame && !config.context.naive,
            draft_path: resolve_draft(&config.model.draft),
            draft_max: config.model.draft_max.clamp(1, 32),
        })
    }
}

/// `model.draft`: a model name from the manifest (fetched into the model
/// directory) or a path; `None` when empty.
fn resolve_draft(draft: &str) -> Option<PathBuf> {
    let draft = draft.trim();
    if draft.is_empty() {
        return None;
    }
    Some(match crate::models::Manifest::load().find(draft) {
        Some(entry) => crate::models::model_dir().join(&entry.file),
        None => PathBuf::from(draft),
    })
}

/// What the engine reports about itself once loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineInfo {
    pub model_name: String,
    pub fim: FimFamily,
    pub n_ctx_train: u32,
    pub n_params: u64,
    pub load_ms: u64,
    /// The draft model drafting for this one (its name), or why `model.draft`
    /// is not used; `None` when not asked for.
    pub draft: Option<Result<String, String>>,
}

/// The model's vocabulary on the server's side, for token budgets
/// (`context::TokenCount`). Tokenizing reads only the vocabulary, which
/// llama.cpp never changes after loading, so it is safe from any thread
/// while the actor decodes (llama-server tokenizes in its HTTP threads the
/// same way).
#[derive(Clone)]
pub struct Tokenizer(Arc<llama_cpp_2::model::LlamaModel>);

impl Tokenizer {
    pub(crate) fn new(model: Arc<llama_cpp_2::model::LlamaModel>) -> Tokenizer {
        Tokenizer(model)
    }

    /// A vocabulary-only load of a GGUF (tests, tools): no weights.
    pub fn from_vocab_file(path: &std::path::Path) -> Result<Tokenizer, String> {
        let params = llama_cpp_2::model::params::LlamaModelParams::default().with_vocab_only(true);
        let model =
            llama_cpp_2::model::LlamaModel::load_from_file(actor::backend()?, path, &params)
                .map_err(|e| format!("cannot load the vocabulary of {}: {e}", path.display()))?;
        Ok(Tokenizer(Arc::new(model)))
    }
}

impl crate::context::TokenCount for Tokenizer {
    fn count(&self, text: &str) -> usize {
        // As the prompt builder tokenizes user text: no BOS, no specials.
        self.0.vocab().tokenize(text.as_bytes(), false, false).len()
    }
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
    /// Answered as soon as the actor takes it: it has finished what it was
    /// doing, idle work included (the draft model catching up). Not counted
    /// as pending, so idle work does not give way to it.
    Idle(mpsc::Sender<()>),
    Shutdown,
}

pub(crate) struct Job {
    key: String,
    /// How many times a request for another document took the engine
    /// from this job mid-prefill (it then waits in the actor's queue; its
    /// evaluated chunks stay in its KV slot).
    preempted: u32,
    input: PromptInput,
    params: GenParams,
    cancel: CancelToken,
    events: Arc<listeners::Listeners>,
    submitted: std::time::Instant,
}

/// The receiving end of one completion. Dropping it releases the request's
/// hold on its job; the job is cancelled when no request holds it any more.
/// That is how a `$/cancelRequest` (tower-lsp drops the handler future)
/// reaches the actor.
pub struct CompletionStream {
    pub events: tokio::sync::mpsc::UnboundedReceiver<Event>,
    hold: Hold,
}

impl CompletionStream {
    /// Whether this request joined a generation that was already running.
    pub fn joined(&self) -> bool {
        self.hold.joined
    }
}

struct Hold {
    cancel: CancelToken,
    holders: Arc<AtomicUsize>,
    joined: bool,
}

impl Drop for Hold {
    fn drop(&mut self) {
        if self.holders.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.cancel.cancel();
        }
    }
}

/// The newest job of one document.
struct InFlight {
    cancel: CancelToken,
    holders: Arc<AtomicUsize>,
    listeners: Arc<listeners::Listeners>,
    /// The job's prompt text, to recognise a request that only typed on.
    prefix: String,
    suffix: String,
    /// A warm-up: it never answers anyone, so a request must not join it
    /// (it would wait for events that never come). A request cancels it
    /// instead; the chunks it already evaluated stay in the document's KV
    /// slot and become the request's reused prefix.
    warm: bool,
}

/// The server's side of the engine. Cheap to share behind an `Arc`; dropping
/// the last one stops the actor thread.
pub struct InferenceHandle {
    tx: Mutex<mpsc::Sender<Msg>>,
    /// Messages sent but not yet taken by the actor: lets a warm-up notice
    /// that real work is waiting without touching the channel.
    pending: Arc<AtomicUsize>,
    /// Completions sent but not yet taken from the channel by the actor: a
    /// running prefill yields to them (see `actor.rs`, preemption).
    arrived: Arc<AtomicUsize>,
    /// The newest job per document, so a newer request can cancel it — or
    /// join it, when the user typed what it has already generated.
    latest: Mutex<HashMap<String, InFlight>>,
    pub info: EngineInfo,
    pub stats: Arc<Stats>,
    pub tokenizer: Tokenizer,
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
        let arrived = Arc::new(AtomicUsize::new(0));
        let stats = Arc::new(Stats::default());
        let thread = std::thread::Builder::new()
            .name("slm-ls-inference".into())
            .spawn({
                let counters = actor::Counters {
                    pending: pending.clone(),
                    arrived: arrived.clone(),
                };
                let stats = stats.clone();
                move || actor::run(settings, rx, counters, stats, progress, ready_tx)
            })
            .map_err(|e| format!("cannot start the inference thread: {e}"))?;
        match ready_rx.recv() {
            Ok(Ok((info, tokenizer))) => Ok(InferenceHandle {
                tx: Mutex::new(tx),
                pending,
                arrived,
                latest: Mutex::new(HashMap::new()),
                info,
                stats,
                tokenizer,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err("the inference thread died while loading the model".into()),
        }
    }

    /// Start a completion for document `key`. If the document's running job
    /// has already generated what the user typed since it started, join it
    /// (no restart); otherwise cancel it and start a new one.
    pub fn complete(&self, key: &str, input: PromptInput, params: GenParams) -> CompletionStream {
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        {
            let latest = self.latest.lock().unwrap();
            if let Some(job) = latest
                .get(key)
                .filter(|j| !j.cancel.is_cancelled() && !j.warm)
            {
                let typed = input.prefix.strip_prefix(job.prefix.as_str());
                if let Some(typed) = typed.filter(|_| input.suffix == job.suffix) {
                    if job.listeners.attach(tx.clone(), typed) {
                        job.holders.fetch_add(1, Ordering::SeqCst);
                        self.stats.joined_inflight.fetch_add(1, Ordering::Relaxed);
                        let hold = Hold {
                            cancel: job.cancel.clone(),
                            holders: job.holders.clone(),
                            joined: true,
                        };
                        return CompletionStream { events, hold };
                    }
                }
            }
        }
        let hold = self.submit(key, input, params, false, tx);
        CompletionStream { events, hold }
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
        // Nobody waits for a warm-up: its events go nowhere, and only a
        // newer request for the document (or any message) cancels it.
        let (tx, _) = tokio::sync::mpsc::unbounded_channel();
        let hold = self.submit(key, input, params, true, tx);
        // Dropping our hold must not cancel the warm-up.
        hold.holders.fetch_add(1, Ordering::SeqCst);
    }

    fn submit(
        &self,
        key: &str,
        input: PromptInput,
        params: GenParams,
        warm: bool,
        tx: tokio::sync::mpsc::UnboundedSender<Event>,
    ) -> Hold {
        let cancel = CancelToken::default();
        let holders = Arc::new(AtomicUsize::new(1));
        let listeners = Arc::new(listeners::Listeners::new(tx));
        {
            let mut latest = self.latest.lock().unwrap();
            if warm
                && latest
                    .get(key)
                    .is_some_and(|j| !j.cancel.is_cancelled() && !j.warm)
            {
                // A real request for this document is queued or running and
                // will fill the cache itself: a warm-up must not cancel it.
                cancel.cancel();
            } else {
                let entry = InFlight {
                    cancel: cancel.clone(),
                    holders: holders.clone(),
                    listeners: listeners.clone(),
                    prefix: input.prefix.clone(),
                    suffix: input.suffix.clone(),
                    warm,
                };
                if let Some(old) = latest.insert(key.to_string(), entry) {
                    old.cancel.cancel();
                }
            }
        }
        let job = Job {
            key: key.to_string(),
            preempted: 0,
            input,
            params,
            cancel: cancel.clone(),
            events: listeners.clone(),
            submitted: std::time::Instant::now(),
        };
        self.pending.fetch_add(1, Ordering::SeqCst);
        if !warm {
            self.arrived.fetch_add(1, Ordering::SeqCst);
        }
        let msg = if warm {
            Msg::Warm(job)
        } else {
            Msg::Complete(job)
        };
        if self.tx.lock().unwrap().send(msg).is_err() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            if !warm {
                self.arrived.fetch_sub(1, Ordering::SeqCst);
            }
            listeners.send(Event::Failed("the inference thread has stopped".into()));
        }
        Hold {
            cancel,
            holders,
            joined: false,
        }
    }

    /// Wait until the engine has finished its current work, idle work
    /// included (tests and benches: a keystroke after a pause finds the
    /// draft model caught up).
    pub fn idle(&self) {
        let (tx, rx) = mpsc::channel();
        if self.tx.lock().unwrap().send(Msg::Idle(tx)).is_ok() {
            let _ = rx.recv();
        }
    }

    /// Forget a closed document's request bookkeeping.
    pub fn forget(&self, key: &str) {
        if let Some(old) = self.latest.lock().unwrap().remove(key) {
            old.cancel.cancel();
        }
    }
}

impl Drop for InferenceHandle {
    fn drop(&mut self) {
        for (_, j) in self.latest.lock().unwrap().drain() {
            j.cancel.cancel();
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
