//! Repository-level bench (issue 19): holes at lines that call a name
//! defined in another file of the same project, the cursor right before
//! the name, the rest of the line the answer. The call names a function,
//! type or constant defined at the top level of another file (bare,
//! `module.name`, `module::name`, `pkg.Name`), which the hole's file does
//! not define; calls of methods on objects (`self.items.append(…)`) are
//! not holes, whatever names the project's classes share.
//!
//! Projects are real code not written here, copied into a scratch folder
//! (the workspace root): Python standard-library packages (`email`,
//! `asyncio`, `importlib`, `json`), crates from the cargo registry
//! (`regex-syntax`, `serde_json`, `tokio`), npm's own JavaScript (`lib/`)
//! and the Go package in git's contrib (`persistent-https`). A name counts
//! as "defined in another file" when the outline of another file of the
//! project defines it and the hole's own file does not.
//!
//! Rows, on the same holes, one server per row and project:
//! - `workspace`: slm-ls with the workspace index (the default);
//! - `file-only`: `context.workspace: false` (only the file is open: today);
//! - `naive`: `context.naive: true` (the plain-FIM floor).
//!
//! `llama-server /infill` as llama.vim drives it scores the same holes from
//! the dump: `REPO_DUMP=FILE` writes them in `benches/quality.rs`'s
//! QUALITY_DUMP format for `benches/peer_llama_server.py --quality FILE`.
//!
//! Holes are split by a hash of the file's path: the `dev` half (tuned on)
//! and the `held-out` half (never looked at while tuning); both reported,
//! and the holes whose name appears nowhere else in the file (imports
//! aside): where only the index can help.
//! Scores: exact first line, edit similarity, empty answers, with 95%
//! intervals (Wilson for proportions, normal for the mean). The index's
//! build time and memory per project are read from `slm-ls/stats`.
//!
//! Env: REPO_HOLES (per project, default 25), REPO_PROJECTS (comma list of
//! names), REPO_ROWS (comma list, default all three), REPO_THREADS (model
//! threads, default 0 = all), REPO_DUMP, REPO_SETTINGS (JSON merged into
//! every row's settings), REPO_VERBOSE (each answer), REPO_LIST=1 (the
//! holes only).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "scoring.rs"]
mod scoring;

use scoring::{edit_similarity, mean_ci, wilson};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Scratch, TestServer};
use serde_json::{json, Value};
use slm_ls::index::{imports, outline};
use slm_ls::syntax::{parse_str, Lang};

struct Project {
    name: &'static str,
    lang: Lang,
    language_id: &'static str,
    /// The copied tree (root of the workspace).
    root: PathBuf,
}

struct Hole {
    project: usize,
    rel: String,
    text: String,
    /// Byte offset of the cursor in `text`; UTF-16 line/column.
    cursor: usize,
    line: u32,
    col: u32,
    expected: String,
    held_out: bool,
}

fn copy_tree(from: &Path, to: &Path, exts: &[&str], depth: usize) {
    let Ok(rd) = std::fs::read_dir(from) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || name == "tests" || name == "test" || name == "benches" {
            continue;
        }
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() && depth > 0 {
            copy_tree(&p, &to.join(&name), exts, depth - 1);
        } else if ft.is_file() && exts.iter().any(|x| name.ends_with(x)) {
            std::fs::create_dir_all(to).unwrap();
            std::fs::copy(&p, to.join(&name)).unwrap();
        }
    }
}

fn projects(scratch: &Path) -> Vec<Project> {
    let mut out = Vec::new();
    let stdlib = common::stdlib_dir();
    let want: Option<Vec<String>> = std::env::var("REPO_PROJECTS")
        .ok()
        .map(|v| v.split(',').map(str::to_string).collect());
    let wanted = |n: &str| want.as_ref().is_none_or(|w| w.iter().any(|x| x == n));
    let mut add =
        |name: &'static str, lang, language_id, src: PathBuf, sub: &str, exts: &[&str]| {
            if !wanted(name) || !src.is_dir() {
                return;
            }
            let root = scratch.join(name);
            copy_tree(&src, &root.join(sub), exts, 6);
            out.push(Project {
                name,
                lang,
                language_id,
                root,
            });
        };
    for pkg in ["email", "asyncio", "importlib", "json"] {
        let name: &'static str = Box::leak(format!("py-{pkg}").into_boxed_str());
        add(
            name,
            Lang::Python,
            "python",
            stdlib.join(pkg),
            pkg,
            &[".py"],
        );
    }
    for krate in ["regex-syntax", "serde_json", "tokio"] {
        if let Some(dir) = common::registry_crates(&[krate]).into_iter().find(|d| {
            d.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.strip_prefix(krate).is_some_and(|r| {
                    r.starts_with("-") && r[1..].starts_with(|c: char| c.is_ascii_digit())
                })
            })
        }) {
            let name: &'static str = Box::leak(format!("rs-{krate}").into_boxed_str());
            add(name, Lang::Rust, "rust", dir.join("src"), "src", &[".rs"]);
        }
    }
    add(
        "js-npm",
        Lang::JavaScript,
        "javascript",
        PathBuf::from("/usr/lib/node_modules/npm/lib"),
        "lib",
        &[".js"],
    );
    add(
        "go-persistent-https",
        Lang::Go,
        "go",
        PathBuf::from("/usr/share/doc/git/contrib/persistent-https"),
        "",
        &[".go"],
    );
    out
}

