//! Context extraction: from a document snapshot and a cursor to the
//! model-independent prompt parts, the stop rules, and whether to ask the
//! model at all.
//!
//! **Invariant: context extraction does no IO and cannot fail.** It reads a
//! window of the rope around the cursor (never the whole file) so its cost
//! does not grow with file size; with a syntax tree it also walks the
//! cursor's ancestors and the file's top-level nodes above the window.
//!
//! Cache-friendly windowing: the prefix window's first line moves in
//! steps of a few lines (moved down to the next syntax boundary when the
//! document has a tree), and does not depend on the cursor's line, so the
//! head of the prompt — cross-file snippets, kept imports and scope
//! headers, then the window's first lines — stays byte-identical while the
//! user types on a line; a start that moves by a step is found again, as
//! shifted chunks, in the KV cache.
//!
//! Parts:
//! - [`window`]: the scope-aware prefix window and the header kept above it.
//! - [`crossfile`]: snippets from other open documents and from the parts
//!   of this one the prompt does not show (similar, recently edited).
//! - [`definitions`]: definitions of the names used near the cursor.
//! - [`when`]: skip decisions and single- vs multi-line.

pub mod crossfile;
pub mod definitions;
pub mod when;
pub mod window;

use crate::config::ContextConfig;
use crate::document::Document;
use crate::engine::{PromptInput, Snippet, StopRules};
use crate::syntax::Lang;

pub use crossfile::OtherDoc;
pub use when::Skip;

/// Characters-per-token first guess for source code, used to turn token
/// budgets into rope windows before measuring them with [`TokenCount`].
/// Dense code (`x=1;y=2;`) tokenizes at ~1.5, so a window is re-cut when
/// its real count is over budget (see [`fit`]).
pub const CHARS_PER_TOKEN: usize = 3;

/// Counts tokens as the model will: the engine's `Tokenizer` (the model's
/// own vocabulary), or [`Estimate`] where there is none.
pub trait TokenCount: Sync {
    fn count(&self, text: &str) -> usize;
}

/// [`CHARS_PER_TOKEN`] characters per token: for unit tests and for remote
/// completion backends, whose tokenizer slm-ls does not have.
pub struct Estimate;

impl TokenCount for Estimate {
    fn count(&self, text: &str) -> usize {
        text.chars().count().div_ceil(CHARS_PER_TOKEN)
    }
}

/// Cut a window to a token budget: `cut(chars)` builds the window for a
/// character budget, returning it and the text to count, which `fit`
/// hands back with the window; the first guess is
/// [`CHARS_PER_TOKEN`] per token, and while the real count is over budget
/// the character budget shrinks by the measured ratio (with 5% room).
/// With `grow`, a window under 90% of its budget is re-cut larger by the
/// measured ratio too (most code is sparser than the first guess: the
/// prefix window used ~94 of 384 tokens), keeping the largest cut within
/// budget. Every cut is a function of the text the caller counts (the
/// lines above the cursor's line), so typing on a line re-cuts nothing.
pub fn fit<T>(
    tokens: &dyn TokenCount,
    budget_tokens: usize,
    grow: bool,
    mut cut: impl FnMut(usize) -> (T, String),
) -> (T, String) {
    let mut chars = budget_tokens * CHARS_PER_TOKEN;
    // The largest cut within budget so far, and its char budget; the
    // smallest char budget seen over the token budget.
    let mut best: Option<(T, String)> = None;
    let mut lo = 0usize;
    let mut hi: Option<usize> = None;
    let mut prev_len = None;
    for _ in 0..6 {
        let (window, text) = cut(chars);
        let n = tokens.count(&text);
        if n > budget_tokens {
            hi = Some(chars);
            if chars == 0 {
                return best.unwrap_or((window, text));
            }
            if best.is_none() {
                // Shrink by the measured ratio (5% room).
                let scaled = chars as f64 * budget_tokens as f64 / n as f64 * 0.95;
                chars = (scaled as usize).min(chars - 1);
                continue;
            }
        } else {
            // Growing no longer adds text: the window reached the file's start.
            let unchanged = prev_len == Some(text.len());
            prev_len = Some(text.len());
            let enough = n * 10 >= budget_tokens * 9;
            lo = chars;
            best = Some((window, text));
            if !grow || enough || unchanged || n == 0 {
                break;
            }
            if hi.is_none() {
                let scaled = chars as f64 * budget_tokens as f64 / n as f64 * 0.97;
                chars = (scaled as usize).max(chars + 1);
                continue;
            }
        }
        // Between a cut within budget and one over it (windows move in
        // whole lines and steps): bisect.
        let h = hi.unwrap_or(chars);
        if h <= lo + 1 {
            break;
        }
        chars = lo + (h - lo) / 2;
    }
    match best {
        Some(b) => b,
        // Still over budget after every shrink: the smallest cut.
        None => cut(chars),
    }
}

