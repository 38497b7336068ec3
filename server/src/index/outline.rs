//! A file's outline: its definitions (functions, classes, methods, types,
//! constants), each kept as its signature and the first line of its
//! docstring, for every language `syntax/` parses. This is all the index
//! keeps of a file: a few hundred bytes per definition, never bodies, so a
//! 10,000-file tree fits in tens of megabytes and a body's secrets (a
//! token in a function) are never copied.

use std::sync::Arc;

use tree_sitter::Node;

use crate::syntax::{kinds, Lang};

/// Longest signature kept, in bytes (a longer header is cut at a line).
const MAX_SIGNATURE: usize = 300;
/// Longest docstring line kept, in bytes.
const MAX_DOC: usize = 160;
/// Definitions kept per file (a generated 50,000-function file must not
/// fill the index).
pub const MAX_DEFS_PER_FILE: usize = 400;

/// One definition of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Def {
    pub name: Box<str>,
    /// First line (0-based) of the definition.
    pub line: u32,
    /// The signature as written (header up to the body), with the first
    /// docstring line: a Python docstring after the header, a comment above
    /// it for the others (re-written as a line comment).
    pub text: Box<str>,
    /// The class / impl / trait header the definition sits in (shared by
    /// the file's methods), so a method is shown inside its container.
    pub container: Option<Arc<str>>,
}

impl Def {
    /// Bytes this definition holds on the heap (for the memory report).
    pub fn heap_bytes(&self) -> usize {
        self.name.len() + self.text.len()
    }
}

