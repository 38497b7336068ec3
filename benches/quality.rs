//! Quality benchmark: does the context + post-processing pipeline make
//! suggestions right more often than a naive prompt?
//!
//! Fixtures are built from real code not written here: the Python standard
//! library of the `python3` on the machine, crates in the cargo registry
//! cache (Rust; llama.cpp's C++ sources inside `llama-cpp-sys-2`), npm's own
//! JavaScript, and the Go files shipped in git's contrib docs. For each
//! language a fixed-seed RNG picks syntactic positions from tree-sitter
//! parses and removes:
//! - `expr`: one expression inside a line (the rest of the line stays);
//! - `line`: one whole single-line statement (after its indentation);
//! - `block`: two or three consecutive single-line statements of a block.
//!
//! Each gap is filled over LSP (`textDocument/inlineCompletion`) by the
//! release binary with the default model, twice: the default pipeline, and
//! the baseline `context.naive` (a plain prefix window, no cross-file
//! snippets, no skipping, no post-processing). Two sibling files of the
//! same folder are open alongside, as in an editor (cross-file context).
//!
//! Scores: first-line exact match (the suggestion's first line equals the
//! removed text's first line, trailing spaces ignored: what the user would
//! accept as is), loose match (the first non-blank lines equal once
//! trimmed at both ends: right code, whatever the whitespace around it, so
//! the baseline is not judged only on the whitespace it gets wrong) and
//! edit similarity
//! (1 − Levenshtein / longer length, over the suggestion's first N lines
//! for a removed text of N lines).
//!
//! Run: `cargo bench --bench quality` (env: QUALITY_SAMPLES per language,
//! default 40; QUALITY_SEED, default 7; QUALITY_MAX_TOKENS, default 48;
//! QUALITY_LANGS, comma-separated subset; QUALITY_PREFIX_TOKENS, default
//! 512, with a quarter of it for cross-file snippets; QUALITY_THREADS, model threads,
//! default 0 = all cores; QUALITY_VERBOSE=1 prints every sample;
//! QUALITY_NAIVE=0 skips the naive baseline; SLM_LS_MODEL picks another model;
//! QUALITY_DUMP=FILE writes the samples for `benches/peer_llama_server.py --quality`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use common::TestServer;
use serde_json::json;
use slm_ls::syntax::{parse_str, Lang};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Expr,
    Line,
    Block,
}

struct Sample {
    lang: &'static str,
    language_id: &'static str,
    file: PathBuf,
    kind: Kind,
    /// Document text with the gap removed.
    text: String,
    /// Cursor: (line, UTF-16 column), and its byte offset in `text`.
    line: u32,
    col: u32,
    cursor: usize,
    expected: String,
    /// Sibling files opened alongside (path, text).
    siblings: Vec<(PathBuf, String)>,
}

fn files_under(dir: &Path, ext: &[&str], out: &mut Vec<PathBuf>, depth: usize) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            if depth > 0 && !name.starts_with('.') && name != "test" && name != "tests" {
                files_under(&p, ext, out, depth - 1);
            }
        } else if ext.iter().any(|e| name.ends_with(e)) {
            out.push(p);
        }
    }
}

/// (lang name, languageId, tree-sitter Lang, candidate files)
fn corpora() -> Vec<(&'static str, &'static str, Lang, Vec<PathBuf>)> {
    let mut py = Vec::new();
    files_under(&common::stdlib_dir(), &[".py"], &mut py, 1);
    let mut rs = Vec::new();
    for d in common::registry_crates(&[
        "ropey",
        "regex",
        "serde_json",
        "tokio",
        "dashmap",
        "proptest",
    ]) {
        files_under(&d.join("src"), &[".rs"], &mut rs, 2);
    }
    let mut js = Vec::new();
    files_under(
        Path::new("/usr/lib/node_modules/npm/lib"),
        &[".js"],
        &mut js,
        2,
    );
    let mut cpp = Vec::new();
    for d in common::registry_crates(&["llama-cpp-sys-2"]) {
        files_under(&d.join("llama.cpp/src"), &[".cpp"], &mut cpp, 1);
    }
    let mut go = Vec::new();
    files_under(
        Path::new("/usr/share/doc/git/contrib"),
        &[".go"],
        &mut go,
        3,
    );
    vec![
        ("python", "python", Lang::Python, py),
        ("rust", "rust", Lang::Rust, rs),
        ("javascript", "javascript", Lang::JavaScript, js),
        ("cpp", "cpp", Lang::Cpp, cpp),
        ("go", "go", Lang::Go, go),
    ]
}

