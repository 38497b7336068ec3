//! The `slm-ls` binary: LSP server on stdio by default, plus a few
//! command-line tools (`complete`, `models`).

use std::path::PathBuf;
use std::process::ExitCode;

use slm_ls::config::Config;
use slm_ls::document::{Document, Encoding, Position};
use slm_ls::engine::{EngineSettings, InferenceHandle};
use slm_ls::lsp::state::CliOverrides;
use slm_ls::{complete, machine, models};

const HELP: &str = "\
slm-ls: a code-completion language server running a small local model

USAGE:
    slm-ls [serve] [--model PATH]     speak LSP on stdin/stdout (what editors run)
    slm-ls complete FILE --line L --character C [--model PATH] [--max-tokens N] [--multiline]
                                      print the completion at a 0-based position
    slm-ls models list                list known models
    slm-ls models fetch [NAME]        download a model (default: the default model)
    slm-ls models measure [NAME]      measure installed models' speed here (picks the default)
    slm-ls models path [NAME|--default]
                                      print the model path the server would use
                                      (NAME: that model's; --default: the
                                      manifest's default model)
    slm-ls --version | --help

ENVIRONMENT:
    SLM_LS_MODEL   path to a GGUF model (overridden by --model and model.path)
    SLM_LS_HOME    where fetched models live (default ~/.local/share/slm-ls)
    SLM_LS_THREADS llama.cpp threads when model.threads is not set (default:
                   all cores; lower it when several servers share the cores)
    RUST_LOG       log filter for stderr (default: warnings and errors; info too
                   when the editor asks for a trace)
";

fn main() -> ExitCode {
    init_logging();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("slm-ls: {e}");
            ExitCode::FAILURE
        }
    }
}

/// stderr logging: `RUST_LOG` when set; otherwise warnings and errors,
/// plus info when the editor asked for a trace (`client_log.rs`).
/// llama.cpp's own log shows only its errors by default: its load-time
/// warnings (`control-looking token ... probably a bug in the model` for
/// the default model) are about the model file, not something a user can
/// act on (`RUST_LOG=llama-cpp-2=debug` shows them all).
fn init_logging() {
    use tracing_subscriber::prelude::*;
    let (filter, from_env) = match tracing_subscriber::EnvFilter::try_from_default_env() {
        // `RUST_LOG=slm_ls=debug` is about slm-ls: keep llama.cpp's load
        // warnings out of it too unless it names llama-cpp-2 itself.
        Ok(f)
            if !std::env::var("RUST_LOG")
                .unwrap_or_default()
                .contains("llama") =>
        {
            (
                f.add_directive("llama-cpp-2=error".parse().expect("a valid directive")),
                true,
            )
        }
        Ok(f) => (f, true),
        Err(_) => (
            tracing_subscriber::EnvFilter::new("info,llama-cpp-2=error"),
            false,
        ),
    };
    let verbosity = tracing_subscriber::filter::filter_fn(move |meta| {
        from_env || slm_ls::lsp::client_log::stderr_enabled(meta.level())
    });
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .with_filter(filter)
                .with_filter(verbosity),
        )
        .with(slm_ls::lsp::client_log::ClientLogLayer)
        .init();
}

/// Minimal flag parsing: `--name value` pairs and bare words.
struct Args {
    words: Vec<String>,
    flags: Vec<(String, Option<String>)>,
}

