//! The inference thread: owns the llama.cpp model, context and KV cache.
//!
//! Loop: block for a message, drain everything queued, drop superseded
//! work, run the newest completion (completions before warm-ups), repeat.
//!
//! Preemption: a completion's prefill checks between chunks whether a newer
//! completion has arrived (for any document: a newer one for the same
//! document cancels it outright). If so it stops, and the job goes back to
//! the queue behind the newcomer. The chunks it evaluated stay in its
//! slot's KV cells, so when it runs again its reuse plan finds them and
//! prefill resumes where it stopped. Generation is not preempted: it is
//! bounded by `maxTokens`/`maxTimeMs`, and restarting it would re-send
//! text the client already has.
//!
//! KV layout: `cache_slots` sequences share one unified KV buffer of
//! `cache_slots * context_tokens` cells. Each slot remembers the tokens its
//! cells hold (`Slot::tokens`, in position order) and which document used
//! it last; a request takes its document's slot, else the slot whose
//! tokens share the longest prefix with the new prompt, else the least
//! recently used one. That is what lets switching files keep each file's
//! cache.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

use super::drafter::{self, Drafter};
use super::prompt::{FimFamily, FimFormat, Vocab};
use super::reuse;
use super::speculate;
use super::stop;
use super::{EngineInfo, EngineSettings, Event, Job, Msg, Outcome, Stats, StopReason};

/// A prompt for a document whose path ends with this panics the inference
/// thread when `SLM_LS_TEST_HOOKS=1` (never set by editors), so the
/// reliability suite can prove the engine survives a panic.
pub const TEST_PANIC_PATH: &str = "slm-ls-test-engine-panic";

fn test_hooks() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("SLM_LS_TEST_HOOKS").is_ok_and(|v| v == "1"))
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// llama.cpp's backend is process-global and may be initialised once.
pub(crate) fn backend() -> Result<&'static LlamaBackend, String> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            // llama.cpp logs a lot at load time; route it through tracing
            // (filtered like our own logs) instead of raw stderr.
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| format!("cannot initialise llama.cpp: {e}"))
        })
        .as_ref()
        .map_err(|e| e.clone())
}

/// The llama.cpp vocabulary behind the prompt builder's [`Vocab`] trait.
pub(crate) struct LlamaVocabAdapter<'m>(pub &'m LlamaModel);

impl Vocab for LlamaVocabAdapter<'_> {
    fn tokenize(&self, text: &str) -> Vec<i32> {
        // add_special=false: no BOS in the middle; parse_special=false:
        // user text can never produce control tokens.
        self.0
            .vocab()
            .tokenize(text.as_bytes(), false, false)
            .into_iter()
            .map(|t| t.0)
            .collect()
    }

    fn special(&self, text: &str) -> Option<i32> {
        let vocab = self.0.vocab();
        let toks = vocab.tokenize(text.as_bytes(), false, true);
        match toks.as_slice() {
            [t] if vocab.is_control(*t) || is_user_defined(self.0, *t) => Some(t.0),
            _ => None,
        }
    }

    fn fim_ids(&self) -> Option<(i32, i32, i32)> {
        let v = self.0.vocab();
        let (p, s, m) = (v.fim_pre().0, v.fim_suf().0, v.fim_mid().0);
        (p >= 0 && s >= 0 && m >= 0).then_some((p, s, m))
    }

    fn bos(&self) -> Option<i32> {
        let v = self.0.vocab();
        (v.should_add_bos() && v.bos().0 >= 0).then_some(v.bos().0)
    }
}

fn is_user_defined(model: &LlamaModel, t: LlamaToken) -> bool {
    use llama_cpp_2::token_type::LlamaTokenAttr;
    model.vocab().attr(t).contains(LlamaTokenAttr::UserDefined)
}

struct Slot {
    /// Tokens whose K/V this sequence holds, by position.
    tokens: Vec<i32>,
    /// Document that used it last.
    key: Option<String>,
    last_used: u64,
}

/// Every token's text, for constrained decoding (token healing): built on
/// first use, ~150k short strings for a Qwen vocabulary.
struct Pieces {
    bytes: Vec<Vec<u8>>,
    /// Token ids by the first byte of their text.
    by_first: Vec<Vec<u32>>,
}

