//! Prompt assembly: FIM format detection and the token layout.
//!
//! Layout rule for cache reuse: what changes rarely comes first (cross-file
//! snippets, then the head of the prefix), what changes on every keystroke
//! comes last. For families trained on suffix-prefix-middle (SPM) order
//! the suffix goes before the prefix, so typing only touches the tail. For
//! prefix-suffix-middle (PSM) families (Qwen, StarCoder, DeepSeek) the
//! suffix follows the prefix, so a keystroke changes the text before the
//! suffix, whose cached keys are then shifted (approximate) or recomputed.
//! The default for the families trained on both orders (Qwen2.5-Coder,
//! StarCoder) is their suffix-first mode (`spm`, `model.fimSpm`):
//! `<pre><suf>suffix<mid>prefix`, the prefix ending at the cursor right
//! before generation. Typing, Enter and edits before the cursor then only
//! append to the cached prompt (exact attention, no suffix re-evaluated per
//! keystroke); only a change after the cursor (an auto-closed bracket, a
//! deleted line below) re-evaluates the prompt from the suffix on. Measured
//! with Qwen2.5-Coder-0.5B it is also right more often than PSM
//! (benches/README.md, issue 18).
//! `line_in_middle` (`model.fimLineInMiddle`, off by default) instead puts
//! the part of the cursor's line already typed after the middle marker, as
//! if the model had written it: prefix and suffix stay byte-identical while
//! the user types on a line and attention is exact. Measured with
//! Qwen2.5-Coder-0.5B it answers worse (a leading space after a word,
//! `area(10, 20)` where the suffix wants `area(w, h)`: the model was not
//! trained on middles that begin at a line start), so it stays opt-in.
//!
//! User text is always tokenized with special-token parsing **off**: a file
//! that contains `<fim_prefix>` must not inject control tokens.

use std::fmt;

/// What the model-independent part of the pipeline hands to the engine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PromptInput {
    /// Repository-relative path (or file name) of the document.
    pub path: String,
    /// Text before the cursor, already windowed by the context builder.
    pub prefix: String,
    /// Text after the cursor (used in the prompt only by FIM models).
    pub suffix: String,
    /// Snippets from other files, most stable first.
    pub extras: Vec<Snippet>,
    /// How many bytes at the end of `prefix` belong to the cursor's line
    /// (what the user has typed on it so far). PSM layouts put them after
    /// the middle marker; 0 keeps the classic layout.
    pub line_len: usize,
    /// Text the prompt leaves out before the cursor (token healing): the
    /// space or tab right before the cursor, the whole indentation on a
    /// line with nothing else, or one punctuation character that usually
    /// starts a longer token (`!` of `assert_eq!(`). In the BPE
    /// vocabularies of code models a word's leading space belongs to the
    /// word (` return`) and a run of
    /// indentation before code is split before its last character
    /// (`\n\t` + `\t` + `fmt`), so a prompt ending in whitespace tokenizes
    /// unlike any code the model saw (measured: one tab too many after Go
    /// indentation; `   return` or nothing at indented Python lines). The
    /// engine makes the model write exactly this first (constrained first
    /// tokens) and post-processing removes it again. Empty when not healed.
    pub heal: String,
}