fn is_statement_container(kind: &str) -> bool {
    matches!(
        kind,
        "block"
            | "statement_block"
            | "compound_statement"
            | "statement_list"
            | "module"
            | "source_file"
            | "program"
            | "declaration_list"
            | "class_body"
            | "translation_unit"
    )
}

fn skip_kind(kind: &str) -> bool {
    kind.contains("comment")
        || kind.contains("string")
        || kind.contains("import")
        || kind.contains("include")
        || kind == "use_declaration"
        || kind.contains("preproc")
}

/// Candidate gaps in one file: (kind, start byte, end byte).
fn candidates(lang: Lang, text: &str) -> Vec<(Kind, usize, usize)> {
    let Some(tree) = parse_str(lang, text) else {
        return vec![];
    };
    let mut out = Vec::new();
    let mut cursor = tree.walk();
    let line_of = |b: usize| text[..b].matches('\n').count();
    let mut stack = vec![tree.root_node()];
    while let Some(n) = stack.pop() {
        for i in (0..n.named_child_count()).rev() {
            stack.push(n.named_child(i).unwrap());
        }
        let _ = &mut cursor;
        if n.has_error() || skip_kind(n.kind()) || n.start_byte() < 400 {
            continue;
        }
        let (s, e) = (n.start_byte(), n.end_byte());
        let single = !text[s..e].contains('\n');
        let ls = text[..s].rfind('\n').map(|i| i + 1).unwrap_or(0);
        let at_line_start = text[ls..s].trim().is_empty();
        let parent = n.parent().map(|p| p.kind()).unwrap_or("");
        if single && at_line_start && is_statement_container(parent) && (6..=100).contains(&(e - s))
        {
            let le = text[e..].find('\n').map(|i| e + i).unwrap_or(text.len());
            if text[e..le].trim().is_empty() {
                out.push((Kind::Line, s, e));
            }
            // A block: this statement and the next one or two.
            let mut last = n;
            let mut count = 1;
            while count < 3 {
                match last.next_named_sibling() {
                    Some(nx)
                        if !text[nx.start_byte()..nx.end_byte()].contains('\n')
                            && !skip_kind(nx.kind())
                            && line_of(nx.start_byte()) == line_of(last.end_byte()) + 1 =>
                    {
                        last = nx;
                        count += 1;
                    }
                    _ => break,
                }
            }
            if count >= 2 && e - s <= 100 {
                out.push((Kind::Block, s, last.end_byte()));
            }
        } else if single
            && !at_line_start
            && (4..=60).contains(&(e - s))
            && n.named_child_count() > 0
        {
            // An expression with structure (a call, a binary expression,
            // an argument list's element), not a lone identifier.
            let before = text[..s].chars().next_back().unwrap_or(' ');
            if !(before.is_alphanumeric() || before == '_') {
                out.push((Kind::Expr, s, e));
            }
        }
    }
    out
}

fn utf16_col(text: &str, byte: usize) -> (u32, u32) {
    let before = &text[..byte];
    let line = before.matches('\n').count() as u32;
    let col = before.rsplit('\n').next().unwrap().encode_utf16().count() as u32;
    (line, col)
}

