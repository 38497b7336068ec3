//! The completion pipeline shared by LSP handlers and `slm-ls complete`:
//! snapshot + cursor → context → engine → post-processing.
//!
//! It also owns the typed-ahead cache: when the user types characters that
//! match the suggestion they were shown, the rest of it is served from
//! here without touching the model.

use std::collections::hash_map::DefaultHasher;
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use crate::config::Config;
use crate::context::{self, Context};
use crate::document::Document;
use crate::engine::{CompletionStream, Event, GenParams, InferenceHandle, Outcome, StopReason};
use crate::postprocess;

/// One request's prepared work.
pub struct Prepared {
    pub ctx: Context,
    pub params: GenParams,
    /// Typed-ahead cache key: document + exact prefix window + rest of line.
    pub key: u64,
}

pub fn prepare(
    doc: &Document,
    cursor: usize,
    config: &Config,
    path: &str,
    tokens: &dyn context::TokenCount,
) -> Prepared {
    prepare_with(
        doc,
        cursor,
        config,
        path,
        context::Head::Search(&[]),
        tokens,
    )
}

/// [`prepare`] with the prompt head's snippets (see [`PromptHeads`]).
pub fn prepare_with(
    doc: &Document,
    cursor: usize,
    config: &Config,
    path: &str,
    head: context::Head<'_>,
    tokens: &dyn context::TokenCount,
) -> Prepared {
    let ctx = context::build_with(
        doc,
        cursor,
        &config.context_budgets(),
        path,
        config.completion.multiline,
        head,
        tokens,
    );
    let params = GenParams {
        max_tokens: config.completion.max_tokens,
        draft_tokens: config.completion.draft_tokens,
        max_time_ms: config.completion.max_time_ms,
        stop: ctx.stop.clone(),
    };
    let key = cache_key(path, &doc_prefix(&ctx), &ctx.line_suffix);
    Prepared { ctx, params, key }
}

/// The document text the prompt's prefix stands for: the prompt leaves the
/// healed whitespace out, but the typed-ahead cache must tell `return` from
/// `return ` (both have the same prompt prefix).
fn doc_prefix(ctx: &Context) -> String {
    format!("{}{}", ctx.input.prefix, ctx.input.heal)
}

fn cache_key(path: &str, prefix: &str, line_suffix: &str) -> u64 {
    let mut h = DefaultHasher::new();
    path.hash(&mut h);
    prefix.hash(&mut h);
    line_suffix.hash(&mut h);
    h.finish()
}

/// Recent suggestions keyed by the prefix they answer, including every
/// typed-ahead prefix of their first line. Small and linear: it holds a few
/// hundred entries and is probed once per keystroke.
#[derive(Default)]
pub struct TypedAhead {
    entries: Mutex<VecDeque<(u64, String)>>,
}

const TYPED_AHEAD_CAPACITY: usize = 512;

impl TypedAhead {
    pub fn get(&self, key: u64) -> Option<String> {
        self.entries
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    }

    /// Remember `text` as the answer at `prep`, and its tails as the answers
    /// after typing each prefix of its first line.
    pub fn insert(&self, prep: &Prepared, path: &str, text: &str) {
        if text.is_empty() {
            return;
        }
        let first_line_end = text.find('\n').unwrap_or(text.len());
        let mut entries = self.entries.lock().unwrap();
        let mut prefix = doc_prefix(&prep.ctx);
        for (i, ch) in text[..first_line_end].char_indices() {
            let key = cache_key(path, &prefix, &prep.ctx.line_suffix);
            entries.push_back((key, text[i..].to_string()));
            prefix.push(ch);
        }
        while entries.len() > TYPED_AHEAD_CAPACITY {
            entries.pop_front();
        }
    }
}

/// The prompt head (cross-file snippets) each document's last prompt used.
///
/// The head comes first in the prompt, so when it changes, everything
/// after it is evaluated again: hundreds of tokens, seconds on a laptop
/// CPU. Searched afresh per keystroke it changed as the user typed (new
/// identifiers pick other definitions and similar chunks; the edit itself
/// reorders the recent-edits ring). So while the user types near the same
/// place the head is kept, and it is searched afresh at natural points: a
/// jump of more than [`HEAD_KEEP_LINES`] lines, a document's first request,
/// and an idle pause once the head is older than [`HEAD_REFRESH`] (the
/// warm-up after the pause searches it and prefills it before the next
/// keystroke needs it). Refreshing at every pause was too often: the
/// warm-up fires 300 ms after the last edit, also while a slow answer is
/// still being computed, and 4 of 81 keystrokes of the replay re-evaluated
/// 170–330 tokens (model p95/p50 9.7x).
#[derive(Default)]
pub struct PromptHeads {
    kept: Mutex<std::collections::HashMap<String, KeptHead>>,
}

struct KeptHead {
    line: usize,
    searched: std::time::Instant,
    snippets: Vec<crate::engine::Snippet>,
}

