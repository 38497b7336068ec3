//! Definitions of the identifiers used near the cursor, found in the open
//! documents: the signature of the function being called, the fields of
//! the struct being built. They are the most precise cross-file context a
//! small model can get, so they rank above similar chunks
//! (`crossfile::snippets`).
//!
//! Cost is bounded: only top-level definitions and those one container
//! deep (methods in a class or `impl`) are looked at, through the trees
//! the documents already keep; no document is re-parsed here.

use std::collections::HashSet;
use std::ops::Range;

use ropey::Rope;
use tree_sitter::Node;

use crate::syntax::kinds;

/// A definition whose text is at most this many lines is given whole
/// (a struct with its fields); a longer one by its header (signature).
pub const WHOLE_LINES: usize = 8;
/// Longest definition snippet, in chars.
const MAX_CHARS: usize = 800;
/// Definitions looked at per document (bounded cost on huge files).
const MAX_NODES: usize = 4000;

/// One definition found.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    /// First line of the node.
    pub line: usize,
    /// The whole definition (when short) or its header.
    pub text: String,
    /// `text` is the node's complete lines (it may be merged with the
    /// chunk that follows it).
    pub whole: bool,
}

/// Definitions in `tree` whose name is in `wanted`, outside the lines
/// `skip` (what the prompt already shows), in document order.
pub fn find(
    rope: &Rope,
    tree: &tree_sitter::Tree,
    wanted: &HashSet<&str>,
    skip: Range<usize>,
) -> Vec<Definition> {
    let mut out = Vec::new();
    if wanted.is_empty() {
        return out;
    }
    let mut budget = MAX_NODES;
    let root = tree.root_node();
    let mut walk = root.walk();
    for child in root.named_children(&mut walk) {
        if budget == 0 {
            break;
        }
        budget -= 1;
        visit(rope, child, wanted, &skip, &mut out, true, &mut budget);
    }
    out
}

fn visit(
    rope: &Rope,
    node: Node<'_>,
    wanted: &HashSet<&str>,
    skip: &Range<usize>,
    out: &mut Vec<Definition>,
    descend: bool,
    budget: &mut usize,
) {
    if !is_definition(node.kind()) {
        return;
    }
    let start = node.start_position().row;
    let end = node.end_position().row;
    let overlaps = start < skip.end && end >= skip.start;
    if !overlaps {
        if let Some(name) = name_of(rope, node) {
            if wanted.contains(name.as_str()) {
                if let Some((text, whole)) = snippet(rope, node) {
                    out.push(Definition {
                        line: start,
                        text,
                        whole,
                    });
                }
            }
        }
    }
    // Methods of a class / impl / trait: one container deep.
    if !descend {
        return;
    }
    let inner = node
        .child_by_field_name("definition")
        .unwrap_or(node)
        .child_by_field_name("body");
    if let Some(body) = inner.filter(|b| kinds::is_container(b.kind())) {
        let mut walk = body.walk();
        for child in body.named_children(&mut walk) {
            if *budget == 0 {
                return;
            }
            *budget -= 1;
            visit(rope, child, wanted, skip, out, false, budget);
        }
    }
}

fn is_definition(kind: &str) -> bool {
    kinds::is_scope(kind)
        || matches!(
            kind,
            "type_item"
                | "const_item"
                | "static_item"
                | "macro_definition"
                | "type_alias_declaration"
        )
}

/// The defined name: the `name` field, through Python's decorators, C's
/// declarators and Go's type specs; for a Rust `impl`, its type.
fn name_of(rope: &Rope, node: Node<'_>) -> Option<String> {
    let mut n = node;
    for _ in 0..8 {
        if n.kind().ends_with("identifier") {
            return Some(text(rope, n.start_byte(), n.end_byte()));
        }
        n = n
            .child_by_field_name("name")
            .or_else(|| n.child_by_field_name("definition"))
            .or_else(|| n.child_by_field_name("declarator"))
            .or_else(|| n.child_by_field_name("type"))
            .or_else(|| {
                (n.kind() == "type_declaration")
                    .then(|| n.named_child(0))
                    .flatten()
            })?;
    }
    None
}

/// The node's complete lines when short, else its header (up to the body).
fn snippet(rope: &Rope, node: Node<'_>) -> Option<(String, bool)> {
    let first = node.start_position().row;
    let last = node.end_position().row;
    let line_start = rope.line_to_byte(first);
    if last - first < WHOLE_LINES {
        let end = if last + 1 < rope.len_lines() {
            rope.line_to_byte(last + 1)
        } else {
            rope.len_bytes()
        };
        let t = text(rope, line_start, end);
        if t.len() <= MAX_CHARS {
            return Some((t.trim_end().to_string(), true));
        }
    }
    let body = node
        .child_by_field_name("definition")
        .unwrap_or(node)
        .child_by_field_name("body")?;
    let t = text(rope, line_start, body.start_byte().max(line_start));
    let t = t.trim_end();
    (!t.is_empty() && t.len() <= MAX_CHARS).then(|| (t.to_string(), false))
}

fn text(rope: &Rope, start: usize, end: usize) -> String {
    let end = end.min(rope.len_bytes());
    let s = rope.byte_to_char(start.min(end));
    rope.slice(s..rope.byte_to_char(end)).to_string()
}
