//! How long redaction takes on what explain would send: a 10,000-line
//! selection of real code not written here (Rust crates from the cargo
//! registry, the Python standard library), and a selection of many
//! megabytes against explain's time budget.
//!
//! `cargo bench -p slm-ls --bench redact` prints p50/p95 over repetitions.
//! The goal (issue 21): 10,000 lines in <= 50 ms, on one core.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use slm_ls::remote::explain::REDACT_BUDGET;
use slm_ls::remote::redact::{redact, redact_within};
use slm_ls::remote::secrets;

#[path = "../tests/common/mod.rs"]
mod common;

/// `n` lines of `ext` files under `roots`, in a stable order.
fn lines_of(roots: &[PathBuf], ext: &str, n: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    for p in common::source_files(roots, ext) {
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        for line in text.lines() {
            out.push_str(line);
            out.push('\n');
            count += 1;
            if count == n {
                return out;
            }
        }
    }
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn bench(name: &str, text: &str, lang: &str, reps: usize) {
    let mut times = Vec::with_capacity(reps);
    let mut found = 0;
    for _ in 0..reps {
        let t = Instant::now();
        let r = redact(text, lang);
        times.push(t.elapsed());
        found = r.total();
    }
    times.sort();
    println!(
        "{name:<28} {:>6} lines {:>8} bytes  p50 {:>6.1} ms  p95 {:>6.1} ms  ({} redactions)",
        text.lines().count(),
        text.len(),
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.95).as_secs_f64() * 1e3,
        found
    );
}

/// The slowest catalog rules on `text` (`REDACT_PROFILE=1`).
fn profile(text: &str) {
    let cat = secrets::catalog();
    let t = Instant::now();
    let active = secrets::scan::active_rules(cat, text);
    println!(
        "prefilter: {} of {} rules active, {:.2} ms",
        active.len(),
        cat.rules.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    let mut times: Vec<(Duration, &str)> = active
        .iter()
        .map(|&r| {
            let t = Instant::now();
            let mut out = Vec::new();
            secrets::scan::scan_rule(cat, r, text, &mut out);
            (t.elapsed(), cat.rules[r].id.as_str())
        })
        .collect();
    times.sort_by(|a, b| b.cmp(a));
    for (d, id) in times.iter().take(12) {
        println!("  {:>7.2} ms  {id}", d.as_secs_f64() * 1e3);
    }
}

fn main() {
    let t = Instant::now();
    let cat = secrets::catalog();
    println!(
        "catalog built in {:.1} ms: {}",
        t.elapsed().as_secs_f64() * 1e3,
        cat.report().lines().next().unwrap_or("")
    );
    let reps: usize = std::env::var("REDACT_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);

    let crates = common::registry_crates(&["tokio", "serde_json", "regex-syntax", "ropey", "ureq"]);
    let rust = lines_of(
        &crates.iter().map(|c| c.join("src")).collect::<Vec<_>>(),
        "rs",
        10_000,
    );
    let python = lines_of(&[common::stdlib_dir()], "py", 10_000);
    if std::env::var_os("REDACT_PROFILE").is_some() {
        profile(&rust);
    }
    bench("10,000 lines of Rust", &rust, "rust", reps);
    bench("10,000 lines of Python", &python, "python", reps);

    // Many megabytes: redacted within explain's budget or refused.
    let mut big = String::new();
    while big.len() < 8 << 20 {
        big.push_str(&rust);
    }
    let t = Instant::now();
    let r = redact_within(&big, "rust", Some(Instant::now() + REDACT_BUDGET));
    println!(
        "{:>4} MB selection: {} after {:.0} ms (budget {} ms)",
        big.len() >> 20,
        if r.is_ok() {
            "redacted"
        } else {
            "refused (overtime)"
        },
        t.elapsed().as_secs_f64() * 1e3,
        REDACT_BUDGET.as_millis()
    );
}
