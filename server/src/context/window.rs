//! The prefix window: which lines above the cursor the model sees.
//!
//! 1. Walk back whole lines from the cursor until the budget (less what
//!    the header takes) is spent; round the first line *up* to a multiple
//!    of [`step_for`] lines so it moves in steps, not on every line.
//! 2. With a tree, move the first line down to the next syntax boundary
//!    (a line that starts a statement or declaration, not the middle of an
//!    expression, string or comment), at most [`BOUNDARY_SEARCH`] lines.
//! 3. With a tree, keep what the cut removed and matters: the file's
//!    imports and the headers (signature, class/impl line) of the
//!    definitions enclosing the cursor, in document order. The header is a
//!    function of the file's structure above the window, so it is as
//!    stable as the window start.
//!
//! Budget use (issue 18): the window is what the model knows of the file,
//! and its prefill is paid once per document (later keystrokes reuse it),
//! so it should use its budget. Steps of 32 lines, a boundary search of
//! 32 more and a fixed quarter reserved for a header that is often empty
//! left ~94 of 384 tokens used; now the step is a few lines, the boundary
//! search takes the nearest boundary, and the header takes only what it uses.
//! A window start that moves by a step re-uses its shifted chunks from
//! the KV cache (`engine::reuse`), so small steps cost little.

use ropey::Rope;
use tree_sitter::{Node, Tree};

use crate::document::Document;
use crate::syntax::kinds;

/// Share of the prefix budget reserved for the header.
const HEADER_SHARE: usize = 4; // 1/4
/// How many lines down the window start may move to find a syntax
/// boundary: a statement spans a few lines, rarely more (the nearest
/// boundary is taken, so only what lies before it is given up).
const BOUNDARY_SEARCH: usize = 12;
/// Longest single header item (an import or a signature), in chars.
const MAX_ITEM_CHARS: usize = 400;

#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub start_line: usize,
    pub start_char: usize,
    /// Text that goes before the window (ends with a newline, or empty).
    pub header: String,
}

/// `budget` is in chars (see `context::fit`); `plain` (the quality
/// bench's plain-FIM floor) takes exactly the whole lines that fit: no
/// step, no boundary, no header.
pub fn prefix(
    doc: &Document,
    tree: Option<&Tree>,
    cursor: usize,
    budget: usize,
    plain: bool,
) -> Window {
    let rope = &doc.rope;
    let line = rope.char_to_line(cursor);
    let tree = tree.filter(|_| !plain);
    let step = if plain { 1 } else { step_for(budget) };
    let mut start_line = start_for(rope, tree, line, budget, step);
    let mut header = String::new();
    if let (Some(tree), true) = (tree, start_line > 0) {
        let indent_scoped = doc.lang().is_some_and(|l| l.indent_scoped());
        let header_at = |start: usize| {
            header_above(
                rope,
                tree,
                indent_scoped,
                cursor,
                rope.line_to_byte(start),
                budget / HEADER_SHARE,
            )
        };
        header = header_at(start_line);
        if !header.is_empty() {
            // The header takes what it uses, not a fixed share; a later
            // start can cut one more scope off, whose header then joins.
            let later = start_for(
                rope,
                Some(tree),
                line,
                budget.saturating_sub(header.len()),
                step,
            );
            if later != start_line {
                start_line = later;
                header = header_at(start_line);
            }
        }
    }
    Window {
        start_line,
        start_char: rope.line_to_char(start_line),
        header,
    }
}

/// The first line of a window of at most `budget` chars that ends before
/// the cursor's line, rounded up to a multiple of `step` and moved down to
/// the nearest syntax boundary below it.
fn start_for(rope: &Rope, tree: Option<&Tree>, line: usize, budget: usize, step: usize) -> usize {
    // The cursor's line is not counted: the window start then depends on
    // the lines above only, and stays put while the user types on a line
    // (counting the typed text moved it every few words, and each move
    // re-evaluated the whole prompt after the head).
    let mut start_line = line;
    let mut chars = 0;
    while start_line > 0 {
        let len = rope.line(start_line - 1).len_chars();
        if chars + len > budget {
            break;
        }
        chars += len;
        start_line -= 1;
    }
    if start_line == 0 {
        return 0;
    }
    start_line = (start_line.div_ceil(step) * step).min(line);
    if let Some(tree) = tree {
        let search = step.max(BOUNDARY_SEARCH);
        if let Some(b) =
            (start_line..line.min(start_line + search)).find(|&l| is_boundary(rope, tree, l))
        {
            start_line = b;
        }
    }
    start_line
}

/// The window start's step: a few lines (about a tenth of the window),
/// between 2 and 8; a function of the configured budget only, so it is as
/// stable as the budget.
pub fn step_for(window_budget_chars: usize) -> usize {
    (window_budget_chars / 400).clamp(2, 8)
}

/// Does `line` start a statement/declaration (a child of a container)?
/// Blank lines are boundaries when the next code line is.
pub fn is_boundary(rope: &Rope, tree: &Tree, line: usize) -> bool {
    let start = rope.line_to_byte(line);
    let text = rope.line(line);
    let Some(first) = text.chars().position(|c| !c.is_whitespace()) else {
        // A blank line inside a string or expression is not a boundary.
        return spanning(tree, start).is_none_or(|n| kinds::is_container(n.kind()));
    };
    let byte = rope.char_to_byte(rope.line_to_char(line) + first);
    match spanning(tree, byte) {
        None => true,
        Some(n) => kinds::is_container(n.kind()),
    }
}

