//! Explain does not leak secrets of any kind gitleaks knows (issue 21).
//!
//! Tested the way gitleaks tests its rules: for every rule of the pinned
//! catalog, true samples generated from the rule's own regex (seeded), each
//! matched again by that regex with its secret above the rule's entropy
//! floor and not covered by an allowlist; then written in the shapes code
//! and config hold them, and redacted. Three families of samples:
//!
//! - **tokens** (the rule recognises the secret by its format alone, e.g.
//!   `glpat-…`, `hf_…`): bare, assigned in Python/JS/Rust to a name that
//!   says nothing (`CONFIG_7 = "<token>"`), YAML, JSON, `.env`, a comment,
//!   inside a URL;
//! - **named** (the rule needs a provider's name before the value, e.g.
//!   `adafruit… = <32 chars>`): the generated match as is, and the same
//!   shapes with the value assigned to a name made from the rule's
//!   identifier pattern, and the value alone under `CONFIG_7` (gitleaks
//!   does not flag that; slm-ls' rules for literals in a rule's value
//!   format and for random-looking literals do, and
//!   this shape is asserted like the others);
//! - **verbatim** (other context rules: curl command lines, Kubernetes
//!   manifests, NuGet configs): the generated match, bare, in a comment
//!   and indented.
//!
//! A shape text that does not contain any of its rule's keywords gets one
//! in a comment line above it, so that each is a text gitleaks flags.
//! A sample leaked when any 16-character piece of its secret (or the whole
//! of a shorter one) is in what would be sent.
//!
//! `every_rule_every_shape_redacted` checks each shape text with
//! `redact` directly; `explain_sends_no_sample_to_the_provider` sends them
//! all, batched, through the real explain path (LSP over stdio to the
//! built binary, a fake OpenAI-compatible provider on 127.0.0.1);
//! `real_code_is_left_alone` counts false redactions on real code not
//! written here.

mod common;
mod remote_support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use regex_syntax::hir::{
    Capture, Class, ClassBytes, ClassBytesRange, ClassUnicode, ClassUnicodeRange, Hir, HirKind,
    Repetition,
};
use remote_support::{openai_chat, FakeServer, Reply};
use serde_json::{json, Value};
use slm_ls::remote::redact::redact;
use slm_ls::remote::secrets::{catalog, scan, shannon_entropy, Catalog};

/// The seed the rules were tuned on; `SLM_LS_SECRETS_SEED` draws other
/// samples (a held-out check: a rule tuned to one seed's values fails it).
const SEED: u64 = 21;
/// Samples per rule.
const PER_RULE: usize = 2;
/// Generation attempts per rule before giving up on it.
const TRIES: usize = 600;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Family {
    Token,
    Named,
    Verbatim,
}

#[derive(Debug, Clone)]
struct Sample {
    rule: String,
    family: Family,
    /// What the rule's regex matched in the generated text.
    matched: String,
    /// The value the shapes write: for tokens the whole token, for named
    /// rules the value, for verbatim ones gitleaks' secret.
    secret: String,
    /// Every piece that must not be sent: gitleaks' secret and each capture
    /// group, of 8 characters or more, and `secret`.
    material: Vec<String>,
    /// For `Named`: a name the rule accepts before the value.
    name: String,
    keywords: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Bare,
    Python,
    JavaScript,
    Rust,
    Yaml,
    Json,
    Env,
    Comment,
    Url,
    Indented,
    /// A `Named` sample's value under `CONFIG_7`, without its provider's name.
    Unnamed,
}

const SHAPES: &[Shape] = &[
    Shape::Bare,
    Shape::Python,
    Shape::JavaScript,
    Shape::Rust,
    Shape::Yaml,
    Shape::Json,
    Shape::Env,
    Shape::Comment,
    Shape::Url,
    Shape::Indented,
    Shape::Unnamed,
];

