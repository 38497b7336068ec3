//! When to ask the model, and for how much.
//!
//! - Skip (answer empty at once) where a suggestion cannot help: the cursor
//!   in the middle of a word with more of it after the cursor, inside a
//!   comment (unless `context.comments`), inside a string that is clearly
//!   prose (a docstring, or a sentence of several words).
//! - Single line when the cursor is inside a line with code after it or in
//!   the middle of a statement; multi-line at a block opener, in an empty
//!   block body or on a blank line, bounded by the scope's indentation and
//!   the next line of the suffix.

use tree_sitter::{Node, Tree};

use crate::config::ContextConfig;
use crate::document::Document;
use crate::engine::StopRules;
use crate::syntax::kinds;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The cursor splits a word: `fo$0o`.
    MidWord,
    /// Inside a comment (`context.comments` turns this off).
    Comment,
    /// Inside a string of prose (docstring, message).
    ProseString,
}

impl Skip {
    pub fn reason(self) -> &'static str {
        match self {
            Skip::MidWord => "cursor in the middle of a word",
            Skip::Comment => "cursor in a comment",
            Skip::ProseString => "cursor in a prose string",
        }
    }
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

pub fn skip(
    doc: &Document,
    tree: Option<&Tree>,
    cursor: usize,
    line_prefix: &str,
    line_suffix: &str,
    cfg: &ContextConfig,
) -> Option<Skip> {
    let before = line_prefix.chars().next_back();
    let after = line_suffix.chars().next();
    if before.is_some_and(is_word) && after.is_some_and(is_word) {
        return Some(Skip::MidWord);
    }
    let tree = tree?;
    let byte = doc.rope.char_to_byte(cursor);
    if byte == 0 {
        return None;
    }
    // The node holding the character before the cursor: the cursor is in a
    // comment or string when that character is (and it is not the
    // literal's closing delimiter).
    let node = tree
        .root_node()
        .descendant_for_byte_range(byte - 1, byte)
        .filter(|n| n.start_byte() < byte)
        .or_else(|| {
            tree.root_node()
                .descendant_for_byte_range(byte - 1, byte - 1)
        })?;
    let mut n: Option<Node> = Some(node);
    while let Some(cur) = n {
        if cur.end_byte() < byte {
            n = cur.parent();
            continue;
        }
        let kind = cur.kind();
        if kinds::is_comment(kind) {
            // A line comment ends at the end of its line; the cursor right
            // after a block comment's `*/` is outside it.
            let text = node_text(doc, cur);
            let closed_block = text.ends_with("*/") || text.ends_with("]]");
            // Some grammars (Rust's `///` doc comments) end a line comment
            // with its newline: a cursor at the start of the next line is
            // outside it (the line under a doc comment was always skipped).
            let ended_line = text.ends_with('\n') && cur.end_byte() == byte;
            if ended_line {
                return None;
            }
            if (cur.end_byte() > byte || !closed_block) && !cfg.comments {
                return Some(Skip::Comment);
            }
            return None;
        }
        if kinds::is_string(kind) {
            if cur.end_byte() == byte && string_closed(&node_text(doc, cur)) {
                return None; // just after the closing quote
            }
            if is_prose(doc, cur) {
                return Some(Skip::ProseString);
            }
            return None;
        }
        n = cur.parent();
    }
    None
}

fn node_text(doc: &Document, n: Node) -> String {
    let r = &doc.rope;
    let end = n.end_byte().min(n.start_byte() + 4096).min(r.len_bytes());
    r.slice(r.byte_to_char(n.start_byte())..r.byte_to_char(end))
        .to_string()
}

fn string_closed(text: &str) -> bool {
    let t = text.trim_end();
    t.len() >= 2 && t.ends_with(['"', '\'', '`'])
}

/// A docstring (a string that is a whole statement: Python docstrings,
/// JS directive-like literals) or a string of at least four words with
/// sentence-like spacing and no code-like characters.
fn is_prose(doc: &Document, string: Node) -> bool {
    if string
        .parent()
        .is_some_and(|p| p.kind() == "expression_statement" && p.named_child_count() == 1)
    {
        return true;
    }
    let text = node_text(doc, string);
    // Drop a literal prefix (f, r, b, u) and the quotes.
    let body = text
        .trim_start_matches(|c: char| c.is_ascii_alphabetic())
        .trim_matches(|c: char| matches!(c, '"' | '\'' | '`'));
    let words = body
        .split_whitespace()
        .filter(|w| {
            w.chars()
                .all(|c| c.is_alphabetic() || ",.;:!?'-".contains(c))
        })
        .count();
    let code_like = body.contains([
        '{', '}', '(', ')', '=', '<', '>', '/', '\\', '%', '$', '[', ']',
    ]);
    words >= 4 && !code_like
}

/// Single line when the cursor sits inside a line with code after it or in
/// the middle of a statement; multi-line at a block opener or on a blank
/// line, bounded by the scope's indentation and the next line of the suffix.
/// Whether the rest of the cursor's line is only what editors close by
/// themselves (brackets, quotes) and punctuation after them, or nothing.
pub fn only_closers(line_suffix: &str) -> bool {
    line_suffix
        .chars()
        .all(|c| c.is_whitespace() || ")]}\"'`;,".contains(c))
}

pub fn stop_rules(
    line_prefix: &str,
    line_suffix: &str,
    suffix: &str,
    multiline: bool,
) -> StopRules {
    let rest_has_code = !only_closers(line_suffix);
    let trimmed = line_prefix.trim_end();
    let opener = trimmed.ends_with([':', '{', '(', '['])
        || trimmed.ends_with("=>")
        || trimmed.ends_with(" do")
        || trimmed.ends_with(" then");
    let blank = trimmed.is_empty();
    let single_line = !multiline || rest_has_code || !(opener || blank);
    let indent = crate::engine::stop::indent_width(line_prefix);
    let scope_indent = if blank {
        indent
    } else if opener {
        indent + 1
    } else {
        indent
    };
    let suffix_line = suffix
        .split_inclusive('\n')
        .skip(1)
        .map(|l| l.trim_end_matches(['\n', '\r']))
        .find(|l| !l.trim().is_empty())
        .map(str::to_string);
    StopRules {
        single_line,
        scope_indent: Some(scope_indent),
        suffix_line,
        line_prefix: line_prefix.to_string(),
    }
}