fn files_of(root: &Path, lang: Lang) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if Lang::from_path(&p.to_string_lossy()) == Some(lang) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn hash(s: &str) -> u64 {
    // FNV-1a: stable across runs and platforms.
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

/// Names a file imports: from the project's own modules (`project`:
/// aliases and imported names) and from elsewhere (`outside`: the standard
/// library, dependencies).
#[derive(Default)]
struct Imported {
    project: std::collections::HashSet<String>,
    outside: std::collections::HashSet<String>,
}

impl Imported {
    fn of(p: &Project, rope: &ropey::Rope, tree: &tree_sitter::Tree) -> Imported {
        // The package a Python project is (`py-email` is `email`).
        let package = p.name.strip_prefix("py-").unwrap_or("");
        let ours = |m: &str| match p.lang {
            Lang::Python => m.starts_with('.') || m.split('.').next() == Some(package),
            Lang::Rust => ["crate", "self", "super"].contains(&m.split("::").next().unwrap_or("")),
            Lang::JavaScript => m.starts_with('.'),
            _ => false,
        };
        let mut out = Imported::default();
        for imp in imports::imports(p.lang, rope, tree) {
            let set = if ours(&imp.module) {
                &mut out.project
            } else {
                &mut out.outside
            };
            set.extend(imp.alias.into_iter().chain(imp.names));
        }
        out
    }
}

/// The called name of a call node, when the call names a function or type
/// of a module of the project rather than a method of some object:
/// - a bare name (`helper(…)`) not imported from outside the project;
/// - a name qualified by a project module the file imports
///   (`util.helper(…)`, `util::helper(…)`, `pkg.Helper(…)`), or in Rust a
///   path from `crate`/`self`/`super` or through a project type
///   (`Hir::literal(…)`; `top` is the project's top-level names).
///
/// `self._cur.append(…)`, `s.encode(…)`, `String::from(…)` and
/// `Poll::Ready(…)` are not such calls, whatever names the project shares.
fn callee<'t>(
    node: tree_sitter::Node<'t>,
    text: &str,
    imported: &Imported,
    top: &HashMap<String, Vec<usize>>,
) -> Option<tree_sitter::Node<'t>> {
    let f = node.child_by_field_name("function")?;
    let bare =
        |n: tree_sitter::Node<'t>| (!imported.outside.contains(&text[n.byte_range()])).then_some(n);
    let qualified_by_name = |object: &str, name: &str| {
        let o = f.child_by_field_name(object)?;
        let by_module = matches!(o.kind(), "identifier" | "package_identifier")
            && imported.project.contains(&text[o.byte_range()]);
        by_module.then_some(())?;
        f.child_by_field_name(name)
    };
    match f.kind() {
        "identifier" => bare(f),
        "attribute" => qualified_by_name("object", "attribute"),
        "field_expression" => None,
        "scoped_identifier" => {
            let path = f.child_by_field_name("path")?;
            let first = text[path.byte_range()].split("::").next().unwrap_or("");
            let ours = ["crate", "self", "super"].contains(&first)
                || imported.project.contains(first)
                || (top.contains_key(first) && !imported.outside.contains(first));
            ours.then_some(())?;
            f.child_by_field_name("name")
        }
        "member_expression" => qualified_by_name("object", "property"),
        "selector_expression" => qualified_by_name("operand", "field"),
        "generic_function" => f
            .child_by_field_name("function")
            .and_then(|g| g.child_by_field_name("name").or(Some(g)))
            .filter(|g| g.kind() == "identifier")
            .and_then(bare),
        _ => None,
    }
}

