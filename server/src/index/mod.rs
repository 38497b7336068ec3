//! The workspace index: the definitions of every source file of the
//! project, so that a name defined in a file the editor never opened can
//! reach the prompt (`context::definitions` resolves names to it).
//!
//! What it keeps per file is the outline (`outline`): each definition's
//! name, signature and first docstring line, never bodies. What it reads
//! and skips is `walk`'s job (`.gitignore` respected, secrets never read,
//! size and count caps). How a file's imports point to other files is
//! `imports`.
//!
//! **Indexing never blocks a request.** The index is built and updated on
//! its own thread ([`IndexHandle`]) at the lowest CPU priority; requests
//! only read it, under a read lock the writer takes per batch of files
//! (microseconds), never while it parses.
//!
//! Memory is bounded ([`walk::Limits::max_index_bytes`], an estimate of the
//! heap it holds) and reported by `slm-ls/stats` with the counts and the
//! build time ([`Index::stats`]).

pub mod imports;
pub mod outline;
pub mod walk;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use serde::Serialize;

pub use imports::{Import, Target};
pub use outline::Def;
pub use walk::Limits;

use crate::syntax::Lang;

/// One indexed file.
#[derive(Debug, Clone)]
pub struct FileEntry {
    pub lang: Lang,
    pub defs: Arc<[Def]>,
}

#[derive(Default)]
struct Inner {
    files: HashMap<Arc<str>, FileEntry>,
    /// Name → the files that define it (each once).
    names: HashMap<Box<str>, Vec<Arc<str>>>,
    definitions: usize,
    /// Estimated heap held (see [`Inner::file_cost`]).
    heap: usize,
}

/// Per-entry overhead the estimate adds to the strings' lengths: the
/// hash-map slots, `Arc` headers and `Vec` slots a file and a name cost.
const FILE_OVERHEAD: usize = 96;
const DEF_OVERHEAD: usize = std::mem::size_of::<Def>() + 48;

impl Inner {
    fn file_cost(path: &str, e: &FileEntry) -> usize {
        FILE_OVERHEAD
            + 2 * path.len()
            + e.defs
                .iter()
                .map(|d| DEF_OVERHEAD + d.heap_bytes() + d.name.len())
                .sum::<usize>()
    }

    fn remove(&mut self, path: &str) {
        let Some((key, old)) = self.files.remove_entry(path) else {
            return;
        };
        self.heap = self.heap.saturating_sub(Self::file_cost(path, &old));
        self.definitions -= old.defs.len();
        for d in old.defs.iter() {
            if let Some(v) = self.names.get_mut(&d.name) {
                v.retain(|p| !Arc::ptr_eq(p, &key));
                if v.is_empty() {
                    self.names.remove(&d.name);
                }
            }
        }
    }

    fn insert(&mut self, path: &str, entry: FileEntry) {
        self.remove(path);
        let key: Arc<str> = path.into();
        self.heap += Self::file_cost(path, &entry);
        self.definitions += entry.defs.len();
        for d in entry.defs.iter() {
            let v = self.names.entry(d.name.clone()).or_default();
            if !v.iter().any(|p| Arc::ptr_eq(p, &key)) {
                v.push(key.clone());
            }
        }
        self.files.insert(key, entry);
    }
}

/// What `slm-ls/stats` reports under `workspaceIndex`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IndexStats {
    /// "off", "building", "ready", or why there is no index.
    pub state: String,
    pub root: Option<String>,
    pub files: usize,
    pub definitions: usize,
    /// Estimated heap the index holds.
    pub bytes: usize,
    /// Source bytes read by the last build.
    pub source_bytes: u64,
    /// Wall time of the last full build.
    pub build_ms: u64,
    /// Files not indexed, by reason (`walk::Skip::name`).
    pub skipped: std::collections::BTreeMap<&'static str, usize>,
}

/// The index: shared read-only with requests, written by its thread.
pub struct Index {
    root: RwLock<Option<PathBuf>>,
    inner: RwLock<Inner>,
    stats: Mutex<IndexStats>,
    limits: Limits,
}

impl Index {
    pub fn new(limits: Limits) -> Index {
        Index {
            root: RwLock::new(None),
            inner: RwLock::new(Inner::default()),
            stats: Mutex::new(IndexStats {
                state: "off".into(),
                ..Default::default()
            }),
            limits,
        }
    }

