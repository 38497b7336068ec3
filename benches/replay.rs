//! Keystroke-replay benchmark: does typing feel instant?
//!
//! Takes real source files (the Python standard library on this machine and
//! crates in the cargo registry: code not written here), removes the rest of
//! a line deep in the file (~1.5K tokens of context above it), and types it
//! back one character at a time over LSP against the release binary with
//! the default model, the way an editor does: each keystroke sends
//! `didChange` + `textDocument/inlineCompletion` (with a work-done token, so
//! streamed text is visible), and a keystroke that arrives before the
//! previous answer cancels it with `$/cancelRequest`.
//!
//! Prints, for KV reuse on and off (`model.cacheReuse`), in the same run:
//! cold latency (first request after opening), warm p50/p95 to the full
//! suggestion and to the first streamed text, the reuse ratio, cancellations
//! and typed-ahead hits; then the on/off ratios, and how promptly a
//! cancelled cold prefill is answered.
//!
//! Also prints how often the engine had to cut a prompt's head (the
//! context's token budgets should make that never happen) and the model
//! path's p95/p50 (a prompt head that moves while typing shows up there).
//!
//! Run: `cargo bench --bench replay` (env: REPLAY_FILES=N files per
//! language, REPLAY_INTERVAL_MS=typing interval, default 150;
//! REPLAY_RUNS=editor,on,nospec,off,cancel,indexing picks the runs, default
//! all but `indexing` (issue 19: "on" while the workspace index re-reads a
//! generated tree of REPLAY_INDEX_FILES files, default 10,000);
//! REPLAY_AUTOPAIR=1 types like an editor that closes brackets and quotes;
//! REPLAY_THREADS=N sets model.threads; REPLAY_SETTINGS=JSON is merged into
//! every run's settings; SLM_LS_MODEL picks another model; for the contention rows run it
//! beside `benches/busy_core.sh`; with
//! `SLM_TEST_LOG=warn,slm_ls::engine::actor=info` it also prints the prompt
//! tokens evaluated per warm request, issue 20's measure).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::json;

struct Case {
    name: String,
    language: &'static str,
    text: String,
    /// Char offset where the removed span starts (the cursor) and the span.
    cursor: usize,
    span: String,
}

fn registry_file(krate: &str, rel: &str) -> Option<PathBuf> {
    common::registry_crates(&[krate])
        .into_iter()
        .map(|c| c.join(rel))
        .find(|p| p.exists())
}

/// Pick a line at least `min_chars` into the file whose code after the
/// indentation is 24..60 chars long, and remove all but its first few chars.
fn make_case(name: &str, language: &'static str, text: String, min_chars: usize) -> Option<Case> {
    let mut offset = 0usize; // chars
    for line in text.split_inclusive('\n') {
        let len = line.chars().count();
        let body = line.trim_end_matches('\n');
        let code = body.trim_start();
        let indent = body.chars().count() - code.chars().count();
        if offset >= min_chars
            && (24..60).contains(&code.chars().count())
            && !code.starts_with('#')
            && !code.starts_with("//")
        {
            let keep = indent + 4;
            let span: String = body.chars().skip(keep).collect();
            let cursor = offset + keep;
            let mut chars: Vec<char> = text.chars().collect();
            chars.drain(cursor..cursor + span.chars().count());
            return Some(Case {
                name: name.into(),
                language,
                text: chars.into_iter().collect(),
                cursor,
                span,
            });
        }
        offset += len;
    }
    None
}

