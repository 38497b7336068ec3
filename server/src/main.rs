//! The `slm-ls` binary: LSP server on stdio by default, plus a few
//! command-line tools (`complete`, `models`).

use std::path::PathBuf;
use std::process::ExitCode;

use slm_ls::config::Config;
use slm_ls::document::{Document, Encoding, Position};
use slm_ls::engine::{EngineSettings, InferenceHandle};
use slm_ls::lsp::state::CliOverrides;
use slm_ls::{complete, models};

const HELP: &str = "\
slm-ls: a code-completion language server running a small local model

USAGE:
    slm-ls [serve] [--model PATH]     speak LSP on stdin/stdout (what editors run)
    slm-ls complete FILE --line L --character C [--model PATH] [--max-tokens N] [--multiline]
                                      print the completion at a 0-based position
    slm-ls models list                list known models
    slm-ls models fetch [NAME]        download a model (default: the default model)
    slm-ls models path                print the model path the server would use
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
            for m in &manifest.model {
                let mark = if m.name == manifest.default { "*" } else { " " };
                println!("{mark} {:<22} {:<10} {}", m.name, m.fim, m.description);
            }
            println!("\nmodel directory: {}", models::model_dir().display());
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
            Ok(())
        }
        Some("path") => {
            println!("{}", models::resolve_model_path(model.as_deref()).display());
            Ok(())
        }
        Some(other) => Err(format!(
            "unknown models command {other:?} (list, fetch, path)"
        )),
    }
}