    pub fn root(&self) -> Option<PathBuf> {
        self.root.read().unwrap().clone()
    }

    /// Counts, memory and build time.
    pub fn stats(&self) -> IndexStats {
        let mut s = self.stats.lock().unwrap().clone();
        let inner = self.inner.read().unwrap();
        s.files = inner.files.len();
        s.definitions = inner.definitions;
        s.bytes = inner.heap;
        s
    }

    /// Index `text` as the file at `rel` (relative to the root): from the
    /// walk, a saved file or an open document. Returns `false` when the
    /// memory cap refuses it.
    pub fn set_text(&self, rel: &str, lang: Lang, text: &str) -> bool {
        let entry = FileEntry {
            lang,
            defs: outline::outline(lang, text).into(),
        };
        self.insert(rel, entry)
    }

    fn insert(&self, rel: &str, entry: FileEntry) -> bool {
        let mut inner = self.inner.write().unwrap();
        let replaced = inner
            .files
            .get(rel)
            .map_or(0, |old| Inner::file_cost(rel, old));
        let grows = Inner::file_cost(rel, &entry).saturating_sub(replaced);
        let new_file = !inner.files.contains_key(rel);
        if inner.heap + grows > self.limits.max_index_bytes
            || (new_file && inner.files.len() >= self.limits.max_files)
        {
            return false;
        }
        inner.insert(rel, entry);
        true
    }

    pub fn remove(&self, rel: &str) {
        self.inner.write().unwrap().remove(rel);
    }

    /// The outline of the file at `rel`.
    pub fn file(&self, rel: &str) -> Option<FileEntry> {
        self.inner.read().unwrap().files.get(rel).cloned()
    }

    /// The files that define `name` (at most `max`; `None`: more than
    /// that, too common a name to say anything).
    pub fn defined_in(&self, name: &str, max: usize) -> Option<Vec<Arc<str>>> {
        let inner = self.inner.read().unwrap();
        match inner.names.get(name) {
            None => Some(Vec::new()),
            Some(v) if v.len() <= max => Some(v.clone()),
            Some(_) => None,
        }
    }

    /// The indexed files a module's `targets` point to: the first target
    /// that matches anything wins (targets are best first); among folder
    /// tails the deepest folder.
    pub fn files_for(&self, targets: &[Target]) -> Vec<Arc<str>> {
        let inner = self.inner.read().unwrap();
        for t in targets {
            if let Target::Exact(p) = t {
                if let Some((k, _)) = inner.files.get_key_value(p.as_str()) {
                    return vec![k.clone()];
                }
                continue;
            }
            let mut found: Vec<Arc<str>> = inner
                .files
                .keys()
                .filter(|p| imports::matches(p, t))
                .cloned()
                .collect();
            if let Target::DirTailOf(m) = t {
                let dir = |p: &str| p.rsplit_once('/').map_or("", |(d, _)| d).to_string();
                let tail = |p: &str| imports::common_tail(m, &dir(p));
                let best = found.iter().map(|p| tail(p)).max().unwrap_or(0);
                found.retain(|p| tail(p) == best);
            }
            if !found.is_empty() {
                found.sort();
                found.truncate(32);
                return found;
            }
        }
        Vec::new()
    }

    /// Walk `root` and index what `walk` lets through, replacing what the
    /// index held. Runs on the index thread; `stop` ends it early.
    pub fn build(&self, root: &Path, stop: &AtomicBool) {
        let started = Instant::now();
        *self.root.write().unwrap() = Some(root.to_path_buf());
        {
            let mut s = self.stats.lock().unwrap();
            s.state = "building".into();
            s.root = Some(root.display().to_string());
        }
        *self.inner.write().unwrap() = Inner::default();
        let mut skips = walk::Skips::default();
        let mut source_bytes = 0u64;
        // Files are parsed outside the lock and published in batches, so a
        // request waits at most for one batch's map inserts.
        let mut batch: Vec<(String, FileEntry)> = Vec::new();
        let flush = |batch: &mut Vec<(String, FileEntry)>| -> Option<String> {
            for (rel, entry) in batch.drain(..) {
                if !self.insert(&rel, entry) {
                    return Some(rel);
                }
            }
            None
        };
        let mut refused: Option<String> = None;
        walk::walk(root, &self.limits, stop, &mut skips, |file| {
            source_bytes += file.text.len() as u64;
            let entry = FileEntry {
                lang: file.lang,
                defs: outline::outline(file.lang, &file.text).into(),
            };
            batch.push((file.rel, entry));
            if batch.len() >= 64 {
                refused = flush(&mut batch);
            }
            refused.is_none()
        });
        if refused.is_none() {
            refused = flush(&mut batch);
        }
        if let Some(rel) = refused {
            skips.note(
                walk::Skip::OverCap,
                Path::new(&rel),
                "the index holds its maximum of files or memory; the rest of the tree is not read",
            );
        }
        let build_ms = started.elapsed().as_millis() as u64;
        let mut s = self.stats.lock().unwrap();
        s.state = if !root.is_dir() {
            format!("no index: {} is not a folder", root.display())
        } else {
            "ready".into()
        };
        s.source_bytes = source_bytes;
        s.build_ms = build_ms;
        s.skipped = skips.counts;
        drop(s);
        let st = self.stats();
        tracing::info!(
            files = st.files,
            definitions = st.definitions,
            bytes = st.bytes,
            build_ms,
            "workspace index built"
        );
    }

