//! Stress over real LSP stdio with the real default model.
//!
//! 120 open documents with thousands of edits interleaved across them
//! (inserts, deletes, multi-line replaces, batched changes, full-text
//! replaces; emoji and CJK so UTF-16 columns matter), completion requests
//! sprinkled in and some cancelled, then a burst of keystrokes on one
//! document where every keystroke sends an inline completion and cancels
//! the previous one, as VS Code does. Checked:
//!
//! - every request is answered exactly once (a result, or
//!   `RequestCancelled` -32800), and nothing else arrives;
//! - every document's final text and version on the server equal the
//!   client's (read back with the test-only `slm-ls/test/documentText`);
//! - memory after closing everything returns near the baseline.
//!
//! Size: `SLM_STRESS_SCALE` multiplies the edit and keystroke counts
//! (default 1: ~3000 edits + 2000 keystrokes, well under a minute on 2
//! cores). `SLM_STRESS_SCALE=10 cargo test --release --test stress_lsp --
//! --nocapture` is the longer run.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::{json, Value};

/// Small deterministic PRNG (xorshift64*), seedable from the environment
/// (`SLM_STRESS_SEED`) to replay a failure.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() % 1_000_000) as f64 / 1_000_000.0 < p
    }
    fn pick<'a>(&mut self, xs: &'a [&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

const PIECES: &[&str] = &[
    "a",
    "x",
    "_",
    "0",
    " ",
    "(",
    ")",
    ":",
    ".",
    "=",
    "\n",
    "\n    ",
    "é",
    "日本",
    "😀",
    "👩‍💻",
    "𝕏",
    "def ",
    "return ",
    "self.",
    "\"s\"",
    "# note\n",
];

/// The client's copy of a document.
struct Doc {
    uri: String,
    text: String,
    version: i32,
}

/// (line, UTF-16 column) of char index `i` (documents use `\n` only).
fn position(text: &str, i: usize) -> (u32, u32) {
    let mut line = 0u32;
    let mut col = 0u32;
    for ch in text.chars().take(i) {
        if ch == '\n' {
            line += 1;
            col = 0;
        } else {
            col += ch.len_utf16() as u32;
        }
    }
    (line, col)
}

fn byte_of(text: &str, char_idx: usize) -> usize {
    text.char_indices()
        .nth(char_idx)
        .map(|(b, _)| b)
        .unwrap_or(text.len())
}

/// Replace chars `s..e` with `new`, returning the LSP change for it.
fn edit(doc: &mut Doc, s: usize, e: usize, new: &str) -> Value {
    let (l0, c0) = position(&doc.text, s);
    let (l1, c1) = position(&doc.text, e);
    let (bs, be) = (byte_of(&doc.text, s), byte_of(&doc.text, e));
    doc.text.replace_range(bs..be, new);
    json!({ "range": { "start": { "line": l0, "character": c0 }, "end": { "line": l1, "character": c1 } }, "text": new })
}

fn initial_text(rng: &mut Rng, d: usize) -> String {
    let lines = 20 + rng.below(120);
    let mut t = format!("# document {d} 😀 日本\nimport os\n\n");
    for i in 0..lines {
        match i % 4 {
            0 => t.push_str(&format!("def function_{d}_{i}(value, other):\n")),
            1 => t.push_str(&format!(
                "    result = value * {i} + other  # é {}\n",
                rng.pick(PIECES).trim()
            )),
            2 => t.push_str("    if result > 10:\n        return result\n"),
            _ => t.push_str("    return other\n\n"),
        }
    }
    t
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

struct Load {
    requests: Vec<i64>,
    cancels_sent: usize,
    edits: usize,
    keystrokes: usize,
}

fn send_completion(
    s: &mut TestServer,
    rng: &mut Rng,
    doc: &Doc,
    cursor: usize,
    load: &mut Load,
) -> i64 {
    let (line, character) = position(&doc.text, cursor);
    let params = json!({ "textDocument": { "uri": doc.uri }, "position": { "line": line, "character": character }, "context": { "triggerKind": 2 } });
    let method = if rng.chance(0.5) {
        "textDocument/inlineCompletion"
    } else {
        "textDocument/completion"
    };
    let id = s.request_async(method, params);
    load.requests.push(id);
    id
}

#[test]
fn many_documents_edits_keystrokes_and_cancellations() {
    common::model_path();
    let scale: f64 = std::env::var("SLM_STRESS_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let seed: u64 = std::env::var("SLM_STRESS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_0007);
    let n_docs = 120;
    let n_edits = (3000.0 * scale) as usize;
    let n_keys = (2000.0 * scale) as usize;
    eprintln!("stress: seed {seed}, {n_docs} documents, {n_edits} edits, {n_keys} keystrokes");
    let mut rng = Rng(seed);

    let mut s = TestServer::spawn(&[], &[("SLM_LS_TEST_HOOKS", "1")]);
    s.initialize(
        json!({
            "completion": { "maxTokens": 6, "maxTimeMs": 300 },
            "context": { "prefixTokens": 256, "suffixTokens": 64 }
        }),
        json!({}),
    );
    s.wait_ready();
    // Baseline: model loaded, KV cache allocated by a first completion.
    // A long enough document that the prompt fills its whole window, so
    // llama.cpp's compute buffers reach their working size here.
    let warm_uri = "file:///stress/warmup.py";
    let warm_text = initial_text(&mut Rng(1), 9999);
    s.open(warm_uri, "python", &warm_text);
    let lines = warm_text.lines().count() as u32;
    for line in [lines - 1, lines / 2, 3] {
        s.inline_completion(warm_uri, line, 0);
    }
    s.notify(
        "textDocument/didClose",
        json!({ "textDocument": { "uri": warm_uri } }),
    );
    s.request("slm-ls/stats", json!(null));
    let rss_base = rss_kb(s.pid());
    let t0 = Instant::now();

    let mut docs: Vec<Doc> = (0..n_docs)
        .map(|d| Doc {
            uri: format!("file:///stress/pkg{}/module_{d}.py", d % 7),
            text: initial_text(&mut rng, d),
            version: 1,
        })
        .collect();
    for d in &docs {
        s.open(&d.uri, "python", &d.text);
    }
    let mut load = Load {
        requests: Vec::new(),
        cancels_sent: 0,
        edits: 0,
        keystrokes: 0,
    };

    // Phase 1: edits interleaved across every document.
    for _ in 0..n_edits {
        let di = rng.below(docs.len());
        let doc = &mut docs[di];
        let len = doc.text.chars().count();
        let kind = rng.below(100);
        let mut changes = Vec::new();
        let mut cursor = 0;
        if kind < 1 {
            // Full-text replace (no range).
            doc.text = format!("# replaced {}\n{}", rng.next() % 1000, rng.pick(PIECES));
            changes.push(json!({ "text": doc.text }));
            cursor = doc.text.chars().count();
        } else {
            let n_changes = if kind < 6 { 2 + rng.below(2) } else { 1 };
            for _ in 0..n_changes {
                let len = doc.text.chars().count();
                let start = rng.below(len + 1);
                let (end, new) = match rng.below(10) {
                    0..=5 => (start, rng.pick(PIECES).to_string()),
                    6..=8 => ((start + 1 + rng.below(10)).min(len), String::new()),
                    _ => (
                        (start + rng.below(80)).min(len),
                        format!("{}\n{}", rng.pick(PIECES), rng.pick(PIECES)),
                    ),
                };
                changes.push(edit(doc, start, end, &new));
                cursor = start + new.chars().count();
            }
        }
        let _ = len;
        doc.version += 1 + rng.below(2) as i32;
        let (uri, version) = (doc.uri.clone(), doc.version);
        s.change(&uri, version, Value::Array(changes));
        load.edits += 1;
        if rng.chance(0.01) {
            let doc = &docs[di];
            send_completion(&mut s, &mut rng, doc, cursor, &mut load);
        }
        if rng.chance(0.01) && !load.requests.is_empty() {
            let victim = load.requests[rng.below(load.requests.len())];
            s.notify("$/cancelRequest", json!({ "id": victim }));
            load.cancels_sent += 1;
        }
        if rng.chance(0.01) {
            load.requests
                .push(s.request_async("slm-ls/stats", json!(null)));
        }
    }

    // Phase 2: a keystroke burst on one document; each keystroke asks for
    // an inline completion and cancels the previous one.
    let di = rng.below(docs.len());
    let mut prev: Option<i64> = None;
    for k in 0..n_keys {
        let doc = &mut docs[di];
        let len = doc.text.chars().count();
        let change = if k % 9 == 8 && len > 0 {
            edit(doc, len - 1, len, "") // backspace
        } else {
            let ch = ["a", "b", "_", "(", " ", "\n", "é", "😀"][k % 8];
            edit(doc, len, len, ch)
        };
        doc.version += 1;
        let (uri, version) = (doc.uri.clone(), doc.version);
        s.change(&uri, version, json!([change]));
        load.keystrokes += 1;
        let cursor = docs[di].text.chars().count();
        let (line, character) = position(&docs[di].text, cursor);
        let id = s.request_async(
            "textDocument/inlineCompletion",
            json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": character }, "context": { "triggerKind": 2 } }),
        );
        load.requests.push(id);
        if let Some(p) = prev {
            s.notify("$/cancelRequest", json!({ "id": p }));
            load.cancels_sent += 1;
        }
        prev = Some(id);
    }
    let sent_s = t0.elapsed().as_secs_f64();

    // Every request answered exactly once.
    let mut outcomes: HashMap<&'static str, usize> = HashMap::new();
    let mut last_response = String::new();
    for &id in &load.requests {
        let r = s.response(id, Duration::from_secs(300));
        if id == *load.requests.last().unwrap() {
            last_response = r.to_string();
        }
        let kind = match r.get("error") {
            None => "result",
            Some(e) if e["code"] == -32800 => "cancelled",
            Some(e) => panic!("request {id} failed: {e}"),
        };
        *outcomes.entry(kind).or_default() += 1;
    }
    let answered_s = t0.elapsed().as_secs_f64();
    let last = *load.requests.last().unwrap();
    // The last keystroke's request was not superseded: it gets a result.
    assert!(
        last_response.contains("\"result\""),
        "the last keystroke's completion {last} was not answered with a result: {last_response}"
    );

    // Final text and version of every document equal the client's.
    let rss_peak = rss_kb(s.pid());
    for d in &docs {
        let t = s.request("slm-ls/test/documentText", json!({ "uri": d.uri }));
        assert_eq!(t["version"], d.version, "{}: version", d.uri);
        let got = t["text"].as_str().unwrap();
        if got != d.text {
            let at = got
                .chars()
                .zip(d.text.chars())
                .position(|(a, b)| a != b)
                .unwrap_or(got.chars().count().min(d.text.chars().count()));
            panic!(
                "{}: server text differs from the client's at char {at} (server {} chars, client {} chars)",
                d.uri,
                got.chars().count(),
                d.text.chars().count()
            );
        }
    }
    // Nothing more arrives: no request was answered twice.
    std::thread::sleep(Duration::from_millis(500));
    while let Some(m) = s.recv(Duration::from_millis(200)) {
        assert!(
            m.get("method").is_some(),
            "an extra response arrived (a request answered twice?): {m}"
        );
    }

    // Close everything: memory returns near the baseline.
    for d in &docs {
        s.notify(
            "textDocument/didClose",
            json!({ "textDocument": { "uri": d.uri } }),
        );
    }
    let stats = s.request("slm-ls/stats", json!(null));
    assert_eq!(stats["openDocuments"], 0);
    std::thread::sleep(Duration::from_millis(300));
    let rss_closed = rss_kb(s.pid());
    let total_s = t0.elapsed().as_secs_f64();
    eprintln!(
        "STRESS: {n_docs} docs, {} edits, {} keystrokes, {} requests ({} results, {} cancelled; {} cancel notifications), last id {last}; sent in {sent_s:.1} s, all answered at {answered_s:.1} s, total {total_s:.1} s; RSS base {rss_base} kB, peak {rss_peak} kB, after close {rss_closed} kB; engine {}",
        load.edits,
        load.keystrokes,
        load.requests.len(),
        outcomes.get("result").copied().unwrap_or(0),
        outcomes.get("cancelled").copied().unwrap_or(0),
        load.cancels_sent,
        stats["completion"]
    );
    assert!(
        outcomes.get("result").copied().unwrap_or(0) > 0,
        "no request got a result"
    );
    assert!(
        rss_closed < rss_base + 16 * 1024,
        "memory after closing every document: {rss_closed} kB vs baseline {rss_base} kB"
    );
    assert!(s.shutdown().success());
}
