//! Cross-file context: snippets for the head of the prompt, from the other
//! open documents and from the parts of this one the prompt does not show.
//!
//! Three kinds, ranked in this order:
//! - definitions of the names used near the cursor (`definitions`): from
//!   the open documents, and with the workspace index (`context.workspace`)
//!   from every file of the project, the file's imports first
//!   (`definitions::resolve`); a file's definitions are shown together as
//!   one snippet of that file, methods under their class header;
//! - recently edited chunks: every document remembers the lines of its last
//!   edits (`document::EditHistory`), and the newest [`RECENT_CHUNKS`]
//!   chunks across all files take part, llama.vim's ring buffer;
//! - chunks similar to the text above the cursor (Jaccard similarity of
//!   identifier sets).
//!
//! Documents are cut into fixed chunks of [`CHUNK_LINES`] lines (aligned,
//! so a chunk's text only changes when that part of the file is edited).
//! Candidates are de-duplicated (against each other and the current
//! window) and taken best first until the budget is spent. The chosen ones
//! are emitted in (path, line) order so the prompt head is byte-identical
//! as long as the same ones win.
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
use std::ops::Range;
use std::sync::Arc;

use crate::document::Document;
use crate::engine::Snippet;
use crate::index::Index;

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

/// What the current request brings to cross-file context.
pub struct Query<'a> {
    /// The document being completed, and its display path.
    pub doc: &'a Document,
    pub path: &'a str,
    /// The cursor (a char index of `doc`).
    pub cursor: usize,
    /// Lines of `doc` the prompt already shows (prefix window to suffix end).
    pub in_prompt: Range<usize>,
    /// The stable text above the cursor ([`query_text`]).
    pub text: &'a str,
    /// The prompt's prefix (kept header + window), for de-duplication.
    pub prefix: &'a str,
    /// Chars to spend, at most (a chunk longer than this is not even
    /// copied).
    pub budget: usize,
    /// Tokens to spend, counted by `tokens`.
    pub budget_tokens: usize,
    pub tokens: &'a dyn super::TokenCount,
}

/// Recently edited chunks that take part (one ring across files).
pub const RECENT_CHUNKS: usize = 8;
/// Ranking: a definition of a name used near the cursor first, then a
/// recently edited chunk, then plain similarity (a Jaccard score in 0..=1).
const DEFINITION_SCORE: f32 = 2.0;
const RECENT_BONUS: f32 = 1.0;

#[derive(Debug)]
struct Candidate {
    /// Index into the sources (0 = the current document); unused for a
    /// definition from the workspace index, which has `ws_path`.
    source: usize,
    /// The indexed file a workspace definition comes from.
    ws_path: Option<Arc<str>>,
    /// A workspace method's class / impl header.
    container: Option<Arc<str>>,
    line: usize,
    text: String,
    score: f32,
    /// `text` is exactly the lines from `line` on (adjacent ones merge).
    whole: bool,
    definition: bool,
}

struct Source<'a> {
    path: &'a str,
    doc: &'a Document,
}

