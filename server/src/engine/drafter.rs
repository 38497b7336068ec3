//! Speculative decoding with a draft model (`model.draft`).
//!
//! A smaller model of the same vocabulary (the 0.5B for the 1.5B) proposes
//! the next few tokens; the main model evaluates them all in one batched
//! `decode` and keeps the longest run greedy decoding agrees with (the
//! actor's verification step, shared with prompt-lookup drafts in
//! `speculate.rs`), so the output is exactly the main model's greedy
//! output. On a CPU one batched `decode` of a few tokens costs little more
//! than one token, so every accepted draft token is nearly free.
//!
//! The draft model has its own context with one sequence per slot of the
//! main context. Each keeps the tokens whose K/V it holds
//! ([`Drafter::sync`] evaluates only what differs from the main slot, by
//! common prefix), so a keystroke costs the draft model a token or two,
//! like the main model. Its prefill for a new place is never paid before
//! the first token: the actor drafts only when the draft model lags by a
//! few tokens ([`CATCH_UP_INLINE`]) and brings it up to date after
//! answering, in chunks that give way to the next request.

use std::num::NonZeroU32;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use super::reuse::common_prefix;
use super::turns::Turns;

/// A draft model that lags the main slot by this many tokens or fewer is
/// caught up inside a request (a keystroke or two plus the last
/// suggestion); more (a new file, a jump) waits for idle time rather than
/// delay the suggestion.
pub const CATCH_UP_INLINE: usize = 48;

/// Drafting stops at the first token the draft model gives less than this
/// probability (llama.cpp's speculative example uses 0.75): an unsure
/// draft is usually rejected, and each drafted token costs a draft decode.
const MIN_PROB: f32 = 0.6;

pub struct Drafter<'m> {
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    /// Per slot of the main context: the tokens whose K/V the draft
    /// context's sequence of the same number holds, by position.
    tokens: Vec<Vec<i32>>,
    /// Batch index of the logits of the last token [`Drafter::sync`]
    /// evaluated, while they are current.
    logits: Option<i32>,
    /// Most tokens proposed per step.
    max: usize,
    chunk: usize,
}

/// Whether `draft` can draft for `target`: the same vocabulary, token for
/// token (ids of a probe text and of the FIM markers), else the reason.
pub fn compatible(target: &LlamaModel, draft: &LlamaModel) -> Result<(), String> {
    if target.n_vocab() != draft.n_vocab() {
        return Err(format!(
            "its vocabulary has {} tokens, the model's {}",
            draft.n_vocab(),
            target.n_vocab()
        ));
    }
    let probe = "fn main() {\n    let näive = \"héllo\"; // 123 ünïcode\n}\ndef f(x):\n\treturn x";
    let ids = |m: &LlamaModel| {
        let v = m.vocab();
        let mut ids: Vec<i32> = v
            .tokenize(probe.as_bytes(), false, false)
            .into_iter()
            .map(|t| t.0)
            .collect();
        ids.extend([v.fim_pre().0, v.fim_suf().0, v.fim_mid().0, v.eos().0]);
        ids
    };
    if ids(target) != ids(draft) {
        return Err("it tokenizes text differently (another vocabulary)".into());
    }
    Ok(())
}