impl Shape {
    fn lang(self) -> &'static str {
        match self {
            Shape::Bare => "plaintext",
            Shape::Python | Shape::Comment | Shape::Url | Shape::Indented | Shape::Unnamed => {
                "python"
            }
            Shape::JavaScript => "javascript",
            Shape::Rust => "rust",
            Shape::Yaml => "yaml",
            Shape::Json => "json",
            Shape::Env => "dotenv",
        }
    }
}

// --- generating samples from a rule's regex -------------------------------

/// `h` with look-arounds dropped (the generator cannot produce them; every
/// sample is checked against the real regex afterwards) and classes cut to
/// printable ASCII (else to ASCII whitespace), so samples are text.
fn printable(h: Hir) -> Hir {
    match h.into_kind() {
        HirKind::Empty | HirKind::Look(_) => Hir::empty(),
        HirKind::Literal(l) => Hir::literal(l.0),
        HirKind::Class(Class::Bytes(c)) => {
            let cut = |lo: u8, hi: u8| {
                let mut k = c.clone();
                k.intersect(&ClassBytes::new([ClassBytesRange::new(lo, hi)]));
                (!k.ranges().is_empty()).then_some(k)
            };
            let k = cut(b' ', b'~').or_else(|| cut(b'\t', b'\r')).unwrap_or(c);
            Hir::class(Class::Bytes(k))
        }
        HirKind::Class(Class::Unicode(c)) => {
            let cut = |lo: char, hi: char| {
                let mut k = c.clone();
                k.intersect(&ClassUnicode::new([ClassUnicodeRange::new(lo, hi)]));
                (!k.ranges().is_empty()).then_some(k)
            };
            let k = cut(' ', '~').or_else(|| cut('\t', '\r')).unwrap_or(c);
            Hir::class(Class::Unicode(k))
        }
        HirKind::Repetition(r) => Hir::repetition(Repetition {
            sub: Box::new(printable(*r.sub)),
            ..r
        }),
        HirKind::Capture(c) => Hir::capture(Capture {
            sub: Box::new(printable(*c.sub)),
            ..c
        }),
        HirKind::Concat(v) => Hir::concat(v.into_iter().map(printable).collect()),
        HirKind::Alternation(v) => Hir::alternation(v.into_iter().map(printable).collect()),
    }
}

fn generator(pattern: &str) -> Option<rand_regex::Regex> {
    let hir = catalog::parse_hir(pattern)?;
    rand_regex::Regex::with_hir(printable(hir), 6).ok()
}

/// gitleaks' semi-generic rules read `[\w.-]{0,50}?(?:IDENT)(?:[ \t\w.-]{0,20})…`:
/// the identifier pattern, if `pattern` is one of them.
fn ident_pattern(pattern: &str) -> Option<&str> {
    let head = "{0,50}?(?:";
    let at = pattern.find(head)? + head.len();
    let rest = &pattern[at..];
    let end = rest.find(r")(?:[ \t\w.-]{0,20})")?;
    Some(&rest[..end])
}