/// The definitions of `text`, in document order (at most
/// [`MAX_DEFS_PER_FILE`]).
pub fn outline(lang: Lang, text: &str) -> Vec<Def> {
    let Some(tree) = crate::syntax::parse_str(lang, text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let src = text.as_bytes();
    visit_children(lang, src, tree.root_node(), None, 0, &mut out);
    out
}

fn visit_children(
    lang: Lang,
    src: &[u8],
    parent: Node<'_>,
    container: Option<&Arc<str>>,
    depth: usize,
    out: &mut Vec<Def>,
) {
    let mut walk = parent.walk();
    for child in parent.named_children(&mut walk) {
        if out.len() >= MAX_DEFS_PER_FILE {
            return;
        }
        visit(lang, src, child, container, depth, out);
    }
}

fn visit(
    lang: Lang,
    src: &[u8],
    node: Node<'_>,
    container: Option<&Arc<str>>,
    depth: usize,
    out: &mut Vec<Def>,
) {
    let kind = node.kind();
    // Wrappers whose inside is the definition: `export …`, C++'s
    // `template <…>`, namespaces and `extern "C" {…}` blocks.
    if matches!(
        kind,
        "export_statement" | "template_declaration" | "linkage_specification"
    ) || (kind == "namespace_definition" && depth < 2)
    {
        if let Some(body) = node.child_by_field_name("body") {
            return visit_children(lang, src, body, container, depth + 1, out);
        }
        if let Some(decl) = node
            .child_by_field_name("declaration")
            .or_else(|| node.named_child(node.named_child_count().saturating_sub(1)))
        {
            if decl.id() != node.id() {
                return visit(lang, src, decl, container, depth + 1, out);
            }
        }
        return;
    }
    if !is_definition(kind) && !is_value_definition(lang, node, src) {
        return;
    }
    let Some(name) = name_of(src, node) else {
        return;
    };
    let signature = signature(src, node);
    if signature.is_empty() {
        return;
    }
    let mut text = String::new();
    let doc = doc_line(lang, src, node);
    let indent = leading_indent(src, node.start_byte());
    match (&doc, lang) {
        (Some(d), Lang::Python) => {
            text.push_str(&signature);
            text.push('\n');
            text.push_str(indent);
            text.push_str("    \"\"\"");
            text.push_str(d);
            text.push_str("\"\"\"");
        }
        (Some(d), _) => {
            text.push_str(lang.line_comment());
            text.push(' ');
            text.push_str(d);
            text.push('\n');
            text.push_str(indent);
            text.push_str(&signature);
        }
        (None, _) => text.push_str(&signature),
    }
    out.push(Def {
        name: name.into(),
        line: node.start_position().row as u32,
        text: text.into(),
        container: container.cloned(),
    });
    // Methods: one container deep (a class, an impl, a trait).
    if container.is_some() || depth > 2 {
        return;
    }
    let inner = node.child_by_field_name("definition").unwrap_or(node);
    let body = inner
        .child_by_field_name("body")
        .filter(|b| kinds::is_container(b.kind()) || b.kind() == "class_body");
    if let Some(body) = body {
        let header: Arc<str> = signature.lines().next().unwrap_or("").trim_end().into();
        visit_children(lang, src, body, Some(&header), depth + 1, out);
    }
}

/// Definition nodes (shared with `context::definitions`, which finds them
/// in open documents' trees).
pub fn is_definition(kind: &str) -> bool {
    kinds::is_scope(kind)
        || matches!(
            kind,
            "type_item"
                | "const_item"
                | "static_item"
                | "macro_definition"
                | "type_alias_declaration"
                | "enum_declaration"
                | "function_signature"
                | "abstract_class_declaration"
                | "const_declaration"
                | "type_definition"
                | "preproc_function_def"
                | "function_declaration"
                | "enum_specifier"
                | "union_specifier"
        )
}

/// Value definitions that count: a Python module constant (`NAME = …` at
/// top level), a JS/TS `const f = (…) => …` or `const NAME = …`, a Go
/// `var`, a C prototype or `#define`.
fn is_value_definition(lang: Lang, node: Node<'_>, src: &[u8]) -> bool {
    match (lang, node.kind()) {
        (Lang::Python, "expression_statement") => node
            .named_child(0)
            .filter(|a| a.kind() == "assignment")
            .and_then(|a| a.child_by_field_name("left"))
            .is_some_and(|l| {
                l.kind() == "identifier" && {
                    let t = &src[l.byte_range()];
                    t.iter().any(u8::is_ascii_uppercase) && !t.iter().any(u8::is_ascii_lowercase)
                }
            }),
        (
            Lang::JavaScript | Lang::TypeScript | Lang::Tsx,
            "lexical_declaration" | "variable_declaration",
        ) => node
            .parent()
            .is_some_and(|p| matches!(p.kind(), "program" | "export_statement")),
        (Lang::Go, "var_declaration") => true,
        (Lang::C | Lang::Cpp, "declaration" | "field_declaration") => has_function_declarator(node),
        (Lang::C | Lang::Cpp, "preproc_def") => true,
        _ => false,
    }
}

fn has_function_declarator(node: Node<'_>) -> bool {
    let mut d = node.child_by_field_name("declarator");
    for _ in 0..4 {
        match d {
            Some(n) if n.kind() == "function_declarator" => return true,
            Some(n) => d = n.child_by_field_name("declarator"),
            None => return false,
        }
    }
    false
}

/// The defined name: the `name` field, through Python's decorators, C's
/// declarators, Go's specs and JS's variable declarators; for a Rust
/// `impl`, its type.
pub fn name_of(src: &[u8], node: Node<'_>) -> Option<String> {
    let mut n = node;
    for _ in 0..8 {
        let kind = n.kind();
        if kind.ends_with("identifier") || kind == "name" || kind == "word" {
            return std::str::from_utf8(&src[n.byte_range()])
                .ok()
                .map(str::to_string);
        }
        n = n
            .child_by_field_name("name")
            .or_else(|| n.child_by_field_name("definition"))
            .or_else(|| n.child_by_field_name("declarator"))
            .or_else(|| n.child_by_field_name("type"))
            .or_else(|| n.child_by_field_name("left"))
            .or_else(|| {
                matches!(
                    kind,
                    "type_declaration"
                        | "const_declaration"
                        | "var_declaration"
                        | "lexical_declaration"
                        | "variable_declaration"
                        | "expression_statement"
                )
                .then(|| n.named_child(0))
                .flatten()
            })?;
    }
    None
}

/// The header up to the body (or the whole node when it has none and is
/// short; else its first line), at most [`MAX_SIGNATURE`] bytes cut at a
/// line end.
fn signature(src: &[u8], node: Node<'_>) -> String {
    let line_start = src[..node.start_byte()]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let inner = node.child_by_field_name("definition").unwrap_or(node);
    // A short type is worth its fields (what a struct literal needs).
    if is_type(node.kind()) && node.end_position().row - node.start_position().row < 8 {
        let t = String::from_utf8_lossy(&src[line_start..node.end_byte()]);
        if t.len() <= MAX_SIGNATURE {
            return t.trim_end().to_string();
        }
    }
    let body = kinds::BODY_FIELDS
        .iter()
        .find_map(|f| inner.child_by_field_name(f))
        .filter(|b| b.start_byte() > inner.start_byte());
    let end = match body {
        Some(b) => b.start_byte(),
        None => node.end_byte(),
    };
    let mut text = String::from_utf8_lossy(&src[line_start..end.max(line_start)]).into_owned();
    // A value definition: its first line is enough (`X = {` … `}`).
    if body.is_none() && text.lines().count() > 3 {
        text = text.lines().next().unwrap_or("").to_string();
    }
    if text.len() > MAX_SIGNATURE {
        let mut cut = text[..MAX_SIGNATURE].rfind('\n').unwrap_or(MAX_SIGNATURE);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    let t = text.trim_end().trim_end_matches('{').trim_end();
    t.to_string()
}

fn is_type(kind: &str) -> bool {
    matches!(
        kind,
        "struct_item"
            | "enum_item"
            | "type_declaration"
            | "struct_specifier"
            | "enum_specifier"
            | "interface_declaration"
            | "type_alias_declaration"
            | "enum_declaration"
            | "type_item"
    )
}

/// The indentation of the line holding `byte`.
fn leading_indent(src: &[u8], byte: usize) -> &str {
    let start = src[..byte]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let end = src[start..]
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .map_or(src.len(), |i| start + i);
    std::str::from_utf8(&src[start..end.min(byte)]).unwrap_or("")
}

/// The first line of the definition's documentation: a Python docstring
/// (first statement of the body), else the comment block right above it.
fn doc_line(lang: Lang, src: &[u8], node: Node<'_>) -> Option<String> {
    if lang == Lang::Python {
        let inner = node.child_by_field_name("definition").unwrap_or(node);
        let first = inner.child_by_field_name("body")?.named_child(0)?;
        let s = first.named_child(0).filter(|s| s.kind() == "string")?;
        let raw = std::str::from_utf8(&src[s.byte_range()]).ok()?;
        let body = raw.trim_start_matches(|c: char| c.is_ascii_alphabetic());
        let body = body.trim_matches(|c| c == '"' || c == '\'');
        let line = body.lines().map(str::trim).find(|l| !l.is_empty())?;
        return Some(clip(line.trim_matches(|c| c == '"' || c == '\'')));
    }
    // The comment block ending on the line above: its first line (above
    // the wrapper: `export`, `template <…>`, attributes' item).
    let node = match node.parent() {
        Some(p) if matches!(p.kind(), "export_statement" | "template_declaration") => p,
        _ => node,
    };
    let mut first = None;
    let mut row = node.start_position().row;
    let mut prev = node.prev_sibling();
    while let Some(p) = prev {
        if !kinds::is_comment(p.kind()) || p.end_position().row + 1 < row {
            break;
        }
        first = Some(p);
        row = p.start_position().row;
        prev = p.prev_sibling();
    }
    let c = first?;
    let raw = std::str::from_utf8(&src[c.byte_range()]).ok()?;
    let line = raw
        .lines()
        .map(|l| {
            l.trim()
                .trim_start_matches(['/', '*', '#', '-', '!'])
                .trim_end_matches("*/")
                .trim()
        })
        .find(|l| !l.is_empty())?;
    Some(clip(line))
}

fn clip(line: &str) -> String {
    let mut end = line.len().min(MAX_DOC);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line[..end].to_string()
}