/// Snippets for the prompt head: definitions of names used near the
/// cursor, recently edited chunks and chunks similar to the text above the
/// cursor, from the other open documents and from the parts of this one
/// the prompt does not show. Emitted in (document, line) order so the head
/// stays byte-identical while the same ones win.
///
/// Of the current document only what cannot shift while the user types is
/// used: chunks above the prompt window and definitions (a definition's
/// text does not move with the lines around it).
///
/// With `workspace`, definitions resolved through the index join the
/// candidates (`definitions::resolve`), and definitions may take
/// [`WORKSPACE_DEF_SHARE`] of the budget instead of half.
pub fn snippets(query: &Query<'_>, others: &[OtherDoc], workspace: Option<&Index>) -> Vec<Snippet> {
    if query.budget == 0 {
        return Vec::new();
    }
    let q = identifiers(query.text);
    let mut sources = vec![Source {
        path: query.path,
        doc: query.doc,
    }];
    let mut docs: Vec<&OtherDoc> = others.iter().filter(|o| o.path != query.path).collect();
    // The most recently edited documents first, then by path (stable).
    docs.sort_by(|a, b| {
        b.doc
            .edits
            .last()
            .cmp(&a.doc.edits.last())
            .then_with(|| a.path.cmp(&b.path))
    });
    for o in docs.into_iter().take(MAX_DOCS) {
        let rope = &o.doc.rope;
        let head_end = rope.len_chars().min(8192);
        if !is_secret(&o.path, &rope.slice(..head_end).to_string()) {
            sources.push(Source {
                path: &o.path,
                doc: &o.doc,
            });
        }
    }
    // What the current document may give: lines above the window (chunks),
    // anything outside the prompt (definitions).
    let above = query.in_prompt.start;
    let chunk_ok = |source: usize, line: usize| source != 0 || line + CHUNK_LINES <= above;
    let recent = recent_chunks(&sources, &chunk_ok);

    let mut cands: Vec<Candidate> = Vec::new();
    for (i, src) in sources.iter().enumerate() {
        let rope = &src.doc.rope;
        if let Some(tree) = src.doc.tree() {
            let skip = if i == 0 {
                query.in_prompt.clone()
            } else {
                0..0
            };
            for d in super::definitions::find(rope, &tree, &q, skip) {
                cands.push(Candidate {
                    source: i,
                    ws_path: None,
                    container: None,
                    line: d.line,
                    text: d.text,
                    score: DEFINITION_SCORE,
                    whole: d.whole,
                    definition: true,
                });
            }
        }
        // Every chunk of the first lines, and recent ones further down.
        let lines = rope.len_lines().min(MAX_LINES_PER_DOC);
        let mut starts: Vec<usize> = (0..lines).step_by(CHUNK_LINES).collect();
        starts.extend(
            recent
                .iter()
                .filter(|&&(r, line)| r == i && line >= lines && line < rope.len_lines())
                .map(|&(_, line)| line),
        );
        for start in starts {
            let end = (start + CHUNK_LINES).min(rope.len_lines());
            if !chunk_ok(i, start) {
                continue;
            }
            let (cs, ce) = (rope.line_to_char(start), rope.line_to_char(end));
            // Measure before copying: a chunk of huge lines is skipped.
            if ce - cs > query.budget {
                continue;
            }
            let is_recent = recent.contains(&(i, start));
            if q.is_empty() && !is_recent {
                continue; // nothing to be similar to: only recent chunks count
            }
            let text = rope.slice(cs..ce).to_string();
            let ids = identifiers(&text);
            let inter = ids.intersection(&q).count();
            let sim = if inter == 0 {
                0.0
            } else {
                inter as f32 / (ids.len() + q.len() - inter) as f32
            };
            if is_recent || sim >= MIN_SCORE {
                cands.push(Candidate {
                    source: i,
                    ws_path: None,
                    container: None,
                    line: start,
                    text,
                    score: sim + if is_recent { RECENT_BONUS } else { 0.0 },
                    whole: true,
                    definition: false,
                });
            }
        }
    }
    if let Some(index) = workspace {
        cands.extend(workspace_candidates(query, index, &sources));
    }
    select(cands, &sources, query, workspace.is_some())
}

/// Share of the budget definitions may take with the workspace index (the
/// signatures of the names a line is about to call are what it lacks most;
/// similar and recent chunks get the rest).
pub const WORKSPACE_DEF_SHARE: (usize, usize) = (3, 4);

/// Definitions from the workspace index (see `definitions::resolve`),
/// except those of files open in the editor: their current text is a
/// source already.
fn workspace_candidates(
    query: &Query<'_>,
    index: &Index,
    sources: &[Source<'_>],
) -> Vec<Candidate> {
    let doc = query.doc;
    let (Some(tree), Some(lang)) = (doc.tree(), doc.lang()) else {
        return Vec::new();
    };
    let rope = &doc.rope;
    let cursor = query.cursor.min(rope.len_chars());
    let line = rope.char_to_line(cursor);
    let from = rope.line_to_char(line).max(cursor.saturating_sub(256));
    let line_prefix = rope.slice(from..cursor).to_string();
    let near = super::definitions::Near {
        index,
        path: query.path,
        lang,
        rope: &doc.rope,
        tree: &tree,
        line,
        line_prefix: &line_prefix,
    };
    super::definitions::resolve(&near)
        .into_iter()
        .filter(|w| !sources.iter().any(|s| s.path == &*w.path))
        .map(|w| Candidate {
            source: usize::MAX,
            line: w.def.line as usize,
            text: w.def.text.to_string(),
            container: w.def.container.clone(),
            ws_path: Some(w.path),
            score: DEFINITION_SCORE + w.score / 10.0,
            whole: false,
            definition: true,
        })
        .collect()
}

fn path_of<'a>(c: &'a Candidate, sources: &'a [Source<'_>]) -> &'a str {
    match &c.ws_path {
        Some(p) => p,
        None => sources[c.source].path,
    }
}