impl Pieces {
    fn new(model: &LlamaModel) -> Pieces {
        let vocab = model.vocab();
        let n = vocab.n_tokens().max(0) as usize;
        let mut bytes = Vec::with_capacity(n);
        let mut by_first = vec![Vec::new(); 256];
        for t in 0..n {
            let tok = LlamaToken(t as i32);
            let piece = if vocab.is_control(tok) || vocab.is_eog(tok) {
                Vec::new()
            } else {
                vocab.token_to_piece(tok, false, None)
            };
            if let Some(&b) = piece.first() {
                by_first[b as usize].push(t as u32);
            }
            bytes.push(piece);
        }
        Pieces { bytes, by_first }
    }
}

/// The handle's counters the actor reads between chunks.
pub(crate) struct Counters {
    /// Messages sent and not yet taken by the actor (any kind).
    pub pending: Arc<AtomicUsize>,
    /// Completions sent and not yet taken from the channel.
    pub arrived: Arc<AtomicUsize>,
}

/// How a job ended, short of an error.
enum Ran {
    Done(Outcome),
    /// Cancelled; for a warm-up also: gave way to other work.
    Cancelled,
    /// Gave way to a newer completion mid-prefill; runs again later.
    Preempted,
}

struct Engine<'m> {
    model: &'m LlamaModel,
    pieces: Option<Pieces>,
    /// Token ids of the prompt format's markers (`<|fim_prefix|>`,
    /// `<|file_sep|>`, ...): generating one ends a suggestion even where the
    /// vocabulary types it as user-defined rather than control.
    format_ids: Vec<i32>,
    ctx: LlamaContext<'m>,
    format: FimFormat,
    settings: EngineSettings,
    slots: Vec<Slot>,
    clock: u64,
    batch: LlamaBatch<'static>,
    stats: Arc<Stats>,
    pending: Arc<AtomicUsize>,
    arrived: Arc<AtomicUsize>,
    /// Other slm-ls servers on this machine and this one take turns per
    /// `decode` (see `turns.rs`).
    turns: Option<super::turns::Turns>,
    /// `model.draft`'s model, drafting for this one.
    drafter: Option<Drafter<'m>>,
    /// The slot the last job ran in (the drafter catches up on it).
    last_slot: Option<usize>,
}

/// Put `tokens[span]` into `batch` (cleared first) at their positions in
/// sequence `seq`, asking logits only for the last token of `tokens`: one
/// prefill chunk, of the main model or the draft model.
pub(super) fn fill_batch(
    batch: &mut LlamaBatch,
    tokens: &[i32],
    span: std::ops::Range<usize>,
    seq: i32,
) -> Result<(), String> {
    batch.clear();
    for pos in span {
        batch
            .add(
                LlamaToken(tokens[pos]),
                pos as i32,
                &[seq],
                pos + 1 == tokens.len(),
            )
            .map_err(|e| format!("batch: {e}"))?;
    }
    Ok(())
}

/// [`Engine::is_stop_token`], for borrowing the engine's parts apart.
fn stops(model: &LlamaModel, format_ids: &[i32], t: LlamaToken) -> bool {
    let v = model.vocab();
    v.is_eog(t) || v.is_control(t) || format_ids.contains(&t.0)
}

/// Load `model.draft` for `target`; on any failure say why once and go on
/// without it.
fn load_draft(
    backend: &LlamaBackend,
    settings: &EngineSettings,
    target: &LlamaModel,
) -> Option<Result<LlamaModel, String>> {
    let path = settings.draft_path.as_ref()?;
    let loaded = if path.is_file() {
        let params = LlamaModelParams::default().with_n_gpu_layers(settings.gpu_layers);
        LlamaModel::load_from_file(backend, path, &params)
            .map_err(|e| format!("llama.cpp could not load it: {e}"))
            .and_then(|m| drafter::compatible(target, &m).map(|()| m))
    } else {
        Err("no such file (a model name from `slm-ls models list` must be fetched first: `slm-ls models fetch NAME`)".into())
    };
    Some(loaded.map_err(|e| {
        let e = format!(
            "model.draft {}: {e}; completing without a draft model",
            path.display()
        );
        tracing::warn!("{e}");
        e
    }))
}