fn cases() -> Vec<Case> {
    let per_lang: usize = std::env::var("REPLAY_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let lib = common::stdlib_dir();
    let mut out = Vec::new();
    for f in [
        "textwrap.py",
        "shlex.py",
        "json/decoder.py",
        "argparse.py",
        "csv.py",
    ]
    .iter()
    .take(per_lang)
    {
        if let Ok(t) = std::fs::read_to_string(lib.join(f)) {
            out.extend(make_case(f, "python", t, 5000));
        }
    }
    for (k, rel) in [
        ("ropey", "src/rope.rs"),
        ("serde_json", "src/de.rs"),
        ("tokio", "src/sync/mutex.rs"),
    ]
    .iter()
    .take(per_lang)
    {
        if let Some(p) = registry_file(k, rel) {
            if let Ok(t) = std::fs::read_to_string(&p) {
                out.extend(make_case(&format!("{k}/{rel}"), "rust", t, 5000));
            }
        }
    }
    out
}

/// (line, utf-16 col) of a char offset.
fn position(text: &str, char_idx: usize) -> (u32, u32) {
    let before: String = text.chars().take(char_idx).collect();
    let line = before.matches('\n').count() as u32;
    let col = before.rsplit('\n').next().unwrap().encode_utf16().count() as u32;
    (line, col)
}

#[derive(Default)]
struct Run {
    cold_ms: Vec<f64>,
    warm_full_ms: Vec<f64>,
    warm_first_ms: Vec<f64>,
    model_full_ms: Vec<f64>,
    cancelled: usize,
    keystrokes: usize,
    prompt_tokens: u64,
    reused_tokens: u64,
    typed_ahead: u64,
    /// Engine warnings "prompt exceeds the context; cutting its head".
    head_cuts: usize,
    /// Prompt tokens the model evaluated per warm keystroke request (from
    /// the engine's `completion` log lines; needs
    /// `SLM_TEST_LOG=warn,slm_ls::engine::actor=info`).
    evaluated: Vec<f64>,
    /// Times the whole tree was sent as changed (the `indexing` run).
    reindexed: usize,
}

/// How often the `indexing` run tells the index that every file of its
/// tree changed: about the time one pass over 10,000 files takes on
/// 2 cores, so the index thread is never idle for long.
const REINDEX_EVERY: Duration = Duration::from_secs(4);

/// The `evaluated=N` of the engine's completion log lines, in order.
fn evaluated_counts(log: &str) -> Vec<f64> {
    log.lines()
        .filter(|l| l.contains("actor: completion "))
        .filter_map(|l| {
            l.split("evaluated=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

fn pct(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return f64::NAN;
    }
    s[((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1]
}

/// `interval`: typing interval with editor-style cancellation, or `None` to
/// wait for every answer (measures the model path on every keystroke).
/// `max_keys`: keystrokes per file (the reuse-off run is slow).
fn run(
    cases: &[Case],
    reuse: bool,
    typed_ahead: bool,
    draft: u32,
    interval: Option<Duration>,
    max_keys: usize,
    index: Option<&[PathBuf]>,
) -> Run {
    // REPLAY_THREADS: model.threads (0 = the default, all cores).
    let threads: u32 = std::env::var("REPLAY_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // BENCH_FIM_LINE_IN_MIDDLE=1: model.fimLineInMiddle (layout comparison).
    let line_in_middle = std::env::var("BENCH_FIM_LINE_IN_MIDDLE").is_ok_and(|v| v == "1");
    let mut init = json!({
        "model": { "cacheReuse": reuse, "threads": threads, "fimLineInMiddle": line_in_middle },
        "completion": { "typedAhead": typed_ahead, "draftTokens": draft }
    });
    // REPLAY_SETTINGS='{"model":{"draft":"qwen2.5-coder-0.5b"}}': merged
    // into every run's settings.
    if let Ok(extra) = std::env::var("REPLAY_SETTINGS") {
        let extra = serde_json::from_str(&extra).expect("REPLAY_SETTINGS is JSON");
        common::merge_json(&mut init, &extra);
    }
    // `index`: the files of a generated project tree, the workspace root
    // (issue 19's "replay while indexing"): the index builds it at start
    // and is told every file changed every REINDEX_EVERY, so it re-reads
    // and re-parses the whole tree for the whole replay.
    let mut s = match index {
        None => TestServer::start(init),
        Some(files) => {
            common::merge_json(&mut init, &json!({ "context": { "workspace": true } }));
            let mut s = TestServer::spawn(&[], &[]);
            let root = files[0]
                .ancestors()
                .nth(3)
                .expect("d*/e*/f* under the root");
            s.initialize_at(&format!("file://{}", root.display()), init, json!({}));
            s
        }
    };
    let changed: Option<serde_json::Value> = index.map(|files| {
        json!({ "changes": files.iter().map(|f| json!({ "uri": format!("file://{}", f.display()), "type": 2 })).collect::<Vec<_>>() })
    });
    let mut reindexed = Instant::now();
    s.wait_ready();
    let autopair = std::env::var("REPLAY_AUTOPAIR").is_ok_and(|v| v == "1");
    let mut r = Run::default();
    for (ci, case) in cases.iter().enumerate() {
        let uri = format!("file:///bench/{ci}/{}", case.name);
        s.open(&uri, case.language, &case.text);
        let mut text = case.text.clone();
        let mut cursor = case.cursor;
        // Cold: the first request right after opening.
        let (l, c) = position(&text, cursor);
        let logged_before_cold = evaluated_counts(&s.log_text()).len();
        let t = Instant::now();
        let id = s.request_async("textDocument/inlineCompletion", json!({ "textDocument": { "uri": uri }, "position": { "line": l, "character": c }, "context": { "triggerKind": 2 } }));
        let resp = s.response(id, Duration::from_secs(120));
        assert!(resp.get("error").is_none(), "cold request failed: {resp}");
        r.cold_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        // Reuse is measured on the warm requests only.
        let before = s.request("slm-ls/stats", json!(null));
        let mut version = 2;
        let mut inflight: Option<(i64, Instant, String)> = None;
        let mut first_seen: HashMap<String, f64> = HashMap::new();
        for ch in case.span.chars().take(max_keys) {
            if let Some(changed) = &changed {
                if reindexed.elapsed() >= REINDEX_EVERY {
                    s.notify("workspace/didChangeWatchedFiles", changed.clone());
                    r.reindexed += 1;
                    reindexed = Instant::now();
                }
            }
            let due = Instant::now() + interval.unwrap_or(Duration::from_secs(3600));
            let (l, c) = position(&text, cursor);
            // REPLAY_AUTOPAIR=1: an editor that closes brackets and quotes
            // (VS Code's default): an opener inserts its pair, typing the
            // closer that follows the cursor steps over it.
            let after_word = cursor > 0
                && text
                    .chars()
                    .nth(cursor - 1)
                    .is_some_and(|p| p.is_alphanumeric());
            let pair = pair_of(ch).filter(|_| !(after_word && "\"'".contains(ch)));
            let typed = match autopair.then(|| (text.chars().nth(cursor), pair)) {
                Some((Some(next), _)) if next == ch && ")]}\"'".contains(ch) => String::new(),
                Some((_, Some(close))) => format!("{ch}{close}"),
                _ => ch.to_string(),
            };
            if !typed.is_empty() {
                s.change(&uri, version, json!([{ "range": { "start": { "line": l, "character": c }, "end": { "line": l, "character": c } }, "text": typed }]));
                version += 1;
                text = {
                    let mut chars: Vec<char> = text.chars().collect();
                    let at = cursor;
                    chars.splice(at..at, typed.chars());
                    chars.into_iter().collect()
                };
            }
            cursor += 1;
            if let Some((old, _, _)) = inflight.take() {
                // The editor cancels the stale request; its answer (an error) is drained below.
                s.notify("$/cancelRequest", json!({ "id": old }));
                r.cancelled += 1;
                let _ = s.response(old, Duration::from_secs(60));
            }
            let (l, c) = position(&text, cursor);
            let token = format!("k{ci}-{version}");
            let sent = Instant::now();
            let id = s.request_async("textDocument/inlineCompletion", json!({ "textDocument": { "uri": uri }, "position": { "line": l, "character": c }, "context": { "triggerKind": 2 }, "workDoneToken": token }));
            r.keystrokes += 1;
            // Wait for the answer until the next keystroke is due.
            loop {
                let left = due.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    inflight = Some((id, sent, token.clone()));
                    break;
                }
                let Some(msg) = s.recv(left) else { continue };
                if msg["method"] == "$/progress" && msg["params"]["value"]["kind"] == "report" {
                    if let Some(tok) = msg["params"]["token"].as_str() {
                        first_seen
                            .entry(tok.to_string())
                            .or_insert(sent.elapsed().as_secs_f64() * 1000.0);
                    }
                    continue;
                }
                if msg.get("method").is_some() {
                    if let Some(rid) = msg.get("id") {
                        s.send(&json!({ "jsonrpc": "2.0", "id": rid, "result": null }));
                    }
                    continue;
                }
                if msg["id"] == json!(id) {
                    let full = sent.elapsed().as_secs_f64() * 1000.0;
                    assert!(
                        msg.get("error").is_none(),
                        "keystroke request failed: {msg}"
                    );
                    r.warm_full_ms.push(full);
                    match first_seen.get(&token) {
                        Some(f) => {
                            r.warm_first_ms.push(*f);
                            r.model_full_ms.push(full);
                        }
                        // No stream: answered from the typed-ahead cache (or empty).
                        None => r.warm_first_ms.push(full),
                    }
                    if interval.is_some() {
                        std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    }
                    break;
                }
            }
        }
        if let Some((old, _, _)) = inflight.take() {
            let _ = s.response(old, Duration::from_secs(60));
        }
        let after = s.request("slm-ls/stats", json!(null));
        let d = |k: &str| {
            after["completion"][k].as_u64().unwrap_or(0)
                - before["completion"][k].as_u64().unwrap_or(0)
        };
        // Exclude the cold request: its prompt was evaluated from scratch.
        std::thread::sleep(Duration::from_millis(200)); // the log reader thread
        let counts = evaluated_counts(&s.log_text());
        r.evaluated
            .extend(counts.iter().skip(logged_before_cold + 1).copied());
        r.prompt_tokens += d("promptTokens");
        r.reused_tokens += d("reusedTokens");
        r.typed_ahead += d("typedAheadHits");
    }
    r.head_cuts = s.log_text().matches("cutting its head").count();
    // Resident memory of the server after the replay, vs the model file.
    let rss_kb = std::fs::read_to_string(format!("/proc/{}/status", s.pid()))
        .ok()
        .and_then(|st| {
            st.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        });
    if let Some(kb) = rss_kb {
        let model_mb = std::fs::metadata(common::model_path()).map_or(0, |m| m.len() >> 20);
        println!(
            "server RSS after this run: {} MiB (model file {model_mb} MiB)",
            kb >> 10
        );
    }
    s.shutdown();
    r
}

/// How long a cancelled cold prefill takes to answer `RequestCancelled`.
fn cancel_latency(case: &Case, n: usize) -> Vec<f64> {
    let mut s = TestServer::start(json!({ "model": { "cacheReuse": false } }));
    s.wait_ready();
    let mut out = Vec::new();
    for i in 0..n {
        let uri = format!("file:///bench/cancel{i}.txt");
        s.open(&uri, case.language, &case.text);
        let (l, c) = position(&case.text, case.cursor);
        let id = s.request_async("textDocument/inlineCompletion", json!({ "textDocument": { "uri": uri }, "position": { "line": l, "character": c }, "context": { "triggerKind": 2 } }));
        std::thread::sleep(Duration::from_millis(400));
        let cancelled_before = s.request("slm-ls/stats", json!(null))["completion"]["cancelled"]
            .as_u64()
            .unwrap();
        let t = Instant::now();
        s.notify("$/cancelRequest", json!({ "id": id }));
        let r = s.response(id, Duration::from_secs(60));
        assert_eq!(r["error"]["code"], -32800, "{r}");
        // The client is answered at once; what matters is when the engine
        // stops prefilling and is free for the next request.
        loop {
            let c = s.request("slm-ls/stats", json!(null))["completion"]["cancelled"]
                .as_u64()
                .unwrap();
            if c > cancelled_before {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        out.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    s.shutdown();
    out
}

fn main() {
    common::model_path();
    let interval = Duration::from_millis(
        std::env::var("REPLAY_INTERVAL_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(150),
    );
    let cases = cases();
    assert!(!cases.is_empty(), "no source files found");
    println!(
        "slm-ls keystroke replay: {} files, {} keystrokes each run, typing interval {:?}",
        cases.len(),
        cases.iter().map(|c| c.span.chars().count()).sum::<usize>(),
        interval
    );
    for c in &cases {
        println!(
            "  {:<24} {:<7} cursor at char {}, retyping {:?}",
            c.name, c.language, c.cursor, c.span
        );
    }
    let runs =
        std::env::var("REPLAY_RUNS").unwrap_or_else(|_| "editor,on,nospec,off,cancel".into());
    let wanted = |name: &str| runs.split(',').any(|r| r.trim() == name);
    let off_keys: usize = std::env::var("REPLAY_OFF_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let mut results: Vec<(&str, Run)> = Vec::new();
    for (name, reuse, typed_ahead, draft, every, keys) in [
        ("editor", true, true, 8, Some(interval), usize::MAX),
        ("on", true, false, 8, None, usize::MAX),
        ("nospec", true, false, 0, None, usize::MAX),
        ("off", false, false, 8, None, off_keys),
    ] {
        if wanted(name) {
            results.push((
                name,
                run(&cases, reuse, typed_ahead, draft, every, keys, None),
            ));
        }
    }
    // `indexing`: "on" while the workspace index reads a generated tree of
    // REPLAY_INDEX_FILES files (default 10,000) over and over.
    if wanted("indexing") {
        let n = std::env::var("REPLAY_INDEX_FILES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000);
        let scratch = common::Scratch::new("replay-index");
        let files = common::synthetic_tree(&scratch, n);
        let r = run(&cases, true, false, 8, None, usize::MAX, Some(&files));
        println!(
            "indexing: a tree of {n} files, sent as changed {} times during the run",
            r.reindexed
        );
        results.push(("indexing", r));
    }
    let get = |name: &str| results.iter().find(|(n, _)| *n == name).map(|(_, r)| r);
    let row = |name: &str, r: &Run| {
        println!(
            "| {:<10} | {:>8.0} | {:>8.0} | {:>8.0} | {:>8.0} | {:>8.0} | {:>8.0} | {:>6.1}% | {:>3}/{:<3} | {:>4} | {:>4} |",
            name,
            pct(&r.cold_ms, 0.5),
            pct(&r.warm_full_ms, 0.5),
            pct(&r.warm_full_ms, 0.95),
            pct(&r.warm_first_ms, 0.5),
            pct(&r.model_full_ms, 0.5),
            pct(&r.model_full_ms, 0.95),
            if r.prompt_tokens == 0 { 0.0 } else { 100.0 * r.reused_tokens as f64 / r.prompt_tokens as f64 },
            r.cancelled,
            r.keystrokes,
            r.typed_ahead,
            r.head_cuts,
        );
    };
    println!();
    println!("| KV reuse   | cold p50 | warm p50 | warm p95 | 1st text | model p50| model p95| reused  | cancelled | t-a  | cuts |");
    println!("|------------|---------:|---------:|---------:|---------:|---------:|---------:|--------:|----------:|-----:|-----:|");
    for (name, r) in &results {
        row(name, r);
    }
    println!("(ms. editor = reuse on + typed-ahead cache, typing every {interval:?} and cancelling stale requests, as a user sees it;");
    println!(" on/off = model.cacheReuse with the typed-ahead cache off (nospec: completion.draftTokens 0), waiting for every answer, so every keystroke is a model request;");
    println!(" off runs the first {off_keys} keystrokes per file. warm = keystrokes after the first request; 1st text = first streamed $/progress text;");
    println!(" model = answers that came from the model (streamed), not the cache; reused = prompt tokens reused from the KV cache on warm requests)");
    println!(" cuts = prompts the engine had to cut at the head: the context's token budgets should keep this 0)");
    println!();
    for (name, r) in &results {
        if !r.evaluated.is_empty() {
            println!(
                "{name}: prompt tokens evaluated per warm model request: p50 {:.0}, p95 {:.0}, max {:.0} ({} requests)",
                pct(&r.evaluated, 0.5),
                pct(&r.evaluated, 0.95),
                pct(&r.evaluated, 1.0),
                r.evaluated.len()
            );
        }
    }
    if let Some(on) = get("on") {
        println!(
            "warm p50 / cold p50 (reuse on): {:.1}%",
            100.0 * pct(&on.warm_full_ms, 0.5) / pct(&on.cold_ms, 0.5)
        );
        println!(
            "model requests p95 / p50 (reuse on; a moving prompt head shows here): {:.2}x",
            pct(&on.model_full_ms, 0.95) / pct(&on.model_full_ms, 0.5)
        );
        if let Some(off) = get("off") {
            println!(
                "warm p50 reuse off / on: {:.1}x",
                pct(&off.warm_full_ms, 0.5) / pct(&on.warm_full_ms, 0.5)
            );
        }
        if let Some(ix) = get("indexing") {
            println!(
                "while indexing / without (issue 19, target within 10%): warm p50 {:.2}x, p95 {:.2}x, 1st text p50 {:.2}x",
                pct(&ix.warm_full_ms, 0.5) / pct(&on.warm_full_ms, 0.5),
                pct(&ix.warm_full_ms, 0.95) / pct(&on.warm_full_ms, 0.95),
                pct(&ix.warm_first_ms, 0.5) / pct(&on.warm_first_ms, 0.5)
            );
        }
        if let Some(no_spec) = get("nospec") {
            println!(
                "speculative decoding (draftTokens 8 vs 0): warm p50 {:.2}x, p95 {:.2}x",
                pct(&no_spec.warm_full_ms, 0.5) / pct(&on.warm_full_ms, 0.5),
                pct(&no_spec.warm_full_ms, 0.95) / pct(&on.warm_full_ms, 0.95)
            );
        }
    }
    if wanted("cancel") {
        let c = cancel_latency(&cases[0], 5);
        println!("cancel during a cold prefill -> engine free again: p50 {:.0} ms, max {:.0} ms (prefill chunk = model.batchSize tokens)", pct(&c, 0.5), pct(&c, 1.0));
    }
}

/// The closer an editor inserts after `open` (REPLAY_AUTOPAIR).
fn pair_of(open: char) -> Option<char> {
    match open {
        '(' => Some(')'),
        '[' => Some(']'),
        '{' => Some('}'),
        '"' => Some('"'),
        '\'' => Some('\''),
        _ => None,
    }
}