fn words(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn samples(cat: &Catalog) -> (Vec<Sample>, Vec<String>) {
    let seed = std::env::var("SLM_LS_SECRETS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SEED);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    let mut without = Vec::new();
    for (r, rule) in cat.rules.iter().enumerate() {
        let Some(gen) = generator(&rule.pattern) else {
            without.push(format!("{} (no generator)", rule.id));
            continue;
        };
        let names = ident_pattern(&rule.pattern)
            .and_then(|p| generator(&format!("(?-i:{p})")).or_else(|| generator(p)));
        let mut got = 0;
        for _ in 0..TRIES {
            if got == PER_RULE {
                break;
            }
            let bytes: Vec<u8> = rng.sample(&gen);
            let Ok(text) = String::from_utf8(bytes) else {
                continue;
            };
            // A true sample: the rule's regex matches it, and the catalog's
            // checks (entropy floor, allowlists) keep the finding.
            let Some(caps) = rule.regex.captures(text.as_bytes()) else {
                continue;
            };
            let mut found = Vec::new();
            scan::scan_rule(cat, r, &text, &mut found);
            if found.is_empty() {
                continue;
            }
            // gitleaks' secret: `secretGroup`, else the first non-empty group.
            let groups: Vec<_> = caps
                .iter()
                .skip(1)
                .flatten()
                .filter(|g| !g.is_empty())
                .collect();
            let g = if rule.secret_group > 0 {
                caps.get(rule.secret_group)
            } else {
                groups.first().copied()
            }
            .unwrap_or_else(|| caps.get(0).unwrap());
            let gl_secret = text[g.start()..g.end()].trim_matches('\n').to_string();
            assert!(rule.entropy == 0.0 || shannon_entropy(&gl_secret) > rule.entropy);
            // The token around it: its run of token characters in the match.
            let m = caps.get(0).unwrap();
            // (`=` only after it: base64 padding, not `name=`.)
            let tok = |c: u8| c.is_ascii_alphanumeric() || b"+/_-.\\~".contains(&c);
            let (mut a, mut b) = (g.start(), g.end());
            while a > m.start() && tok(text.as_bytes()[a - 1]) {
                a -= 1;
            }
            while b < m.end() && (tok(text.as_bytes()[b]) || text.as_bytes()[b] == b'=') {
                b += 1;
            }
            let run = text[a..b].to_string();
            // The value: the group that ends last, the outermost of those.
            let value = groups
                .iter()
                .max_by_key(|g| (g.end(), g.len()))
                .map_or(gl_secret.clone(), |g| text[g.start()..g.end()].to_string());
            if out
                .iter()
                .any(|s: &Sample| s.secret == run || s.secret == value)
            {
                continue;
            }
            let lower = run.to_lowercase();
            let token = rule.regex.is_match(format!("\n{run}\n").as_bytes())
                && (rule.keywords.is_empty() || rule.keywords.iter().any(|k| lower.contains(k)));
            // Pieces under 8 characters other than the value are names:
            // gitleaks' secret for `sonar-api-token` is its first group,
            // `(login|token)`, a word of the name, which the marker
            // `[REDACTED:sonar-api-token]` itself contains.
            let mut material: Vec<String> = groups
                .iter()
                .map(|g| text[g.start()..g.end()].to_string())
                .chain([gl_secret.clone()])
                .filter(|g| g.len() >= 8)
                .collect();
            let name = names.as_ref().and_then(|g| {
                (0..50)
                    .map(|_| String::from_utf8(rng.sample::<Vec<u8>, _>(g)).unwrap_or_default())
                    .find(|n| words(n))
            });
            let single_line = !text.contains(['\n', '\r']);
            let (family, name, secret) = match name {
                _ if token && single_line => (Family::Token, String::new(), run),
                Some(n) if single_line => (Family::Named, format!("{n}_key"), value),
                _ => (Family::Verbatim, String::new(), gl_secret),
            };
            material.push(secret.clone());
            material.sort();
            material.dedup();
            out.push(Sample {
                rule: rule.id.clone(),
                family,
                matched: text,
                secret,
                material,
                name,
                keywords: rule.keywords.clone(),
            });
            got += 1;
        }
        if got == 0 {
            without.push(rule.id.clone());
        }
    }
    (out, without)
}

// --- shapes ---------------------------------------------------------------

fn code_name(n: &str) -> String {
    n.replace(['.', '-'], "_")
}

/// `s` written in `shape`, or `None` where the shape cannot hold it (a
/// quote of the shape's own kind in the value, a multi-line match on one
/// line).
fn shaped(s: &Sample, shape: Shape) -> Option<String> {
    let (v, name) = match s.family {
        Family::Token => (s.secret.as_str(), "config_7".to_string()),
        Family::Named => (s.secret.as_str(), s.name.clone()),
        Family::Verbatim => (s.matched.as_str(), String::new()),
    };
    let dq = !v.contains(['"', '\\']);
    let sq = !v.contains(['\'', '\\']);
    let one_line = !v.contains(['\n', '\r']);
    let text = match (s.family, shape) {
        (Family::Verbatim, Shape::Bare) => v.to_string(),
        (Family::Verbatim, Shape::Comment) if one_line => format!("# {v}"),
        (Family::Verbatim, Shape::Indented) if one_line => {
            format!("def f():\n    {v}\n    return 1")
        }
        (Family::Verbatim, _) => return None,
        (Family::Named, Shape::Bare) => s.matched.clone(),
        (Family::Named, Shape::Unnamed) if dq => format!("CONFIG_7 = \"{v}\""),
        (Family::Token, Shape::Unnamed) => return None,
        (Family::Token, Shape::Bare) => v.to_string(),
        (_, Shape::Python) if dq => {
            let n = code_name(&name);
            let n = if s.family == Family::Token {
                "CONFIG_7".into()
            } else {
                n
            };
            format!("{n} = \"{v}\"")
        }
        (_, Shape::JavaScript) if sq => format!("const {} = '{v}';", code_name(&name)),
        (_, Shape::Rust) if dq => format!("let {} = \"{v}\";", code_name(&name)),
        (_, Shape::Yaml) => format!("settings:\n  {name}: {v}"),
        (_, Shape::Json) if dq => format!("{{\n  \"{name}\": \"{v}\"\n}}"),
        (_, Shape::Env) => format!("{}={v}", code_name(&name).to_uppercase()),
        (_, Shape::Comment) => format!("# {name}: {v}"),
        (_, Shape::Url) if dq => format!("url = \"https://api.example.com/v1/items?{name}={v}\""),
        (Family::Token, Shape::Indented) if dq => format!("def f():\n    return \"{v}\""),
        _ => return None,
    };
    let lower = text.to_lowercase();
    Some(
        if s.keywords.is_empty() || s.keywords.iter().any(|k| lower.contains(k)) {
            text
        } else {
            format!("# {}\n{text}", s.keywords[0])
        },
    )
}

/// Whether any 16-character piece of `secret` (or all of a shorter one)
/// is in `sent`.
fn leaked(secret: &str, sent: &str) -> bool {
    let b = secret.as_bytes();
    if b.len() <= 16 {
        return sent.contains(secret);
    }
    (0..=b.len() - 16).any(|i| std::str::from_utf8(&b[i..i + 16]).is_ok_and(|w| sent.contains(w)))
}

#[test]
fn every_rule_every_shape_redacted() {
    let cat = catalog();
    let (samples, without) = samples(cat);
    let rules_with = cat.rules.len() - without.len();
    eprintln!(
        "{} samples from {rules_with} of {} rules ({} loaded, {} skipped by the loader); no sample for: {without:?}",
        samples.len(),
        cat.rules.len(),
        cat.rules.len(),
        cat.skipped_rules().count()
    );
    for f in [Family::Token, Family::Named, Family::Verbatim] {
        eprintln!(
            "  {f:?}: {}",
            samples.iter().filter(|s| s.family == f).count()
        );
    }
    let mut leaks: Vec<String> = Vec::new();
    let mut per_shape: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for shape in SHAPES {
        for s in &samples {
            let Some(text) = shaped(s, *shape) else {
                continue;
            };
            let out = redact(&text, shape.lang()).text;
            let e = per_shape.entry(format!("{shape:?}")).or_default();
            e.0 += 1;
            if s.material.iter().any(|m| leaked(m, &out)) {
                e.1 += 1;
                leaks.push(format!("{} {shape:?}: {out:?}", s.rule));
            }
        }
    }
    for (shape, (n, leaked)) in &per_shape {
        eprintln!("  {shape:<10} {n:>4} texts, {leaked:>3} leaked");
    }
    assert!(
        rules_with >= cat.rules.len() - 3,
        "too many rules without samples: {without:?}"
    );
    assert!(
        leaks.is_empty(),
        "{} leaks:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}

// --- through the real explain path -----------------------------------------

const KEY_ENV: &str = "SLM_TEST_REMOTE_KEY";
/// A batch stays under explain's selection limit (16,000 characters), so
/// nothing is cut off unsent (and so untested).
const BATCH_CHARS: usize = 12_000;

/// The user message of a recorded chat request.
fn sent_text(body: &Value) -> String {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn explain_sends_no_sample_to_the_provider() {
    let cat = catalog();
    let (samples, _) = samples(cat);
    // Batches of shape texts, each sample followed by a tag line that must
    // arrive: proof that its neighbourhood was sent, not cut or swallowed.
    // An unterminated private key block is withheld to the end of the
    // text (slm-ls' own rule), so those go in batches of their own.
    let mut batches: Vec<(Shape, String, Vec<usize>)> = Vec::new();
    for shape in SHAPES {
        let mut cur = (*shape, format!("# batch of {shape:?} shapes\n"), Vec::new());
        for (i, s) in samples.iter().enumerate() {
            let Some(text) = shaped(s, *shape) else {
                continue;
            };
            let alone = s.matched.contains("-----BEGIN");
            let piece = format!("{text}\n# end of sample {i}\n\n");
            if alone {
                let head = format!("# sample {i} alone\n");
                batches.push((*shape, head + &piece, vec![i]));
                continue;
            }
            if cur.1.len() + piece.len() > BATCH_CHARS {
                let next = (*shape, format!("# batch of {shape:?} shapes\n"), Vec::new());
                batches.push(std::mem::replace(&mut cur, next));
            }
            cur.1.push_str(&piece);
            cur.2.push(i);
        }
        batches.push(cur);
    }

    let fake = FakeServer::always(Reply::sse(openai_chat(&["fine"]), Duration::ZERO));
    let mut s = common::TestServer::spawn(
        &[],
        &[
            ("SLM_LS_MODEL", "/nonexistent/model.gguf"),
            (KEY_ENV, "sk-test-abcdefghijklmnopqrstuvwx2345"),
        ],
    );
    s.initialize(
        json!({ "remote": { "provider": "openai", "endpoint": format!("{}/v1", fake.url), "model": "gpt-test", "apiKeyEnv": KEY_ENV } }),
        json!({}),
    );
    let mut leaks = Vec::new();
    let mut texts = 0;
    let mut withheld = 0u64;
    for (n, (shape, doc, members)) in batches.iter().enumerate() {
        let uri = format!("file:///work/secrets/batch{n}.txt");
        s.open(&uri, shape.lang(), doc);
        let lines = doc.lines().count() as u32;
        let id = s.request_async(
            "workspace/executeCommand",
            json!({ "command": "slm-ls.explain", "arguments": [{ "uri": uri, "range": { "start": { "line": 0, "character": 0 }, "end": { "line": lines, "character": 0 } } }] }),
        );
        let r = s.response(id, Duration::from_secs(30));
        assert_eq!(r["result"]["markdown"], "fine", "{r}");
        withheld += r["result"]["redactions"]
            .as_object()
            .map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
        let sent = sent_text(&fake.wait_requests(n + 1, Duration::from_secs(10))[n].json());
        for i in members {
            assert!(
                sent.contains(&format!("# end of sample {i}\n")),
                "sample {i}'s text did not arrive whole: {sent}"
            );
            texts += 1;
            let smp = &samples[*i];
            if smp.material.iter().any(|m| leaked(m, &sent)) {
                leaks.push(format!("{} {shape:?}", smp.rule));
            }
        }
    }
    eprintln!(
        "{} explain requests, {texts} sample texts, {withheld} values withheld, {} leaked",
        batches.len(),
        leaks.len()
    );
    assert!(
        withheld as usize >= texts,
        "fewer values withheld than samples sent"
    );
    assert!(leaks.is_empty(), "reached the provider: {leaks:?}");
    assert!(s.shutdown().success());
}

// --- false redactions on real code ------------------------------------------

/// The first `n` lines of `ext` files under `roots`, in path order, as
/// chunks of about 200 lines (what one explain would send).
/// `n` lines of `.{ext}` under `roots` in chunks of 200 (all there are
/// when `wide`: then fewer than `n` is no error).
fn corpus(roots: &[PathBuf], ext: &str, n: usize, wide: bool) -> Vec<String> {
    let (mut chunks, mut cur, mut count) = (Vec::new(), String::new(), 0);
    // Test suites hold made-up keys and encoded vectors on purpose.
    let files = common::source_files(roots, ext).into_iter().filter(|p| {
        !wide
            || !p.components().any(|c| {
                matches!(
                    c.as_os_str().to_str(),
                    Some(
                        "test"
                            | "tests"
                            | "testdata"
                            | "benches"
                            | "site-packages"
                            | "dist-packages"
                    )
                )
            })
    });
    'files: for p in files {
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        for line in text.lines() {
            cur.push_str(line);
            cur.push('\n');
            count += 1;
            if count % 200 == 0 {
                chunks.push(std::mem::take(&mut cur));
            }
            if count == n {
                break 'files;
            }
        }
    }
    chunks.push(cur);
    assert!(wide || count == n, "only {count} lines of .{ext} found");
    chunks
}

#[test]
fn real_code_is_left_alone() {
    // SLM_LS_SECRETS_WIDE=1: the `src` of every crate in the cargo
    // registry (but `windows-sys`: generated bindings) and the whole Python
    // standard library (installed packages and test suites left out),
    // counted and listed, not
    // asserted (the wider check quoted in docs/remote.md).
    let wide = std::env::var("SLM_LS_SECRETS_WIDE").is_ok_and(|v| v == "1");
    const LINES: usize = 20_000;
    let mut rust: Vec<PathBuf> = common::registry_crates(&[
        "tokio",
        "serde_json",
        "regex-syntax",
        "ropey",
        "ureq",
        "tree-sitter",
        "dashmap",
        "zip",
    ])
    .into_iter()
    .map(|c| c.join("src"))
    .collect();
    if wide {
        // Every unpacked crate: the folder that holds tokio's holds them all.
        let registry = common::registry_crates(&["tokio"]);
        let all = registry
            .first()
            .and_then(|c| c.parent())
            .and_then(|r| std::fs::read_dir(r).ok());
        rust = all
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("src"))
            .filter(|p| !p.to_string_lossy().contains("windows-sys"))
            .collect();
        rust.sort();
    }
    let std = common::stdlib_dir();
    let mut python: Vec<PathBuf> = [
        "json",
        "email",
        "http",
        "asyncio",
        "logging",
        "urllib",
        "xml",
        "importlib",
        "concurrent",
        "collections",
    ]
    .iter()
    .map(|m| std.join(m))
    .collect();
    if wide {
        python = vec![std];
    }
    let mut worst = 0.0f64;
    for (lang, ext, roots) in [("rust", "rs", rust), ("python", "py", python)] {
        let mut false_redactions = Vec::new();
        let chunks = corpus(&roots, ext, if wide { usize::MAX } else { LINES }, wide);
        let lines: usize = chunks.iter().map(|c| c.lines().count()).sum();
        for chunk in chunks {
            let out = redact(&chunk, lang);
            if out.total() > 0 {
                for (a, b) in chunk.lines().zip(out.text.lines()) {
                    if a != b {
                        false_redactions.push(format!("{a}\n    -> {b}"));
                    }
                }
            }
        }
        let per_10k = false_redactions.len() as f64 * 10_000.0 / lines as f64;
        worst = worst.max(per_10k);
        eprintln!(
            "{lang}: {} false redactions in {lines} lines ({per_10k:.2} per 10,000)",
            false_redactions.len()
        );
        for l in &false_redactions {
            eprintln!("  {l}");
        }
    }
    assert!(
        wide || worst <= 1.0,
        "more than 1 false redaction per 10,000 lines"
    );
}