/// The smallest node that starts strictly before `byte` and ends after it
/// (the construct `byte` is inside of), or `None` at top level.
fn spanning(tree: &Tree, byte: usize) -> Option<Node<'_>> {
    let mut node = tree.root_node().descendant_for_byte_range(byte, byte)?;
    loop {
        if node.start_byte() < byte && node.end_byte() > byte {
            return if node.parent().is_none() {
                None
            } else {
                Some(node)
            };
        }
        node = node.parent()?;
    }
}

/// Imports above `window_byte` and the headers of the definitions around
/// the cursor that start above it, within `budget` chars.
fn header_above(
    rope: &Rope,
    tree: &Tree,
    doc_indent_scoped: bool,
    cursor: usize,
    window_byte: usize,
    budget: usize,
) -> String {
    let cursor_byte = rope.char_to_byte(cursor);
    // Look from the last code before the cursor: on a blank or indented
    // line the cursor sits in whitespace that belongs to no block.
    let line = rope.char_to_line(cursor);
    let line_start = rope.line_to_char(line);
    let column = cursor - line_start;
    let mut probe = cursor;
    while probe > 0 && rope.char(probe - 1).is_whitespace() {
        probe -= 1;
    }
    let probe_byte = rope.char_to_byte(probe).saturating_sub(1).min(cursor_byte);
    let indent_scoped = doc_indent_scoped
        && rope
            .slice(line_start..cursor)
            .chars()
            .all(char::is_whitespace);
    // Enclosing scopes, innermost first.
    let mut scopes: Vec<String> = Vec::new();
    if let Some(mut node) = tree
        .root_node()
        .descendant_for_byte_range(probe_byte, probe_byte)
    {
        loop {
            // A definition the cursor is indented deeper than (on a blank
            // line, indentation says which blocks are still open).
            let l = rope.byte_to_line(node.start_byte());
            let col = rope
                .line(l)
                .chars()
                .take_while(|c| *c == ' ' || *c == '\t')
                .count();
            let encloses = !indent_scoped || col < column;
            if kinds::is_scope(node.kind()) && node.start_byte() < window_byte && encloses {
                if let Some(h) = scope_header(rope, node) {
                    scopes.push(h);
                }
            }
            match node.parent() {
                Some(p) => node = p,
                None => break,
            }
        }
    }
    let scope_chars: usize = scopes.iter().map(|s| s.len() + 1).sum();
    // Drop the outermost scopes first when the headers alone overflow.
    while scope_chars > budget && !scopes.is_empty() {
        scopes.pop();
        let total: usize = scopes.iter().map(|s| s.len() + 1).sum();
        if total <= budget {
            break;
        }
    }
    let mut used: usize = scopes.iter().map(|s| s.len() + 1).sum();

    let mut imports: Vec<String> = Vec::new();
    let root = tree.root_node();
    let mut walk = root.walk();
    for child in root.children(&mut walk) {
        if child.end_byte() > window_byte {
            break;
        }
        if !kinds::is_import(child.kind()) {
            continue;
        }
        let text = node_text(rope, child.start_byte(), child.end_byte());
        if text.len() > MAX_ITEM_CHARS {
            continue;
        }
        if used + text.len() + 1 > budget {
            break;
        }
        used += text.len() + 1;
        imports.push(text);
    }

    let mut out = String::new();
    for i in &imports {
        out.push_str(i);
        out.push('\n');
    }
    if !imports.is_empty() && !scopes.is_empty() {
        out.push('\n');
    }
    for s in scopes.iter().rev() {
        out.push_str(s);
        out.push('\n');
    }
    out
}

/// A definition's header: from the start of its line to its body (with the
/// body's opening `{`), or its first line when it has no body field.
fn scope_header(rope: &Rope, node: Node<'_>) -> Option<String> {
    let start_line = rope.byte_to_line(node.start_byte());
    let line_start = rope.line_to_byte(start_line);
    let body = kinds::BODY_FIELDS
        .iter()
        .find_map(|f| node.child_by_field_name(f));
    let end = match body {
        Some(b) => {
            // A body recovered as missing can start at the very end.
            let first = (b.start_byte() < rope.len_bytes()).then(|| rope.byte(b.start_byte()));
            if matches!(first, Some(b'{' | b'[' | b'(')) {
                b.start_byte() + 1
            } else {
                b.start_byte()
            }
        }
        None => {
            let l = start_line + 1;
            if l < rope.len_lines() {
                rope.line_to_byte(l)
            } else {
                rope.len_bytes()
            }
        }
    };
    let text = node_text(rope, line_start, end.max(line_start));
    let text = text.trim_end();
    if text.is_empty() || text.len() > MAX_ITEM_CHARS {
        // A huge signature: its first line still says where we are.
        let first = text.lines().next()?.trim_end();
        if first.is_empty() || first.len() > MAX_ITEM_CHARS {
            return None;
        }
        return Some(first.to_string());
    }
    Some(text.to_string())
}

fn node_text(rope: &Rope, start: usize, end: usize) -> String {
    let end = end.min(rope.len_bytes());
    let s = rope.byte_to_char(start.min(end));
    let e = rope.byte_to_char(end);
    rope.slice(s..e).to_string()
}
