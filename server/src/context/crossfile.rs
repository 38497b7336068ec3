//! Cross-file context: snippets from the other open documents.
//!
//! Each open document is cut into fixed chunks of [`CHUNK_LINES`] lines
//! (aligned, so a chunk's text only changes when that part of the file is
//! edited). Chunks are ranked by
//! the Jaccard similarity of their identifier sets with the text above the
//! cursor, de-duplicated (against each other and the current window), and
//! taken best first until the budget is spent. The chosen ones are emitted
//! in (path, line) order so the prompt head is byte-identical as long as the
//! same chunks win.
//!
//! The query is the [`QUERY_LINES`] lines above the cursor's line rounded
//! down to a multiple of [`QUERY_STEP`]: typing on the current line never
//! changes it, so the snippets (the very first tokens of the prompt) stay
//! put between keystrokes.
//!
//! Never included: documents whose path looks like a secrets file (the
//! same built-in list the remote features refuse, `remote::glob`) or whose
//! text holds a private key.

use std::collections::HashSet;

use crate::document::Document;
use crate::engine::Snippet;

pub const CHUNK_LINES: usize = 16;
pub const QUERY_LINES: usize = 32;
pub const QUERY_STEP: usize = 8;
/// Lines of each other document considered (bounded cost per request).
pub const MAX_LINES_PER_DOC: usize = 2000;
/// Other documents considered per request.
pub const MAX_DOCS: usize = 8;
/// A chunk must share at least this much with the query.
const MIN_SCORE: f32 = 0.08;

/// Another open document, as the LSP layer hands it over.
#[derive(Debug, Clone)]
pub struct OtherDoc {
    /// Display path (workspace-relative when possible).
    pub path: String,
    pub doc: Document,
}

/// Is this path or text something that must never reach a prompt?
pub fn is_secret(path: &str, text_head: &str) -> bool {
    crate::remote::glob::never_send(path, &[]).is_some() || text_head.contains("PRIVATE KEY-----")
}

/// The query text for a cursor on `line`.
pub fn query_text(doc: &Document, line: usize) -> String {
    let end = (line / QUERY_STEP) * QUERY_STEP;
    let end = if end == 0 { line } else { end };
    let start = end.saturating_sub(QUERY_LINES);
    let rope = &doc.rope;
    let e = rope.line_to_char(end);
    let s = rope.line_to_char(start).max(e.saturating_sub(8192));
    rope.slice(s..e).to_string()
}

/// Keywords of the shipped languages: shared by every file, they say
/// nothing about similarity.
const STOP_WORDS: &[&str] = &[
    "and",
    "as",
    "async",
    "await",
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "def",
    "default",
    "del",
    "do",
    "elif",
    "else",
    "end",
    "enum",
    "export",
    "extern",
    "false",
    "final",
    "finally",
    "fn",
    "for",
    "from",
    "func",
    "function",
    "if",
    "impl",
    "import",
    "in",
    "int",
    "interface",
    "let",
    "local",
    "match",
    "mod",
    "mut",
    "new",
    "nil",
    "none",
    "None",
    "not",
    "null",
    "or",
    "package",
    "pass",
    "private",
    "pub",
    "public",
    "raise",
    "return",
    "self",
    "Self",
    "static",
    "struct",
    "super",
    "switch",
    "then",
    "this",
    "throw",
    "trait",
    "True",
    "False",
    "true",
    "try",
    "type",
    "use",
    "var",
    "void",
    "where",
    "while",
    "with",
    "yield",
    "string",
    "bool",
    "char",
    "long",
    "usize",
    "u32",
    "u64",
    "i32",
    "i64",
    "str",
];

fn identifiers(text: &str) -> HashSet<&str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| {
            w.len() >= 3
                && !w.chars().next().is_some_and(|c| c.is_ascii_digit())
                && !STOP_WORDS.contains(w)
        })
        .collect()
}

fn normalize(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

struct Candidate {
    path: String,
    line: usize,
    text: String,
    score: f32,
}

pub fn snippets(
    others: &[OtherDoc],
    path: &str,
    query: &str,
    current_prefix: &str,
    budget: usize,
) -> Vec<Snippet> {
    if budget == 0 || others.is_empty() {
        return Vec::new();
    }
    let q = identifiers(query);
    if q.is_empty() {
        return Vec::new();
    }
    let mut cands: Vec<Candidate> = Vec::new();
    let mut docs: Vec<&OtherDoc> = others.iter().filter(|o| o.path != path).collect();
    docs.sort_by(|a, b| a.path.cmp(&b.path));
    for o in docs.into_iter().take(MAX_DOCS) {
        let rope = &o.doc.rope;
        let head_end = rope.len_chars().min(8192);
        if is_secret(&o.path, &rope.slice(..head_end).to_string()) {
            continue;
        }
        let lines = rope.len_lines().min(MAX_LINES_PER_DOC);
        let mut l = 0;
        while l < lines {
            let end = (l + CHUNK_LINES).min(rope.len_lines());
            let (cs, ce) = (rope.line_to_char(l), rope.line_to_char(end));
            // Measure before copying: a chunk of huge lines is skipped.
            if ce - cs <= budget {
                let text = rope.slice(cs..ce).to_string();
                let ids = identifiers(&text);
                let inter = ids.intersection(&q).count();
                if inter > 0 {
                    let score = inter as f32 / (ids.len() + q.len() - inter) as f32;
                    if score >= MIN_SCORE {
                        cands.push(Candidate {
                            path: o.path.clone(),
                            line: l,
                            text,
                            score,
                        });
                    }
                }
            }
            l = end;
        }
    }
    // Best first; ties broken by position so the choice is deterministic.
    cands.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.path.cmp(&b.path))
            .then(a.line.cmp(&b.line))
    });
    let current = normalize(current_prefix);
    let mut seen: HashSet<String> = HashSet::new();
    let mut chosen: Vec<Candidate> = Vec::new();
    let mut used = 0usize;
    for c in cands {
        let norm = normalize(&c.text);
        if norm.is_empty() || current.contains(&norm) || !seen.insert(norm) {
            continue; // already in the window, or a duplicate chunk
        }
        let cost = c.text.len() + c.path.len() + 16;
        if used + cost > budget {
            continue;
        }
        used += cost;
        chosen.push(c);
    }
    chosen.sort_by(|a, b| a.path.cmp(&b.path).then(a.line.cmp(&b.line)));
    // Adjacent chunks of one file become one snippet.
    let mut out: Vec<Snippet> = Vec::new();
    let mut last: Option<(String, usize)> = None;
    for c in chosen {
        let adjacent = last
            .as_ref()
            .is_some_and(|(p, end)| *p == c.path && *end == c.line);
        let end = c.line + c.text.lines().count().max(1);
        if adjacent {
            let s = out.last_mut().unwrap();
            s.text.push_str(&c.text);
        } else {
            out.push(Snippet {
                path: c.path.clone(),
                text: c.text,
            });
        }
        last = Some((c.path, end));
    }
    for s in &mut out {
        let t = s.text.trim_end().to_string();
        s.text = t;
    }
    out
}