/// A cursor this many lines or more from where the head was searched
/// searches again.
pub const HEAD_KEEP_LINES: usize = 16;
/// An idle pause refreshes a head older than this.
pub const HEAD_REFRESH: std::time::Duration = std::time::Duration::from_secs(20);

impl PromptHeads {
    /// The head to keep for a request on `line` of `uri`, if any.
    pub fn kept(&self, uri: &str, line: usize) -> Option<Vec<crate::engine::Snippet>> {
        let kept = self.kept.lock().unwrap();
        let k = kept.get(uri)?;
        (k.line.abs_diff(line) < HEAD_KEEP_LINES).then(|| k.snippets.clone())
    }

    /// The head to keep for a warm-up (an idle pause) on `line`: as
    /// [`Self::kept`], unless it is older than [`HEAD_REFRESH`].
    pub fn kept_at_pause(&self, uri: &str, line: usize) -> Option<Vec<crate::engine::Snippet>> {
        let kept = self.kept.lock().unwrap();
        let k = kept.get(uri)?;
        (k.searched.elapsed() < HEAD_REFRESH && k.line.abs_diff(line) < HEAD_KEEP_LINES)
            .then(|| k.snippets.clone())
    }

    /// Remember the head a prompt on `line` used. A kept head keeps its
    /// original line and age, so typing slowly down a file still searches
    /// again every [`HEAD_KEEP_LINES`] lines.
    pub fn remember(&self, uri: &str, line: usize, prep: &Prepared, searched: bool) {
        let mut kept = self.kept.lock().unwrap();
        if searched || !kept.contains_key(uri) {
            kept.insert(
                uri.to_string(),
                KeptHead {
                    line,
                    searched: std::time::Instant::now(),
                    snippets: prep.ctx.input.extras.clone(),
                },
            );
        }
    }

    pub fn forget(&self, uri: &str) {
        self.kept.lock().unwrap().remove(uri);
    }
}

/// Outcome of one completion as the LSP layer sees it.
#[derive(Debug, Clone)]
pub enum Completion {
    /// Suggestion text to insert at the cursor (may be empty).
    Text {
        text: String,
        outcome: Option<Outcome>,
    },
    Cancelled,
    Failed(String),
}

/// Drive an engine request to its end, calling `on_partial` with the
/// cleaned text so far whenever new text arrives (for streaming).
pub async fn run(
    engine: &InferenceHandle,
    doc_key: &str,
    prep: &Prepared,
    mut on_partial: impl FnMut(&str),
) -> Completion {
    // [context] Where a suggestion cannot help, answer empty at once.
    if let Some(skip) = prep.ctx.skip {
        tracing::debug!(%skip, "completion skipped");
        return Completion::Text {
            text: String::new(),
            outcome: None,
        };
    }
    let mut stream: CompletionStream =
        engine.complete(doc_key, prep.ctx.input.clone(), prep.params.clone());
    let mut raw = String::new();
    while let Some(ev) = stream.events.recv().await {
        match ev {
            Event::Delta(d) => {
                raw.push_str(&d);
                on_partial(&postprocess::clean(&raw, &prep.ctx));
            }
            Event::Done(outcome) => {
                let truncated =
                    matches!(outcome.stop, StopReason::MaxTokens | StopReason::TimeBudget);
                let text = postprocess::clean_final(&outcome.text, &prep.ctx, truncated);
                tracing::debug!(raw = ?outcome.text, stop = ?outcome.stop, shown = ?text, "suggestion");
                return Completion::Text {
                    text,
                    outcome: Some(outcome),
                };
            }
            Event::Cancelled => return Completion::Cancelled,
            Event::Failed(e) => return Completion::Failed(e),
        }
    }
    Completion::Failed("the inference thread stopped".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prepare a request for `text` with the cursor at its end.
    fn prep_at_end(text: &str) -> Prepared {
        let doc = Document::with_path(text, 0, "python", "a.py");
        prepare(
            &doc,
            doc.rope.len_chars(),
            &Config::default(),
            "a.py",
            &context::Estimate,
        )
    }

    #[test]
    fn typed_ahead_serves_the_rest_of_a_suggestion_as_it_is_typed() {
        let cache = TypedAhead::default();
        let src = "def f(x):\n    ";
        let shown = prep_at_end(src);
        assert_eq!(
            shown.ctx.input.heal, " ",
            "the last space of the indentation is healed"
        );
        cache.insert(&shown, "a.py", "return x");
        assert_eq!(cache.get(shown.key).as_deref(), Some("return x"));
        for (typed, rest) in [("r", "eturn x"), ("return", " x"), ("return ", "x")] {
            let p = prep_at_end(&format!("{src}{typed}"));
            assert_eq!(
                cache.get(p.key).as_deref(),
                Some(rest),
                "after typing {typed:?}"
            );
        }
        // Typing something else is a miss.
        assert_eq!(cache.get(prep_at_end(&format!("{src}y")).key), None);
    }
}