impl PromptInput {
    /// `prefix` split into (text before the cursor's line, the line's typed part).
    pub fn split_line(&self) -> (&str, &str) {
        let mut at = self.prefix.len().saturating_sub(self.line_len);
        while !self.prefix.is_char_boundary(at) {
            at += 1;
        }
        self.prefix.split_at(at)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Snippet {
    pub path: String,
    pub text: String,
}

/// A reused chunk may start this many tokens before the cursor at the
/// latest: an edit closer to the cursor than this is evaluated again, with
/// all that follows it (see `reuse::plan`).
pub const STALE_MARGIN: usize = 64;

/// The families we know how to prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FimFamily {
    /// No FIM tokens: continue the prefix (SmolLM2, chat models).
    None,
    /// `<fim_prefix>…<fim_suffix>…<fim_middle>` (StarCoder/2, Refact, SantaCoder-style).
    StarCoder,
    /// `<|fim_prefix|>…<|fim_suffix|>…<|fim_middle|>` with `<|repo_name|>`/`<|file_sep|>`.
    Qwen,
    /// Same markers as Qwen without repo tokens.
    CodeGemma,
    /// `<｜fim▁begin｜>…<｜fim▁hole｜>…<｜fim▁end｜>`.
    DeepSeek,
    /// `<PRE> <SUF>… <MID> …` in SPM order.
    CodeLlama,
    /// `[SUFFIX]…[PREFIX]…`: natively suffix first.
    Codestral,
    /// Model declares FIM tokens in its GGUF metadata but no template above
    /// matched: PSM with those token ids.
    Generic,
}

impl FimFamily {
    pub fn parse(name: &str) -> Option<Option<FimFamily>> {
        Some(match name {
            "auto" | "" => None,
            "none" => Some(FimFamily::None),
            "starcoder" | "starcoder2" | "refact" => Some(FimFamily::StarCoder),
            "qwen" | "qwen2.5-coder" => Some(FimFamily::Qwen),
            "codegemma" => Some(FimFamily::CodeGemma),
            "deepseek" | "deepseek-coder" => Some(FimFamily::DeepSeek),
            "codellama" => Some(FimFamily::CodeLlama),
            "codestral" => Some(FimFamily::Codestral),
            _ => return None,
        })
    }

    fn markers(self) -> &'static [&'static str] {
        match self {
            FimFamily::StarCoder => &["<fim_prefix>", "<fim_suffix>", "<fim_middle>"],
            FimFamily::Qwen => &[
                "<|fim_prefix|>",
                "<|fim_suffix|>",
                "<|fim_middle|>",
                "<|file_sep|>",
            ],
            FimFamily::CodeGemma => &["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"],
            FimFamily::DeepSeek => &["<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"],
            FimFamily::CodeLlama => &["<PRE>", "<SUF>", "<MID>"],
            FimFamily::Codestral => &["[SUFFIX]", "[PREFIX]"],
            FimFamily::None | FimFamily::Generic => &[],
        }
    }
}

impl fmt::Display for FimFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            FimFamily::None => "none (prefix continuation)",
            FimFamily::StarCoder => "starcoder",
            FimFamily::Qwen => "qwen",
            FimFamily::CodeGemma => "codegemma",
            FimFamily::DeepSeek => "deepseek",
            FimFamily::CodeLlama => "codellama",
            FimFamily::Codestral => "codestral",
            FimFamily::Generic => "generic (GGUF fim tokens)",
        };
        f.write_str(s)
    }
}

/// The slice of a tokenizer the prompt builder needs. Implemented over
/// llama.cpp's vocab in the actor and by fakes in tests.
pub trait Vocab {
    /// Tokenize user text, special-token parsing off, no BOS.
    fn tokenize(&self, text: &str) -> Vec<i32>;
    /// The id of a special token written as `text`, if the vocab has it as
    /// a single control/user-defined token.
    fn special(&self, text: &str) -> Option<i32>;
    /// GGUF metadata FIM ids (`fim_pre`, `fim_suf`, `fim_mid`), if declared.
    fn fim_ids(&self) -> Option<(i32, i32, i32)>;
    /// BOS id when the model wants one prepended.
    fn bos(&self) -> Option<i32>;
}

/// A resolved format: the family plus the token ids its markers map to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FimFormat {
    pub family: FimFamily,
    markers: Vec<i32>,
    /// `<|file_sep|>` / `<file_sep>` when the model has repo-level tokens.
    file_sep: Option<i32>,
    bos: Option<i32>,
    /// PSM families: the cursor line's typed part goes after the middle
    /// marker (see the module docs). Set from `model.fimLineInMiddle`.
    pub line_in_middle: bool,
    /// PSM families: suffix first, prefix last (`<pre><suf>suffix<mid>prefix`,
    /// StarCoder's SPM mode): typing, Enter and any edit before the cursor
    /// only append to the cached prompt. Set from `model.fimSpm`.
    pub spm: bool,
    /// Start the prompt with `<file_sep>path` even without snippets (see
    /// `context.fileFrame`). Set by the actor; off in `detect`.
    pub file_frame: bool,
}

