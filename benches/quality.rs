//! Quality benchmark: does everything around the model (windows, healing,
//! cross-file snippets, post-processing, stop rules) make the *same*
//! weights right more often than a plain prompt does, and than llama.vim
//! does? (issue 18)
//!
//! Gaps come from real code not written here: the Python standard library
//! of the `python3` on the machine, crates in the cargo registry cache
//! (Rust; llama.cpp's C++ sources inside `llama-cpp-sys-2`), npm's own
//! JavaScript, the Go files in git's contrib docs, and the JDK's Java
//! sources (`lib/src.zip`, unpacked under `target/quality-corpus/`). For
//! each language a fixed-seed RNG picks single-line statements from
//! tree-sitter parses. Each gap gives two samples:
//! - `line-start`: the statement removed, the cursor after its indentation;
//! - `mid-line`: the first part of the statement typed (up to the word
//!   boundary nearest its middle), the rest removed.
//!
//! and, for the multi-line row, `block`: two or three consecutive
//! statements of a block removed, the cursor on the emptied line; scored
//! line by line (lines exact, all lines exact) and by whether the file
//! still parses with the suggestion in it (no more tree-sitter errors than
//! the original file).
//!
//! Rows, in one run on the same samples (`QUALITY_ROWS`, comma-separated):
//! - `default`: slm-ls as shipped;
//! - `plain`: the floor — `context.naive`: the same model and token budgets
//!   around the cursor, PSM, greedy, no healing, no cross-file snippets, no
//!   post-processing but the single-line cut (the first line is scored);
//! - `psm`: the default with `model.fimSpm` off (prefix first);
//! - `line-in-middle`: PSM with `model.fimLineInMiddle` (the typed
//!   part of the cursor's line after the FIM middle marker: the layout
//!   whose keystrokes evaluate only what was typed, issue 20);
//! - `heal-off`: the default with `context.heal` off (does healing earn
//!   its place?);
//! - `frame-on`: the default with `context.fileFrame` on (the file's path
//!   after `<|file_sep|>` at the prompt's start, as llama-server does: does
//!   it earn its place?);
//! - `before`: the default settings on another binary (`QUALITY_BEFORE_BIN`,
//!   e.g. a build of the previous commit);
//! - `big`: the default settings on another model (`QUALITY_BIG_MODEL`,
//!   e.g. the 1.5B).
//!
//! The peer row (llama-server `/infill` as llama.vim drives it) comes from
//! `benches/peer_llama_server.py --quality FILE` on the samples written by
//! `QUALITY_DUMP=FILE`.
//!
//! Every sample's file is assigned by a hash of its path to the `tune` or
//! the `check` half; the check half is the one never looked at while
//! changing the pipeline, and both are reported. Figures carry 95%
//! confidence intervals: Wilson for proportions, normal for means, a
//! paired bootstrap (2000 resamples) for ratios between rows.
//!
//! Each gap is filled over LSP (`textDocument/inlineCompletion`) by the
//! release binary; two sibling files of the same folder are open alongside,
//! as in an editor. The line-start and mid-line samples of a gap run one
//! after the other (the second reuses the first's cached prefix).
//!
//! Run: `cargo bench --bench quality` (env: QUALITY_SAMPLES gaps per
//! language, default 40; QUALITY_BLOCKS block samples per language, default
//! 10; QUALITY_SEED, default 7; QUALITY_LANGS, comma-separated subset of
//! python,rust,javascript,cpp,go,java; QUALITY_ROWS, default
//! `default,plain`; QUALITY_THREADS, model threads, default 0 = all cores;
//! QUALITY_PREFIX_TOKENS, prefix budget, default: the product's;
//! QUALITY_SETTINGS, JSON settings merged into every row's;
//! QUALITY_VERBOSE=1 prints every sample; QUALITY_HALF=tune|check keeps one
//! half; QUALITY_LOG=FILE appends each answer as it comes; QUALITY_DUMP=FILE; SLM_LS_MODEL picks another model for every
//! row; QUALITY_ROWS= (empty) only measures the window's budget use, and
//! with QUALITY_DUMP writes the samples for the peer; QUALITY_PARALLEL=1
//! runs the rows' servers at once, best with QUALITY_THREADS=1 and
//! SLM_LS_TAKE_TURNS=0 (else the servers take turns); QUALITY_RESUME=LOG
//! scores the answers a cut-short run logged instead of asking again).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "scoring.rs"]
mod scoring;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::TestServer;
use scoring::{edit_similarity, mean_ci, wilson};
use serde_json::{json, Value};
use slm_ls::config::Config;
use slm_ls::context::{self, TokenCount};
use slm_ls::document::Document;
use slm_ls::syntax::{error_count, parse_str, Lang};

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