fn holes(projects: &[Project], per_project: usize) -> Vec<Hole> {
    let mut out = Vec::new();
    for (pi, p) in projects.iter().enumerate() {
        let files = files_of(&p.root, p.lang);
        let texts: Vec<(String, String)> = files
            .iter()
            .filter_map(|f| {
                let rel = f.strip_prefix(&p.root).ok()?.to_string_lossy().to_string();
                Some((rel, std::fs::read_to_string(f).ok()?))
            })
            .collect();
        // Name → files defining it (the project's outlines): `defined` at
        // any depth, `top` at the top level (functions, types, constants
        // of a module: what a call from another file can name; a method is
        // reached through an object, whose type the bench cannot know).
        let mut defined: HashMap<String, Vec<usize>> = HashMap::new();
        let mut top: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, (_, t)) in texts.iter().enumerate() {
            for d in outline::outline(p.lang, t) {
                let note = |m: &mut HashMap<String, Vec<usize>>| {
                    let v = m.entry(d.name.to_string()).or_default();
                    if !v.contains(&i) {
                        v.push(i);
                    }
                };
                note(&mut defined);
                if d.container.is_none() {
                    note(&mut top);
                }
            }
        }
        let mut cands: Vec<Hole> = Vec::new();
        for (i, (rel, text)) in texts.iter().enumerate() {
            let Some(tree) = parse_str(p.lang, text) else {
                continue;
            };
            let rope = ropey::Rope::from_str(text);
            let imported = Imported::of(p, &rope, &tree);
            let mut stack = vec![tree.root_node()];
            let mut per_file = Vec::new();
            while let Some(n) = stack.pop() {
                let mut w = n.walk();
                stack.extend(n.named_children(&mut w));
                if !matches!(n.kind(), "call" | "call_expression") {
                    continue;
                }
                let Some(name_node) = callee(n, text, &imported, &top) else {
                    continue;
                };
                let name = &text[name_node.byte_range()];
                let Some(files) = top.get(name) else {
                    continue;
                };
                let here = defined.get(name).is_some_and(|f| f.contains(&i));
                if files.contains(&i) || here || name.len() < 4 {
                    continue;
                }
                let start = name_node.start_byte();
                let line_end = text[start..].find('\n').map_or(text.len(), |e| start + e);
                let expected = text[start..line_end].trim_end().to_string();
                if expected.len() < 6 || expected.len() > 100 {
                    continue;
                }
                let row = name_node.start_position().row;
                if row < 20 {
                    continue; // deep in the module, not in its imports
                }
                let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
                let col = text[line_start..start].encode_utf16().count() as u32;
                let hole_text = format!("{}{}", &text[..start], &text[line_end..]);
                per_file.push(Hole {
                    project: pi,
                    rel: rel.clone(),
                    text: hole_text,
                    cursor: start,
                    line: row as u32,
                    col,
                    expected,
                    held_out: hash(rel) % 2 == 1,
                });
            }
            // One line once (a line with two calls is one hole).
            per_file.sort_by_key(|h| (h.line, h.col));
            per_file.dedup_by_key(|h| h.line);
            cands.extend(per_file);
        }
        // A fixed spread over the project's candidates (by hash, so the
        // choice does not depend on the order files were listed in).
        cands.sort_by_key(|h| hash(&format!("{}:{}", h.rel, h.line)));
        let mut per_file_count: HashMap<String, usize> = HashMap::new();
        let mut taken = 0;
        for h in cands {
            let n = per_file_count.entry(h.rel.clone()).or_insert(0);
            if *n >= 3 || taken >= per_project {
                continue;
            }
            *n += 1;
            taken += 1;
            out.push(h);
        }
    }
    out
}

/// Whether the hole's name appears nowhere in its file but in import
/// lines: what only the workspace index can tell the model (a name used
/// elsewhere in the file is in the prompt's window or the file's own
/// snippets already).
fn name_unseen(h: &Hole) -> bool {
    let name: String = h
        .expected
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    let is_import = |l: &str| {
        let t = l.trim_start();
        t.starts_with("import ")
            || t.starts_with("from ")
            || t.starts_with("use ")
            || t.starts_with("pub use ")
            || l.contains("require(")
    };
    !h.text.lines().filter(|l| !is_import(l)).any(|l| {
        l.match_indices(name.as_str()).any(|(at, _)| {
            let ident = |c: char| c.is_alphanumeric() || c == '_';
            !l[..at].ends_with(ident) && !l[at + name.len()..].starts_with(ident)
        })
    })
}

#[derive(Default, Clone)]
struct Tally {
    n: usize,
    exact: usize,
    empty: usize,
    es: Vec<f64>,
}

