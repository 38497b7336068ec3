//! Which CPU kernels this build of llama.cpp runs, and which features of
//! the CPU at hand it leaves unused.
//!
//! Why it is reported (startup log, `slm-ls/stats`): the kernels for the CPU
//! at hand prefill and decode ~1.5× faster than the generic AVX2 build
//! (issue 20), and which one a binary has is invisible otherwise. A portable
//! build on an AVX-512 machine works, just slower; the log says how to get
//! the fast one instead of leaving the user to guess.

use llama_cpp_sys_2 as sys;

/// The features ggml's CPU backend was compiled with (they are compile-time
/// in ggml: `ggml_cpu_has_*` answer from `#if defined(__AVX2__)` and so on).
pub fn compiled() -> Vec<&'static str> {
    // SAFETY: the ggml_cpu_has_* functions take no arguments, read no state
    // and only return a compile-time constant.
    let table: [(&'static str, unsafe extern "C" fn() -> std::os::raw::c_int); 16] = [
        ("SSE3", sys::ggml_cpu_has_sse3),
        ("SSSE3", sys::ggml_cpu_has_ssse3),
        ("AVX", sys::ggml_cpu_has_avx),
        ("AVX2", sys::ggml_cpu_has_avx2),
        ("F16C", sys::ggml_cpu_has_f16c),
        ("FMA", sys::ggml_cpu_has_fma),
        ("BMI2", sys::ggml_cpu_has_bmi2),
        ("AVX_VNNI", sys::ggml_cpu_has_avx_vnni),
        ("AVX512", sys::ggml_cpu_has_avx512),
        ("AVX512_VBMI", sys::ggml_cpu_has_avx512_vbmi),
        ("AVX512_VNNI", sys::ggml_cpu_has_avx512_vnni),
        ("AVX512_BF16", sys::ggml_cpu_has_avx512_bf16),
        ("AMX_INT8", sys::ggml_cpu_has_amx_int8),
        ("NEON", sys::ggml_cpu_has_neon),
        ("DOTPROD", sys::ggml_cpu_has_dotprod),
        ("SVE", sys::ggml_cpu_has_sve),
    ];
    table
        .iter()
        .filter(|(_, has)| unsafe { has() } != 0)
        .map(|(name, _)| *name)
        .collect()
}

/// Features this CPU has that the kernels were not compiled for. AMX is left
/// out on purpose: the build turns it off (`.cargo/config.toml`).
pub fn unused(compiled: &[&str]) -> Vec<&'static str> {
    let here = available();
    here.into_iter().filter(|f| !compiled.contains(f)).collect()
}

#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
fn available() -> Vec<&'static str> {
    use std::arch::is_x86_feature_detected as has;
    [
        ("AVX2", has!("avx2")),
        ("FMA", has!("fma")),
        ("AVX512", has!("avx512f")),
        ("AVX512_VNNI", has!("avx512vnni")),
        ("AVX512_VBMI", has!("avx512vbmi")),
        ("AVX512_BF16", has!("avx512bf16")),
    ]
    .into_iter()
    .filter_map(|(name, here)| here.then_some(name))
    .collect()
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
fn available() -> Vec<&'static str> {
    Vec::new()
}

/// What `slm-ls/stats` and the startup log say about the kernels.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuReport {
    /// The build's kernels, e.g. "AVX512 (native)" or "AVX2 (portable)".
    pub variant: String,
    pub features: Vec<&'static str>,
    /// Features of this CPU the build leaves unused; empty when the build
    /// fits the CPU.
    pub unused: Vec<&'static str>,
}

pub fn report() -> CpuReport {
    let features = compiled();
    let unused = unused(&features);
    CpuReport {
        variant: variant_name(&features, &unused),
        features,
        unused,
    }
}

/// The widest vector extension compiled in, and whether the build fits this
/// CPU ("native") or leaves some of it unused ("portable").
fn variant_name(features: &[&str], unused: &[&str]) -> String {
    let widest = ["AVX512", "AVX2", "AVX", "SVE", "NEON", "SSSE3", "SSE3"]
        .into_iter()
        .find(|f| features.contains(f))
        .unwrap_or("baseline");
    let fit = if unused.is_empty() {
        "fits this CPU"
    } else {
        "portable"
    };
    format!("{widest} ({fit})")
}

/// One log line at start; a warning with the fix when the CPU could do more.
pub fn log_at_start() {
    let r = report();
    if r.unused.is_empty() {
        tracing::info!(variant = %r.variant, features = ?r.features, "llama.cpp CPU kernels");
    } else {
        tracing::warn!(
            variant = %r.variant,
            unused = ?r.unused,
            "llama.cpp's CPU kernels leave features of this CPU unused (prompts run ~1.5x slower \
             than they could): build slm-ls on this machine with ./setup.sh or `cargo build --release`"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variant_names_the_widest_kernels_and_whether_they_fit() {
        assert_eq!(
            variant_name(&["AVX", "AVX2", "FMA"], &[]),
            "AVX2 (fits this CPU)"
        );
        assert_eq!(
            variant_name(&["AVX", "AVX2", "AVX512"], &[]),
            "AVX512 (fits this CPU)"
        );
        assert_eq!(variant_name(&["AVX2"], &["AVX512"]), "AVX2 (portable)");
        assert_eq!(variant_name(&[], &[]), "baseline (fits this CPU)");
    }

    #[test]
    fn this_build_uses_every_vector_feature_of_this_cpu() {
        // The repository's build is native (`.cargo/config.toml`); a
        // regression to the generic build shows up here as unused features.
        let r = report();
        assert!(r.unused.is_empty(), "{r:?}");
        assert!(
            !r.features.contains(&"AMX_INT8"),
            "AMX must stay off: {r:?}"
        );
    }
}