/// Longest piece of the cursor's line kept on either side of the cursor
/// (`line_prefix`, `line_suffix`, `line_above`): a 2 MB line must not be
/// copied per keystroke.
pub const MAX_LINE_CHARS: usize = 2048;

/// A window that starts inside a very long line starts on a multiple of
/// this many chars (coarse, like the window's line steps).
pub const CHAR_STEP: usize = 256;

/// How the document indents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indent {
    Tabs,
    Spaces(usize),
}

/// Everything the pipeline needs for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    pub input: PromptInput,
    pub stop: StopRules,
    /// The text between the start of the cursor's line and the cursor.
    pub line_prefix: String,
    /// The text between the cursor and the end of its line.
    pub line_suffix: String,
    /// Set when the model cannot help here: answer with an empty
    /// suggestion at once, without calling the model.
    pub skip: Option<Skip>,
    /// The document's grammar, when it has one.
    pub lang: Option<Lang>,
    /// The document's indentation style (around the cursor).
    pub indent: Indent,
    /// The line above the cursor's line (without its terminator).
    pub line_above: String,
    /// `context.naive`: plain prefix window, no post-processing (the
    /// quality benchmark's baseline).
    pub naive: bool,
    /// The innermost bracketed block around the cursor (`{…}`, `do … end`)
    /// is already closed after the cursor, so a completion must not close
    /// it again (post-processing cuts before such a closer).
    pub block_closed: bool,
    /// The prompt's suffix leaves out the rest of the cursor's line (only
    /// closers: see [`build_with`]); [`Context::after_cursor`] puts it back.
    pub closers_left_out: bool,
}

impl Context {
    /// The document after the cursor, as far as the prompt's suffix goes:
    /// what post-processing parses the suggestion against.
    pub fn after_cursor(&self) -> std::borrow::Cow<'_, str> {
        if self.closers_left_out {
            format!("{}{}", self.line_suffix, self.input.suffix).into()
        } else {
            self.input.suffix.as_str().into()
        }
    }
}

pub fn build(
    doc: &Document,
    cursor: usize,
    cfg: &ContextConfig,
    path: &str,
    multiline: bool,
) -> Context {
    build_with(
        doc,
        cursor,
        cfg,
        path,
        multiline,
        Head::Search(&[]),
        &Estimate,
    )
}