    /// Re-read one file from disk (saved, created, changed outside the
    /// editor) or drop it (deleted, or no longer readable).
    pub fn refresh(&self, abs: &Path) {
        let Some(root) = self.root() else { return };
        let Some(rel) = walk::relative(&root, abs) else {
            return;
        };
        match walk::read_source(abs, &rel, &self.limits) {
            Ok(f) => {
                self.set_text(&f.rel, f.lang, &f.text);
            }
            Err(_) => self.remove(&rel),
        }
    }

    /// Index an open document's text (it may differ from the disk).
    pub fn open_text(&self, abs: &Path, text: &str) {
        let Some(root) = self.root() else { return };
        let Some(rel) = walk::relative(&root, abs) else {
            return;
        };
        let Some(lang) = Lang::from_path(&rel) else {
            return;
        };
        if walk::text_allowed(&rel, abs, text, &self.limits) {
            self.set_text(&rel, lang, text);
        }
    }
}

/// Work for the index thread.
enum Job {
    Build(PathBuf),
    Refresh(PathBuf),
    Open(PathBuf, String),
}

/// The index's thread: owns the writes, at the lowest CPU priority.
/// Dropping the handle stops the thread (between two files).
pub struct IndexHandle {
    pub index: Arc<Index>,
    jobs: mpsc::Sender<Job>,
    stop: Arc<AtomicBool>,
}

impl IndexHandle {
    pub fn spawn(limits: Limits) -> IndexHandle {
        let index = Arc::new(Index::new(limits));
        let (jobs, rx) = mpsc::channel::<Job>();
        let stop = Arc::new(AtomicBool::new(false));
        let (idx, st) = (index.clone(), stop.clone());
        let spawned = std::thread::Builder::new()
            .name("slm-ls-index".into())
            .spawn(move || {
                lower_priority();
                while let Ok(job) = rx.recv() {
                    if st.load(Ordering::Relaxed) {
                        return;
                    }
                    // A panic on one file (a grammar bug) must not end the
                    // index: it is logged and the next job runs.
                    let run =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match job {
                            Job::Build(root) => idx.build(&root, &st),
                            Job::Refresh(path) => idx.refresh(&path),
                            Job::Open(path, text) => idx.open_text(&path, &text),
                        }));
                    if run.is_err() {
                        tracing::warn!("workspace index: a job panicked; the index goes on");
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("workspace index: no thread ({e}); the index stays empty");
        }
        IndexHandle { index, jobs, stop }
    }

    /// Index the tree at `root` (in the background).
    pub fn build(&self, root: PathBuf) {
        let _ = self.jobs.send(Job::Build(root));
    }

    /// Re-read `path` from disk (in the background).
    pub fn refresh(&self, path: PathBuf) {
        let _ = self.jobs.send(Job::Refresh(path));
    }

    /// Index an open document's text (in the background).
    pub fn open(&self, path: PathBuf, text: String) {
        let _ = self.jobs.send(Job::Open(path, text));
    }
}

impl Drop for IndexHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The index thread yields the cores to the inference thread and the
/// editor: nice 19 for this thread only (Linux threads have their own nice
/// value). Elsewhere a no-op.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority have no memory-safety preconditions;
    // a failure only leaves the priority as it was.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19);
    }
}