/// Where the cursor is in a gap.
#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord)]
enum Pos {
    LineStart,
    MidLine,
    Block,
}

impl Pos {
    fn name(self) -> &'static str {
        match self {
            Pos::LineStart => "line-start",
            Pos::MidLine => "mid-line",
            Pos::Block => "block",
        }
    }
}

struct Sample {
    lang: &'static str,
    language_id: &'static str,
    ts: Lang,
    file: PathBuf,
    pos: Pos,
    /// The held-out half (by a hash of the file's path).
    check: bool,
    /// Document text with the gap removed.
    text: String,
    /// Cursor: (line, UTF-16 column), and its byte offset in `text`.
    line: u32,
    col: u32,
    cursor: usize,
    expected: String,
    /// Parse errors of the original file (the block row's "still parses").
    original_errors: usize,
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

/// The JDK's own Java sources (`java.base`'s `java.util`, `java.io`,
/// `java.lang`, `java.net`, `java.time`), unpacked once from `lib/src.zip`.
fn java_files() -> Vec<PathBuf> {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/quality-corpus/java");
    if !out.exists() {
        let mut zips: Vec<PathBuf> = std::fs::read_dir("/usr/lib/jvm")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("lib/src.zip"))
            .filter(|p| p.exists())
            .collect();
        zips.sort();
        let Some(zip_path) = zips.first() else {
            eprintln!("no JDK src.zip under /usr/lib/jvm: no Java samples");
            return vec![];
        };
        let tmp = out.with_extension("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        let mut z = zip::ZipArchive::new(std::fs::File::open(zip_path).unwrap()).unwrap();
        for i in 0..z.len() {
            let mut f = z.by_index(i).unwrap();
            let name = f.name().to_string();
            let wanted = ["util", "io", "lang", "net", "time"]
                .iter()
                .any(|d| name.starts_with(&format!("java.base/java/{d}/")));
            if !wanted || !name.ends_with(".java") || name.matches('/').count() != 3 {
                continue;
            }
            let mut s = String::new();
            if std::io::Read::read_to_string(&mut f, &mut s).is_ok() {
                let p = tmp.join(&name);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, s).unwrap();
            }
        }
        std::fs::rename(&tmp, &out).unwrap();
    }
    let mut v = Vec::new();
    files_under(&out, &[".java"], &mut v, 4);
    v
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
        files_under(&d.join("llama.cpp/common"), &[".cpp"], &mut cpp, 0);
    }
    // Go's own standard library (Debian: `apt-get install golang-src`),
    // else the few Go files in git's contrib docs.
    let mut go = Vec::new();
    let mut roots: Vec<PathBuf> = ["/usr/lib", "/usr/share"]
        .iter()
        .flat_map(std::fs::read_dir)
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("go-"))
        })
        .filter(|p| p.join("src").is_dir())
        .collect();
    roots.sort();
    for pkg in [
        "strings",
        "bytes",
        "bufio",
        "net/http",
        "encoding/json",
        "text/template",
        "go/parser",
    ] {
        if let Some(r) = roots.last() {
            files_under(&r.join("src").join(pkg), &[".go"], &mut go, 0);
        }
    }
    go.retain(|p| !p.to_string_lossy().ends_with("_test.go"));
    if go.is_empty() {
        files_under(
            Path::new("/usr/share/doc/git/contrib"),
            &[".go"],
            &mut go,
            3,
        );
    }
    vec![
        ("python", "python", Lang::Python, py),
        ("rust", "rust", Lang::Rust, rs),
        ("javascript", "javascript", Lang::JavaScript, js),
        ("cpp", "cpp", Lang::Cpp, cpp),
        ("go", "go", Lang::Go, go),
        ("java", "java", Lang::Java, java_files()),
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

/// FNV-1a of the path: which half a file's samples belong to.
fn held_out(path: &Path) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.to_string_lossy().bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h % 2 == 1
}

