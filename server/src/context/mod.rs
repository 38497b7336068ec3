//! Context extraction: from a document snapshot and a cursor to the
//! model-independent prompt parts and the stop rules.
//!
//! **Invariant: context extraction does no IO and cannot fail.** It reads a
//! window of the rope around the cursor (never the whole file) so its cost
//! does not grow with file size.
//!
//! Cache-friendly windowing: the prefix window starts on a line that is a
//! multiple of [`WINDOW_STEP`], so the head of the prompt (and the KV cells
//! computed for it) stays the same while the cursor moves or the user types.

use crate::config::ContextConfig;
use crate::document::Document;
use crate::engine::{PromptInput, StopRules};

/// The prefix window's first line moves in steps of this many lines.
pub const WINDOW_STEP: usize = 32;

/// Conservative characters-per-token estimate for source code, used to turn
/// token budgets into rope windows before tokenizing. Erring low keeps the
/// tokenized prompt inside its budget (the engine cuts the head otherwise,
/// which costs cache reuse).
pub const CHARS_PER_TOKEN: usize = 3;

/// Everything the pipeline needs for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    pub input: PromptInput,
    pub stop: StopRules,
    /// The text between the start of the cursor's line and the cursor.
    pub line_prefix: String,
    /// The text between the cursor and the end of its line.
    pub line_suffix: String,
}

pub fn build(doc: &Document, cursor: usize, cfg: &ContextConfig, path: &str, multiline: bool) -> Context {
    let rope = &doc.rope;
    let cursor = cursor.min(rope.len_chars());
    let line = rope.char_to_line(cursor);
    let line_start = rope.line_to_char(line);
    let line_prefix: String = rope.slice(line_start..cursor).to_string();
    let line_end = line_end_char(doc, line);
    let line_suffix: String = rope.slice(cursor..line_end.max(cursor)).to_string();

    // Prefix: walk back whole lines until the budget is spent, then move the
    // start forward to the next multiple of WINDOW_STEP.
    let budget = cfg.prefix_tokens as usize * CHARS_PER_TOKEN;
    let mut start_line = line;
    let mut chars = cursor - line_start;
    while start_line > 0 {
        let len = rope.line(start_line - 1).len_chars();
        if chars + len > budget {
            break;
        }
        chars += len;
        start_line -= 1;
    }
    if start_line > 0 {
        start_line = start_line.div_ceil(WINDOW_STEP) * WINDOW_STEP;
        start_line = start_line.min(line);
    }
    let prefix_start = rope.line_to_char(start_line);
    let prefix = rope.slice(prefix_start..cursor).to_string();

    // Suffix: the rest of the line and following lines, within budget.
    let sbudget = cfg.suffix_tokens as usize * CHARS_PER_TOKEN;
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
    let suffix = rope.slice(cursor..suffix_end.max(cursor)).to_string();

    let stop = stop_rules(&line_prefix, &line_suffix, &suffix, multiline);
    Context {
        input: PromptInput { path: path.to_string(), prefix, suffix, extras: Vec::new() },
        stop,
        line_prefix,
        line_suffix,
    }
}

/// Single line when the cursor sits inside a line with code after it or in
/// the middle of a statement; multi-line at a block opener or on a blank
/// line, bounded by the scope's indentation and the next line of the suffix.
fn stop_rules(line_prefix: &str, line_suffix: &str, suffix: &str, multiline: bool) -> StopRules {
    let rest_has_code = line_suffix.trim_end_matches(['\r', '\n']).chars().any(|c| !c.is_whitespace() && !")]}\"'`;,".contains(c));
    let trimmed = line_prefix.trim_end();
    let opener = trimmed.ends_with([':', '{', '(', '[']) || trimmed.ends_with("=>") || trimmed.ends_with(" do") || trimmed.ends_with(" then");
    let blank = trimmed.is_empty();
    let single_line = !multiline || rest_has_code || !(opener || blank);
    let indent = crate::engine::stop::indent_width(line_prefix);
    let scope_indent = if blank { indent } else if opener { indent + 1 } else { indent };
    let suffix_line = suffix
        .split_inclusive('\n')
        .skip(1)
        .map(|l| l.trim_end_matches(['\n', '\r']))
        .find(|l| !l.trim().is_empty())
        .map(str::to_string);
    StopRules { single_line, scope_indent: Some(scope_indent), suffix_line, line_prefix: line_prefix.to_string() }
}

/// Char index of the end of `line`, before its line terminator.
fn line_end_char(doc: &Document, line: usize) -> usize {
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
mod tests {
    use super::*;

    /// Fixture: `$0` marks the cursor.
    fn ctx(fixture: &str, multiline: bool) -> Context {
        let cursor = fixture.find("$0").expect("fixture needs $0");
        let text = fixture.replace("$0", "");
        let doc = Document::new(&text, 0, "python");
        let cursor_char = text[..cursor].chars().count();
        build(&doc, cursor_char, &ContextConfig::default(), "a.py", multiline)
    }

    #[test]
    fn splits_prefix_and_suffix_at_the_cursor() {
        let c = ctx("def f(x):\n    return x$0 + 1\n", true);
        assert_eq!(c.input.prefix, "def f(x):\n    return x");
        assert_eq!(c.input.suffix, " + 1\n");
        assert!(c.stop.single_line, "code after the cursor means single line");
    }

    #[test]
    fn block_opener_allows_multiline_within_scope() {
        let c = ctx("def f(x):$0\n\nprint(1)\n", true);
        assert!(!c.stop.single_line);
        assert_eq!(c.stop.scope_indent, Some(1));
        assert_eq!(c.stop.suffix_line.as_deref(), Some("print(1)"));
    }

    #[test]
    fn mid_statement_is_single_line() {
        let c = ctx("x = foo$0\n", true);
        assert!(c.stop.single_line);
    }

    #[test]
    fn window_start_moves_in_steps() {
        let cfg = ContextConfig { prefix_tokens: 100, ..Default::default() };
        let body: String = (0..200).map(|i| format!("line_{i:03} = {i}\n")).collect();
        let doc = Document::new(&body, 0, "python");
        let start_of = |line: usize| {
            let cursor = doc.rope.line_to_char(line);
            let c = build(&doc, cursor, &cfg, "a.py", true);
            c.input.prefix.lines().next().unwrap_or("").to_string()
        };
        // Moving the cursor a few lines keeps the same first line.
        assert_eq!(start_of(150), start_of(151));
        let first = start_of(150);
        let n: usize = first[5..8].parse().unwrap();
        assert_eq!(n % WINDOW_STEP, 0, "{first}");
    }
}