impl<'m> Drafter<'m> {
    /// A context on `model` shaped like the main one: `slots` sequences of
    /// `per_slot` tokens in one unified KV buffer.
    pub fn new(
        backend: &LlamaBackend,
        model: &'m LlamaModel,
        slots: u32,
        per_slot: u32,
        batch: u32,
        threads: i32,
        max: usize,
    ) -> Result<Drafter<'m>, String> {
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(per_slot * slots))
            .with_n_batch(batch)
            .with_n_ubatch(batch)
            .with_n_seq_max(slots)
            .with_kv_unified(true)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let ctx = model
            .new_context(backend, params)
            .map_err(|e| format!("cannot create the draft model's context: {e}"))?;
        Ok(Drafter {
            ctx,
            batch: LlamaBatch::new(batch as usize, 1),
            tokens: vec![Vec::new(); slots as usize],
            logits: None,
            max,
            chunk: batch as usize,
        })
    }

    /// How many of `want`'s tokens slot `slot` would have to evaluate.
    pub fn lag(&self, slot: usize, want: &[i32]) -> usize {
        want.len() - common_prefix(&self.tokens[slot], want).min(want.len().saturating_sub(1))
    }

    /// Make slot `slot` hold exactly `want`, with the logits of its last
    /// token ready for [`Drafter::propose`]: keeps the common prefix and
    /// evaluates the rest in chunks, asking `give_way` before each.
    /// `Ok(false)`: it gave way (the chunks evaluated stay).
    pub fn sync(
        &mut self,
        slot: usize,
        want: &[i32],
        turns: Option<&Turns>,
        give_way: &dyn Fn() -> bool,
    ) -> Result<bool, String> {
        self.logits = None;
        if want.is_empty() {
            return Ok(true);
        }
        let seq = slot as i32;
        // The last token is evaluated again even when cached: its logits
        // are what the first draft token is sampled from.
        let keep = common_prefix(&self.tokens[slot], want).min(want.len() - 1);
        if self
            .ctx
            .kv_cache_seq_rm(seq, Some(keep as u32), None)
            .is_err()
        {
            self.reset(slot);
        }
        self.tokens[slot].truncate(keep);
        while self.tokens[slot].len() < want.len() {
            if give_way() {
                return Ok(false);
            }
            let from = self.tokens[slot].len();
            let to = (from + self.chunk).min(want.len());
            super::actor::fill_batch(&mut self.batch, want, from..to, seq)?;
            self.decode(slot, turns)?;
            self.tokens[slot].extend_from_slice(&want[from..to]);
        }
        self.logits = Some(self.batch.n_tokens() - 1);
        Ok(true)
    }

    /// Up to `max` tokens (and at most the drafter's own limit) that the
    /// draft model expects after what [`Drafter::sync`] left in the slot:
    /// greedy, stopping at an unsure token or one `is_stop` ends on. The
    /// last proposed token is not evaluated (the next sync does it, with
    /// the main model's next token, if it is accepted).
    pub fn propose(
        &mut self,
        slot: usize,
        max: usize,
        turns: Option<&Turns>,
        is_stop: &dyn Fn(i32) -> bool,
    ) -> Result<Vec<i32>, String> {
        let mut out = Vec::new();
        let seq = slot as i32;
        let max = max.min(self.max);
        while out.len() < max {
            let Some(idx) = self.logits.take() else {
                break;
            };
            let (token, p) = top(self.ctx.get_logits_ith(idx));
            if p < MIN_PROB || is_stop(token) {
                break;
            }
            out.push(token);
            if out.len() == max {
                break;
            }
            let pos = self.tokens[slot].len();
            self.batch.clear();
            self.batch
                .add(LlamaToken(token), pos as i32, &[seq], true)
                .map_err(|e| format!("draft batch: {e}"))?;
            self.decode(slot, turns)?;
            self.tokens[slot].push(token);
            self.logits = Some(0);
        }
        Ok(out)
    }

    pub fn reset(&mut self, slot: usize) {
        let _ = self.ctx.kv_cache_seq_rm(slot as i32, None, None);
        self.tokens[slot].clear();
        self.logits = None;
    }

    fn decode(&mut self, slot: usize, turns: Option<&Turns>) -> Result<(), String> {
        let turn = turns.map(|t| t.take());
        let decoded = self.ctx.decode(&mut self.batch);
        drop(turn);
        decoded.map_err(|e| {
            self.reset(slot);
            format!("llama.cpp decode failed in the draft model: {e}")
        })
    }
}

/// The most likely token of `logits` and its probability.
fn top(logits: &[f32]) -> (i32, f32) {
    let (best, max) =
        logits
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |(bi, bm), (i, &l)| {
                if l > bm {
                    (i, l)
                } else {
                    (bi, bm)
                }
            });
    let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    (best as i32, 1.0 / sum)
}

#[cfg(test)]
mod tests {
    #[test]
    fn top_is_the_argmax_with_its_softmax_probability() {
        let (t, p) = super::top(&[0.0, 2.0, 0.0]);
        assert_eq!(t, 1);
        let want = 2f32.exp() / (2.0 + 2f32.exp());
        assert!((p - want).abs() < 1e-6, "{p} vs {want}");
        assert_eq!(super::top(&[1.0, 1.0]).1, 0.5);
    }
}