/// Where a user typing `line` might pause near its middle: the word
/// boundary closest to half its length (never in its first or last two
/// characters).
fn mid_split(line: &str) -> Option<usize> {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let half = line.len() / 2;
    (1..chars.len())
        .filter(|&i| word(chars[i - 1].1) != word(chars[i].1))
        .map(|i| chars[i].0)
        .filter(|&b| b >= 2 && b + 2 <= line.len())
        .min_by_key(|&b| b.abs_diff(half))
}

fn build_samples(
    gaps_per_lang: usize,
    blocks_per_lang: usize,
    seed: u64,
    langs: &Option<Vec<String>>,
) -> Vec<Sample> {
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
        let (mut gaps, mut blocks) = (0, 0);
        for f in &files {
            if gaps >= gaps_per_lang && blocks >= blocks_per_lang {
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
            let original_errors = parse_str(lang, &text).map_or(0, |t| error_count(&t));
            let check = held_out(f);
            let mut sample = |pos: Pos, cut: usize, e: usize| {
                let mut doc = String::with_capacity(text.len());
                doc.push_str(&text[..cut]);
                doc.push_str(&text[e..]);
                let (line, col) = utf16_col(&text, cut);
                out.push(Sample {
                    lang: lang_name,
                    language_id,
                    ts: lang,
                    file: f.clone(),
                    pos,
                    check,
                    text: doc,
                    line,
                    col,
                    cursor: cut,
                    expected: text[cut..e].to_string(),
                    original_errors,
                    siblings: siblings.clone(),
                });
            };
            // Up to two single-line gaps and one block per file, so that
            // a language's samples come from many files.
            let mut per_file = 0;
            for &(kind, s, e) in &cands {
                if kind == Kind::Line && gaps < gaps_per_lang && per_file < 2 {
                    let Some(split) = mid_split(&text[s..e]) else {
                        continue;
                    };
                    sample(Pos::LineStart, s, e);
                    sample(Pos::MidLine, s + split, e);
                    gaps += 1;
                    per_file += 1;
                }
            }
            if let Some(&(_, s, e)) = cands.iter().find(|c| c.0 == Kind::Block) {
                if blocks < blocks_per_lang {
                    sample(Pos::Block, s, e);
                    blocks += 1;
                }
            }
        }
        if gaps < gaps_per_lang || blocks < blocks_per_lang {
            eprintln!("{lang_name}: only {gaps} gaps and {blocks} blocks in its corpus");
        }
    }
    out
}

fn first_line(s: &str) -> &str {
    s.split('\n').next().unwrap_or("").trim_end()
}

/// One sample's answer and scores.
#[derive(Default, Clone)]
struct Answer {
    got: String,
    ms: f64,
    error: bool,
    exact: bool,
    empty: bool,
    es: f64,
    /// Block samples: share of the removed lines matched line for line.
    lines: f64,
    parses: bool,
}

