//! Open documents: one rope per URI, with its version and language.
//!
//! This module speaks plain Rust types (`Position`, `Edit`), not LSP types;
//! `lsp::proto` converts at the edge. Positions are (line, column) in the
//! negotiated [`Encoding`]; columns are converted to rope char indices
//! here, exactly, including surrogate pairs and CRLF.
//!
//! **Invariant:** a `Document` is only mutated by [`DocumentStore::apply`] and
//! friends, which run synchronously in the notification handler, so edits
//! land in arrival order before any later request reads the document.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use ropey::Rope;

use crate::syntax::{self, Lang, Syntax};

/// How a client counts columns (`positionEncoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// UTF-16 code units: the LSP default, what VS Code uses.
    #[default]
    Utf16,
    /// Bytes of UTF-8: offered by Neovim and Helix.
    Utf8,
    /// Unicode scalar values.
    Utf32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    pub line: u32,
    pub character: u32,
}

impl Position {
    pub fn new(line: u32, character: u32) -> Position {
        Position { line, character }
    }
}

/// One content change of `didChange`: replace `range` (or everything, when
/// `None`) with `text`.
#[derive(Debug, Clone, PartialEq)]
pub struct Edit {
    pub range: Option<(Position, Position)>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocError {
    NotOpen(String),
    LineOutOfRange { line: u32, lines: usize },
    ReversedRange { start: Position, end: Position },
    StaleVersion { have: i32, got: i32 },
}

impl std::fmt::Display for DocError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DocError::NotOpen(uri) => write!(
                f,
                "document {uri} is not open (send textDocument/didOpen first)"
            ),
            DocError::LineOutOfRange { line, lines } => {
                write!(
                    f,
                    "position line {line} is past the end of the document ({lines} lines)"
                )
            }
            DocError::ReversedRange { start, end } => write!(
                f,
                "range start {}:{} is after its end {}:{}",
                start.line, start.character, end.line, end.character
            ),
            DocError::StaleVersion { have, got } => {
                write!(
                    f,
                    "document version went backwards ({got} after {have}); edit ignored"
                )
            }
        }
    }
}

impl std::error::Error for DocError {}

/// A document's content. Cloning is O(1) (the rope is shared), which is what
/// makes [`Snapshot`]s cheap.
#[derive(Debug, Clone)]
pub struct Document {
    pub rope: Rope,
    pub version: i32,
    pub language_id: String,
    /// [context] issue 4: the tree-sitter tree, kept up to date with every
    /// edit (`None` for languages without a grammar). Cloning is cheap.
    pub syntax: Option<Syntax>,
    /// [context] Where this document was edited lately, for the
    /// recently-edited snippets of cross-file context.
    pub edits: EditHistory,
}

/// The lines of the last edits, newest first, each with a process-wide
/// sequence number so edits in different documents can be ordered (one
/// ring across files, as llama.vim keeps). Positions, not text: a snippet
/// is read from the current rope when a prompt is built, so it is never
/// stale, and an entry costs 16 bytes per keystroke, not a copy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EditHistory {
    /// (line, sequence), newest first, distinct lines, at most
    /// [`EditHistory::CAPACITY`].
    pub lines: Vec<(usize, u64)>,
}

/// Orders edits across all documents.
static EDIT_SEQ: AtomicU64 = AtomicU64::new(1);

impl EditHistory {
    pub const CAPACITY: usize = 32;

    fn record(&mut self, line: usize) {
        let seq = EDIT_SEQ.fetch_add(1, Ordering::Relaxed);
        self.lines.retain(|(l, _)| *l != line);
        self.lines.insert(0, (line, seq));
        self.lines.truncate(Self::CAPACITY);
    }

    /// Sequence number of the newest edit (0: never edited).
    pub fn last(&self) -> u64 {
        self.lines.first().map_or(0, |e| e.1)
    }
}

impl Document {
    pub fn new(text: &str, version: i32, language_id: &str) -> Document {
        Document::with_path(text, version, language_id, "")
    }

    /// Like [`Document::new`], picking the grammar from `language_id` and
    /// else from `path`'s extension.
    pub fn with_path(text: &str, version: i32, language_id: &str, path: &str) -> Document {
        let rope = Rope::from_str(text);
        let syntax = Lang::detect(language_id, path).map(|lang| Syntax::new(lang, &rope));
        Document {
            rope,
            version,
            language_id: language_id.to_string(),
            syntax,
            edits: EditHistory::default(),
        }
    }

