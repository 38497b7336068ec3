//! The model by the machine: how fast each installed model runs here, and
//! which one is the default.
//!
//! A 2-core laptop answers a keystroke in ~200 ms with the 0.5B and ~500 ms
//! with the 1.5B; an 8-core machine or a GPU build runs the 1.5B, right
//! more often, as fast as the laptop runs the 0.5B. So the default model
//! is chosen from measurements, not assumed: `slm-ls models measure`
//! (which `slm-ls models fetch` suggests) runs each installed model on a
//! fixed prompt and records prefill and decode tokens/s in
//! `<model dir>/speed.json`, per model file and machine (CPU, llama.cpp
//! kernels, cores). When no model is named (`model.path`, `--model`,
//! `SLM_LS_MODEL` always win), the default is the first of the manifest's
//! `by_machine` list that is installed and measured here with a predicted
//! warm keystroke within [`KEYSTROKE_BUDGET_MS`], else the manifest's
//! default. Nothing is measured at start: the first suggestion never
//! waits for it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::models::{self, Manifest, ModelEntry};

/// The warm keystroke (p50) a default model must stay within.
pub const KEYSTROKE_BUDGET_MS: f64 = 400.0;

/// What a warm keystroke costs in model work (p50), in tokens: with the
/// suffix-first layout a keystroke evaluates one or two prompt tokens
/// (replay: p50 1) and decodes until the line ends or the answer is
/// cut; the replay's warm p50, 172 ms with the 0.5B at ~28 tokens/s on 2
/// cores, is about five decode steps.
const KEYSTROKE_PREFILL_TOKENS: f64 = 2.0;
const KEYSTROKE_DECODE_TOKENS: f64 = 5.0;

/// One model measured on one machine.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Measured {
    /// The model's file name and size (another file of the same name is
    /// another model).
    pub file: String,
    pub size: u64,
    /// [`machine_key`] when measured.
    pub machine: String,
    pub prefill_tps: f64,
    pub decode_tps: f64,
    /// Unix seconds.
    pub when: u64,
}

impl Measured {
    /// The warm keystroke's model time these speeds predict (p50, ms).
    pub fn keystroke_ms(&self) -> f64 {
        1000.0 * KEYSTROKE_PREFILL_TOKENS / self.prefill_tps.max(1e-3)
            + 1000.0 * KEYSTROKE_DECODE_TOKENS / self.decode_tps.max(1e-3)
    }
}

/// This machine as far as speed goes: the CPU's name, the llama.cpp
/// kernels chosen for it, and its cores.
pub fn machine_key() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let kernels = crate::engine::cpu::report().variant;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{cpu} | {kernels} | {cores} cores")
}

fn cache_path() -> PathBuf {
    models::model_dir().join("speed.json")
}

/// Every measurement on record (any machine).
pub fn load() -> Vec<Measured> {
    std::fs::read_to_string(cache_path())
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

/// Record `m`, replacing an earlier one of the same model and machine.
pub fn record(m: Measured) -> Result<(), String> {
    let mut all = load();
    all.retain(|x| !(x.file == m.file && x.size == m.size && x.machine == m.machine));
    all.push(m);
    let path = cache_path();
    let text = serde_json::to_string_pretty(&all).map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The measurement of `path` on machine `machine`, if any.
pub fn find<'a>(all: &'a [Measured], path: &Path, machine: &str) -> Option<&'a Measured> {
    let size = std::fs::metadata(path).ok()?.len();
    let file = path.file_name()?.to_string_lossy();
    all.iter()
        .find(|m| m.file == file && m.size == size && m.machine == machine)
}

/// The default model here, and why: the first `by_machine` candidate that
/// is installed and measured on this machine within the keystroke budget,
/// else the manifest's default.
pub fn choose<'a>(
    manifest: &'a Manifest,
    measured: &[Measured],
    machine: &str,
    dir: &Path,
) -> (&'a ModelEntry, String) {
    for name in &manifest.by_machine {
        let Some(entry) = manifest.find(name) else {
            continue;
        };
        let path = dir.join(&entry.file);
        if !path.is_file() {
            continue;
        }
        match find(measured, &path, machine) {
            Some(m) if m.keystroke_ms() <= KEYSTROKE_BUDGET_MS => {
                return (
                    entry,
                    format!(
                        "measured here: a warm keystroke ~{:.0} ms (≤ {KEYSTROKE_BUDGET_MS:.0})",
                        m.keystroke_ms()
                    ),
                )
            }
            _ => {}
        }
    }
    let entry = manifest.default_model();
    let why = if manifest.by_machine.iter().any(|n| {
        manifest
            .find(n)
            .is_some_and(|e| e.name != entry.name && dir.join(&e.file).is_file())
    }) {
        "the manifest's default: no larger installed model is measured fast enough here (`slm-ls models measure`)"
    } else {
        "the manifest's default"
    };
    (entry, why.to_string())
}

/// Where the default model lives on this machine (see [`choose`]).
pub fn default_model_path() -> PathBuf {
    let manifest = Manifest::load();
    let dir = models::model_dir();
    let (entry, _) = choose(&manifest, &load(), &machine_key(), &dir);
    dir.join(&entry.file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        let mut m = Manifest::load();
        m.by_machine = vec!["qwen2.5-coder-1.5b".into(), "qwen2.5-coder-0.5b".into()];
        m
    }

    fn measured(file: &str, size: u64, machine: &str, decode_tps: f64) -> Measured {
        Measured {
            file: file.into(),
            size,
            machine: machine.into(),
            prefill_tps: 150.0,
            decode_tps,
            when: 0,
        }
    }

    #[test]
    fn the_larger_model_only_where_it_is_measured_fast_enough() {
        let m = manifest();
        let dir = std::env::temp_dir().join(format!("slm-ls-machine-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = m.find("qwen2.5-coder-1.5b").unwrap();
        std::fs::write(dir.join(&big.file), b"x").unwrap();
        // Installed but not measured: the default.
        let (e, why) = choose(&m, &[], "laptop", &dir);
        assert_eq!(e.name, m.default);
        assert!(why.contains("models measure"), "{why}");
        // Measured slow here (2 cores: ~11 tokens/s): the default.
        let slow = [measured(&big.file, 1, "laptop", 11.0)];
        assert_eq!(choose(&m, &slow, "laptop", &dir).0.name, m.default);
        // Fast on another machine: not this one's measurement.
        let fast = [measured(&big.file, 1, "workstation", 40.0)];
        assert_eq!(choose(&m, &fast, "laptop", &dir).0.name, m.default);
        let (e, why) = choose(&m, &fast, "workstation", &dir);
        assert_eq!(e.name, "qwen2.5-coder-1.5b");
        assert!(why.contains("measured here"), "{why}");
        // Another file under the same name (another size) is not measured.
        let stale = [measured(&big.file, 999, "workstation", 40.0)];
        assert_eq!(choose(&m, &stale, "workstation", &dir).0.name, m.default);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_keystroke_is_a_couple_of_prompt_tokens_and_a_few_decode_steps() {
        // The 0.5B on 2 cores (replay warm p50 172 ms) fits; the 1.5B
        // (~2.5x the cost) does not.
        let small = measured("a", 1, "m", 28.0);
        assert!((150.0..250.0).contains(&small.keystroke_ms()));
        let big = Measured {
            prefill_tps: 60.0,
            ..measured("b", 1, "m", 11.0)
        };
        assert!(big.keystroke_ms() > KEYSTROKE_BUDGET_MS);
    }
}