fn score(smp: &Sample, got: String, ms: f64, error: bool) -> Answer {
    let mut a = Answer {
        ms,
        error,
        ..Default::default()
    };
    a.empty = first_line(&got).trim().is_empty();
    if smp.pos == Pos::Block {
        let want: Vec<&str> = smp.expected.split('\n').collect();
        let have: Vec<&str> = got.split('\n').collect();
        let same = (0..want.len())
            .filter(|&i| have.get(i).map(|l| l.trim_end()) == Some(want[i].trim_end()))
            .count();
        a.lines = same as f64 / want.len() as f64;
        a.exact = same == want.len();
        let span: Vec<&str> = have.iter().take(want.len()).copied().collect();
        a.es = edit_similarity(span.join("\n").trim_end(), &smp.expected);
        let doc = format!(
            "{}{got}{}",
            &smp.text[..smp.cursor],
            &smp.text[smp.cursor..]
        );
        a.parses = parse_str(smp.ts, &doc).is_some_and(|t| error_count(&t) <= smp.original_errors);
    } else {
        // Single-line: the suggestion's first line against the removed
        // text (trailing spaces ignored), as the user would accept it.
        a.exact = first_line(&got) == first_line(&smp.expected);
        a.es = edit_similarity(first_line(&got), first_line(&smp.expected));
    }
    a.got = got;
    a
}

struct Row {
    name: String,
    init: Value,
    program: Option<String>,
    env: Vec<(String, String)>,
}

fn rows(threads: u32, prefix_tokens: Option<u32>) -> Vec<Row> {
    let wanted = std::env::var("QUALITY_ROWS").unwrap_or_else(|_| "default,plain".into());
    // QUALITY_SETTINGS='{"context":{"suffixTokens":384}}': merged into every
    // row's settings (budgets, model context) to measure a change before
    // making it the default.
    let settings: Value = std::env::var("QUALITY_SETTINGS")
        .map(|v| serde_json::from_str(&v).expect("QUALITY_SETTINGS is JSON"))
        .unwrap_or(json!({}));
    let mut context = json!({});
    if let Some(p) = prefix_tokens {
        context["prefixTokens"] = json!(p);
    }
    let init = |extra: Value| {
        let mut ctx = context.clone();
        for (k, v) in extra.as_object().unwrap() {
            ctx[k] = v.clone();
        }
        // Greedy decoding: the answer does not depend on the time budget,
        // only on maxTokens; the budget is generous so a loaded machine
        // scores the same. Typed-ahead off: every answer is the model's.
        let mut init = json!({
            "model": { "threads": threads },
            "completion": { "typedAhead": false, "maxTimeMs": 60000 },
            "context": ctx,
        });
        common::merge_json(&mut init, &settings);
        init
    };
    // The layout rows differ in `model` settings.
    let with_model = |mut init: Value, model: Value| {
        common::merge_json(&mut init, &json!({ "model": model }));
        init
    };
    let mut out = Vec::new();
    for name in wanted.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let row = |init: Value| Row {
            name: name.to_string(),
            init,
            program: None,
            env: vec![],
        };
        out.push(match name {
            "default" => row(init(json!({}))),
            // PSM, the plain order.
            "plain" => row(with_model(
                init(json!({ "naive": true })),
                json!({ "fimSpm": false }),
            )),
            "heal-off" => row(init(json!({ "heal": false }))),
            "frame-on" => row(init(json!({ "fileFrame": true }))),
            "line-in-middle" => row(with_model(
                init(json!({})),
                json!({ "fimSpm": false, "fimLineInMiddle": true }),
            )),
            "psm" => row(with_model(init(json!({})), json!({ "fimSpm": false }))),
            "before" => Row {
                program: Some(
                    std::env::var("QUALITY_BEFORE_BIN")
                        .expect("row `before` needs QUALITY_BEFORE_BIN"),
                ),
                ..row(init(json!({})))
            },
            "big" => Row {
                env: vec![(
                    "SLM_LS_MODEL".into(),
                    std::env::var("QUALITY_BIG_MODEL").expect("row `big` needs QUALITY_BIG_MODEL"),
                )],
                ..row(init(json!({})))
            },
            other => {
                panic!("unknown row {other:?} (default, plain, psm, line-in-middle, heal-off, frame-on, before, big)")
            }
        });
    }
    out
}

