//! Checkers shared by the cargo-fuzz targets (`fuzz/fuzz_targets/`, which
//! include this file by path) and the bounded run in CI
//! (`tests/fuzz_bounded.rs`).
//!
//! - [`check_framing`]: the stdin framing decoder never panics, keeps its
//!   buffer bounded, forwards only valid JSON-RPC, and passes every
//!   well-formed message through unchanged however the input is chunked,
//!   even with a malformed message among them.
//! - [`check_edits`]: applying arbitrary edits (positions past the end,
//!   reversed ranges, huge numbers, all three encodings, CRLF, emoji,
//!   stale versions) never panics, and every accepted edit leaves exactly
//!   the text a naive from-scratch model computes.

#![allow(dead_code)]

use serde_json::{json, Value};
use slm_ls::document::{DocError, Document, DocumentStore, Edit, Encoding, Position};
use slm_ls::lsp::framing::{self, Frame, FrameDecoder, MAX_HEADER_BYTES};

/// Reads fuzz bytes as a stream of small decisions; runs out gracefully.
pub struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data, pos: 0 }
    }
    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn below(&mut self, n: usize) -> usize {
        let v = (self.u8() as usize) << 8 | self.u8() as usize;
        v % n.max(1)
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = (start + n).min(self.data.len());
        self.pos = end;
        &self.data[start..end]
    }
    fn rest(&mut self) -> &'a [u8] {
        self.take(usize::MAX / 2)
    }
}

// ---------------------------------------------------------------------------
// Framing
// ---------------------------------------------------------------------------