impl Args {
    fn parse(args: Vec<String>) -> Result<Args, String> {
        const VALUED: &[&str] = &["--model", "--line", "--character", "--max-tokens"];
        let mut words = Vec::new();
        let mut flags = Vec::new();
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            if let Some((k, v)) = a.split_once('=').filter(|_| a.starts_with("--")) {
                flags.push((k.to_string(), Some(v.to_string())));
            } else if VALUED.contains(&a.as_str()) {
                let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
                flags.push((a, Some(v)));
            } else if a.starts_with('-') {
                flags.push((a, None));
            } else {
                words.push(a);
            }
        }
        Ok(Args { words, flags })
    }

    fn has(&self, name: &str) -> bool {
        self.flags.iter().any(|(k, _)| k == name)
    }

    fn value(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
    }

    fn number(&self, name: &str) -> Result<Option<u32>, String> {
        self.value(name)
            .map(|v| {
                v.parse::<u32>()
                    .map_err(|_| format!("{name} expects a number, got {v:?}"))
            })
            .transpose()
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let args = Args::parse(args)?;
    if args.has("--help") || args.has("-h") {
        print!("{HELP}");
        return Ok(());
    }
    if args.has("--version") || args.has("-V") {
        println!("slm-ls {}", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    let model = args.value("--model").map(PathBuf::from);
    match args.words.first().map(String::as_str) {
        None | Some("serve") => {
            let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
            let code = rt.block_on(slm_ls::lsp::serve_stdio(CliOverrides { model }));
            // Not by dropping the runtime: that would wait for a model
            // still loading and for the inference thread (lsp/lifetime.rs).
            slm_ls::lsp::exit_now(code)
        }
        Some("complete") => cmd_complete(&args, model),
        Some("models") => cmd_models(&args, model),
        Some(other) => Err(format!("unknown command {other:?}; see slm-ls --help")),
    }
}

fn cmd_complete(args: &Args, model: Option<PathBuf>) -> Result<(), String> {
    let file = args
        .words
        .get(1)
        .ok_or("complete needs a FILE (see --help)")?;
    let line = args
        .number("--line")?
        .ok_or("complete needs --line L (0-based)")?;
    let character = args
        .number("--character")?
        .ok_or("complete needs --character C (0-based, UTF-16)")?;
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}"))?;
    let text = String::from_utf8(bytes).unwrap_or_else(|e| {
        eprintln!("warning: {file} is not valid UTF-8; invalid bytes are replaced");
        String::from_utf8_lossy(e.as_bytes()).into_owned()
    });
    let mut config = Config::default();
    if let Some(n) = args.number("--max-tokens")? {
        config.completion.max_tokens = n;
    }
    config.completion.multiline = args.has("--multiline");
    let doc = Document::with_path(&text, 0, "", file);
    let cursor = doc
        .char_index(Position::new(line, character), Encoding::Utf16)
        .map_err(|e| e.to_string())?;
    let (path, source) = slm_ls::lsp::state::model_source(model.as_deref(), None);
    if let Some(e) = slm_ls::lsp::state::configured_model_missing(&path, source) {
        return Err(e);
    }
    let settings = EngineSettings::from_config(&config, path)?;
    eprintln!("loading {} ...", settings.model_path.display());
    let engine = InferenceHandle::spawn(settings, Box::new(|_| {}))?;
    eprintln!(
        "loaded {} in {} ms (prompt format: {})",
        engine.info.model_name, engine.info.load_ms, engine.info.fim
    );
    let name = std::path::Path::new(file)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prep = complete::prepare(&doc, cursor, &config, &name, &engine.tokenizer);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    match rt.block_on(complete::run(&engine, file, &prep, |_| {})) {
        complete::Completion::Text { text, outcome } => {
            println!("{text}");
            if let Some(o) = outcome {
                eprintln!(
                    "prompt {} tokens, generated {} in {:.0} ms (prefill {:.0} ms)",
                    o.prompt_tokens, o.generated_tokens, o.total_ms, o.prefill_ms
                );
            }
            Ok(())
        }
        complete::Completion::Cancelled => Err("cancelled".into()),
        complete::Completion::Failed(e) => Err(e),
    }
}

fn cmd_models(args: &Args, model: Option<PathBuf>) -> Result<(), String> {
    let manifest = models::Manifest::load();
    match args.words.get(1).map(String::as_str) {
        Some("list") | None => {
            let dir = models::model_dir();
            let measured = machine::load();
            let here = machine::machine_key();
            let (chosen, why) = machine::choose(&manifest, &measured, &here, &dir);
            for m in &manifest.model {
                let mark = if m.name == chosen.name { "*" } else { " " };
                println!("{mark} {:<22} {:<10} {}", m.name, m.fim, m.description);
                let path = dir.join(&m.file);
                if !path.is_file() {
                    continue;
                }
                match machine::find(&measured, &path, &here) {
                    Some(s) => println!(
                        "  {:<22} installed; here: prefill {:.0} tokens/s, decode {:.1} tokens/s, warm keystroke ~{:.0} ms",
                        "", s.prefill_tps, s.decode_tps, s.keystroke_ms()
                    ),
                    None => println!("  {:<22} installed; not measured here (`slm-ls models measure`)", ""),
                }
            }
            println!("\n* the default on this machine: {} ({why})", chosen.name);
            println!("machine: {here}");
            println!("model directory: {}", dir.display());
            Ok(())
        }
        Some("measure") => {
            let dir = models::model_dir();
            let wanted: Vec<&models::ModelEntry> = match args.words.get(2) {
                Some(name) => vec![manifest
                    .find(name)
                    .ok_or_else(|| format!("unknown model {name:?}"))?],
                None => manifest
                    .model
                    .iter()
                    .filter(|m| dir.join(&m.file).is_file())
                    .collect(),
            };
            if wanted.is_empty() {
                return Err("no model is installed: `slm-ls models fetch` first".into());
            }
            for entry in wanted {
                let path = dir.join(&entry.file);
                if !path.is_file() {
                    return Err(format!(
                        "{} is not installed: `slm-ls models fetch {}` first",
                        entry.name, entry.name
                    ));
                }
                eprintln!("measuring {} on this machine ...", entry.name);
                let m = measure(&path)?;
                println!(
                    "{}: prefill {:.0} tokens/s, decode {:.1} tokens/s, warm keystroke ~{:.0} ms",
                    entry.name,
                    m.prefill_tps,
                    m.decode_tps,
                    m.keystroke_ms()
                );
                machine::record(m)?;
            }
            let (chosen, why) =
                machine::choose(&manifest, &machine::load(), &machine::machine_key(), &dir);
            println!("default model on this machine: {} ({why})", chosen.name);
            Ok(())
        }
        Some("fetch") => {
            let name = args
                .words
                .get(2)
                .map(String::as_str)
                .unwrap_or(&manifest.default);
            let entry = manifest.find(name).ok_or_else(|| {
                format!(
                    "unknown model {name:?}; known: {}",
                    manifest
                        .model
                        .iter()
                        .map(|m| m.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            models::fetch(entry)?;
            if manifest.by_machine.contains(&entry.name) && entry.name != manifest.default {
                eprintln!(
                    "`slm-ls models measure {}` measures it on this machine; where it answers a keystroke within {} ms it becomes the default",
                    entry.name,
                    machine::KEYSTROKE_BUDGET_MS
                );
            }
            Ok(())
        }
        // `--default`: the manifest's default, whatever this machine would
        // choose (tests pin it).
        Some("path") if args.has("--default") => {
            println!(
                "{}",
                models::model_dir()
                    .join(&manifest.default_model().file)
                    .display()
            );
            Ok(())
        }
        // `path NAME`: where that model lives (fetched or not), so scripts
        // can pin one; an unknown name is an error, never another model.
        Some("path") => {
            match args.words.get(2) {
                Some(name) => {
                    let entry = manifest
                        .find(name)
                        .ok_or_else(|| format!("unknown model {name:?}"))?;
                    println!("{}", models::model_dir().join(&entry.file).display());
                }
                None => println!("{}", models::resolve_model_path(model.as_deref()).display()),
            }
            Ok(())
        }
        Some(other) => Err(format!(
            "unknown models command {other:?} (list, fetch, measure, path)"
        )),
    }
}

/// Prefill and decode tokens/s of the model at `path` on this machine:
/// cold fill-in-the-middle prompts of ~400 tokens, then up to 32 greedy
/// tokens each; medians of three.
fn measure(path: &std::path::Path) -> Result<machine::Measured, String> {
    use slm_ls::engine::{Event, GenParams, PromptInput, StopRules};
    // Real code of a realistic length (this crate's own), cut at lines.
    const CODE: &str = include_str!("machine.rs");
    let config = Config::default();
    let settings = EngineSettings::from_config(&config, path.to_path_buf())?;
    let engine = InferenceHandle::spawn(settings, Box::new(|_| {}))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (mut prefill, mut decode) = (Vec::new(), Vec::new());
    // By bytes: `at` may fall inside a character; after a `\n` never does.
    let line_after = |at: usize| {
        CODE.as_bytes()[at.min(CODE.len())..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(CODE.len(), |n| at + n + 1)
    };
    for i in 0..3 {
        // A different prompt each time (nothing reused): ~400 tokens.
        let start = line_after(i * 700);
        let cut = line_after(start + 1500);
        let end = line_after(cut + 300);
        let input = PromptInput {
            path: format!("measure_{i}.rs"),
            prefix: CODE[start..cut].to_string(),
            suffix: CODE[cut..end].to_string(),
            ..Default::default()
        };
        let params = GenParams {
            max_tokens: 32,
            draft_tokens: 0,
            max_time_ms: 60_000,
            stop: StopRules::default(),
        };
        let mut stream = engine.complete(&format!("measure-{i}"), input, params);
        let o = rt.block_on(async {
            loop {
                match stream.events.recv().await {
                    Some(Event::Done(o)) => return Ok(o),
                    Some(Event::Delta(_)) => {}
                    Some(Event::Failed(e)) => return Err(e),
                    other => return Err(format!("the engine answered {other:?}")),
                }
            }
        })?;
        prefill.push(o.evaluated_tokens as f64 * 1000.0 / o.prefill_ms.max(1e-3));
        if o.generated_tokens >= 8 {
            decode.push(o.generated_tokens as f64 * 1000.0 / (o.total_ms - o.prefill_ms).max(1e-3));
        }
        engine.forget(&format!("measure-{i}"));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    Ok(machine::Measured {
        file: path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        size: std::fs::metadata(path).map_err(|e| e.to_string())?.len(),
        machine: machine::machine_key(),
        prefill_tps: median(prefill).unwrap_or(0.0),
        decode_tps: median(decode)
            .ok_or("the model ended every answer in under 8 tokens: no decode speed")?,
        when: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    })
}