fn run(row: &Row, samples: &[Sample]) -> Vec<Answer> {
    let env: Vec<(&str, &str)> = row
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut s = match &row.program {
        Some(p) => TestServer::spawn_program(p, &[], &env),
        None => TestServer::spawn(&[], &env),
    };
    s.initialize(row.init.clone(), json!({}));
    s.wait_ready();
    let mut out = Vec::new();
    let mut open_siblings: Vec<String> = Vec::new();
    let t_row = Instant::now();
    let mut progress = std::env::var("QUALITY_LOG").ok().map(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .expect("QUALITY_LOG file")
    });
    // QUALITY_RESUME=LOG: answers a cut-short run logged (QUALITY_LOG of
    // the same seed and sizes) are scored again instead of asked again.
    let resumed: HashMap<usize, (String, f64)> = std::env::var("QUALITY_RESUME")
        .ok()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|log| {
            log.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| v["row"] == row.name.as_str())
                .filter_map(|v| {
                    let i = v["i"].as_u64()? as usize;
                    let got = v["got"].as_str()?.to_string();
                    (samples.get(i)?.expected == v["expected"].as_str()?)
                        .then(|| (i, (got, v["ms"].as_f64().unwrap_or(0.0))))
                })
                .collect()
        })
        .unwrap_or_default();
    for (i, smp) in samples.iter().enumerate() {
        if let Some((got, ms)) = resumed.get(&i) {
            out.push(score(smp, got.clone(), *ms, false));
            continue;
        }
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
        let error = r.get("error").is_some();
        let got = r["result"]["items"]
            .get(0)
            .and_then(|it| it["insertText"].as_str())
            .unwrap_or("")
            .to_string();
        let a = score(smp, got, ms, error);
        if let Some(log) = &mut progress {
            // One line per answer as it comes: a run cut short still says
            // what it measured.
            let line = json!({
                "row": row.name, "i": i, "lang": smp.lang, "pos": smp.pos.name(),
                "check": smp.check, "exact": a.exact, "empty": a.empty, "lines": a.lines,
                "ms": a.ms, "expected": smp.expected, "got": a.got,
            });
            let _ = writeln!(log, "{line}");
        }
        out.push(a);
        if (i + 1) % 50 == 0 {
            eprintln!(
                "  {}: {}/{} samples, {:.0} s",
                row.name,
                i + 1,
                samples.len(),
                t_row.elapsed().as_secs_f64()
            );
        }
    }
    // The context's token budgets should keep the engine from ever cutting
    // a prompt's head (a warning in the server's log).
    println!(
        "row {}: prompts whose head the engine had to cut: {}",
        row.name,
        s.log_text().matches("cutting its head").count()
    );
    assert!(s.shutdown().success());
    out
}

fn pct_ci(k: usize, n: usize) -> String {
    let (lo, hi) = wilson(k, n);
    format!(
        "{:.1}% [{:.1}, {:.1}]",
        100.0 * k as f64 / n.max(1) as f64,
        100.0 * lo,
        100.0 * hi
    )
}

fn mean_ci_text(v: &[f64]) -> String {
    if v.is_empty() {
        return "—".into();
    }
    let (m, h) = mean_ci(v);
    format!("{m:.3} ±{h:.3}")
}

/// Paired bootstrap of sum(a)/sum(b) over the same samples: the ratio
/// and its 95% interval.
fn ratio_ci(a: &[bool], b: &[bool]) -> String {
    let sum = |v: &[bool], idx: &[usize]| idx.iter().filter(|&&i| v[i]).count() as f64;
    let all: Vec<usize> = (0..a.len()).collect();
    let (sa, sb) = (sum(a, &all), sum(b, &all));
    if sb == 0.0 {
        return "—".into();
    }
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let mut rs: Vec<f64> = (0..2000)
        .map(|_| {
            let idx: Vec<usize> = (0..a.len()).map(|_| rng.below(a.len())).collect();
            let d = sum(b, &idx);
            if d == 0.0 {
                f64::INFINITY
            } else {
                sum(a, &idx) / d
            }
        })
        .collect();
    rs.sort_by(|x, y| x.partial_cmp(y).unwrap());
    format!("{:.2}× [{:.2}, {:.2}]", sa / sb, rs[50], rs[1949])
}