    /// The document's current syntax tree, if it has one.
    pub fn tree(&self) -> Option<tree_sitter::Tree> {
        self.syntax.as_ref()?.tree(&self.rope)
    }

    pub fn lang(&self) -> Option<Lang> {
        self.syntax.as_ref().map(|s| s.lang)
    }

    /// Re-parse after a batch of edits (incremental: the old tree guides it).
    pub fn reparse(&mut self) {
        if let Some(s) = self.syntax.as_mut() {
            s.reparse(&self.rope);
        }
    }

    /// Char index of `pos`. A column past the end of its line clamps to the
    /// line end (the LSP rule); a column inside a character (half a
    /// surrogate pair, the middle of a UTF-8 sequence) rounds up to the
    /// character's end. A line past the end is an error.
    pub fn char_index(&self, pos: Position, enc: Encoding) -> Result<usize, DocError> {
        let lines = self.rope.len_lines();
        let line_idx = pos.line as usize;
        if line_idx >= lines {
            return Err(DocError::LineOutOfRange {
                line: pos.line,
                lines,
            });
        }
        let line_start = self.rope.line_to_char(line_idx);
        // The line's content ends before its terminator (\n, \r\n or \r).
        let line = self.rope.line(line_idx);
        let mut len = line.len_chars();
        while len > 0 && matches!(line.char(len - 1), '\n' | '\r') {
            len -= 1;
        }
        let line_end = line_start + len;
        let want = pos.character as usize;
        // Through the rope's own indices, O(log n): walking the line char by
        // char made every edit at the end of a 4 MB line cost 25 ms.
        let idx = match enc {
            Encoding::Utf32 => line_start + want.min(len),
            Encoding::Utf16 => {
                let base = self.rope.char_to_utf16_cu(line_start);
                let target = base
                    .saturating_add(want)
                    .min(self.rope.char_to_utf16_cu(line_end));
                let i = self.rope.utf16_cu_to_char(target);
                // Inside a surrogate pair: round up to the character's end.
                if self.rope.char_to_utf16_cu(i) < target {
                    i + 1
                } else {
                    i
                }
            }
            Encoding::Utf8 => {
                let base = self.rope.char_to_byte(line_start);
                let target = base
                    .saturating_add(want)
                    .min(self.rope.char_to_byte(line_end));
                let i = self.rope.byte_to_char(target);
                // Inside a UTF-8 sequence: round up to the character's end.
                if self.rope.char_to_byte(i) < target {
                    i + 1
                } else {
                    i
                }
            }
        };
        Ok(idx)
    }

    /// The position of a char index, in the client's encoding.
    pub fn position(&self, char_idx: usize, enc: Encoding) -> Position {
        let char_idx = char_idx.min(self.rope.len_chars());
        let line = self.rope.char_to_line(char_idx);
        let line_start = self.rope.line_to_char(line);
        let col: usize = match enc {
            Encoding::Utf32 => char_idx - line_start,
            Encoding::Utf16 => {
                self.rope.char_to_utf16_cu(char_idx) - self.rope.char_to_utf16_cu(line_start)
            }
            Encoding::Utf8 => self.rope.char_to_byte(char_idx) - self.rope.char_to_byte(line_start),
        };
        Position::new(line as u32, col as u32)
    }

