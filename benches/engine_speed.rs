//! Raw engine speed: prefill and decode tokens/s of slm-ls's engine on the
//! default model, and — with `LLAMA_SERVER=/path/to/llama-server` — of
//! llama.cpp's own server on the same model, the same prompts and the same
//! thread count, in the same run (issue 20: "within 10% of llama-server's
//! native build").
//!
//! Each sample is a cold FIM prompt (a different stretch of real code each
//! time, so nothing is reused from the KV cache) followed by up to
//! `ENGINE_DECODE` greedy tokens. Prefill tokens/s = evaluated tokens /
//! prefill time; decode tokens/s = generated tokens / the rest.
//!
//! `cargo bench -p slm-ls --bench engine_speed`
//! Environment: ENGINE_SAMPLES (8), ENGINE_PROMPT_CHARS (2400, ~600 tokens),
//! ENGINE_DECODE (64), LLAMA_SERVER (path; the peer row is skipped without
//! it), SLM_LS_THREADS / model.threads (default: all cores), SLM_LS_MODEL
//! (another model), ENGINE_DRAFT (a `model.draft` value: warm decodes of
//! the model alone and with that draft model, as the replay's keystrokes
//! see them, instead of the cold rows).
//! Run it on a quiet machine: two jobs on two cores slow llama.cpp 20×.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use slm_ls::config::Config;
use slm_ls::engine::{EngineSettings, Event, GenParams, InferenceHandle, PromptInput, StopRules};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `n` stretches of real Python (the standard library), each cut at a line
/// start, as (prefix, suffix): the prefix ends mid-function so the model
/// has something to write, the suffix is the next few lines.
fn prompts(n: usize, chars: usize) -> Vec<(String, String)> {
    let lib = std::process::Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['stdlib'])",
        ])
        .output()
        .expect("python3 for the standard library's path");
    let lib = String::from_utf8_lossy(&lib.stdout).trim().to_string();
    let mut out = Vec::new();
    for f in [
        "argparse.py",
        "textwrap.py",
        "csv.py",
        "shlex.py",
        "json/decoder.py",
        "difflib.py",
    ] {
        let Ok(text) = std::fs::read_to_string(format!("{lib}/{f}")) else {
            continue;
        };
        let mut at = 0;
        while out.len() < n && at + chars + 400 < text.len() {
            let start = text[at..].find('\n').map(|i| at + i + 1).unwrap_or(at);
            let mut end = start + chars;
            while !text.is_char_boundary(end) {
                end += 1;
            }
            // Cursor right after an indented line's indentation: code follows.
            let cut = text[..end].rfind("\n    ").map(|i| i + 5).unwrap_or(end);
            let stop = text[cut..]
                .char_indices()
                .filter(|(_, c)| *c == '\n')
                .nth(8)
                .map(|(i, _)| cut + i)
                .unwrap_or(text.len());
            let line_end = text[cut..].find('\n').map(|i| cut + i).unwrap_or(cut);
            out.push((
                text[start..cut].to_string(),
                text[line_end..stop].to_string(),
            ));
            at = stop + chars;
        }
        if out.len() >= n {
            break;
        }
    }
    assert!(
        out.len() >= n.min(2),
        "not enough standard-library code for {n} prompts"
    );
    out
}

struct Sample {
    text: String,
    prefill_tps: f64,
    decode_tps: f64,
    evaluated: usize,
    generated: usize,
}