/// The newest [`RECENT_CHUNKS`] edited chunks across `sources`, as
/// (source, chunk start line).
fn recent_chunks(
    sources: &[Source<'_>],
    ok: &impl Fn(usize, usize) -> bool,
) -> Vec<(usize, usize)> {
    let mut edits: Vec<(u64, usize, usize)> = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        for &(line, seq) in &s.doc.edits.lines {
            edits.push((seq, i, line / CHUNK_LINES * CHUNK_LINES));
        }
    }
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (_, i, chunk) in edits {
        if ok(i, chunk) && !out.contains(&(i, chunk)) {
            out.push((i, chunk));
            if out.len() == RECENT_CHUNKS {
                break;
            }
        }
    }
    out
}

/// Best first within the budget (definitions at most half of it), without
/// what the prompt already shows or another snippet already holds; then
/// in (document, line) order with adjacent chunks joined.
fn select(
    mut cands: Vec<Candidate>,
    sources: &[Source<'_>],
    query: &Query<'_>,
    workspace: bool,
) -> Vec<Snippet> {
    // Best first; ties broken by position so the choice is deterministic.
    cands.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| path_of(a, sources).cmp(path_of(b, sources)))
            .then(a.line.cmp(&b.line))
    });
    let (num, den) = if workspace {
        WORKSPACE_DEF_SHARE
    } else {
        (1, 2)
    };
    let current = normalize(query.prefix);
    let mut chosen: Vec<(Candidate, String)> = Vec::new();
    let mut used = 0usize;
    let mut used_defs = 0usize;
    for c in cands {
        let norm = normalize(&c.text);
        // Already in the window, in a chosen snippet, or holding a chosen
        // definition (which says it more precisely).
        if norm.is_empty()
            || current.contains(&norm)
            || chosen
                .iter()
                .any(|(_, n)| n.contains(&norm) || norm.contains(n.as_str()))
        {
            continue;
        }
        // The file separator and path header cost a few tokens too.
        let budget = query.budget_tokens;
        let container = c.container.as_deref().map_or(0, |h| query.tokens.count(h));
        let cost =
            query.tokens.count(&c.text) + container + query.tokens.count(path_of(&c, sources)) + 4;
        if used + cost > budget || (c.definition && used_defs + cost > budget * num / den) {
            continue;
        }
        used += cost;
        if c.definition {
            used_defs += cost;
        }
        chosen.push((c, norm));
    }
    let mut chosen: Vec<Candidate> = chosen.into_iter().map(|(c, _)| c).collect();
    chosen.sort_by(|a, b| {
        path_of(a, sources)
            .cmp(path_of(b, sources))
            .then(a.line.cmp(&b.line))
    });
    // Adjacent whole chunks of one file become one snippet, and so do the
    // workspace definitions of one file (a class header once for its
    // methods).
    let mut out: Vec<Snippet> = Vec::new();
    let mut last: Option<(usize, usize)> = None; // (source, end line) of a whole chunk
    let mut last_ws: Option<(Arc<str>, Option<Arc<str>>)> = None; // (file, container)
    for c in chosen {
        if let Some(path) = &c.ws_path {
            let same_file = last_ws.as_ref().is_some_and(|(p, _)| p == path);
            let header = match (&c.container, &last_ws) {
                (Some(h), Some((p, Some(prev)))) if p == path && prev == h => None,
                (Some(h), _) => Some(h.to_string()),
                (None, _) => None,
            };
            let mut text = header.map(|h| h + "\n").unwrap_or_default();
            text.push_str(&c.text);
            if same_file {
                let s = out.last_mut().unwrap();
                s.text.push_str("\n");
                s.text.push_str(&text);
            } else {
                out.push(Snippet {
                    path: path.to_string(),
                    text,
                });
            }
            last_ws = Some((path.clone(), c.container.clone()));
            last = None;
            continue;
        }
        last_ws = None;
        let adjacent = c.whole && last == Some((c.source, c.line));
        let end = c.line + c.text.lines().count().max(1);
        if adjacent {
            let s = out.last_mut().unwrap();
            s.text.push_str(&c.text);
        } else {
            out.push(Snippet {
                path: sources[c.source].path.to_string(),
                text: c.text,
            });
        }
        last = c.whole.then_some((c.source, end));
    }
    for s in &mut out {
        let t = s.text.trim_end().to_string();
        s.text = t;
    }
    out
}

#[cfg(test)]
#[path = "workspace_tests.rs"]
mod workspace_tests;