/// Where the prompt head's snippets come from.
#[derive(Clone, Copy)]
pub enum Head<'a> {
    /// Search the other open documents (and this one) afresh.
    Search(&'a [OtherDoc]),
    /// [index] issue 19: as `Search`, and the whole project through the
    /// workspace index (`context.workspace`).
    Workspace(&'a [OtherDoc], &'a crate::index::Index),
    /// Keep the ones an earlier prompt of this document used: the head
    /// comes first in the prompt, and a change there re-evaluates all that
    /// follows it (see `complete::PromptHeads`).
    Keep(&'a [Snippet]),
}

/// [`build`] with the prompt head's snippets, and the model's token counts
/// for the budgets.
pub fn build_with(
    doc: &Document,
    cursor: usize,
    cfg: &ContextConfig,
    path: &str,
    multiline: bool,
    head: Head<'_>,
    tokens: &dyn TokenCount,
) -> Context {
    let rope = &doc.rope;
    let cursor = cursor.min(rope.len_chars());
    let line = rope.char_to_line(cursor);
    let line_start = rope.line_to_char(line);
    let line_prefix: String = rope
        .slice(line_start.max(cursor.saturating_sub(MAX_LINE_CHARS))..cursor)
        .to_string();
    let line_end = line_end_char(doc, line);
    let line_suffix: String = rope
        .slice(cursor..line_end.max(cursor).min(cursor + MAX_LINE_CHARS))
        .to_string();
    let line_above = if line > 0 {
        let s = rope.line_to_char(line - 1);
        let l = line_end_char(doc, line - 1);
        rope.slice(s..l.min(s + MAX_LINE_CHARS)).to_string()
    } else {
        String::new()
    };

    let naive = cfg.naive;
    let tree = if naive { None } else { doc.tree() };
    let lang = doc.lang();

    // Prefix: a token-budgeted window (plus, with a tree, the imports and
    // enclosing headers it cut off).
    let ((start_char, mut prefix), _) = fit(tokens, cfg.prefix_tokens as usize, true, |budget| {
        let win = window::prefix(doc, tree.as_ref(), cursor, budget, naive);
        let mut start_char = win.start_char;
        if cursor - line_start > budget {
            // Inside one very long line: start within it, in coarse steps.
            // (Only the cursor's line decides: the lines above may fill
            // the budget, and the typed part of the line comes on top.)
            let want = cursor - budget;
            start_char = (want.div_ceil(CHAR_STEP) * CHAR_STEP).min(cursor);
        }
        let prefix = format!("{}{}", win.header, rope.slice(start_char..cursor));
        // Measured without the cursor's line, like the window (see
        // `window::prefix`): typing on a line must not move the start.
        let above = match start_char < line_start {
            true => format!("{}{}", win.header, rope.slice(start_char..line_start)),
            false => prefix.clone(),
        };
        ((start_char, prefix), above)
    });
    let paths = matches!(lang, Some(Lang::Rust | Lang::Cpp));
    let healed = heal(&prefix, &line_prefix, cfg.heal && !naive, paths);
    prefix.truncate(prefix.len() - healed.len());
    // The typed part of the cursor's line (the prompt may put it after the
    // FIM middle marker; see `engine::prompt`). The naive baseline keeps
    // the classic layout.
    let line_len = if naive {
        0
    } else {
        (line_prefix.len() - healed.len()).min(prefix.len())
    };

    // Suffix: the rest of the line and following lines, within budget. A
    // rest of the line that is only closers (`foo(|)`: an editor's
    // auto-closed bracket) is left out, so typing `(` and getting `()`
    // leaves the prompt's suffix as it was: with the suffix first
    // (`model.fimSpm`) the keystroke then appends to the cached prompt
    // instead of re-evaluating all of it. The answer is still balanced
    // against those closers (`postprocess`, from `line_suffix`).
    let from = if !naive && !line_suffix.trim().is_empty() && when::only_closers(&line_suffix) {
        line_end
    } else {
        cursor
    };
    let (suffix_end, suffix) = fit(tokens, cfg.suffix_tokens as usize, false, |sbudget| {
        let mut suffix_end = line_end;
        let mut l = line + 1;
        while l < rope.len_lines() {
            let next = rope.line_to_char(l) + rope.line(l).len_chars();
            if next - cursor > sbudget {
                break;
            }
            suffix_end = next;
            l += 1;
        }
        // The line terminator of the cursor's line belongs to the suffix.
        if suffix_end == line_end && line + 1 < rope.len_lines() {
            suffix_end = rope.line_to_char(line + 1);
        }
        let suffix_end = suffix_end.max(from).min(from + sbudget.max(1));
        (suffix_end, rope.slice(from..suffix_end).to_string())
    });

    let stop = when::stop_rules(&line_prefix, &line_suffix, &suffix, multiline);
    let skip = if naive {
        None
    } else {
        when::skip(doc, tree.as_ref(), cursor, &line_prefix, &line_suffix, cfg)
    };
    let block_closed = tree
        .as_ref()
        .is_some_and(|t| enclosing_block_closed(t, rope.char_to_byte(cursor)));
    let indent = detect_indent(rope.slice(start_char..cursor).chars())
        .or_else(|| match line_prefix.chars().next() {
            Some('\t') => Some(Indent::Tabs),
            Some(' ') => Some(Indent::Spaces(4)),
            _ => None,
        })
        .unwrap_or(match lang {
            Some(Lang::Go) => Indent::Tabs,
            _ => Indent::Spaces(4),
        });

    let extras = if naive || cfg.extra_tokens == 0 || skip.is_some() {
        Vec::new()
    } else if let Head::Keep(kept) = head {
        kept.to_vec()
    } else {
        let text = crossfile::query_text(doc, line);
        let query = crossfile::Query {
            doc,
            path,
            cursor,
            in_prompt: rope.char_to_line(start_char)..rope.char_to_line(suffix_end) + 1,
            text: &text,
            prefix: &prefix,
            budget: cfg.extra_tokens as usize * CHARS_PER_TOKEN,
            budget_tokens: cfg.extra_tokens as usize,
            tokens,
        };
        let (others, workspace) = match head {
            Head::Search(others) => (others, None),
            Head::Workspace(others, index) => (others, Some(index)),
            Head::Keep(_) => (&[][..], None),
        };
        crossfile::snippets(&query, others, workspace)
    };

    Context {
        input: PromptInput {
            path: path.to_string(),
            prefix,
            suffix,
            extras,
            line_len,
            heal: healed,
        },
        stop,
        line_prefix,
        line_suffix,
        skip,
        lang,
        indent,
        line_above,
        naive,
        block_closed,
        closers_left_out: from != cursor,
    }
}

/// The text before the cursor that the prompt leaves out (see
/// [`PromptInput::heal`]): the one space or tab right before the cursor,
/// else one punctuation character that BPE vocabularies merge with what
/// follows (`!(`, `.get`, `::`, `[0`, `_total`): a prompt ending in a
/// lone `!` made the model write `!(…` again after `assert_eq!`, and one
/// ending in `frobnicate_` (suffix first) a space before `invoice_total`.
///
/// On a line of indentation only, only the *last* space or tab is left
/// out, never the whole indentation: code models' pre-tokenizers split
/// `"\n            depth"` as `"\n"`, 11 spaces, `" depth"`, so a prompt
/// ending in 11 spaces with the model made to write `" "` first is exactly
/// what it saw in training, and the indentation it keeps tells the model
/// the nesting level. Healing the whole indentation lost that: the model
/// re-typed indentation at the wrong depth, or ran away into whitespace
/// (issue 18: 9 empty answers in 104 held-out holes).
///
/// `enabled` is `context.heal` (off: the prompt ends exactly at the
/// cursor, as the plain-FIM floor does). A `:` is healed only where `::`
/// paths exist (`paths`: Rust, C++): after a Python header the model, made
/// to start with `:`, picked `://` and wrote a `//` comment. After `::`
/// both colons are left out, the token the model writes paths with.
fn heal(prefix: &str, line_prefix: &str, enabled: bool, paths: bool) -> String {
    if !enabled {
        return String::new();
    }
    // A path's `::` is one token: leaving out one colon made the model
    // write `::` after the other (`Ast:::Group`, then `:Group` inserted).
    if paths && prefix.ends_with("::") && line_prefix.ends_with("::") {
        return "::".to_string();
    }
    match prefix.chars().next_back() {
        Some(c @ (' ' | '\t' | '!' | '(' | '.' | '[' | ':' | '_'))
            if line_prefix.ends_with(c) && (c != ':' || paths) =>
        {
            c.to_string()
        }
        _ => String::new(),
    }
}

/// Is the innermost container around `byte` closed by a real (not
/// error-recovered) token after `byte`?
fn enclosing_block_closed(tree: &tree_sitter::Tree, byte: usize) -> bool {
    let Some(mut node) = tree.root_node().descendant_for_byte_range(byte, byte) else {
        return false;
    };
    loop {
        if node.start_byte() < byte
            && node.end_byte() > byte
            && crate::syntax::kinds::is_delimited_container(node.kind())
            && node.parent().is_some()
        {
            let Some(last) = node.child(node.child_count().saturating_sub(1)) else {
                return false;
            };
            return !last.is_named()
                && !last.is_missing()
                && matches!(
                    last.kind(),
                    "}" | "]" | ")" | "end" | "done" | "fi" | "esac"
                )
                && last.start_byte() >= byte;
        }
        match node.parent() {
            Some(p) => node = p,
            None => return false,
        }
    }
}

/// Tabs when most indented lines start with a tab; otherwise spaces, with
/// the most common indentation step (default 4). `None`: no indented line.
pub fn detect_indent(text: impl Iterator<Item = char>) -> Option<Indent> {
    let mut tabs = 0usize;
    let mut spaces = 0usize;
    let mut steps = [0usize; 9];
    let mut prev = 0usize;
    let mut at_line_start = true;
    let mut width = 0usize;
    let mut first: Option<char> = None;
    for c in text {
        if at_line_start {
            match c {
                ' ' | '\t' => {
                    first.get_or_insert(c);
                    width += 1;
                    continue;
                }
                '\n' | '\r' => {
                    width = 0;
                    first = None;
                    continue;
                }
                _ => {
                    match first {
                        Some('\t') => tabs += 1,
                        Some(_) => {
                            spaces += 1;
                            if width > prev && width - prev <= 8 {
                                steps[width - prev] += 1;
                            }
                        }
                        None => {}
                    }
                    if first != Some('\t') {
                        prev = width;
                    }
                    at_line_start = false;
                }
            }
        } else if c == '\n' {
            at_line_start = true;
            width = 0;
            first = None;
        }
    }
    if tabs == 0 && spaces == 0 {
        return None;
    }
    if tabs > spaces {
        return Some(Indent::Tabs);
    }
    let step = (2..=8)
        .max_by_key(|&s| (steps[s], s == 4))
        .filter(|&s| steps[s] > 0)
        .unwrap_or(4);
    Some(Indent::Spaces(step))
}

/// Char index of the end of `line`, before its line terminator.
pub(crate) fn line_end_char(doc: &Document, line: usize) -> usize {
    let start = doc.rope.line_to_char(line);
    let slice = doc.rope.line(line);
    let mut len = slice.len_chars();
    while len > 0 {
        let c = slice.char(len - 1);
        if c == '\n' || c == '\r' {
            len -= 1;
        } else {
            break;
        }
    }
    start + len
}

#[cfg(test)]
pub(crate) mod tests;