impl FimFormat {
    /// Pick a format: the override if given (an error if the vocabulary
    /// lacks its tokens), else the first family whose markers all exist as
    /// single special tokens, else GGUF fim ids, else prefix continuation.
    pub fn detect(vocab: &dyn Vocab, override_: Option<FimFamily>) -> Result<FimFormat, String> {
        let resolve = |family: FimFamily| -> Option<Vec<i32>> {
            family.markers().iter().map(|m| vocab.special(m)).collect()
        };
        let file_sep = vocab
            .special("<|file_sep|>")
            .or_else(|| vocab.special("<file_sep>"));
        let bos = vocab.bos();
        let make = |family, markers| FimFormat {
            family,
            markers,
            file_sep,
            bos,
            line_in_middle: false,
            spm: false,
            file_frame: false,
        };
        if let Some(family) = override_ {
            return match family {
                FimFamily::None => Ok(make(FimFamily::None, vec![])),
                FimFamily::Generic => vocab
                    .fim_ids()
                    .map(|(p, s, m)| make(FimFamily::Generic, vec![p, s, m]))
                    .ok_or_else(|| "the model declares no FIM tokens".to_string()),
                f => resolve(f).map(|ids| make(f, ids)).ok_or_else(|| {
                    format!("model.fimFormat is \"{f}\" but the model's vocabulary lacks its tokens {:?}", f.markers())
                }),
            };
        }
        for family in [
            FimFamily::Codestral,
            FimFamily::Qwen,
            FimFamily::StarCoder,
            FimFamily::DeepSeek,
            FimFamily::CodeLlama,
            FimFamily::CodeGemma,
        ] {
            if let Some(ids) = resolve(family) {
                return Ok(make(family, ids));
            }
        }
        if let Some((p, s, m)) = vocab.fim_ids() {
            return Ok(make(FimFamily::Generic, vec![p, s, m]));
        }
        Ok(make(FimFamily::None, vec![]))
    }

