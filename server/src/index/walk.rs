//! The walk over a workspace: which files the index reads, and why the
//! others are skipped.
//!
//! Files come from the `ignore` crate's walker (the rules ripgrep uses:
//! `.gitignore`, `.ignore`, hidden files and folders skipped), without
//! following symbolic links (so a link loop or a link to `/` cannot make
//! the walk endless or leave the project). A file is read only when it has
//! a grammar, is small enough, is not a secrets file by name or by content
//! (`context::crossfile::is_secret`, the user's `remote.neverSend`), and
//! decodes as UTF-8 without NUL bytes. Everything else is skipped, and each
//! kind of skip is logged once (with its first path), never per file: a
//! tree of 10,000 binaries must not flood the editor's log.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::syntax::Lang;

/// What the walk may read.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Files indexed at most; the walk stops there (logged once).
    pub max_files: usize,
    /// Larger files are skipped (generated code, data).
    pub max_file_bytes: u64,
    /// The index's memory, at most (see `Index::stats`): past it no file
    /// is added.
    pub max_index_bytes: usize,
    /// The user's `remote.neverSend` patterns, on top of the built-in
    /// secrets list.
    pub never_send: Vec<String>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_files: 20_000,
            max_file_bytes: 512 * 1024,
            max_index_bytes: 96 << 20,
            never_send: Vec::new(),
        }
    }
}

/// Why a file or folder was not indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Skip {
    /// No grammar for it (a README, an image): counted, not logged.
    NotSource,
    TooLarge,
    Binary,
    NotUtf8,
    Secret,
    Symlink,
    /// Permission denied, or another read error.
    Unreadable,
    /// Gone (or replaced) between the listing and the read.
    Vanished,
    /// The walker could not list a folder (or met a loop).
    WalkError,
    /// Past `max_files` or `max_index_bytes`.
    OverCap,
}

impl Skip {
    pub fn name(self) -> &'static str {
        match self {
            Skip::NotSource => "notSource",
            Skip::TooLarge => "tooLarge",
            Skip::Binary => "binary",
            Skip::NotUtf8 => "notUtf8",
            Skip::Secret => "secret",
            Skip::Symlink => "symlink",
            Skip::Unreadable => "unreadable",
            Skip::Vanished => "vanished",
            Skip::WalkError => "walkError",
            Skip::OverCap => "overCap",
        }
    }
}

/// Skips seen, by kind; each kind is logged once, when first met.
#[derive(Debug, Default, Clone)]
pub struct Skips {
    pub counts: BTreeMap<&'static str, usize>,
}

impl Skips {
    pub fn note(&mut self, kind: Skip, path: &Path, why: &str) {
        let n = self.counts.entry(kind.name()).or_insert(0);
        *n += 1;
        if *n == 1 && kind != Skip::NotSource {
            tracing::info!(
                "workspace index: skipping {} files ({}), first: {}{}",
                kind.name(),
                why,
                path.display(),
                " (logged once per kind)"
            );
        }
    }
}

/// A file the walk read.
pub struct SourceFile {
    /// Path relative to the root, with `/` separators.
    pub rel: String,
    pub lang: Lang,
    pub text: String,
}