/// Prefix window budget use per language (issue 18: ≥ 90%), measured with
/// the model's own vocabulary on the line-start samples whose text above
/// the cursor is longer than the budget.
fn window_use(samples: &[Sample], prefix_tokens: Option<u32>) {
    let model = common::model_path();
    let tok = match slm_ls::engine::Tokenizer::from_vocab_file(&model) {
        Ok(t) => t,
        Err(e) => return println!("window use: {e}"),
    };
    let mut cfg = Config::default();
    if let Some(p) = prefix_tokens {
        cfg.context.prefix_tokens = p;
    }
    let budgets = cfg.context_budgets();
    let mut per: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for smp in samples.iter().filter(|s| s.pos == Pos::LineStart) {
        let above = &smp.text[..smp.cursor];
        if tok.count(above) < budgets.prefix_tokens as usize * 2 {
            continue;
        }
        let path = smp.file.to_string_lossy();
        let doc = Document::with_path(&smp.text, 0, smp.language_id, &path);
        let cursor = above.chars().count();
        let ctx = context::build_with(
            &doc,
            cursor,
            &budgets,
            &path,
            true,
            context::Head::Search(&[]),
            &tok,
        );
        let used = tok.count(&ctx.input.prefix) + tok.count(&ctx.input.heal);
        if std::env::var("QUALITY_VERBOSE").is_ok()
            && used * 10 < budgets.prefix_tokens as usize * 9
        {
            println!(
                "--- window {used} of {} tokens: {}:{}\n{}",
                budgets.prefix_tokens,
                smp.file.display(),
                smp.line + 1,
                ctx.input.prefix
            );
        }
        per.entry(smp.lang)
            .or_default()
            .push(used as f64 / budgets.prefix_tokens as f64);
    }
    println!("\nPrefix window: tokens used / budget ({} tokens), line-start samples with more text above than twice the budget", budgets.prefix_tokens);
    println!("| language | samples | used/budget (mean, 95% CI) |\n|---|---|---|");
    let mut all = Vec::new();
    for (lang, v) in &per {
        println!("| {lang} | {} | {} |", v.len(), mean_ci_text(v));
        all.extend(v);
    }
    println!("| **all** | {} | {} |", all.len(), mean_ci_text(&all));
}

