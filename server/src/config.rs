//! The one typed settings struct.
//!
//! Clients send settings as JSON (`initializationOptions`, and
//! `workspace/didChangeConfiguration`), the CLI as flags. Every field has a
//! default, so a partial JSON object is always valid; unknown keys are
//! ignored so an older server accepts a newer editor plugin's settings.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Config {
    pub model: ModelConfig,
    pub completion: CompletionConfig,
    pub context: ContextConfig,
    /// [remote] The explain provider (issue 5; `remote/config.rs`).
    #[serde(default)]
    pub remote: crate::remote::RemoteConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct ModelConfig {
    /// Path to a GGUF file. `None` means: `$SLM_LS_MODEL`, then the default
    /// model fetched by `slm-ls models fetch`.
    pub path: Option<PathBuf>,
    /// CPU threads for decoding; 0 = all cores.
    pub threads: u32,
    /// Context window per cached document (tokens).
    pub context_tokens: u32,
    /// Tokens per `decode` call during prefill. Smaller = faster cancellation,
    /// larger = better throughput (llama.cpp has no abort for a running decode).
    pub batch_size: u32,
    /// Layers offloaded to a GPU (needs a `cuda`/`vulkan`/`metal` build).
    pub gpu_layers: u32,
    /// How many documents keep their own KV-cache sequence (LRU).
    pub cache_slots: u32,
    /// Minimum run of matching tokens that is shifted instead of re-evaluated
    /// after an edit in the middle of the prompt (llama-server's
    /// `n_cache_reuse`). 0 disables chunk reuse (prefix reuse stays on).
    pub cache_reuse_min_chunk: u32,
    /// Turn all KV reuse off (every request evaluates its whole prompt).
    /// Exists for benchmarks and for debugging suspected cache bugs.
    pub cache_reuse: bool,
    /// Override the auto-detected FIM format: "auto", "none" (prefix
    /// continuation), "starcoder", "codellama", "deepseek", "qwen",
    /// "codestral", "codegemma".
    pub fim_format: String,
    /// Fill-in-the-middle models that read prefix, suffix, middle (Qwen,
    /// StarCoder, DeepSeek): put what is typed on the cursor's line after
    /// the middle marker, so typing on a line only appends to the cached
    /// prompt (exact KV reuse). Off (default): the prefix ends at the
    /// cursor, which Qwen2.5-Coder answers better (see engine/prompt.rs).
    pub fim_line_in_middle: bool,
    /// Models trained on both FIM orders (Qwen2.5-Coder, StarCoder): the
    /// suffix first and the prefix last (`<pre><suf>suffix<mid>prefix`),
    /// so typing, Enter and any edit before the cursor only append to the
    /// cached prompt, and the suffix is paid once per place instead of on
    /// every keystroke. Measured right more often than the prefix-first
    /// order too (benches/README.md, issue 18). Off: prefix first (PSM).
    pub fim_spm: bool,
    /// A smaller model of the same vocabulary that drafts tokens for this
    /// one to verify in one batch (speculative decoding: the same output,
    /// fewer sequential steps): a GGUF path or a name from `slm-ls models
    /// list` (`qwen2.5-coder-0.5b` for the 1.5B). Empty: none.
    pub draft: String,
    /// Most tokens the draft model proposes per step (it stops earlier
    /// where it is unsure).
    pub draft_max: u32,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            path: None,
            threads: 0,
            context_tokens: 2048,
            batch_size: 64,
            gpu_layers: 0,
            cache_slots: 4,
            cache_reuse_min_chunk: 16,
            cache_reuse: true,
            fim_format: "auto".into(),
            fim_line_in_middle: false,
            fim_spm: true,
            draft: String::new(),
            draft_max: 6,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct CompletionConfig {
    /// Upper bound on generated tokens per suggestion.
    pub max_tokens: u32,
    /// Wall-clock budget for generation (prefill excluded), in ms.
    pub max_time_ms: u64,
    /// Allow multi-line suggestions (block bodies); otherwise single line.
    pub multiline: bool,
    /// Disable completions without restarting the server.
    pub enabled: bool,
    /// Serve the rest of a shown suggestion from a cache when the user types
    /// its first characters. Off only for benchmarks that measure the model.
    pub typed_ahead: bool,
    /// Speculative decoding: tokens drafted per step from text already seen
    /// (prompt lookup); 0 turns it off. Output is the same either way.
    pub draft_tokens: u32,
    /// How long a completion request that arrives while the model loads
    /// waits for it (ms) before answering empty (`isIncomplete` for the
    /// menu, so the editor asks again).
    pub load_wait_ms: u64,
    /// [remote] Where completions come from: "local" (the in-process
    /// engine), "llama-server", "openai", "ollama" (issue 5).
    pub backend: crate::remote::CompletionBackend,
    /// [remote] The inference server a non-local backend talks to.
    pub server: crate::remote::CompletionServer,
}

impl Default for CompletionConfig {
    fn default() -> Self {
        CompletionConfig {
            // Qwen2.5-Coder-0.5B decodes ~13 tokens/s on 2 cores: a line
            // (10-20 tokens) fits in the time budget, a block may not (its
            // unfinished last line is then dropped, never shown broken).
            max_tokens: 48,
            max_time_ms: 3000,
            multiline: true,
            enabled: true,
            typed_ahead: true,
            draft_tokens: 8,
            load_wait_ms: 5000,
            backend: Default::default(),
            server: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct ContextConfig {
    /// Token budget for text before the cursor.
    pub prefix_tokens: u32,
    /// Token budget for text after the cursor (FIM models only).
    pub suffix_tokens: u32,
    /// Token budget for snippets from other files.
    pub extra_tokens: u32,
    /// [context] Complete inside comments too (off: no request there).
    pub comments: bool,
    /// [context] Baseline for the quality benchmark (the plain-FIM floor):
    /// a plain window of exactly the token budgets around the cursor, PSM
    /// order, no healing, no cross-file snippets, no skipping, no
    /// post-processing.
    pub naive: bool,
    /// Token healing: leave the space, tab or punctuation character right
    /// before the cursor out of the prompt and make the model write it
    /// first (see `context::heal`). Off for remote completion backends
    /// (nothing constrains their first token) and to measure it.
    pub heal: bool,
    /// Models with repository-level tokens (Qwen2.5-Coder's `<|file_sep|>`,
    /// StarCoder2's `<file_sep>`): start the prompt with the file's
    /// relative path after the file separator even when there are no
    /// snippets from other files, as in the models' repository-level
    /// training and as llama-server's `/infill` does. Off (the default until
    /// the quality bench shows it helps): a bare FIM prompt.
    pub file_frame: bool,
    /// [index] Index the workspace folder in the background and resolve
    /// names near the cursor to definitions in any file of the project
    /// (issue 19, `index/`). Off: only open documents give definitions.
    pub workspace: bool,
}

impl Default for ContextConfig {
    fn default() -> Self {
        ContextConfig {
            // ~640 prompt tokens: a cold prompt costs ~10 s of prefill at
            // ~65 tokens/s on 2 cores with the 0.5B model (1536+256+256
            // cost 30 s); keystrokes after it reuse the cache.
            prefix_tokens: 384,
            // What follows the cursor decides much of a line (exact at line
            // start 12.5% → 25.0% from 128 to 384 tokens, 48 gaps); with
            // the suffix first in the prompt it is evaluated once per place,
            // not per keystroke.
            suffix_tokens: 384,
            extra_tokens: 128,
            comments: false,
            naive: false,
            heal: true,
            file_frame: false,
            workspace: true,
        }
    }
}

impl Config {
    /// Merge a JSON settings object over the defaults. Editors differ in how
    /// they nest settings (`{"slm-ls": {...}}` from VS Code's section, or
    /// the bare object from Neovim/Helix), so both shapes are accepted.
    pub fn from_json(value: &serde_json::Value) -> Result<Config, String> {
        let value = match value.get("slm-ls").or_else(|| value.get("slmLs")) {
            Some(inner) => inner,
            None => value,
        };
        if value.is_null() {
            return Ok(Config::default());
        }
        serde_json::from_value(value.clone()).map_err(|e| format!("invalid slm-ls settings: {e}"))
    }

    /// The context budgets as a request uses them: shrunk in proportion
    /// when, with the generation's `maxTokens` and a few control tokens,
    /// they would not fit `model.contextTokens` together. Otherwise the
    /// engine would cut the prompt's head, the part KV reuse keeps.
    pub fn context_budgets(&self) -> ContextConfig {
        const CONTROL_TOKENS: u32 = 16; // BOS, FIM markers, file separators
        let room = self
            .model
            .context_tokens
            .max(256)
            .saturating_sub(self.completion.max_tokens + CONTROL_TOKENS)
            .max(64);
        let c = &self.context;
        let sum = c.prefix_tokens as u64 + c.suffix_tokens as u64 + c.extra_tokens as u64;
        if sum <= room as u64 {
            return c.clone();
        }
        let scale = |t: u32| (t as u64 * room as u64 / sum) as u32;
        ContextConfig {
            prefix_tokens: scale(c.prefix_tokens),
            suffix_tokens: scale(c.suffix_tokens),
            extra_tokens: scale(c.extra_tokens),
            ..c.clone()
        }
    }

    /// Number of CPU threads to use.
    pub fn threads(&self) -> i32 {
        if self.model.threads > 0 {
            return self.model.threads as i32;
        }
        // Several servers on one machine (two editor windows, a test suite)
        // each spinning a thread per core slow each other down many times
        // over (llama.cpp threads spin at barriers): let the environment
        // say how many to use.
        if let Some(n) = std::env::var("SLM_LS_THREADS")
            .ok()
            .and_then(|v| v.trim().parse::<i32>().ok())
            .filter(|n| *n > 0)
        {
            return n;
        }
        std::thread::available_parallelism()
            .map(|n| n.get() as i32)
            .unwrap_or(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn partial_settings_keep_defaults() {
        let c = Config::from_json(&json!({"model": {"threads": 3}})).unwrap();
        assert_eq!(c.model.threads, 3);
        assert_eq!(c.model.context_tokens, 2048);
        assert_eq!(c.completion.max_tokens, 48);
    }

    #[test]
    fn nested_section_and_camel_case() {
        let c = Config::from_json(&json!({"slm-ls": {"completion": {"maxTokens": 7}}})).unwrap();
        assert_eq!(c.completion.max_tokens, 7);
    }

    #[test]
    fn context_budgets_share_the_models_context() {
        let fits = |c: &Config| {
            let b = c.context_budgets();
            b.prefix_tokens + b.suffix_tokens + b.extra_tokens + c.completion.max_tokens
                <= c.model.context_tokens
        };
        // The defaults fit the default context as they are.
        let c = Config::default();
        assert!(fits(&c));
        assert_eq!(c.context_budgets(), c.context);
        // Large budgets are scaled down to fit.
        let c = Config::from_json(&json!({"context": {"prefixTokens": 1536, "suffixTokens": 256, "extraTokens": 256}, "completion": {"maxTokens": 64}})).unwrap();
        let b = c.context_budgets();
        assert!(fits(&c));
        assert!(b.prefix_tokens > 1400 && b.prefix_tokens < 1536, "{b:?}");
        assert!(b.suffix_tokens < 256 && b.extra_tokens < 256, "{b:?}");
        // A small context shrinks everything in proportion.
        let c = Config::from_json(&json!({"model": {"contextTokens": 320}})).unwrap();
        let b = c.context_budgets();
        assert!(fits(&c));
        assert_eq!(b.prefix_tokens, b.suffix_tokens, "{b:?}");
        assert_eq!(b.prefix_tokens / b.extra_tokens, 3, "{b:?}");
        // Budgets that fit are kept as they are.
        let c = Config::from_json(&json!({"context": {"prefixTokens": 512}})).unwrap();
        assert_eq!(c.context_budgets(), c.context);
    }

    #[test]
    fn wrong_type_is_a_clear_error() {
        let e = Config::from_json(&json!({"model": {"threads": "many"}})).unwrap_err();
        assert!(e.contains("invalid slm-ls settings"), "{e}");
    }
}