pub(crate) fn run(
    settings: EngineSettings,
    rx: mpsc::Receiver<Msg>,
    counters: Counters,
    stats: Arc<Stats>,
    mut progress: Box<dyn FnMut(f32) + Send>,
    ready: mpsc::Sender<Result<(EngineInfo, super::Tokenizer), String>>,
) {
    let started = Instant::now();
    let backend = match backend() {
        Ok(b) => b,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let params = LlamaModelParams::default()
        .with_n_gpu_layers(settings.gpu_layers)
        .with_progress_callback(move |p| {
            progress(p);
            true
        });
    let model = match LlamaModel::load_from_file(backend, &settings.model_path, &params) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            let _ = ready.send(Err(format!(
                "llama.cpp could not load {}: {e} (the file may be truncated or not a supported GGUF model)",
                settings.model_path.display()
            )));
            return;
        }
    };
    // The params own the progress callback (and through it the LSP
    // progress channel): drop them so the channel closes once loaded.
    drop(params);
    let n_ctx_train = model.n_ctx_train();
    let mut per_slot = settings.context_tokens;
    if n_ctx_train > 0 && per_slot > n_ctx_train {
        tracing::warn!(
            "model.contextTokens {} exceeds the model's training context {}; using {}",
            per_slot,
            n_ctx_train,
            n_ctx_train
        );
        per_slot = n_ctx_train;
    }
    let mut settings = settings;
    settings.context_tokens = per_slot;
    let n_ctx = per_slot * settings.cache_slots;
    let ctx_params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(settings.batch_size)
        .with_n_ubatch(settings.batch_size)
        .with_n_seq_max(settings.cache_slots)
        .with_kv_unified(true)
        .with_n_threads(settings.threads)
        .with_n_threads_batch(settings.threads);
    let ctx = match model.new_context(backend, ctx_params) {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(format!(
                "cannot create a llama.cpp context of {n_ctx} tokens: {e}"
            )));
            return;
        }
    };
    let vocab = LlamaVocabAdapter(&model);
    let format = match FimFormat::detect(&vocab, settings.fim_override) {
        Ok(mut f) => {
            f.line_in_middle = settings.fim_line_in_middle;
            // The suffix-first order only for families trained on it
            // (Qwen2.5-Coder measured, StarCoder's SPM mode documented).
            f.spm = settings.fim_spm
                && !settings.fim_line_in_middle
                && matches!(f.family, FimFamily::Qwen | FimFamily::StarCoder);
            f.file_frame = settings.file_frame;
            f
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let draft_model = load_draft(backend, &settings, &model);
    // The drafter, and what `slm-ls/stats` says of it: its model's name,
    // or why there is none.
    let (drafter, draft_info) = match &draft_model {
        None => (None, None),
        Some(Err(e)) => (None, Some(Err(e.clone()))),
        Some(Ok(m)) => match Drafter::new(
            backend,
            m,
            settings.cache_slots,
            per_slot,
            settings.batch_size,
            settings.threads,
            settings.draft_max as usize,
        ) {
            Ok(d) => (
                Some(d),
                Some(Ok(m.meta_val_str("general.name").unwrap_or_default())),
            ),
            Err(e) => {
                tracing::warn!("{e}; completing without a draft model");
                (None, Some(Err(e)))
            }
        },
    };
    let model_name = model.meta_val_str("general.name").unwrap_or_else(|_| {
        settings
            .model_path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    });
    let info = EngineInfo {
        model_name,
        fim: format.family,
        n_ctx_train,
        n_params: model.n_params(),
        load_ms: started.elapsed().as_millis() as u64,
        draft: draft_info,
    };
    tracing::info!(?info, n_ctx, "model loaded");
    super::cpu::log_at_start();
    let batch = LlamaBatch::new(settings.batch_size as usize, 1);
    let slots = (0..settings.cache_slots)
        .map(|_| Slot {
            tokens: Vec::new(),
            key: None,
            last_used: 0,
        })
        .collect();
    let format_ids = format.control_ids().collect();
    let mut engine = Engine {
        model: &model,
        pieces: None,
        format_ids,
        ctx,
        format,
        settings,
        slots,
        clock: 0,
        batch,
        stats,
        pending: counters.pending,
        arrived: counters.arrived,
        turns: super::turns::Turns::open(),
        drafter,
        last_slot: None,
    };
    let tokenizer = super::Tokenizer::new(model.clone());
    if ready.send(Ok((info, tokenizer))).is_err() {
        return;
    }
    engine.serve(rx);
}

impl Engine<'_> {
    fn serve(&mut self, rx: mpsc::Receiver<Msg>) {
        let mut queue: Vec<Msg> = Vec::new();
        loop {
            if queue.is_empty() {
                match rx.recv() {
                    Ok(m) => self.take(m, &mut queue),
                    Err(_) => return,
                }
            }
            while let Ok(m) = rx.try_recv() {
                self.take(m, &mut queue);
            }
            self.pending.fetch_sub(queue.len(), Ordering::SeqCst);
            if queue.iter().any(|m| matches!(m, Msg::Shutdown)) {
                return;
            }
            // Answer cancelled completions now (a preempted job can be
            // cancelled while it waits), and forget cancelled warm-ups.
            queue.retain(|m| match m {
                Msg::Complete(j) if j.cancel.is_cancelled() => {
                    self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
                    j.events.send(Event::Cancelled);
                    false
                }
                Msg::Warm(j) => !j.cancel.is_cancelled(),
                _ => true,
            });
            // Newest completion first; warm-ups only when no completion waits.
            let pos = queue
                .iter()
                .rposition(|m| matches!(m, Msg::Complete(_)))
                .or_else(|| queue.iter().rposition(|m| matches!(m, Msg::Warm(_))));
            let Some(pos) = pos else {
                continue;
            };
            let msg = queue.remove(pos);
            // Put the rest back as "pending" so a running warm-up sees them.
            self.pending.fetch_add(queue.len(), Ordering::SeqCst);
            match msg {
                Msg::Complete(job) => {
                    if let Some(job) = self.complete(job, false) {
                        // Preempted: it waits behind the newer request, which
                        // is still in the channel (drained at the top, then
                        // chosen first as the newest).
                        queue.insert(0, Msg::Complete(job));
                        self.pending.fetch_add(1, Ordering::SeqCst);
                    }
                }
                Msg::Warm(job) => {
                    self.complete(job, true);
                }
                Msg::Shutdown => return,
                Msg::Idle(_) => {}
            }
        }
    }

    /// Move a message from the channel to the queue.
    fn take(&self, m: Msg, queue: &mut Vec<Msg>) {
        match m {
            Msg::Complete(_) => {
                self.arrived.fetch_sub(1, Ordering::SeqCst);
            }
            Msg::Idle(tx) => {
                let _ = tx.send(());
                return;
            }
            _ => {}
        }
        queue.push(m);
    }

    fn pick_slot(&mut self, key: &str, prompt: &[i32]) -> usize {
        if let Some(i) = self
            .slots
            .iter()
            .position(|s| s.key.as_deref() == Some(key))
        {
            return i;
        }
        let best = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| (i, reuse::common_prefix(&s.tokens, prompt)))
            .max_by_key(|(_, n)| *n);
        if let Some((i, n)) = best {
            if n * 2 > prompt.len() {
                return i;
            }
        }
        self.slots
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| s.last_used)
            .map(|(i, _)| i)
            .unwrap_or(0)
    }

    /// Run `job` and answer it; a job that gave way to a newer request is
    /// handed back to be queued again.
    fn complete(&mut self, mut job: Job, warm: bool) -> Option<Job> {
        let stats = self.stats.clone();
        if warm {
            stats.warmups.fetch_add(1, Ordering::Relaxed);
        } else if job.preempted == 0 {
            stats.requests.fetch_add(1, Ordering::Relaxed);
        }
        // A panic in our code or the bindings must not take the engine down
        // with it (every later request would fail): answer this job with
        // the error and start the caches afresh, since a half-done job can
        // leave a slot's token list out of step with its KV cells.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.run_job(&job, warm)
        }))
        .unwrap_or_else(|panic| {
            let what = panic_message(panic.as_ref());
            tracing::error!("the inference engine panicked ({what}); its KV cache was reset");
            for i in 0..self.slots.len() {
                self.reset_slot(i as i32, i);
            }
            Err(format!(
                "internal error in the inference engine ({what}); its cache was reset and the next request starts afresh"
            ))
        });
        match result {
            Ok(Ran::Preempted) => {
                stats.preempted.fetch_add(1, Ordering::Relaxed);
                job.preempted += 1;
                tracing::debug!(key = job.key, times = job.preempted, "prefill preempted");
                return Some(job);
            }
            Ok(Ran::Done(outcome)) => {
                if !warm {
                    stats.completed.fetch_add(1, Ordering::Relaxed);
                    stats.record_latency(job.submitted.elapsed().as_secs_f64() * 1000.0);
                    tracing::info!(
                        reused = outcome.reused_tokens,
                        evaluated = outcome.evaluated_tokens,
                        generated = outcome.generated_tokens,
                        prefill_ms = format!("{:.1}", outcome.prefill_ms),
                        total_ms = format!("{:.1}", outcome.total_ms),
                        queued_ms = format!(
                            "{:.1}",
                            job.submitted.elapsed().as_secs_f64() * 1000.0 - outcome.total_ms
                        ),
                        preempted = job.preempted,
                        "completion"
                    );
                    let _ = job.events.send(Event::Done(outcome));
                }
            }
            Ok(Ran::Cancelled) => {
                if !warm {
                    stats.cancelled.fetch_add(1, Ordering::Relaxed);
                    let _ = job.events.send(Event::Cancelled);
                }
            }
            Err(e) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!("completion failed: {e}");
                let _ = job.events.send(Event::Failed(e));
            }
        }
        self.draft_catch_up();
        None
    }

    /// Bring the draft model up to the last slot's tokens in idle time
    /// (after the answer went out), giving way to any new message.
    fn draft_catch_up(&mut self) {
        let (Some(d), Some(slot)) = (self.drafter.as_mut(), self.last_slot) else {
            return;
        };
        let (pending, arrived) = (self.pending.clone(), self.arrived.clone());
        let give_way = || pending.load(Ordering::SeqCst) > 0 || arrived.load(Ordering::SeqCst) > 0;
        if let Err(e) = d.sync(
            slot,
            &self.slots[slot].tokens,
            self.turns.as_ref(),
            &give_way,
        ) {
            tracing::warn!("{e}");
        }
    }

    /// Run one job.
    fn run_job(&mut self, job: &Job, warm: bool) -> Result<Ran, String> {
        let t0 = Instant::now();
        if job.input.path.ends_with(TEST_PANIC_PATH) && test_hooks() {
            panic!("test panic in the inference thread");
        }
        let vocab = LlamaVocabAdapter(self.model);
        let mut prompt = self.format.build(&vocab, &job.input);
        // Safety net: the context builder budgets tokens, but never let a
        // prompt overflow the slot. Cutting the head here costs reuse.
        let room = (self.settings.context_tokens as usize)
            .saturating_sub(job.params.max_tokens as usize + 1);
        if prompt.len() > room {
            tracing::warn!(
                prompt = prompt.len(),
                room,
                "prompt exceeds the context; cutting its head"
            );
            let cut = prompt.len() - room;
            prompt.drain(..cut);
        }
        if prompt.is_empty() {
            prompt.push(self.model.vocab().bos().0.max(0));
        }
        let slot_idx = self.pick_slot(&job.key, &prompt);
        self.last_slot = Some(slot_idx);
        self.clock += 1;
        let seq = slot_idx as i32;
        {
            let slot = &mut self.slots[slot_idx];
            slot.key = Some(job.key.clone());
            slot.last_used = self.clock;
        }

        // The slot's previous contents (old prompt + old suggestion) are the
        // best draft source for speculative decoding; keep them.
        let previous = self.slots[slot_idx].tokens.clone();

        // 1. Reuse what the slot holds.
        let min_chunk = self.settings.cache_reuse_min_chunk as usize;
        let plan = if self.settings.cache_reuse {
            let exact = self.format.exact(&prompt);
            reuse::plan(&self.slots[slot_idx].tokens, &prompt, min_chunk, exact)
        } else {
            reuse::ReusePlan::default()
        };
        let reused = self.apply_plan(seq, slot_idx, &plan)?;

        // 2. Prefill the rest in cancellable chunks.
        let mut n_past = reused;
        let chunk = self.settings.batch_size as usize;
        while n_past < prompt.len() {
            if job.cancel.is_cancelled() || (warm && self.pending.load(Ordering::SeqCst) > 0) {
                return Ok(Ran::Cancelled);
            }
            if !warm && self.arrived.load(Ordering::SeqCst) > 0 {
                return Ok(Ran::Preempted);
            }
            let end = (n_past + chunk).min(prompt.len());
            fill_batch(&mut self.batch, &prompt, n_past..end, seq)?;
            let turn = self.turns.as_ref().map(|t| t.take());
            let decoded = self.ctx.decode(&mut self.batch);
            drop(turn);
            if let Err(e) = decoded {
                self.reset_slot(seq, slot_idx);
                return Err(format!("llama.cpp decode failed during prefill: {e}"));
            }
            self.slots[slot_idx]
                .tokens
                .extend_from_slice(&prompt[n_past..end]);
            n_past = end;
        }
        let prefill_ms = t0.elapsed().as_secs_f64() * 1000.0;
        let evaluated = prompt.len() - reused;
        if warm {
            return Ok(Ran::Cancelled);
        }
        self.stats
            .prompt_tokens
            .fetch_add(prompt.len() as u64, Ordering::Relaxed);
        self.stats
            .reused_tokens
            .fetch_add(reused as u64, Ordering::Relaxed);
        self.stats
            .evaluated_tokens
            .fetch_add(evaluated as u64, Ordering::Relaxed);

        // 3. Generate (greedy), drafting from text we already have and
        // verifying drafts in one batch (see `speculate.rs`).
        let t_gen = Instant::now();
        let mut sampler = LlamaSampler::greedy();
        let mut out = Emitter::new(&job.params.stop, &job.events);
        let mut generated = 0usize;
        let mut drafted = 0usize;
        let mut accepted_total = 0usize;
        let mut logits_idx = self.batch.n_tokens() - 1;
        let max_tokens = job.params.max_tokens as usize;
        // Token healing: the whitespace the prompt left out must be the
        // first thing the model writes (it then picks the token that
        // carries it, e.g. `" return"`, instead of re-typing indentation).
        let mut forced: &[u8] = job.input.heal.as_bytes();
        // The draft model drafts only if it is nearly in step with the
        // slot; a new place waits for idle time (see `drafter.rs`).
        let mut draft_ms = 0.0;
        let mut use_drafter = self.drafter.as_ref().is_some_and(|d| {
            d.lag(slot_idx, &self.slots[slot_idx].tokens) <= drafter::CATCH_UP_INLINE
        });
        let cancel = job.cancel.clone();
        let give_way = move || cancel.is_cancelled();
        let stop_reason = 'gen: loop {
            if job.cancel.is_cancelled() {
                return Ok(Ran::Cancelled);
            }
            if generated >= max_tokens {
                break StopReason::MaxTokens;
            }
            if job.params.max_time_ms > 0
                && t_gen.elapsed().as_millis() as u64 >= job.params.max_time_ms
            {
                break StopReason::TimeBudget;
            }
            if n_past + 2 >= self.settings.context_tokens as usize {
                break StopReason::MaxTokens;
            }
            let token = if forced.is_empty() {
                sampler.sample(&self.ctx, logits_idx)
            } else {
                match self.forced_token(logits_idx, forced) {
                    Some(t) => t,
                    None => break StopReason::EndOfGeneration,
                }
            };
            if self.is_stop_token(token) {
                break StopReason::EndOfGeneration;
            }
            let piece = self.model.vocab().token_to_piece(token, false, None);
            forced = forced.get(piece.len()..).unwrap_or(&[]);
            if out.push(&piece) {
                break StopReason::StopRule;
            }
            // Draft the tokens after `token` and evaluate token + draft at once.
            let room = max_tokens
                .saturating_sub(generated + 1)
                .min(self.settings.context_tokens as usize - n_past - 2);
            let draft = if job.params.draft_tokens > 0 && room > 0 && forced.is_empty() {
                let mut tail_src = self.slots[slot_idx].tokens.clone();
                tail_src.push(token.0);
                let tail = &tail_src[tail_src.len().saturating_sub(8)..];
                let mut d = speculate::draft(
                    &[&previous, &prompt],
                    tail,
                    (job.params.draft_tokens as usize).min(room),
                );
                if let Some(i) = d.iter().position(|t| self.is_stop_token(LlamaToken(*t))) {
                    d.truncate(i);
                }
                d
            } else {
                Vec::new()
            };
            let mut from_model = 0;
            let draft = if draft.is_empty() && use_drafter && room > 0 && forced.is_empty() {
                let t_draft = Instant::now();
                let mut want = self.slots[slot_idx].tokens.clone();
                want.push(token.0);
                let (model, ids) = (self.model, &self.format_ids);
                let is_stop = |t: i32| stops(model, ids, LlamaToken(t));
                let d = self.drafter.as_mut().expect("use_drafter");
                let drafted = d
                    .sync(slot_idx, &want, self.turns.as_ref(), &give_way)
                    .and_then(|synced| {
                        if synced {
                            d.propose(slot_idx, room, self.turns.as_ref(), &is_stop)
                        } else {
                            Ok(Vec::new())
                        }
                    });
                draft_ms += t_draft.elapsed().as_secs_f64() * 1000.0;
                match drafted {
                    Ok(d) => {
                        from_model = d.len();
                        d
                    }
                    Err(e) => {
                        tracing::warn!("{e}; drafting stops for this request");
                        use_drafter = false;
                        Vec::new()
                    }
                }
            } else {
                draft
            };
            self.batch.clear();
            self.batch
                .add(token, n_past as i32, &[seq], true)
                .map_err(|e| format!("batch: {e}"))?;
            for (i, d) in draft.iter().enumerate() {
                self.batch
                    .add(LlamaToken(*d), (n_past + 1 + i) as i32, &[seq], true)
                    .map_err(|e| format!("batch: {e}"))?;
            }
            let turn = self.turns.as_ref().map(|t| t.take());
            let decoded = self.ctx.decode(&mut self.batch);
            drop(turn);
            if let Err(e) = decoded {
                self.reset_slot(seq, slot_idx);
                return Err(format!("llama.cpp decode failed during generation: {e}"));
            }
            // `token` is now in the KV cache; it stays in the slot, so if the
            // user types what we suggested the next request finds it cached.
            self.slots[slot_idx].tokens.push(token.0);
            n_past += 1;
            generated += 1;
            drafted += draft.len();
            // Keep the longest draft prefix greedy decoding agrees with.
            let mut accepted = 0;
            let mut stop = None;
            for (i, d) in draft.iter().enumerate() {
                let predicted = sampler.sample(&self.ctx, i as i32);
                if predicted.0 != *d {
                    break;
                }
                accepted += 1;
                self.slots[slot_idx].tokens.push(*d);
                n_past += 1;
                generated += 1;
                if out.push(&self.model.vocab().token_to_piece(predicted, false, None)) {
                    stop = Some(StopReason::StopRule);
                    break;
                }
            }
            accepted_total += accepted;
            if from_model > 0 {
                self.stats
                    .draft_proposed
                    .fetch_add(from_model as u64, Ordering::Relaxed);
                self.stats
                    .draft_accepted
                    .fetch_add(accepted as u64, Ordering::Relaxed);
            }
            if accepted < draft.len() {
                // Rejected draft tokens leave the KV cache.
                let _ = self.ctx.kv_cache_seq_rm(seq, Some(n_past as u32), None);
            }
            if let Some(reason) = stop {
                break 'gen reason;
            }
            logits_idx = accepted as i32;
        };
        let text = out.text;
        if drafted > 0 {
            tracing::debug!(
                drafted,
                accepted = accepted_total,
                draft_model_ms = format!("{draft_ms:.1}"),
                use_drafter,
                "speculative drafts"
            );
        }
        let gen_ms = t_gen.elapsed().as_secs_f64() * 1000.0;
        self.stats
            .generated_tokens
            .fetch_add(generated as u64, Ordering::Relaxed);
        self.stats
            .generate_ms
            .fetch_add(gen_ms as u64, Ordering::Relaxed);
        Ok(Ran::Done(Outcome {
            text,
            stop: stop_reason,
            prompt_tokens: prompt.len(),
            reused_tokens: reused,
            evaluated_tokens: evaluated,
            generated_tokens: generated,
            prefill_ms,
            total_ms: t0.elapsed().as_secs_f64() * 1000.0,
        }))
    }

    /// Apply a reuse plan to sequence `seq`: drop the cells between shifted
    /// chunks, move the chunks, drop everything after the reused part.
    /// Returns how many prompt tokens are now cached (0 if the KV cache
    /// refused an edit and the slot had to be cleared).
    fn apply_plan(
        &mut self,
        seq: i32,
        slot_idx: usize,
        plan: &reuse::ReusePlan,
    ) -> Result<usize, String> {
        let kv = |r: Result<(), llama_cpp_2::context::kv_cache::KvCacheConversionError>| {
            r.map_err(|e| format!("KV cache edit failed: {e}"))
        };
        for s in &plan.shifts {
            kv(self
                .ctx
                .kv_cache_seq_rm(seq, Some(s.to as u32), Some(s.from as u32)))?;
            let delta = s.to as i32 - s.from as i32;
            kv(self.ctx.kv_cache_seq_add(
                seq,
                Some(s.from as u32),
                Some((s.from + s.len) as u32),
                delta,
            ))?;
        }
        if kv(self
            .ctx
            .kv_cache_seq_rm(seq, Some(plan.n_past as u32), None))
        .is_err()
        {
            self.reset_slot(seq, slot_idx);
            return Ok(0);
        }
        reuse::apply_to_tokens(&mut self.slots[slot_idx].tokens, plan);
        Ok(plan.n_past)
    }

    /// End-of-generation, FIM pad/sep/file-sep: any control token ends a
    /// suggestion (a completion never contains one), and so do the prompt
    /// format's own markers however the vocabulary types them.
    fn is_stop_token(&self, t: LlamaToken) -> bool {
        stops(self.model, &self.format_ids, t)
    }

    /// The most likely token whose text agrees with `forced` (starts with
    /// it, or is a prefix of it); `None` if the vocabulary has none.
    fn forced_token(&mut self, logits_idx: i32, forced: &[u8]) -> Option<LlamaToken> {
        let pieces = self.pieces.get_or_insert_with(|| Pieces::new(self.model));
        let logits = self.ctx.get_logits_ith(logits_idx);
        let mut best: Option<(f32, u32)> = None;
        for &t in &pieces.by_first[forced[0] as usize] {
            let p = &pieces.bytes[t as usize];
            // A token that carries the forced text and then more
            // whitespace would re-indent by itself (a forced `" "` taken as
            // `"    "` ran away into 50 spaces): after forced whitespace the
            // token must go on with code, or end.
            let agrees = if p.len() <= forced.len() {
                forced.starts_with(p)
            } else {
                p.starts_with(forced)
                    && !(forced.last().is_some_and(|b| matches!(b, b' ' | b'\t'))
                        && matches!(p[forced.len()], b' ' | b'\t' | b'\n' | b'\r'))
            };
            let l = logits.get(t as usize).copied().unwrap_or(f32::NEG_INFINITY);
            if agrees && best.is_none_or(|(b, _)| l > b) {
                best = Some((l, t));
            }
        }
        best.map(|(_, t)| LlamaToken(t as i32))
    }

    fn reset_slot(&mut self, seq: i32, slot_idx: usize) {
        let _ = self.ctx.kv_cache_seq_rm(seq, None, None);
        self.slots[slot_idx].tokens.clear();
        if let Some(d) = self.drafter.as_mut() {
            d.reset(slot_idx);
        }
    }
}