fn print_tally(label: &str, t: &Tally) {
    let (lo, hi) = wilson(t.exact, t.n);
    let (m, h) = mean_ci(&t.es);
    let (elo, ehi) = wilson(t.empty, t.n);
    println!(
        "{label:<28} n={:<4} exact {:>3} ({:.2} [{:.2}, {:.2}])  edit-sim {:.2} ± {:.2}  empty {:>3} ([{:.2}, {:.2}])",
        t.n,
        t.exact,
        t.exact as f64 / t.n.max(1) as f64,
        lo,
        hi,
        m,
        h,
        t.empty,
        elo,
        ehi
    );
}

fn wait_indexed(s: &mut TestServer) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let st = s.request("slm-ls/stats", json!(null));
        let ix = st["workspaceIndex"].clone();
        if ix["state"] != "building" && ix["state"] != "off" || Instant::now() > deadline {
            return ix;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One row on one project's holes: the answers, in order.
fn run_row(p: &Project, holes: &[&Hole], row: &str, threads: u32) -> (Vec<String>, Value) {
    let ctx = match row {
        "workspace" => json!({ "workspace": true }),
        "file-only" => json!({ "workspace": false }),
        _ => json!({ "naive": true, "workspace": false }),
    };
    let root = format!("file://{}", p.root.display());
    let mut settings = json!({
        "model": { "threads": threads },
        "completion": { "typedAhead": false, "maxTimeMs": 60000 },
        "context": ctx,
    });
    // REPO_SETTINGS='{"context":{"extraTokens":384}}': merged into every
    // row's settings (the rows' own `context` switches stay as they are).
    if let Ok(extra) = std::env::var("REPO_SETTINGS") {
        common::merge_json(
            &mut settings,
            &serde_json::from_str(&extra).expect("REPO_SETTINGS is JSON"),
        );
        common::merge_json(&mut settings, &json!({ "context": ctx }));
    }
    let mut s = TestServer::spawn(&[], &[]);
    s.initialize_at(&root, settings, json!({}));
    let ix = if row == "workspace" {
        wait_indexed(&mut s)
    } else {
        Value::Null
    };
    s.wait_ready();
    let mut answers = Vec::new();
    for h in holes {
        let uri = format!("{root}/{}", h.rel);
        s.open(&uri, p.language_id, &h.text);
        let r = s.inline_completion(&uri, h.line, h.col);
        s.notify(
            "textDocument/didClose",
            json!({ "textDocument": { "uri": uri } }),
        );
        let got = r["result"]["items"]
            .get(0)
            .and_then(|it| it["insertText"].as_str())
            .unwrap_or("")
            .to_string();
        if std::env::var("REPO_VERBOSE").is_ok() {
            println!(
                "  [{row}] {}:{} want {:?} got {:?}",
                h.rel,
                h.line + 1,
                h.expected,
                got
            );
        }
        answers.push(got);
    }
    assert!(s.shutdown().success());
    (answers, ix)
}

/// REPO_SYNTH=N: index a generated tree of N files (Python, Rust, Go,
/// JS; ~1.5 kB each) in the background and report the build time, the
/// index's memory estimate, and the server's resident memory before the
/// root is indexed and after (no model load in between: the model is
/// only loaded after).
fn synthetic(n: usize) {
    let scratch = Scratch::new("repo-synth");
    common::synthetic_tree(&scratch, n);
    let rss = |pid: u32| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .unwrap_or("0")
                        .parse()
                        .unwrap_or(0)
                })
            })
            .unwrap_or(0)
    };
    // No model: `model.path` points nowhere, so only the index works.
    let mut s = TestServer::spawn(&[], &[]);
    let root = format!("file://{}", scratch.display());
    s.initialize_at(
        &root,
        json!({ "model": { "path": "/nonexistent.gguf" } }),
        json!({}),
    );
    let before = rss(s.pid());
    let t0 = Instant::now();
    let ix = wait_indexed(&mut s);
    let wall = t0.elapsed();
    let after = rss(s.pid());
    println!(
        "synthetic tree of {n} files: {} files, {} definitions, index {} bytes ({:.1} MB), built in {} ms (polled {:.1} s), RSS {} -> {} kB (+{:.1} MB), skipped {}",
        ix["files"], ix["definitions"], ix["bytes"], ix["bytes"].as_f64().unwrap_or(0.0) / 1e6, ix["buildMs"], wall.as_secs_f64(), before, after, (after as f64 - before as f64) / 1024.0, ix["skipped"]
    );
    assert!(s.shutdown().success());
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if let Some(n) = std::env::var("REPO_SYNTH")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return synthetic(n);
    }
    let per_project: usize = std::env::var("REPO_HOLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25);
    let threads: u32 = std::env::var("REPO_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let rows: Vec<String> = std::env::var("REPO_ROWS")
        .unwrap_or_else(|_| "workspace,file-only,naive".into())
        .split(',')
        .map(str::to_string)
        .collect();
    let scratch = Scratch::new("repo-context");
    let projects = projects(&scratch);
    let holes = holes(&projects, per_project);
    println!(
        "{} holes in {} projects ({} held out); rows: {}",
        holes.len(),
        projects.len(),
        holes.iter().filter(|h| h.held_out).count(),
        rows.join(", ")
    );
    // REPO_LIST=1: the holes per project and nothing else (no model).
    if std::env::var("REPO_LIST").is_ok_and(|v| v == "1") {
        for (pi, p) in projects.iter().enumerate() {
            let hs: Vec<&Hole> = holes.iter().filter(|h| h.project == pi).collect();
            println!("{}: {} holes", p.name, hs.len());
            for h in hs {
                println!("  {}:{} {:?}", h.rel, h.line + 1, h.expected);
            }
        }
        return;
    }
    let mut answers: HashMap<(String, usize), String> = HashMap::new();
    for (pi, p) in projects.iter().enumerate() {
        let hs: Vec<(usize, &Hole)> = holes
            .iter()
            .enumerate()
            .filter(|(_, h)| h.project == pi)
            .collect();
        if hs.is_empty() {
            continue;
        }
        for row in &rows {
            let t0 = Instant::now();
            let (got, ix) = run_row(
                p,
                &hs.iter().map(|(_, h)| *h).collect::<Vec<_>>(),
                row,
                threads,
            );
            if !ix.is_null() {
                println!(
                    "index {}: {} files, {} definitions, {} bytes, built in {} ms, skipped {}",
                    p.name,
                    ix["files"],
                    ix["definitions"],
                    ix["bytes"],
                    ix["buildMs"],
                    ix["skipped"]
                );
            }
            println!(
                "  {} / {row}: {} holes in {:.0} s",
                p.name,
                hs.len(),
                t0.elapsed().as_secs_f64()
            );
            for ((i, _), g) in hs.iter().zip(got) {
                answers.insert((row.clone(), *i), g);
            }
        }
    }
    let unseen: Vec<bool> = holes.iter().map(name_unseen).collect();
    for (label, filter) in [
        ("all", None),
        ("dev", Some(false)),
        ("held-out", Some(true)),
        ("name nowhere else in the file (imports aside)", None),
    ] {
        println!("--- {label} ---");
        let only_unseen = label.starts_with("name");
        for row in &rows {
            let mut t = Tally::default();
            let mut per_lang: HashMap<&str, Tally> = HashMap::new();
            for (i, h) in holes.iter().enumerate() {
                if filter.is_some_and(|f| f != h.held_out) || (only_unseen && !unseen[i]) {
                    continue;
                }
                let Some(got) = answers.get(&(row.clone(), i)) else {
                    continue;
                };
                let first = got.lines().next().unwrap_or("").trim_end();
                for tt in [
                    &mut t,
                    per_lang.entry(projects[h.project].lang.name()).or_default(),
                ] {
                    tt.n += 1;
                    tt.exact += (first == h.expected) as usize;
                    tt.empty += got.is_empty() as usize;
                    tt.es.push(edit_similarity(first, &h.expected));
                }
            }
            print_tally(row, &t);
            if label == "all" {
                let mut langs: Vec<_> = per_lang.into_iter().collect();
                langs.sort_by_key(|(l, _)| *l);
                for (l, tt) in langs {
                    print_tally(&format!("  {row} / {l}"), &tt);
                }
            }
        }
    }
    if let Ok(path) = std::env::var("REPO_DUMP") {
        let mut out = String::new();
        for (i, h) in holes.iter().enumerate() {
            out += &json!({
                "lang": projects[h.project].lang.name(),
                "kind": if h.held_out { "held-out" } else { "dev" },
                "prefix": &h.text[..h.cursor],
                "suffix": &h.text[h.cursor..],
                "expected": h.expected,
                "slm_ls": answers.get(&("workspace".to_string(), i)).cloned().unwrap_or_default(),
            })
            .to_string();
            out.push('\n');
        }
        std::fs::write(&path, out).expect("REPO_DUMP file");
        println!("holes written to {path} (benches/peer_llama_server.py --quality {path})");
    }
}