fn report(samples: &[Sample], rows: &[Row], answers: &[Vec<Answer>]) {
    let idx = |f: &dyn Fn(&Sample) -> bool| -> Vec<usize> {
        (0..samples.len()).filter(|&i| f(&samples[i])).collect()
    };
    let exact = |r: usize, ix: &[usize]| ix.iter().filter(|&&i| answers[r][i].exact).count();
    let empty = |r: usize, ix: &[usize]| ix.iter().filter(|&&i| answers[r][i].empty).count();
    let es =
        |r: usize, ix: &[usize]| -> Vec<f64> { ix.iter().map(|&i| answers[r][i].es).collect() };
    let ms = |r: usize, ix: &[usize]| {
        ix.iter().map(|&i| answers[r][i].ms).sum::<f64>() / ix.len().max(1) as f64
    };

    println!("\n## Single-line: exact first line (95% CI)");
    println!("| row | position | samples | exact | exact, tune half | exact, check half | edit sim. | empty | ms/req |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for pos in [Pos::LineStart, Pos::MidLine] {
        for (r, row) in rows.iter().enumerate() {
            let ix = idx(&|s| s.pos == pos);
            let tune = idx(&|s| s.pos == pos && !s.check);
            let check = idx(&|s| s.pos == pos && s.check);
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} ({:.1}%) | {:.0} |",
                row.name,
                pos.name(),
                ix.len(),
                pct_ci(exact(r, &ix), ix.len()),
                pct_ci(exact(r, &tune), tune.len()),
                pct_ci(exact(r, &check), check.len()),
                mean_ci_text(&es(r, &ix)),
                empty(r, &ix),
                100.0 * empty(r, &ix) as f64 / ix.len().max(1) as f64,
                ms(r, &ix),
            );
        }
    }

    let langs: Vec<&str> = {
        let mut v: Vec<&str> = samples.iter().map(|s| s.lang).collect();
        v.dedup();
        v
    };
    println!("\n## Single-line exact per language (both positions)");
    print!("| language | samples |");
    for row in rows {
        print!(" {} |", row.name);
    }
    println!();
    println!("|---|---|{}", "---|".repeat(rows.len()));
    for lang in &langs {
        let ix = idx(&|s| s.lang == *lang && s.pos != Pos::Block);
        print!("| {lang} | {} |", ix.len());
        for r in 0..rows.len() {
            print!(" {} |", pct_ci(exact(r, &ix), ix.len()));
        }
        println!();
    }

    if rows.len() > 1 {
        println!(
            "\n## Ratios of exact, paired bootstrap 95% CI (row / {})",
            rows[1].name
        );
        println!("| row | position | all | tune half | check half |\n|---|---|---|---|---|");
        for (r, row) in rows.iter().enumerate().filter(|(r, _)| *r != 1) {
            for pos in [Pos::LineStart, Pos::MidLine] {
                let col = |f: &dyn Fn(&Sample) -> bool| {
                    let ix = idx(&|s| s.pos == pos && f(s));
                    let a: Vec<bool> = ix.iter().map(|&i| answers[r][i].exact).collect();
                    let b: Vec<bool> = ix.iter().map(|&i| answers[1][i].exact).collect();
                    ratio_ci(&a, &b)
                };
                println!(
                    "| {} | {} | {} | {} | {} |",
                    row.name,
                    pos.name(),
                    col(&|_| true),
                    col(&|s| !s.check),
                    col(&|s| s.check)
                );
            }
        }
    }

    let blocks = idx(&|s| s.pos == Pos::Block);
    if !blocks.is_empty() {
        println!("\n## Multi-line (block) samples: the rest of the block, line by line");
        println!("| row | samples | lines exact (mean) | all lines exact | still parses | edit sim. | empty | ms/req |");
        println!("|---|---|---|---|---|---|---|---|");
        for (r, row) in rows.iter().enumerate() {
            let lines: Vec<f64> = blocks.iter().map(|&i| answers[r][i].lines).collect();
            let parses = blocks.iter().filter(|&&i| answers[r][i].parses).count();
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {:.0} |",
                row.name,
                blocks.len(),
                mean_ci_text(&lines),
                pct_ci(exact(r, &blocks), blocks.len()),
                pct_ci(parses, blocks.len()),
                mean_ci_text(&es(r, &blocks)),
                empty(r, &blocks),
                ms(r, &blocks),
            );
        }
    }
}

/// QUALITY_DUMP=FILE: the samples as JSON lines (text before and after the
/// cursor, the removed text, each row's answer), so that
/// `benches/peer_llama_server.py --quality FILE` scores a peer on exactly
/// the same samples.
fn dump(path: &str, samples: &[Sample], rows: &[Row], answers: &[Vec<Answer>]) {
    let mut out = String::new();
    for (i, smp) in samples.iter().enumerate() {
        let mut j = json!({
            "lang": smp.lang,
            "kind": smp.pos.name(),
            "check": smp.check,
            "file": smp.file.display().to_string(),
            "prefix": &smp.text[..smp.cursor],
            "suffix": &smp.text[smp.cursor..],
            "expected": smp.expected,
            "original_errors": smp.original_errors,
        });
        for (r, row) in rows.iter().enumerate() {
            j[format!("row_{}", row.name)] = json!(answers[r][i].got);
        }
        if let Some(r) = rows.iter().position(|r| r.name == "default") {
            j["slm_ls"] = json!(answers[r][i].got);
        }
        out += &j.to_string();
        out.push('\n');
    }
    std::fs::write(path, out).expect("QUALITY_DUMP file");
    println!("samples written to {path}");
}