/// `warm`: each prompt is first prefilled by a one-token request, then
/// (once the engine is idle: a draft model has caught up, as it does
/// between keystrokes) asked again: the second request's decode is
/// measured, as a keystroke's would be.
fn engine_row(
    config: &Config,
    prompts: &[(String, String)],
    decode: u32,
    warm: bool,
) -> Vec<Sample> {
    let path = slm_ls::models::resolve_model_path(None);
    let settings = EngineSettings::from_config(config, path).expect("engine settings");
    let engine = InferenceHandle::spawn(settings, Box::new(|_| {})).expect("model loads");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut out = Vec::new();
    for (i, (prefix, suffix)) in prompts.iter().enumerate() {
        let input = PromptInput {
            path: format!("bench_{i}.py"),
            prefix: prefix.clone(),
            suffix: suffix.clone(),
            extras: Vec::new(),
            line_len: 0,
            heal: String::new(),
        };
        let params = |max_tokens| GenParams {
            max_tokens,
            draft_tokens: 0,
            max_time_ms: 60_000,
            stop: StopRules::default(),
        };
        let run = |max_tokens| {
            let mut stream =
                engine.complete(&format!("bench-{i}"), input.clone(), params(max_tokens));
            rt.block_on(async {
                loop {
                    match stream.events.recv().await {
                        Some(Event::Done(o)) => break o,
                        Some(Event::Delta(_)) => {}
                        other => panic!("engine: {other:?}"),
                    }
                }
            })
        };
        if warm {
            run(1);
            engine.idle();
        }
        let outcome = run(decode);
        let decode_ms = (outcome.total_ms - outcome.prefill_ms).max(1e-3);
        out.push(Sample {
            text: outcome.text.clone(),
            prefill_tps: outcome.evaluated_tokens as f64 * 1000.0 / outcome.prefill_ms.max(1e-3),
            decode_tps: outcome.generated_tokens as f64 * 1000.0 / decode_ms,
            evaluated: outcome.evaluated_tokens,
            generated: outcome.generated_tokens,
        });
        engine.forget(&format!("bench-{i}"));
    }
    let r = engine.stats.report();
    if r.draft_proposed > 0 {
        println!(
            "draft model: {} tokens proposed, {} accepted ({:.0}%)",
            r.draft_proposed,
            r.draft_accepted,
            100.0 * r.draft_accepted as f64 / r.draft_proposed as f64
        );
    }
    out
}

/// llama-server, killed on drop (also when the bench panics).
struct Peer(Child, u16);
impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn post(port: u16, path: &str, body: &Value) -> Result<Value, String> {
    let body = body.to_string();
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(300))).ok();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    serde_json::from_str(body).map_err(|e| format!("{e}: {body:.200}"))
}

fn peer_row(server: &str, threads: i32, prompts: &[(String, String)], decode: u32) -> Vec<Sample> {
    let model = slm_ls::models::resolve_model_path(None);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(server)
        .args(["-m", &model.to_string_lossy(), "--port", &port.to_string()])
        .args(["-t", &threads.to_string(), "-tb", &threads.to_string()])
        .args(["-c", "4096", "-np", "1", "--no-webui"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {server}: {e}"));
    let stderr = child.stderr.take().unwrap();
    let peer = Peer(child, port);
    // Its log names the kernels it was built with (system_info line).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("system_info") || line.contains("CPU :") {
                let _ = tx.send(line);
            }
        }
    });
    let t0 = Instant::now();
    while post(
        peer.1,
        "/completion",
        &json!({"prompt": "x", "n_predict": 1}),
    )
    .is_err()
    {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "llama-server did not start"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    if let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) {
        println!("llama-server: {}", line.trim());
    }
    let mut out = Vec::new();
    for (prefix, suffix) in prompts {
        // The engine's own layout for this model family (PSM, Qwen tokens).
        let prompt = format!("<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>");
        let r = post(
            peer.1,
            "/completion",
            &json!({"prompt": prompt, "n_predict": decode, "cache_prompt": false,
                    "temperature": 0, "top_k": 1, "samplers": ["top_k"]}),
        )
        .expect("llama-server answers");
        let t = &r["timings"];
        out.push(Sample {
            text: r["content"].as_str().unwrap_or_default().to_string(),
            prefill_tps: t["prompt_per_second"].as_f64().unwrap_or(0.0),
            decode_tps: t["predicted_per_second"].as_f64().unwrap_or(0.0),
            evaluated: t["prompt_n"].as_u64().unwrap_or(0) as usize,
            generated: t["predicted_n"].as_u64().unwrap_or(0) as usize,
        });
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return 0.0;
    }
    v[v.len() / 2]
}