    /// Apply one edit. Errors leave the document untouched.
    pub fn apply(&mut self, edit: &Edit, enc: Encoding) -> Result<(), DocError> {
        match edit.range {
            None => {
                self.rope = Rope::from_str(&edit.text);
                if let Some(syn) = self.syntax.as_mut() {
                    syn.reset(&self.rope);
                }
            }
            Some((start, end)) => {
                if start > end {
                    return Err(DocError::ReversedRange { start, end });
                }
                let s = self.char_index(start, enc)?;
                let e = self.char_index(end, enc)?;
                self.edits.record(start.line as usize);
                let before = self.rope.clone(); // O(1)
                let (sb, eb) = (self.rope.char_to_byte(s), self.rope.char_to_byte(e));
                self.rope.remove(s..e);
                self.rope.insert(s, &edit.text);
                // Mirror the edit on the tree with the same byte offsets;
                // the re-parse happens once per batch (`DocumentStore::apply`)
                // or lazily in `Document::tree`.
                if let Some(syn) = self.syntax.as_mut() {
                    syn.edit(&syntax::input_edit(
                        &before,
                        &self.rope,
                        sb,
                        eb,
                        edit.text.len(),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A read-only view of a document at one version, taken by request handlers
/// so they never hold a map lock across an `.await`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub uri: String,
    pub doc: Document,
}

/// All open documents. A `DashMap` so notification handlers (writers) and
/// request handlers (readers of snapshots) on different tokio workers do
/// not serialise on one lock; every access is short and synchronous.
#[derive(Debug, Default)]
pub struct DocumentStore {
    docs: DashMap<String, Document>,
}

impl DocumentStore {
    pub fn new() -> Arc<DocumentStore> {
        Arc::new(DocumentStore::default())
    }

    /// `didOpen`. Opening an already-open document replaces it (some clients
    /// re-open after a reload); the newer text wins.
    pub fn open(&self, uri: &str, text: &str, version: i32, language_id: &str) {
        self.docs.insert(
            uri.to_string(),
            Document::with_path(text, version, language_id, uri),
        );
    }

    pub fn close(&self, uri: &str) -> bool {
        self.docs.remove(uri).is_some()
    }

    /// `didChange`: apply all edits in order, then set the version. If an
    /// edit fails, the edits before it stay applied (they were valid against
    /// the state the client had) and the error is returned so the caller
    /// can tell the user the view may be out of sync.
    pub fn apply(
        &self,
        uri: &str,
        version: i32,
        edits: &[Edit],
        enc: Encoding,
    ) -> Result<(), DocError> {
        let mut doc = self
            .docs
            .get_mut(uri)
            .ok_or_else(|| DocError::NotOpen(uri.to_string()))?;
        if version < doc.version {
            return Err(DocError::StaleVersion {
                have: doc.version,
                got: version,
            });
        }
        let mut result = Ok(());
        for edit in edits {
            if let Err(e) = doc.apply(edit, enc) {
                result = Err(e);
                break;
            }
        }
        // One incremental re-parse per batch, also after a failed edit (the
        // edits before it stay applied).
        doc.reparse();
        result?;
        doc.version = version;
        Ok(())
    }

    pub fn snapshot(&self, uri: &str) -> Result<Snapshot, DocError> {
        let doc = self
            .docs
            .get(uri)
            .ok_or_else(|| DocError::NotOpen(uri.to_string()))?;
        Ok(Snapshot {
            uri: uri.to_string(),
            doc: doc.clone(),
        })
    }

    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// [context] Up to `limit` other open documents (O(1) clones), for
    /// cross-file context.
    pub fn others(&self, except: &str, limit: usize) -> Vec<(String, Document)> {
        self.docs
            .iter()
            .filter(|e| e.key() != except)
            .take(limit)
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect()
    }

    pub fn uris(&self) -> Vec<String> {
        self.docs.iter().map(|e| e.key().clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(l0: u32, c0: u32, l1: u32, c1: u32, text: &str) -> Edit {
        Edit {
            range: Some((Position::new(l0, c0), Position::new(l1, c1))),
            text: text.into(),
        }
    }

    #[test]
    fn utf16_surrogate_pairs() {
        let mut d = Document::new("a😀b\n", 0, "rust");
        // 😀 is two UTF-16 units: 'b' starts at column 3.
        d.apply(&edit(0, 3, 0, 4, "c"), Encoding::Utf16).unwrap();
        assert_eq!(d.rope.to_string(), "a😀c\n");
        assert_eq!(d.position(3, Encoding::Utf16), Position::new(0, 4));
        assert_eq!(d.position(3, Encoding::Utf8), Position::new(0, 6));
    }

    #[test]
    fn utf8_columns() {
        let mut d = Document::new("é=1\n", 0, "rust");
        d.apply(&edit(0, 2, 0, 3, "=="), Encoding::Utf8).unwrap();
        assert_eq!(d.rope.to_string(), "é==1\n");
    }

    #[test]
    fn crlf_lines_and_clamping() {
        let mut d = Document::new("ab\r\ncd\r\n", 0, "c");
        // column past the line end clamps before the CRLF.
        d.apply(&edit(0, 99, 0, 99, "!"), Encoding::Utf16).unwrap();
        assert_eq!(d.rope.to_string(), "ab!\r\ncd\r\n");
        d.apply(&edit(1, 0, 2, 0, ""), Encoding::Utf16).unwrap();
        assert_eq!(d.rope.to_string(), "ab!\r\n");
    }

    #[test]
    fn unicode_line_separators_are_not_lsp_lines() {
        // LSP only knows \n, \r\n and \r; U+2028 must not start a new line.
        let d = Document::new("a\u{2028}b\nc", 0, "js");
        assert_eq!(d.rope.len_lines(), 2);
    }

    #[test]
    fn bad_ranges_are_errors_and_leave_text_alone() {
        let mut d = Document::new("abc", 0, "rust");
        assert!(matches!(
            d.apply(&edit(5, 0, 5, 0, "x"), Encoding::Utf16),
            Err(DocError::LineOutOfRange { .. })
        ));
        assert!(matches!(
            d.apply(&edit(0, 2, 0, 1, "x"), Encoding::Utf16),
            Err(DocError::ReversedRange { .. })
        ));
        assert_eq!(d.rope.to_string(), "abc");
    }

    #[test]
    fn versions_must_not_go_backwards() {
        let store = DocumentStore::default();
        store.open("file:///a", "x", 5, "rust");
        let err = store
            .apply("file:///a", 4, &[edit(0, 0, 0, 0, "y")], Encoding::Utf16)
            .unwrap_err();
        assert!(err.to_string().contains("went backwards"));
        assert_eq!(
            store.snapshot("file:///a").unwrap().doc.rope.to_string(),
            "x"
        );
    }
}

/// Property test: thousands of random incremental edits (mixed scripts,
/// emoji, CRLF) applied to the rope agree with a naive `String` model that
/// computes positions from scratch.
#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    const PIECES: &[&str] = &[
        "a",
        "é",
        "ß",
        "日本",
        "😀",
        "👩‍💻",
        "\r\n",
        "\n",
        "\r",
        " ",
        "\t",
        "}",
        "𝕏",
        "ŉ",
        "\u{2028}",
    ];

    /// Naive: split into LSP lines (\r\n, \n, \r) and count columns.
    fn naive_position(text: &str, char_idx: usize, enc: Encoding) -> Position {
        let before: String = text.chars().take(char_idx).collect();
        let mut line = 0u32;
        let mut line_start = 0usize; // byte index in `before`
        let bytes = before.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'\r' && i + 1 < bytes.len() && bytes[i + 1] == b'\n' {
                line += 1;
                i += 2;
                line_start = i;
            } else if bytes[i] == b'\n' || bytes[i] == b'\r' {
                line += 1;
                i += 1;
                line_start = i;
            } else {
                i += 1;
            }
        }
        let col_text = &before[line_start..];
        let col = match enc {
            Encoding::Utf16 => col_text.encode_utf16().count(),
            Encoding::Utf8 => col_text.len(),
            Encoding::Utf32 => col_text.chars().count(),
        };
        Position::new(line, col as u32)
    }

    fn text_strategy(max: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(proptest::sample::select(PIECES), 0..max).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        #[test]
        fn random_edits_match_a_naive_model(
            initial in text_strategy(40),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), text_strategy(6)), 1..24),
            utf8 in any::<bool>(),
        ) {
            let enc = if utf8 { Encoding::Utf8 } else { Encoding::Utf16 };
            let mut doc = Document::new(&initial, 0, "text");
            let mut naive: Vec<char> = initial.chars().collect();
            for (a, b, insert) in edits {
                let n = naive.len() + 1;
                let (mut s, mut e) = (a.index(n), b.index(n));
                if s > e { std::mem::swap(&mut s, &mut e); }
                // Never split a CRLF pair: a client cannot address its middle.
                let text: String = naive.iter().collect();
                let crlf_mid = |v: &[char], i: usize| i > 0 && i < v.len() && v[i - 1] == '\r' && v[i] == '\n';
                if crlf_mid(&naive, s) || crlf_mid(&naive, e) { continue; }
                let start = naive_position(&text, s, enc);
                let end = naive_position(&text, e, enc);
                doc.apply(&Edit { range: Some((start, end)), text: insert.clone() }, enc).unwrap();
                naive.splice(s..e, insert.chars());
                let expect: String = naive.iter().collect();
                prop_assert_eq!(doc.rope.to_string(), expect.clone());
                // Positions round-trip through the rope too.
                let probe = a.index(naive.len() + 1);
                if !crlf_mid(&naive, probe) {
                    prop_assert_eq!(doc.position(probe, enc), naive_position(&expect, probe, enc));
                }
            }
        }
    }
}