fn build_samples(per_lang: usize, seed: u64, langs: &Option<Vec<String>>) -> Vec<Sample> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut out = Vec::new();
    for (lang_name, language_id, lang, mut files) in corpora() {
        if langs
            .as_ref()
            .is_some_and(|l| !l.iter().any(|x| x == lang_name))
        {
            continue;
        }
        rng.shuffle(&mut files);
        let mut taken = 0;
        let per_file = 2;
        for f in &files {
            if taken >= per_lang {
                break;
            }
            let Ok(text) = std::fs::read_to_string(f) else {
                continue;
            };
            if text.len() > 400_000 || text.contains('\r') {
                continue;
            }
            let mut cands = candidates(lang, &text);
            if cands.is_empty() {
                continue;
            }
            rng.shuffle(&mut cands);
            // Mix the kinds: expr, line, block in turn.
            let mut picked = Vec::new();
            for want in [Kind::Expr, Kind::Line, Kind::Block] {
                if let Some(c) = cands.iter().find(|c| c.0 == want) {
                    picked.push(*c);
                }
            }
            rng.shuffle(&mut picked);
            // Two sibling files from the same folder (the first ones by name).
            let dir = f.parent().unwrap();
            let mut sib = Vec::new();
            files_under(
                dir,
                &[f.extension().map(|e| e.to_str().unwrap()).unwrap_or("")],
                &mut sib,
                0,
            );
            let siblings: Vec<(PathBuf, String)> = sib
                .into_iter()
                .filter(|p| p != f)
                .filter_map(|p| {
                    let t = std::fs::read_to_string(&p).ok()?;
                    (t.len() < 200_000).then_some((p, t))
                })
                .take(2)
                .collect();
            for (kind, s, e) in picked.into_iter().take(per_file) {
                if taken >= per_lang {
                    break;
                }
                let expected = text[s..e].to_string();
                let mut doc = String::with_capacity(text.len());
                doc.push_str(&text[..s]);
                doc.push_str(&text[e..]);
                let (line, col) = utf16_col(&text, s);
                out.push(Sample {
                    lang: lang_name,
                    language_id,
                    file: f.clone(),
                    kind,
                    text: doc,
                    line,
                    col,
                    cursor: s,
                    expected,
                    siblings: siblings.clone(),
                });
                taken += 1;
            }
        }
    }
    out
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let sub = prev[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            cur[j] = sub.min(prev[j] + 1).min(cur[j - 1] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

fn edit_similarity(got: &str, want: &str) -> f64 {
    let n = got.chars().count().max(want.chars().count());
    if n == 0 {
        return 1.0;
    }
    1.0 - levenshtein(got, want) as f64 / n as f64
}

fn first_line(s: &str) -> &str {
    s.split('\n').next().unwrap_or("").trim_end()
}

fn first_code_line(s: &str) -> &str {
    s.split('\n')
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

#[derive(Default, Clone)]
struct Score {
    n: usize,
    exact: usize,
    loose: usize,
    es: f64,
    empty: usize,
    errors: usize,
    ms: f64,
}

fn run(
    samples: &[Sample],
    naive: bool,
    max_tokens: u32,
    threads: u32,
    prefix_tokens: u32,
) -> Vec<(String, Kind, Score, String)> {
    // Greedy decoding: the answer does not depend on the time budget, only
    // on maxTokens (the budget is generous so a loaded machine scores the
    // same).
    // BENCH_FIM_LINE_IN_MIDDLE=1: the typed part of the cursor's line after
    // the middle marker (model.fimLineInMiddle), to compare the layouts.
    let line_in_middle = std::env::var("BENCH_FIM_LINE_IN_MIDDLE").is_ok_and(|v| v == "1");
    let mut s = TestServer::start(json!({
        "model": { "threads": threads, "fimLineInMiddle": line_in_middle },
        "completion": { "maxTokens": max_tokens, "typedAhead": false, "maxTimeMs": 60000 },
        "context": { "naive": naive, "prefixTokens": prefix_tokens, "extraTokens": prefix_tokens / 4 },
    }));
    s.wait_ready();
    let mut results = Vec::new();
    let mut open_siblings: Vec<String> = Vec::new();
    for (i, smp) in samples.iter().enumerate() {
        // Siblings: open the current sample's, close the previous ones.
        let want: Vec<String> = smp
            .siblings
            .iter()
            .map(|(p, _)| format!("file://{}", p.display()))
            .collect();
        if want != open_siblings {
            for u in &open_siblings {
                s.notify(
                    "textDocument/didClose",
                    json!({ "textDocument": { "uri": u } }),
                );
            }
            for ((_, t), u) in smp.siblings.iter().zip(&want) {
                s.open(u, smp.language_id, t);
            }
            open_siblings = want;
        }
        let uri = format!(
            "file://{}.gap{i}.{}",
            smp.file.display(),
            smp.file.extension().unwrap().to_string_lossy()
        );
        s.open(&uri, smp.language_id, &smp.text);
        let t0 = Instant::now();
        let r = s.inline_completion(&uri, smp.line, smp.col);
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        s.notify(
            "textDocument/didClose",
            json!({ "textDocument": { "uri": uri } }),
        );
        let mut sc = Score {
            n: 1,
            ms,
            ..Default::default()
        };
        let got = if r.get("error").is_some() {
            sc.errors = 1;
            String::new()
        } else {
            r["result"]["items"]
                .get(0)
                .and_then(|it| it["insertText"].as_str())
                .unwrap_or("")
                .to_string()
        };
        if got.is_empty() {
            sc.empty = 1;
        }
        if first_line(&got) == first_line(&smp.expected) {
            sc.exact = 1;
        }
        if first_code_line(&got) == first_code_line(&smp.expected) {
            sc.loose = 1;
        }
        // Over as many lines as the removed text has: a longer (multi-line)
        // suggestion is neither rewarded nor punished past the gap.
        let lines = smp.expected.split('\n').count();
        let got_span: Vec<&str> = got.split('\n').take(lines).collect();
        sc.es = edit_similarity(got_span.join("\n").trim_end(), &smp.expected);
        results.push((smp.lang.to_string(), smp.kind, sc, got));
    }
    // The context's token budgets should keep the engine from ever cutting
    // a prompt's head (a warning in the server's log).
    println!(
        "prompts whose head the engine had to cut (naive: {naive}): {}",
        s.log_text().matches("cutting its head").count()
    );
    assert!(s.shutdown().success());
    results
}

fn add(a: &mut Score, b: &Score) {
    a.n += b.n;
    a.exact += b.exact;
    a.loose += b.loose;
    a.es += b.es;
    a.empty += b.empty;
    a.errors += b.errors;
    a.ms += b.ms;
}

fn main() {
    common::model_path();
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let per_lang = env("QUALITY_SAMPLES", 40) as usize;
    let seed = env("QUALITY_SEED", 7);
    let max_tokens = env("QUALITY_MAX_TOKENS", 48) as u32;
    let threads = env("QUALITY_THREADS", 0) as u32;
    let prefix_tokens = env("QUALITY_PREFIX_TOKENS", 512) as u32;
    let langs: Option<Vec<String>> = std::env::var("QUALITY_LANGS")
        .ok()
        .map(|v| v.split(',').map(str::to_string).collect());
    let samples = build_samples(per_lang, seed, &langs);
    assert!(!samples.is_empty(), "no source files found");
    println!(
        "slm-ls quality: {} samples (seed {seed}, up to {per_lang} per language, maxTokens {max_tokens}, prefixTokens {prefix_tokens}, extraTokens {})",
        samples.len(),
        prefix_tokens / 4
    );
    let t0 = Instant::now();
    // QUALITY_NAIVE=0 skips the baseline (e.g. to score a slower model):
    // its columns print as "—".
    let with_naive = env("QUALITY_NAIVE", 1) != 0;
    let default = run(&samples, false, max_tokens, threads, prefix_tokens);
    let naive = if with_naive {
        run(&samples, true, max_tokens, threads, prefix_tokens)
    } else {
        let none = || (String::new(), Kind::Expr, Score::default(), String::new());
        (0..samples.len()).map(|_| none()).collect()
    };
    if let Ok(path) = std::env::var("QUALITY_DUMP") {
        dump(&path, &samples, &default);
    }
    let verbose = std::env::var("QUALITY_VERBOSE").is_ok();
    if verbose {
        for (i, smp) in samples.iter().enumerate() {
            println!(
                "--- {} {:?} {}:{}:{}\n  want {:?}\n  naive {:?}\n  deflt {:?}",
                smp.lang,
                smp.kind,
                smp.file.display(),
                smp.line + 1,
                smp.col,
                smp.expected,
                naive[i].3,
                default[i].3
            );
        }
    }
    let mut names: Vec<String> = Vec::new();
    for smp in &samples {
        if !names.contains(&smp.lang.to_string()) {
            names.push(smp.lang.to_string());
        }
    }
    println!();
    println!("| language | samples | exact naive | exact default | ratio | loose naive | loose default | edit sim. naive | edit sim. default | empty default | ms/req naive | ms/req default |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut all = (Score::default(), Score::default());
    let mut rows: Vec<(String, Score, Score)> = Vec::new();
    for name in names
        .iter()
        .map(String::as_str)
        .chain(["expr", "line", "block"])
    {
        let mut a = Score::default();
        let mut b = Score::default();
        for i in 0..samples.len() {
            let by_kind = match name {
                "expr" => Some(Kind::Expr),
                "line" => Some(Kind::Line),
                "block" => Some(Kind::Block),
                _ => None,
            };
            let hit = match by_kind {
                Some(k) => samples[i].kind == k,
                None => samples[i].lang == name,
            };
            if hit {
                add(&mut a, &naive[i].2);
                add(&mut b, &default[i].2);
            }
        }
        if by_kind_total(name) {
            // per-kind rows are printed after the total
        } else {
            add(&mut all.0, &a);
            add(&mut all.1, &b);
        }
        rows.push((name.to_string(), a, b));
    }
    let print = |name: &str, a: &Score, b: &Score| {
        let pct = |x: usize, n: usize| 100.0 * x as f64 / n.max(1) as f64;
        if !with_naive {
            println!(
                "| {name} | {} | — | {:.1}% | — | — | {:.1}% | — | {:.3} | {} | — | {:.0} |",
                b.n,
                pct(b.exact, b.n),
                pct(b.loose, b.n),
                b.es / b.n.max(1) as f64,
                b.empty,
                b.ms / b.n.max(1) as f64,
            );
            return;
        }
        let ratio = match (a.exact, b.exact) {
            (0, 0) => "=".to_string(),
            (0, _) => "∞".to_string(),
            (x, y) => format!("{:.2}×", y as f64 / x as f64),
        };
        println!(
            "| {name} | {} | {:.1}% | {:.1}% | {ratio} | {:.1}% | {:.1}% | {:.3} | {:.3} | {} | {:.0} | {:.0} |",
            a.n,
            pct(a.exact, a.n),
            pct(b.exact, b.n),
            pct(a.loose, a.n),
            pct(b.loose, b.n),
            a.es / a.n.max(1) as f64,
            b.es / b.n.max(1) as f64,
            b.empty,
            a.ms / a.n.max(1) as f64,
            b.ms / b.n.max(1) as f64,
        );
    };
    for (name, a, b) in &rows {
        if name == "expr" {
            print("**all**", &all.0, &all.1);
        }
        let label = if by_kind_total(name) {
            format!("kind: {name}")
        } else {
            name.clone()
        };
        print(&label, a, b);
    }
    let errors: usize = naive.iter().chain(&default).map(|r| r.2.errors).sum();
    println!(
        "\n(errors: {errors}; wall time {:.0} s; exact = first line equal, trailing spaces ignored; loose = first non-blank lines equal, trimmed; edit sim. over as many lines as were removed)",
        t0.elapsed().as_secs_f64()
    );
}

/// QUALITY_DUMP=FILE: the samples as JSON lines (text before and after the
/// gap, the removed text, slm-ls's answer), so that
/// `benches/peer_llama_server.py --quality FILE` scores a peer on exactly
/// the same gaps.
fn dump(path: &str, samples: &[Sample], default: &[(String, Kind, Score, String)]) {
    let mut out = String::new();
    for (smp, got) in samples.iter().zip(default) {
        out += &json!({
            "lang": smp.lang,
            "kind": format!("{:?}", smp.kind).to_lowercase(),
            "prefix": &smp.text[..smp.cursor],
            "suffix": &smp.text[smp.cursor..],
            "expected": smp.expected,
            "slm_ls": got.3,
        })
        .to_string();
        out.push('\n');
    }
    std::fs::write(path, out).expect("QUALITY_DUMP file");
    println!("samples written to {path}");
}

fn by_kind_total(name: &str) -> bool {
    matches!(name, "expr" | "line" | "block")
}