fn summary(name: &str, s: &[Sample]) -> (f64, f64) {
    // Decode speed from samples that generated enough to measure.
    let decode: Vec<f64> = s
        .iter()
        .filter(|x| x.generated >= 8)
        .map(|x| x.decode_tps)
        .collect();
    let (p, d) = (
        median(s.iter().map(|x| x.prefill_tps).collect()),
        median(decode.clone()),
    );
    let (pmin, pmax) = s.iter().fold((f64::MAX, 0f64), |(a, b), x| {
        (a.min(x.prefill_tps), b.max(x.prefill_tps))
    });
    println!(
        "| {name:<12} | {p:>8.1} ({pmin:.0}–{pmax:.0}) | {d:>8.1} ({} of {}) | {:>6.0} | {:>6.0} |",
        decode.len(),
        s.len(),
        median(s.iter().map(|x| x.evaluated as f64).collect()),
        median(s.iter().map(|x| x.generated as f64).collect()),
    );
    (p, d)
}

fn main() {
    // RUST_LOG=slm_ls::engine=debug: the engine's per-request lines.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let n = env_usize("ENGINE_SAMPLES", 8);
    let chars = env_usize("ENGINE_PROMPT_CHARS", 2400);
    let decode = env_usize("ENGINE_DECODE", 64) as u32;
    let config = Config::default();
    let threads = config.threads();
    let prompts = prompts(n, chars);
    let kernels = slm_ls::engine::cpu::report();
    println!(
        "slm-ls kernels: {} {:?}; threads {threads}; {} prompts of ~{chars} chars; decode up to {decode}",
        kernels.variant,
        kernels.features,
        prompts.len()
    );
    // ENGINE_DRAFT=NAME|PATH: rows of warm decodes without and with
    // `model.draft` (speculative decoding), instead of the cold rows.
    if let Ok(draft) = std::env::var("ENGINE_DRAFT") {
        let alone = engine_row(&config, &prompts, decode, true);
        let mut with = config.clone();
        with.model.draft = draft.clone();
        let drafted = engine_row(&with, &prompts, decode, true);
        println!();
        println!("| row (warm)   | prefill tok/s p50 (min–max) | decode tok/s p50 (n) | prompt | generated |");
        println!("|--------------|------------------|------------------|--------|--------|");
        let (_, d) = summary("alone", &alone);
        let (_, dd) = summary("with draft", &drafted);
        let same = alone
            .iter()
            .zip(&drafted)
            .filter(|(a, b)| a.text == b.text)
            .count();
        println!(
            "\ndecode with the draft model ({draft}) / alone: {:.2}x (same run, same prompts, {threads} threads); same text {same} of {}",
            dd / d.max(1e-9),
            alone.len()
        );
        return;
    }
    let ours = engine_row(&config, &prompts, decode, false);
    let peer = std::env::var("LLAMA_SERVER")
        .ok()
        .map(|server| peer_row(&server, threads, &prompts, decode));
    println!();
    println!("| row          | prefill tok/s p50 (min–max) | decode tok/s p50 (n) | prompt | generated |");
    println!("|--------------|------------------|------------------|--------|--------|");
    let (p, d) = summary("slm-ls", &ours);
    if let Some(peer) = peer {
        let (pp, pd) = summary("llama-server", &peer);
        println!();
        println!(
            "slm-ls / llama-server: prefill {:.2}x, decode {:.2}x (same run, same prompts, {threads} threads)",
            p / pp.max(1e-9),
            d / pd.max(1e-9)
        );
    } else {
        println!("(no peer row: set LLAMA_SERVER=/path/to/llama-server)");
    }
}