fn frame(body: &[u8], header_name: &str, content_type: bool) -> Vec<u8> {
    let mut v = format!("{header_name}: {}\r\n", body.len()).into_bytes();
    if content_type {
        v.extend_from_slice(b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n");
    }
    v.extend_from_slice(b"\r\n");
    v.extend_from_slice(body);
    v
}

/// Feed `input` in chunks whose sizes come from `sizes`; check invariants
/// after every step; return the frames.
fn decode_chunked(input: &[u8], sizes: &mut Bytes, max_message: usize) -> Vec<Frame> {
    let mut dec = FrameDecoder::new(max_message);
    let mut out = Vec::new();
    let mut at = 0;
    while at < input.len() {
        let n = 1 + sizes.below(if sizes.done() { input.len() } else { 300 });
        let chunk = &input[at..(at + n).min(input.len())];
        at += chunk.len();
        dec.push(chunk);
        loop {
            let before = dec.buffered();
            match dec.next_frame() {
                Some(f) => {
                    if let Frame::Message(body) = &f {
                        let v: Value = serde_json::from_slice(body)
                            .expect("a forwarded message is valid JSON");
                        assert_eq!(v["jsonrpc"], "2.0", "forwarded without jsonrpc 2.0");
                    }
                    if let Frame::Invalid { code, message, .. } = &f {
                        assert!(*code == framing::PARSE_ERROR || *code == framing::INVALID_REQUEST);
                        assert!(!message.is_empty());
                    }
                    out.push(f);
                }
                None => {
                    assert!(dec.buffered() <= before, "next_frame grew the buffer");
                    break;
                }
            }
        }
        assert!(
            dec.buffered() <= MAX_HEADER_BYTES + max_message + 4 + chunk.len(),
            "buffer unbounded: {} bytes",
            dec.buffered()
        );
    }
    let _ = dec.finish();
    out
}

pub fn check_framing(data: &[u8]) {
    let mut b = Bytes::new(data);
    match b.u8() % 3 {
        // Arbitrary bytes: no panic, bounded, only valid JSON-RPC forwarded.
        0 => {
            let max = 64 + b.below(4096);
            let input_len = b.below(data.len().max(1));
            let input = b.take(input_len).to_vec();
            decode_chunked(&input, &mut b, max);
        }
        // Well-formed messages, one of them with a broken body: all the
        // others come through exactly, in order, however chunked.
        _ => {
            let n = 1 + b.below(6);
            let broken = b.below(n + 1); // == n: none broken
            let mut input = Vec::new();
            let mut expect = Vec::new();
            for i in 0..n {
                if b.u8() % 4 == 0 {
                    input.extend_from_slice(b"\r\n");
                }
                let name = ["Content-Length", "content-length", "CONTENT-LENGTH"][b.below(3)];
                let ct = b.u8() % 2 == 0;
                if i == broken {
                    let k = b.below(40);
                    let junk = b.take(k);
                    let mut body = b"{\"jsonrpc\":\"2.0\",\"id\":".to_vec();
                    body.extend_from_slice(junk);
                    body.extend_from_slice(b"\x00}");
                    input.extend(frame(&body, name, ct));
                    continue;
                }
                let k = b.below(64);
                let text = String::from_utf8_lossy(b.take(k)).into_owned();
                let body = json!({"jsonrpc": "2.0", "id": i, "method": "m", "params": {"t": text}})
                    .to_string()
                    .into_bytes();
                input.extend(frame(&body, name, ct));
                expect.push(body);
            }
            let frames = decode_chunked(&input, &mut b, 1 << 20);
            let got: Vec<Vec<u8>> = frames
                .iter()
                .filter_map(|f| match f {
                    Frame::Message(body) => Some(body.clone()),
                    _ => None,
                })
                .collect();
            assert_eq!(got, expect, "well-formed messages were lost or changed");
            let errors = frames.len() - got.len();
            assert_eq!(errors, usize::from(broken < n), "{frames:?}");
        }
    }
    let _ = b.rest();
}

// ---------------------------------------------------------------------------
// Edits
// ---------------------------------------------------------------------------

const PIECES: &[&str] = &[
    "a",
    "é",
    "日本",
    "😀",
    "👩‍💻",
    "𝕏",
    "\r\n",
    "\n",
    "\r",
    " ",
    "\t",
    "}",
    "\u{2028}",
    "\u{FFFD}",
    "",
];

/// LSP lines of `chars`: (start, end-before-terminator) char indices.
fn naive_lines(chars: &[char]) -> Vec<(usize, usize)> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\r' if chars.get(i + 1) == Some(&'\n') => {
                lines.push((start, i));
                i += 2;
                start = i;
            }
            '\r' | '\n' => {
                lines.push((start, i));
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    lines.push((start, chars.len()));
    lines
}

fn width(c: char, enc: Encoding) -> usize {
    match enc {
        Encoding::Utf16 => c.len_utf16(),
        Encoding::Utf8 => c.len_utf8(),
        Encoding::Utf32 => 1,
    }
}

/// The LSP rules from scratch: a line past the end is an error, a column
/// past the line end clamps, a column inside a character rounds up.
fn naive_index(chars: &[char], pos: Position, enc: Encoding) -> Option<usize> {
    let lines = naive_lines(chars);
    let &(start, end) = lines.get(pos.line as usize)?;
    let mut units = 0usize;
    let mut i = start;
    while i < end && units < pos.character as usize {
        units += width(chars[i], enc);
        i += 1;
    }
    Some(i)
}

fn naive_position(chars: &[char], idx: usize, enc: Encoding) -> Position {
    let lines = naive_lines(chars);
    let (line, &(start, _)) = lines
        .iter()
        .enumerate()
        .rev()
        .find(|(_, (s, _))| *s <= idx)
        .unwrap();
    let col: usize = chars[start..idx].iter().map(|&c| width(c, enc)).sum();
    Position::new(line as u32, col as u32)
}

fn number(b: &mut Bytes) -> u32 {
    match b.u8() % 8 {
        0 => u32::MAX - b.u8() as u32,
        1 => b.below(1 << 16) as u32,
        _ => b.u8() as u32 % 24,
    }
}