fn main() {
    common::model_path();
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let gaps = env("QUALITY_SAMPLES", 40) as usize;
    let blocks = env("QUALITY_BLOCKS", 10) as usize;
    let seed = env("QUALITY_SEED", 7);
    let threads = env("QUALITY_THREADS", 0) as u32;
    let prefix_tokens = std::env::var("QUALITY_PREFIX_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok());
    let langs: Option<Vec<String>> = std::env::var("QUALITY_LANGS")
        .ok()
        .map(|v| v.split(',').map(str::to_string).collect());
    let mut samples = build_samples(gaps, blocks, seed, &langs);
    // QUALITY_HALF=tune: only the half that may be looked at while
    // changing the pipeline (QUALITY_HALF=check: only the held-out half).
    match std::env::var("QUALITY_HALF").as_deref() {
        Ok("tune") => samples.retain(|s| !s.check),
        Ok("check") => samples.retain(|s| s.check),
        _ => {}
    }
    assert!(!samples.is_empty(), "no source files found");
    let rows = rows(threads, prefix_tokens);
    // QUALITY_ROWS= (empty): only the window's budget use (no model run).
    println!(
        "slm-ls quality: {} samples ({} gaps × line-start and mid-line, {} blocks; seed {seed}; {} in the check half), rows: {}",
        samples.len(),
        samples.iter().filter(|s| s.pos == Pos::LineStart).count(),
        samples.iter().filter(|s| s.pos == Pos::Block).count(),
        samples.iter().filter(|s| s.check).count(),
        rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")
    );
    window_use(&samples, prefix_tokens);
    if rows.is_empty() {
        // QUALITY_ROWS= QUALITY_DUMP=FILE: the samples alone, so a peer
        // can be scored on them while (or before) slm-ls's rows run.
        if let Ok(path) = std::env::var("QUALITY_DUMP") {
            dump(&path, &samples, &rows, &[]);
        }
        return;
    }
    let t0 = Instant::now();
    // QUALITY_PARALLEL=1: every row's server at once (with
    // QUALITY_THREADS=1, one core each): answers are greedy and have no
    // deadline that matters, so they do not depend on timing.
    let answers: Vec<Vec<Answer>> = if std::env::var("QUALITY_PARALLEL").is_ok() {
        std::thread::scope(|s| {
            let runs: Vec<_> = rows.iter().map(|r| s.spawn(|| run(r, &samples))).collect();
            runs.into_iter().map(|h| h.join().expect("row")).collect()
        })
    } else {
        rows.iter().map(|r| run(r, &samples)).collect()
    };
    if let Ok(path) = std::env::var("QUALITY_DUMP") {
        dump(&path, &samples, &rows, &answers);
    }
    if std::env::var("QUALITY_VERBOSE").is_ok() {
        for (i, smp) in samples.iter().enumerate() {
            println!(
                "--- {} {} {}:{}:{}\n  want {:?}",
                smp.lang,
                smp.pos.name(),
                smp.file.display(),
                smp.line + 1,
                smp.col,
                smp.expected,
            );
            for (r, row) in rows.iter().enumerate() {
                println!("  {:>8} {:?}", row.name, answers[r][i].got);
            }
        }
    }
    report(&samples, &rows, &answers);
    let errors: usize = answers.iter().flatten().filter(|a| a.error).count();
    println!(
        "\n(errors: {errors}; wall time {:.0} s; exact = first line equal, trailing spaces ignored; edit sim. over the first line, or the block's lines)",
        t0.elapsed().as_secs_f64()
    );
}
