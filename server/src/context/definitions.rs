//! Definitions of the identifiers used near the cursor: the signature of
//! the function being called, the fields of the struct being built. They
//! are the most precise cross-file context a small model can get, so they
//! rank above similar chunks (`crossfile::snippets`).
//!
//! Two sources:
//! - [`find`]: in the open documents, through the trees they keep;
//! - [`resolve`]: in the whole project, through the workspace index
//!   (`crate::index`): the file's imports first (a name imported from a
//!   project file, every definition of a module the cursor is qualifying
//!   with `m.` / `m::`), then names used near the cursor that only one
//!   file of the project defines. This is what reaches a name not typed
//!   yet: `from .util import strip_escapes` at the top of the file puts
//!   `strip_escapes`'s signature in the prompt before the user writes it.
//!
//! Cost is bounded: only top-level definitions and those one container
//! deep (methods in a class or `impl`) are looked at, through the trees
//! the documents already keep; no document is re-parsed here, and the
//! index is only read (lookups in its maps, a few hundred at most).

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use ropey::Rope;
use tree_sitter::Node;

use crate::index::{imports, Def, Import, Index};
use crate::syntax::{kinds, Lang};

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

/// The same definition kinds the workspace index keeps.
fn is_definition(kind: &str) -> bool {
    crate::index::outline::is_definition(kind)
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

/// A definition from the workspace index that resolution picked.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceDef {
    /// The file that defines it (relative to the root).
    pub path: Arc<str>,
    pub def: Def,
    /// Higher is better: see the `ws` constants.
    pub score: f32,
}

/// Resolution scores, best first: a module the cursor is qualifying right
/// now (`util.` before the cursor), a name imported by name, a name of an
/// imported module used near the cursor, a name used near the cursor that
/// one project file defines, any other name of an imported module. A name
/// used near the cursor adds [`ws::USE`] per use (at most [`ws::MAX_USES`]).
pub mod ws {
    pub const QUALIFIED: f32 = 5.0;
    pub const IMPORTED: f32 = 4.0;
    pub const MODULE_USED: f32 = 3.0;
    pub const UNIQUE: f32 = 2.0;
    pub const MODULE: f32 = 1.0;
    pub const USE: f32 = 0.25;
    pub const MAX_USES: usize = 4;
}

/// Candidates handed back at most.
const MAX_RESOLVED: usize = 48;
/// Definitions of one module offered when it is imported whole.
const MAX_PER_MODULE: usize = 64;
/// Identifiers near the cursor looked up as unique names.
const MAX_LOOKUPS: usize = 200;
/// Lines around the cursor whose names count as "used near the cursor".
const NEAR_ABOVE: usize = 64;
const NEAR_BELOW: usize = 16;

/// What resolution needs from the request.
pub struct Near<'a> {
    pub index: &'a Index,
    /// The current file, relative to the root.
    pub path: &'a str,
    pub lang: Lang,
    pub rope: &'a Rope,
    pub tree: &'a tree_sitter::Tree,
    /// The cursor's line.
    pub line: usize,
    /// The text of the cursor's line before the cursor.
    pub line_prefix: &'a str,
}

/// The identifiers of the lines around the cursor, with their counts, and
/// the qualifier the cursor follows (`m` of `m.` / `m::` / `m->`).
fn names_near(near: &Near<'_>) -> (HashMap<String, usize>, Option<String>) {
    let rope = near.rope;
    let start = rope.line_to_char(near.line.saturating_sub(NEAR_ABOVE));
    let end_line = (near.line + NEAR_BELOW + 1).min(rope.len_lines());
    let end = rope.line_to_char(end_line);
    let start = start.max(end.saturating_sub(32 * 1024));
    let text = rope.slice(start..end).to_string();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for w in text.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
        if w.len() >= 2 && !w.starts_with(|c: char| c.is_ascii_digit()) {
            *counts.entry(w.to_string()).or_insert(0) += 1;
        }
    }
    let p = near
        .line_prefix
        .trim_end_matches(|c: char| c.is_alphanumeric() || c == '_');
    let p = p
        .strip_suffix('.')
        .or_else(|| p.strip_suffix("::"))
        .or_else(|| p.strip_suffix("->"));
    let qualifier = p.and_then(|p| {
        let q = p
            .rsplit(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
            .next()?;
        (!q.is_empty()).then(|| q.to_string())
    });
    (counts, qualifier)
}