    /// Every special token id the prompt uses (markers, file separator):
    /// a completion that produces one has ended.
    pub fn control_ids(&self) -> impl Iterator<Item = i32> + '_ {
        self.markers.iter().copied().chain(self.file_sep)
    }

    pub fn is_fim(&self) -> bool {
        self.family != FimFamily::None
    }

    /// Where in `prompt` (built by [`Self::build`]) reuse must be exact:
    /// from [`STALE_MARGIN`] tokens before the cursor, which is where the
    /// prefix ends (before the suffix marker in the PSM layout, at the end
    /// of the prompt in the others); in the suffix-first layout also the
    /// whole suffix, which begins at the cursor. See `reuse::plan`.
    pub fn exact(&self, prompt: &[i32]) -> std::ops::Range<usize> {
        let psm_family = matches!(
            self.family,
            FimFamily::StarCoder
                | FimFamily::Qwen
                | FimFamily::CodeGemma
                | FimFamily::Generic
                | FimFamily::DeepSeek
        );
        if psm_family && self.spm {
            // A change in the suffix leaves stale keys in the prefix after
            // it; a change at the prefix's start (the window moved) does not.
            let suf = prompt.iter().position(|&t| t == self.markers[1]);
            let mid = prompt.iter().rposition(|&t| t == self.markers[2]);
            if let (Some(s), Some(m)) = (suf, mid) {
                return s..m + 1;
            }
        }
        let cursor = if psm_family && !self.line_in_middle {
            prompt
                .iter()
                .rposition(|&t| t == self.markers[1])
                .unwrap_or(prompt.len())
        } else {
            prompt.len()
        };
        cursor.saturating_sub(STALE_MARGIN)..usize::MAX
    }

    /// Assemble the prompt tokens. `prefix` and `suffix` token budgets are
    /// the caller's job (the context builder windows the text).
    pub fn build(&self, vocab: &dyn Vocab, input: &PromptInput) -> Vec<i32> {
        let mut out = Vec::with_capacity(input.prefix.len() / 3 + input.suffix.len() / 3 + 8);
        if let Some(bos) = self.bos {
            out.push(bos);
        }
        self.push_extras(vocab, input, &mut out);
        let m = &self.markers;
        let text = |out: &mut Vec<i32>, s: &str| out.extend(vocab.tokenize(s));
        match self.family {
            FimFamily::None => text(&mut out, &input.prefix),
            FimFamily::StarCoder
            | FimFamily::Qwen
            | FimFamily::CodeGemma
            | FimFamily::Generic
            | FimFamily::DeepSeek => {
                if self.spm {
                    // SPM: <pre> <suf> suffix <mid> prefix
                    out.push(m[0]);
                    out.push(m[1]);
                    text(&mut out, &input.suffix);
                    out.push(m[2]);
                    text(&mut out, &input.prefix);
                    return out;
                }
                // PSM: <pre> prefix <suf> suffix <mid> [typed part of the line]
                let (head, line) = if self.line_in_middle {
                    input.split_line()
                } else {
                    (input.prefix.as_str(), "")
                };
                out.push(m[0]);
                text(&mut out, head);
                out.push(m[1]);
                text(&mut out, &input.suffix);
                out.push(m[2]);
                text(&mut out, line);
            }
            FimFamily::CodeLlama => {
                // SPM: <PRE> <SUF>suffix <MID> prefix  (the volatile prefix last)
                out.push(m[0]);
                out.push(m[1]);
                text(&mut out, &input.suffix);
                out.push(m[2]);
                text(&mut out, &input.prefix);
            }
            FimFamily::Codestral => {
                // [SUFFIX]suffix[PREFIX]prefix
                out.push(m[0]);
                text(&mut out, &input.suffix);
                out.push(m[1]);
                text(&mut out, &input.prefix);
            }
        }
        out
    }

    /// Cross-file snippets, before everything else so they stay cached.
    fn push_extras(&self, vocab: &dyn Vocab, input: &PromptInput, out: &mut Vec<i32>) {
        if input.extras.is_empty() {
            // The file alone, framed as in repository-level training: its
            // path tells the model the language and where it is.
            if let Some(sep) = self
                .file_sep
                .filter(|_| self.file_frame && !input.path.is_empty())
            {
                out.push(sep);
                out.extend(vocab.tokenize(&format!("{}\n", input.path)));
            }
            return;
        }
        match self.file_sep {
            Some(sep) => {
                for s in &input.extras {
                    out.push(sep);
                    out.extend(vocab.tokenize(&format!("{}\n{}\n", s.path, s.text)));
                }
                out.push(sep);
                out.extend(vocab.tokenize(&format!("{}\n", input.path)));
            }
            None => out.extend(vocab.tokenize(&extras_as_comments(input))),
        }
    }
}