/// Turns generated token pieces into UTF-8 text, applies the text stop
/// rules and streams deltas to the requester.
struct Emitter<'a> {
    text: String,
    /// Bytes of a multi-byte character split across tokens.
    partial: Vec<u8>,
    sent: usize,
    rules: &'a stop::StopRules,
    events: &'a super::listeners::Listeners,
}

impl<'a> Emitter<'a> {
    fn new(rules: &'a stop::StopRules, events: &'a super::listeners::Listeners) -> Self {
        Emitter {
            text: String::new(),
            partial: Vec::new(),
            sent: 0,
            rules,
            events,
        }
    }

    /// Add a token's bytes; true when a stop rule fired (text is cut).
    fn push(&mut self, piece: &[u8]) -> bool {
        self.partial.extend_from_slice(piece);
        let valid = match std::str::from_utf8(&self.partial) {
            Ok(s) => s.len(),
            Err(e) => e.valid_up_to(),
        };
        if valid > 0 {
            self.text
                .push_str(std::str::from_utf8(&self.partial[..valid]).expect("validated"));
            self.partial.drain(..valid);
        }
        let cut = stop::cut_point(self.rules, &self.text);
        if let Some(cut) = cut {
            self.text.truncate(cut);
        }
        if self.text.len() > self.sent {
            let _ = self
                .events
                .send(Event::Delta(self.text[self.sent..].to_string()));
            self.sent = self.text.len();
        }
        cut.is_some()
    }
}