/// Definitions from the workspace index for the names near the cursor and
/// the file's imports, best first (see the module docs and [`ws`]).
pub fn resolve(near: &Near<'_>) -> Vec<WorkspaceDef> {
    let index = near.index;
    let (used, qualifier) = names_near(near);
    let uses = |name: &str| used.get(name).copied().unwrap_or(0).min(ws::MAX_USES) as f32 * ws::USE;
    let mut out: Vec<WorkspaceDef> = Vec::new();
    let add = |path: &Arc<str>, def: &Def, score: f32, out: &mut Vec<WorkspaceDef>| {
        if &**path == near.path {
            return;
        }
        match out
            .iter_mut()
            .find(|w| w.path == *path && w.def.line == def.line)
        {
            Some(w) => w.score = w.score.max(score),
            None => out.push(WorkspaceDef {
                path: path.clone(),
                def: def.clone(),
                score,
            }),
        }
    };
    let defs_of = |path: &Arc<str>| index.file(path).map(|f| f.defs).unwrap_or_default();
    let mut imports = imports::imports(near.lang, near.rope, near.tree);
    // Go and Java see their own package's names without an import.
    if matches!(near.lang, Lang::Go | Lang::Java) {
        imports.push(Import::default());
    }
    let files_of = |module: &str| {
        let t = imports::targets(near.lang, near.path, module);
        index.files_for(&t)
    };
    let sep = match near.lang {
        Lang::Rust => "::",
        Lang::JavaScript | Lang::TypeScript | Lang::Tsx | Lang::C | Lang::Cpp => "/",
        _ => ".",
    };
    let mut covered: HashSet<String> = HashSet::new();
    for imp in &imports {
        let files = files_of(&imp.module);
        let explicit: Vec<&String> = imp.names.iter().filter(|n| *n != "*").collect();
        for name in &explicit {
            covered.insert((*name).clone());
            // A module imported by name (`from . import util`,
            // `use crate::util`): its names, when the cursor uses them.
            let module = if imp.module.ends_with(sep) || imp.module.is_empty() {
                format!("{}{name}", imp.module)
            } else {
                format!("{}{sep}{name}", imp.module)
            };
            let sub = files_of(&module);
            if !sub.is_empty() {
                module_defs(
                    &sub,
                    Some(name),
                    &qualifier,
                    &uses,
                    &defs_of,
                    &mut |p, d, s| add(p, d, s, &mut out),
                );
                continue;
            }
            let mut found = false;
            for f in &files {
                for d in defs_of(f).iter().filter(|d| &*d.name == name.as_str()) {
                    add(f, d, ws::IMPORTED + uses(name), &mut out);
                    found = true;
                }
            }
            if found {
                continue;
            }
            // Re-exported from elsewhere: a unique definition in the project.
            if let Some(paths) = index.defined_in(name, 1) {
                for p in &paths {
                    for d in defs_of(p).iter().filter(|d| &*d.name == name.as_str()) {
                        add(p, d, ws::IMPORTED + uses(name), &mut out);
                    }
                }
            }
        }
        if explicit.is_empty() && !files.is_empty() {
            let alias = imp.alias.as_ref();
            module_defs(
                &files,
                alias,
                &qualifier,
                &uses,
                &defs_of,
                &mut |p, d, s| add(p, d, s, &mut out),
            );
        }
    }
    // Names used near the cursor that one project file defines.
    let local: HashSet<Box<str>> = index
        .file(near.path)
        .map(|f| f.defs.iter().map(|d| d.name.clone()).collect())
        .unwrap_or_default();
    let mut names: Vec<(&String, &usize)> = used
        .iter()
        .filter(|(n, _)| !covered.contains(*n) && !local.contains(n.as_str()))
        .collect();
    names.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (name, _) in names.into_iter().take(MAX_LOOKUPS) {
        let Some(paths) = index.defined_in(name, 1) else {
            continue;
        };
        for p in &paths {
            for d in defs_of(p).iter().filter(|d| &*d.name == name.as_str()) {
                add(p, d, ws::UNIQUE + uses(name), &mut out);
            }
        }
    }
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.path.cmp(&b.path))
            .then(a.def.line.cmp(&b.def.line))
    });
    out.truncate(MAX_RESOLVED);
    out
}

/// The definitions of a module imported whole: all of them when the cursor
/// qualifies with its name, those used near the cursor otherwise (every
/// name, weakly, for a module with a name of its own).
fn module_defs(
    files: &[Arc<str>],
    alias: Option<&String>,
    qualifier: &Option<String>,
    uses: &dyn Fn(&str) -> f32,
    defs_of: &dyn Fn(&Arc<str>) -> Arc<[Def]>,
    add: &mut dyn FnMut(&Arc<str>, &Def, f32),
) {
    let qualified = match (alias, qualifier) {
        (Some(a), Some(q)) => a == q || q.ends_with(&format!(".{a}")),
        _ => false,
    };
    let mut n = 0;
    for f in files {
        // Top-level names only: a method is reached through its class.
        for d in defs_of(f).iter().filter(|d| d.container.is_none()) {
            if n == MAX_PER_MODULE {
                return;
            }
            let u = uses(&d.name);
            let score = if qualified {
                ws::QUALIFIED + u
            } else if u > 0.0 {
                ws::MODULE_USED + u
            } else if alias.is_some() {
                ws::MODULE
            } else {
                continue;
            };
            add(f, d, score);
            n += 1;
        }
    }
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