/// Cross-file snippets for a model without repo-level tokens: each under a
/// `Path:` header written as a comment of the current file's language (a
/// `#` line in Rust or Go reads as code, not as a file boundary).
pub fn extras_as_comments(input: &PromptInput) -> String {
    let comment = crate::syntax::Lang::from_path(&input.path).map_or("#", |l| l.line_comment());
    let mut s = String::new();
    for e in &input.extras {
        s.push_str(&format!("{comment} Path: {}\n{}\n\n", e.path, e.text));
    }
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A character-level fake: every char is its code point, specials are
    /// negative-free ids above 0x110000.
    pub struct FakeVocab {
        pub specials: HashMap<&'static str, i32>,
    }

    impl FakeVocab {
        pub fn with(specials: &[&'static str]) -> FakeVocab {
            FakeVocab {
                specials: specials
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (*s, 0x110000 + i as i32))
                    .collect(),
            }
        }
    }

    impl Vocab for FakeVocab {
        fn tokenize(&self, text: &str) -> Vec<i32> {
            text.chars().map(|c| c as i32).collect()
        }
        fn special(&self, text: &str) -> Option<i32> {
            self.specials.get(text).copied()
        }
        fn fim_ids(&self) -> Option<(i32, i32, i32)> {
            None
        }
        fn bos(&self) -> Option<i32> {
            None
        }
    }

    fn render(v: &FakeVocab, toks: &[i32]) -> String {
        let names: HashMap<i32, &str> = v.specials.iter().map(|(k, v)| (*v, *k)).collect();
        toks.iter()
            .map(|t| {
                names
                    .get(t)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| char::from_u32(*t as u32).unwrap().to_string())
            })
            .collect()
    }

    fn input() -> PromptInput {
        PromptInput {
            path: "a.py".into(),
            prefix: "def f(".into(),
            suffix: "):".into(),
            extras: vec![],
            line_len: 0,
            heal: String::new(),
        }
    }

    #[test]
    fn no_fim_tokens_means_prefix_continuation() {
        let v = FakeVocab::with(&[]);
        let f = FimFormat::detect(&v, None).unwrap();
        assert_eq!(f.family, FimFamily::None);
        assert_eq!(render(&v, &f.build(&v, &input())), "def f(");
    }

    #[test]
    fn starcoder_psm() {
        let v = FakeVocab::with(&["<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<file_sep>"]);
        let f = FimFormat::detect(&v, None).unwrap();
        assert_eq!(f.family, FimFamily::StarCoder);
        assert_eq!(
            render(&v, &f.build(&v, &input())),
            "<fim_prefix>def f(<fim_suffix>):<fim_middle>"
        );
    }

    #[test]
    fn codestral_and_codellama_put_the_prefix_last() {
        let v = FakeVocab::with(&["[SUFFIX]", "[PREFIX]"]);
        let f = FimFormat::detect(&v, None).unwrap();
        assert_eq!(
            render(&v, &f.build(&v, &input())),
            "[SUFFIX]):[PREFIX]def f("
        );
        let v = FakeVocab::with(&["<PRE>", "<SUF>", "<MID>"]);
        let f = FimFormat::detect(&v, None).unwrap();
        assert_eq!(
            render(&v, &f.build(&v, &input())),
            "<PRE><SUF>):<MID>def f("
        );
    }

    #[test]
    fn qwen_repo_level_extras_go_first() {
        let v = FakeVocab::with(&[
            "<|fim_prefix|>",
            "<|fim_suffix|>",
            "<|fim_middle|>",
            "<|file_sep|>",
        ]);
        let f = FimFormat::detect(&v, None).unwrap();
        assert_eq!(f.family, FimFamily::Qwen);
        let mut i = input();
        i.extras.push(Snippet {
            path: "b.py".into(),
            text: "X=1".into(),
        });
        assert_eq!(
            render(&v, &f.build(&v, &i)),
            "<|file_sep|>b.py\nX=1\n<|file_sep|>a.py\n<|fim_prefix|>def f(<|fim_suffix|>):<|fim_middle|>"
        );
    }

    #[test]
    fn a_file_without_snippets_is_framed_by_its_path_only_when_asked() {
        let v = FakeVocab::with(&[
            "<|fim_prefix|>",
            "<|fim_suffix|>",
            "<|fim_middle|>",
            "<|file_sep|>",
        ]);
        let mut f = FimFormat::detect(&v, None).unwrap();
        let bare = "<|fim_prefix|>def f(<|fim_suffix|>):<|fim_middle|>";
        assert_eq!(render(&v, &f.build(&v, &input())), bare, "off by default");
        f.file_frame = true;
        assert_eq!(
            render(&v, &f.build(&v, &input())),
            format!("<|file_sep|>a.py\n{bare}")
        );
        // No path (a scratch buffer): nothing to frame with.
        let mut i = input();
        i.path.clear();
        assert_eq!(render(&v, &f.build(&v, &i)), bare);
        // A vocabulary without repository tokens: unchanged.
        let v = FakeVocab::with(&["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"]);
        let mut f = FimFormat::detect(&v, None).unwrap();
        f.file_frame = true;
        assert_eq!(render(&v, &f.build(&v, &input())), bare);
    }

    #[test]
    fn without_repo_tokens_extras_are_comments_of_the_files_language() {
        let v = FakeVocab::with(&[]);
        let f = FimFormat::detect(&v, None).unwrap();
        let snippet = Snippet {
            path: "b.x".into(),
            text: "X=1".into(),
        };
        for (path, want) in [
            ("a.py", "# Path: b.x\nX=1\n\ndef f("),
            ("a.rs", "// Path: b.x\nX=1\n\ndef f("),
            ("a.lua", "-- Path: b.x\nX=1\n\ndef f("),
            ("Makefile", "# Path: b.x\nX=1\n\ndef f("),
        ] {
            let mut i = input();
            i.path = path.into();
            i.extras.push(snippet.clone());
            assert_eq!(render(&v, &f.build(&v, &i)), want, "{path}");
        }
    }

    #[test]
    fn psm_puts_the_typed_part_of_the_cursor_line_after_the_middle_marker() {
        let v = FakeVocab::with(&["<fim_prefix>", "<fim_suffix>", "<fim_middle>"]);
        let mut f = FimFormat::detect(&v, None).unwrap();
        assert!(!f.line_in_middle, "opt-in (model.fimLineInMiddle)");
        f.line_in_middle = true;
        let mut i = input();
        i.prefix = "import os\n    x = f(".into();
        i.line_len = "    x = f(".len();
        assert_eq!(
            render(&v, &f.build(&v, &i)),
            "<fim_prefix>import os\n<fim_suffix>):<fim_middle>    x = f("
        );
        // Typing on the line only appends to the prompt: the cache is exact.
        let before = f.build(&v, &i);
        i.prefix.push('a');
        i.line_len += 1;
        let after = f.build(&v, &i);
        assert_eq!(&after[..before.len()], &before[..]);
        // The classic layout ends the prefix at the cursor.
        f.line_in_middle = false;
        assert_eq!(
            render(&v, &f.build(&v, &i)),
            "<fim_prefix>import os\n    x = f(a<fim_suffix>):<fim_middle>"
        );
        // A line longer than the prefix window (cut mid-line) stays whole.
        f.line_in_middle = true;
        i.line_len = 10_000;
        assert_eq!(
            render(&v, &f.build(&v, &i)),
            "<fim_prefix><fim_suffix>):<fim_middle>import os\n    x = f(a"
        );
    }

    /// Suffix first: every edit before the cursor (typing, Enter) only
    /// appends to the prompt; a change in the suffix is where reuse must
    /// stop being approximate, a change at the window's start is not.
    #[test]
    fn spm_puts_the_suffix_first_and_keeps_the_cache_exact_while_typing() {
        let v = FakeVocab::with(&["<fim_prefix>", "<fim_suffix>", "<fim_middle>"]);
        let mut f = FimFormat::detect(&v, None).unwrap();
        f.spm = true;
        let mut i = input();
        i.prefix = "import os\n    x = f(".into();
        i.line_len = "    x = f(".len();
        let before = f.build(&v, &i);
        assert_eq!(
            render(&v, &before),
            "<fim_prefix><fim_suffix>):<fim_middle>import os\n    x = f("
        );
        for typed in ["a", ")\n    "] {
            i.prefix.push_str(typed);
            let after = f.build(&v, &i);
            assert_eq!(&after[..before.len()], &before[..], "after {typed:?}");
        }
        // Exact from the suffix marker to the middle marker.
        let p = f.build(&v, &i);
        let exact = f.exact(&p);
        assert_eq!(render(&v, &p[exact.start..exact.start + 1]), "<fim_suffix>");
        assert_eq!(render(&v, &p[exact.end - 1..exact.end]), "<fim_middle>");
        // Prefix first (PSM): exact only near the cursor, before the suffix.
        f.spm = false;
        let p = f.build(&v, &i);
        assert_eq!(f.exact(&p).end, usize::MAX);
    }

    #[test]
    fn override_without_tokens_is_an_error() {
        let v = FakeVocab::with(&[]);
        let e = FimFormat::detect(&v, Some(FimFamily::DeepSeek)).unwrap_err();
        assert!(e.contains("lacks its tokens"), "{e}");
    }
}