/// Read `path` (relative path `rel`) if the index may: the checks of the
/// module docs, in order of cost.
pub fn read_source(path: &Path, rel: &str, limits: &Limits) -> Result<SourceFile, (Skip, String)> {
    let lang = Lang::from_path(rel).ok_or((Skip::NotSource, String::new()))?;
    if let Some(why) = secret_name(rel, path, limits) {
        return Err((Skip::Secret, why));
    }
    let meta = std::fs::symlink_metadata(path).map_err(|e| io_skip(&e))?;
    if meta.file_type().is_symlink() {
        return Err((Skip::Symlink, "links are not followed".into()));
    }
    if meta.len() > limits.max_file_bytes {
        return Err((
            Skip::TooLarge,
            format!("over {} bytes", limits.max_file_bytes),
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)
        .and_then(|f| f.take(limits.max_file_bytes + 1).read_to_end(&mut bytes))
        .map_err(|e| io_skip(&e))?;
    if bytes.len() as u64 > limits.max_file_bytes {
        // It grew between the size check and the read.
        return Err((Skip::TooLarge, "grew while being read".into()));
    }
    if bytes.contains(&0) {
        return Err((Skip::Binary, "NUL bytes".into()));
    }
    let text = String::from_utf8(bytes).map_err(|_| (Skip::NotUtf8, "not UTF-8".into()))?;
    let head = &text[..floor_char_boundary(&text, 8192)];
    if crate::context::crossfile::is_secret(rel, head) {
        return Err((Skip::Secret, "holds a private key".into()));
    }
    Ok(SourceFile {
        rel: rel.to_string(),
        lang,
        text,
    })
}

/// Why the path is one that must never be read (built-in secrets list or
/// the user's `remote.neverSend`), checked on the relative and the
/// absolute path.
pub fn secret_name(rel: &str, abs: &Path, limits: &Limits) -> Option<String> {
    let never = |p: &str| crate::remote::glob::never_send(p, &limits.never_send);
    never(rel).or_else(|| never(&abs.to_string_lossy()))
}

/// Text the index may hold as the file at `rel`: not a secret by name or
/// content, within the size cap.
pub fn text_allowed(rel: &str, abs: &Path, text: &str, limits: &Limits) -> bool {
    text.len() as u64 <= limits.max_file_bytes
        && secret_name(rel, abs, limits).is_none()
        && !crate::context::crossfile::is_secret(rel, &text[..floor_char_boundary(text, 8192)])
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn io_skip(e: &std::io::Error) -> (Skip, String) {
    match e.kind() {
        std::io::ErrorKind::NotFound => (Skip::Vanished, e.to_string()),
        _ => (Skip::Unreadable, e.to_string()),
    }
}

/// Folders no one wants indexed even without a `.gitignore` (an sdist or
/// a fresh checkout before its first build has none).
const SKIP_DIRS: &[&str] = &["node_modules", "__pycache__", "target", "vendor", "dist"];

/// `path` relative to `root`, with `/` separators (`None` outside it).
pub fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let s = rel.to_string_lossy().replace('\\', "/");
    (!s.is_empty()).then_some(s)
}

/// Walk `root`, calling `each` with every file the index may read, until
/// it returns `false` or `stop` is set. Skips are noted in `skips`.
pub fn walk(
    root: &Path,
    limits: &Limits,
    stop: &AtomicBool,
    skips: &mut Skips,
    mut each: impl FnMut(SourceFile) -> bool,
) {
    if !root.is_dir() {
        skips.note(Skip::WalkError, root, "the root is not a folder");
        return;
    }
    let walker = ignore::WalkBuilder::new(root)
        .follow_links(false)
        .hidden(true)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(true)
        // A project need not be a git checkout for its `.gitignore` to
        // say what is generated.
        .require_git(false)
        .filter_entry(|e| {
            !(e.file_type().is_some_and(|t| t.is_dir())
                && e.file_name()
                    .to_str()
                    .is_some_and(|n| SKIP_DIRS.contains(&n)))
        })
        .build();
    for entry in walker {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let path = error_path(&e).unwrap_or_else(|| root.to_path_buf());
                skips.note(Skip::WalkError, &path, &e.to_string());
                continue;
            }
        };
        let Some(ft) = entry.file_type() else {
            continue;
        };
        if ft.is_dir() {
            continue;
        }
        let path = entry.path();
        let Some(rel) = relative(root, path) else {
            continue;
        };
        if ft.is_symlink() {
            if Lang::from_path(&rel).is_some() {
                skips.note(Skip::Symlink, path, "links are not followed");
            }
            continue;
        }
        match read_source(path, &rel, limits) {
            Ok(file) => {
                if !each(file) {
                    return;
                }
            }
            Err((kind, why)) => skips.note(kind, path, &why),
        }
    }
}

fn error_path(e: &ignore::Error) -> Option<PathBuf> {
    match e {
        ignore::Error::WithPath { path, .. } => Some(path.clone()),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        ignore::Error::Loop { child, .. } => Some(child.clone()),
        _ => None,
    }
}