fn piece_text(b: &mut Bytes) -> String {
    (0..b.below(4))
        .map(|_| PIECES[b.below(PIECES.len())])
        .collect()
}

pub fn check_edits(data: &[u8]) {
    let mut b = Bytes::new(data);
    let enc = [Encoding::Utf16, Encoding::Utf8, Encoding::Utf32][b.below(3)];
    // Languages with a grammar keep a tree-sitter tree in step with edits.
    let lang = ["text", "python", "rust", "javascript"][b.below(4)];
    let initial: String = (0..b.below(40)).map(|_| piece_text(&mut b)).collect();
    let mut doc = Document::new(&initial, 0, lang);
    let mut naive: Vec<char> = initial.chars().collect();
    let store = DocumentStore::default();
    store.open("file:///f", &initial, 0, lang);
    let mut version = 0i32;
    let mut steps = 0;
    while !b.done() && steps < 200 {
        steps += 1;
        let text = piece_text(&mut b);
        let full = b.u8() % 32 == 0;
        let edit = if full {
            Edit {
                range: None,
                text: text.clone(),
            }
        } else {
            let start = Position::new(number(&mut b), number(&mut b));
            let end = Position::new(number(&mut b), number(&mut b));
            Edit {
                range: Some((start, end)),
                text: text.clone(),
            }
        };
        // The model.
        let expect: Result<(usize, usize), ()> = match edit.range {
            None => Ok((0, naive.len())),
            Some((s, e)) if s > e => Err(()),
            Some((s, e)) => match (naive_index(&naive, s, enc), naive_index(&naive, e, enc)) {
                (Some(a), Some(z)) => Ok((a, z.max(a))),
                _ => Err(()),
            },
        };
        let got = doc.apply(&edit, enc);
        match (expect, &got) {
            (Ok((s, e)), Ok(())) => {
                naive.splice(s..e, text.chars());
            }
            (Err(()), Err(DocError::ReversedRange { .. } | DocError::LineOutOfRange { .. })) => {}
            (want, got) => panic!("edit {edit:?} on {naive:?}: model {want:?}, document {got:?}"),
        }
        let now: String = naive.iter().collect();
        assert_eq!(doc.rope.to_string(), now, "after {edit:?}");
        if b.u8() % 4 == 0 {
            doc.reparse();
            if let Some(tree) = doc.tree() {
                assert_eq!(
                    tree.root_node().end_byte(),
                    now.len(),
                    "tree out of step with the text"
                );
            }
        }
        // Positions agree with the model (not between \r and \n).
        let probe = b.below(naive.len() + 1);
        let mid_crlf =
            probe > 0 && probe < naive.len() && naive[probe - 1] == '\r' && naive[probe] == '\n';
        if !mid_crlf {
            let p = naive_position(&naive, probe, enc);
            assert_eq!(
                doc.position(probe, enc),
                p,
                "position of {probe} in {now:?}"
            );
            assert_eq!(
                doc.char_index(p, enc),
                Ok(probe),
                "round trip of {p:?} in {now:?}"
            );
        }
        // The store: versions never go backwards; a refused batch or a
        // stale version leaves the text as it was before the failing edit.
        let v = version + b.below(5) as i32 - 1;
        let before = store.snapshot("file:///f").unwrap().doc;
        let r = store.apply("file:///f", v, std::slice::from_ref(&edit), enc);
        let after = store.snapshot("file:///f").unwrap().doc;
        if v < version {
            assert!(matches!(r, Err(DocError::StaleVersion { .. })), "{r:?}");
            assert_eq!(after.rope.to_string(), before.rope.to_string());
            assert_eq!(after.version, version);
        } else if r.is_ok() {
            version = v;
            assert_eq!(after.version, v);
        } else {
            assert_eq!(after.rope.to_string(), before.rope.to_string());
        }
        // Keep the store's copy in step with the model for the next round.
        store.open("file:///f", &now, version, lang);
    }
}
