//! The end-to-end harness: starts the real `slm-ls` binary, speaks LSP over
//! its stdio, and shuts it down cleanly in `Drop`.
//!
//! Also the one fixture format used by tests: a text with a `$0` cursor.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Deep merge of JSON objects: `over`'s leaves replace `base`'s (settings
/// a bench adds to a row's: `QUALITY_SETTINGS`, `REPLAY_SETTINGS`).
pub fn merge_json(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge_json(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Split a fixture into its text and the cursor's (line, UTF-16 column).
pub fn fixture(src: &str) -> (String, u32, u32) {
    let at = src.find("$0").expect("fixture needs a $0 cursor");
    let text = src.replace("$0", "");
    let before = &src[..at];
    let line = before.matches('\n').count() as u32;
    let col = before.rsplit('\n').next().unwrap().encode_utf16().count() as u32;
    (text, line, col)
}

/// The default model as the server would find it (fetched by `.ci/run` /
/// `slm-ls models fetch`). Tests that need it fail loudly if it is missing.
pub fn model_path() -> PathBuf {
    let out = Command::new(env!("CARGO_BIN_EXE_slm-ls"))
        .args(["models", "path"])
        .output()
        .unwrap();
    let p = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert!(
        p.exists(),
        "default model missing at {} — run `slm-ls models fetch`",
        p.display()
    );
    p
}

/// A directory under the temp dir, removed with everything in it when
/// dropped (also when the test panics): the model tests copy hundreds of
/// megabytes of model file into theirs.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("slm-ls-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A generated project tree of `n` small files (Python, Rust, Go and
/// JavaScript in turn, 1,000 to a folder), each with a doc comment, a
/// function, a type and 20 filler lines: what the workspace index's size
/// and speed figures (issue 19) are measured on. Returns the files' paths.
pub fn synthetic_tree(root: &std::path::Path, n: usize) -> Vec<PathBuf> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let (ext, body) = match i % 4 {
            0 => ("py", format!("import os\n\nLIMIT_{i} = {i}\n\ndef helper_{i}(path, flag=False):\n    \"\"\"Helper number {i}.\"\"\"\n    return os.path.join(path, str(flag))\n\nclass Thing{i}:\n    def run(self, x):\n        return helper_{i}(x)\n")),
            1 => ("rs", format!("/// Helper number {i}.\npub fn helper_{i}(x: u32) -> u32 {{\n    x + {i}\n}}\n\npub struct Thing{i} {{\n    pub a: u32,\n}}\n\nimpl Thing{i} {{\n    pub fn run(&self) -> u32 {{ helper_{i}(self.a) }}\n}}\n")),
            2 => ("go", format!("package p{d}\n\n// Helper{i} is number {i}.\nfunc Helper{i}(x int) int {{\n\treturn x + {i}\n}}\n\ntype Thing{i} struct {{\n\tA int\n}}\n", d = i / 100)),
            _ => ("js", format!("// Helper number {i}.\nexport function helper{i}(a, b) {{\n  return a + b + {i};\n}}\n\nexport class Thing{i} {{\n  run(x) {{ return helper{i}(x, 1); }}\n}}\n")),
        };
        let dir = root.join(format!("d{}/e{}", i / 1000, (i / 100) % 10));
        std::fs::create_dir_all(&dir).unwrap();
        let filler: String = (0..20)
            .map(|k| format!("// line {k} of filler text for file {i}\n"))
            .collect();
        let path = dir.join(format!("f{i}.{ext}"));
        std::fs::write(&path, format!("{filler}{body}")).unwrap();
        out.push(path);
    }
    out
}

// --- real code not written here (the benchmarks' and tests' corpora) ---

/// The Python standard library of the `python3` on this machine.
pub fn stdlib_dir() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['stdlib'])",
        ])
        .output()
        .expect("python3");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Unpacked sources in the cargo registry of crates named `prefixes`
/// (`ropey` matches `ropey-1.6.1`, not `ropey-extra-0.1`), sorted.
pub fn registry_crates(prefixes: &[&str]) -> Vec<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo"));
    let mut out = Vec::new();
    let Ok(idx) = std::fs::read_dir(home.join("registry/src")) else {
        return out;
    };
    for i in idx.flatten() {
        let Ok(crates) = std::fs::read_dir(i.path()) else {
            continue;
        };
        for c in crates.flatten() {
            let n = c.file_name().to_string_lossy().into_owned();
            if prefixes.iter().any(|p| {
                n.starts_with(&format!("{p}-"))
                    && n[p.len() + 1..].starts_with(|ch: char| ch.is_ascii_digit())
            }) {
                out.push(c.path());
            }
        }
    }
    out.sort();
    out
}

/// Files ending in `.{ext}` under `roots`, recursively, in path order;
/// files named `test*` are left out (test vectors hold fake secrets).
pub fn source_files(roots: &[PathBuf], ext: &str) -> Vec<PathBuf> {
    fn walk(dir: &std::path::Path, ext: &str, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            if p.is_dir() {
                walk(&p, ext, out);
            } else if p.extension().is_some_and(|e| e == ext) && !name.starts_with("test") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    for r in roots {
        walk(r, ext, &mut out);
    }
    out
}

pub struct TestServer {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<Value>,
    next_id: i64,
    /// Notifications and server requests seen while waiting for responses,
    /// and error responses with `id: null` (answers to malformed input).
    pub notifications: Vec<Value>,
    /// Responses that arrived while waiting for another id.
    early: std::collections::HashMap<i64, Value>,
    shut_down: bool,
    /// Every line the server wrote to stderr (its log), for log checks.
    pub stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl TestServer {
    /// Start the binary with extra args and env.
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> TestServer {
        TestServer::spawn_program(env!("CARGO_BIN_EXE_slm-ls"), args, env)
    }

    /// Start `program args` (e.g. the binary under `strace`) as the server.
    pub fn spawn_program(program: &str, args: &[&str], env: &[(&str, &str)]) -> TestServer {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.env(
            "RUST_LOG",
            std::env::var("SLM_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        );
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start slm-ls");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log_w = log.clone();
        std::thread::spawn(move || {
            // Keep stderr drained (and visible with --nocapture).
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[slm-ls] {line}");
                log_w.lock().unwrap().push(line);
            }
        });
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            loop {
                let mut len = None;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(v) = line.strip_prefix("Content-Length: ") {
                        len = v.parse::<usize>().ok();
                    }
                }
                let mut body = vec![0u8; len.expect("Content-Length")];
                if r.read_exact(&mut body).is_err() {
                    return;
                }
                let v: Value = serde_json::from_slice(&body).expect("server sent valid JSON");
                if std::env::var_os("SLM_TEST_TRACE").is_some() {
                    eprintln!("<- {v}");
                }
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        TestServer {
            child,
            stdin: Some(stdin),
            rx,
            next_id: 0,
            notifications: Vec::new(),
            early: Default::default(),
            shut_down: false,
            stderr: log,
        }
    }

    /// Start with the default model and do the initialize handshake.
    pub fn start(init_options: Value) -> TestServer {
        let mut s = TestServer::spawn(&[], &[]);
        s.initialize(init_options, json!({}));
        s
    }

    pub fn initialize(&mut self, init_options: Value, capabilities: Value) -> Value {
        // [index] issue 19: `file:///work` is no project of the tests': the
        // workspace index stays off unless a test turns it on (and passes
        // its own root to `initialize_at`).
        let mut init_options = init_options;
        if init_options.is_null() {
            init_options = json!({});
        }
        if let Some(o) = init_options.as_object_mut() {
            let o = match o.get("slm-ls").is_some_and(Value::is_object) {
                true => o.get_mut("slm-ls").and_then(Value::as_object_mut),
                false => Some(o),
            };
            if let Some(c) = o.and_then(|o| o.entry("context").or_insert(json!({})).as_object_mut())
            {
                c.entry("workspace").or_insert(json!(false));
            }
        }
        self.initialize_at("file:///work", init_options, capabilities)
    }

    /// [`Self::initialize`] with the workspace root `root_uri`, settings as given.
    pub fn initialize_at(
        &mut self,
        root_uri: &str,
        init_options: Value,
        capabilities: Value,
    ) -> Value {
        let caps = if capabilities.as_object().is_some_and(|o| o.is_empty()) {
            json!({ "general": { "positionEncodings": ["utf-16"] }, "window": { "workDoneProgress": true } })
        } else {
            capabilities
        };
        let r = self.request(
            "initialize",
            json!({ "processId": null, "rootUri": root_uri, "capabilities": caps, "initializationOptions": init_options }),
        );
        self.notify("initialized", json!({}));
        r
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin was closed");
        stdin
            .write_all(bytes)
            .expect("write to the server (did it exit?)");
        stdin.flush().unwrap();
    }

    pub fn send(&mut self, msg: &Value) {
        let body = serde_json::to_vec(msg).unwrap();
        let mut out = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
        out.extend(body);
        self.send_raw(&out);
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    /// Send a request without waiting; returns its id.
    pub fn request_async(&mut self, method: &str, params: Value) -> i64 {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        id
    }

    /// Send a request and wait for its response (the whole message, with
    /// `result` or `error`).
    pub fn request_full(&mut self, method: &str, params: Value) -> Value {
        let id = self.request_async(method, params);
        self.response(id, Duration::from_secs(120))
    }

    /// Send a request and return its `result`, panicking on an error.
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let r = self.request_full(method, params);
        assert!(r.get("error").is_none(), "{method} failed: {r}");
        r["result"].clone()
    }

    /// Next message of any kind.
    pub fn recv(&mut self, timeout: Duration) -> Option<Value> {
        match self.rx.recv_timeout(timeout) {
            Ok(v) => Some(v),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Wait for the response to `id`, answering server requests and keeping
    /// notifications on the way.
    pub fn response(&mut self, id: i64, timeout: Duration) -> Value {
        if let Some(r) = self.early.remove(&id) {
            return r;
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = self
                .recv(left)
                .unwrap_or_else(|| panic!("no response to request {id} within {timeout:?}"));
            if msg.get("method").is_some() {
                if let Some(req_id) = msg.get("id") {
                    // A server→client request (e.g. workDoneProgress/create): accept it.
                    let reply = json!({ "jsonrpc": "2.0", "id": req_id, "result": null });
                    self.send(&reply);
                }
                self.notifications.push(msg);
                continue;
            }
            if msg["id"] == json!(id) {
                return msg;
            }
            if msg["id"].is_null() {
                // An error answering a message whose id could not be read
                // (malformed input): kept with the notifications.
                self.notifications.push(msg);
                continue;
            }
            if let Some(other) = msg["id"].as_i64() {
                assert!(
                    self.early.insert(other, msg.clone()).is_none(),
                    "two responses to request {other}"
                );
            }
        }
    }

    /// Wait until the model is loaded (the `slm-ls/stats` request reports it).
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let s = self.request("slm-ls/stats", json!(null));
            if s["model"].get("name").is_some() {
                return;
            }
            if let Some(e) = s["model"].get("error").and_then(|e| e.as_str()) {
                assert!(
                    e.contains("loading") || e.contains("not loaded yet"),
                    "model failed: {e}"
                );
            }
            assert!(Instant::now() < deadline, "model did not load");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn open(&mut self, uri: &str, language: &str, text: &str) {
        self.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": uri, "languageId": language, "version": 1, "text": text } }),
        );
    }

    pub fn change(&mut self, uri: &str, version: i32, changes: Value) {
        self.notify(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": uri, "version": version }, "contentChanges": changes }),
        );
    }

    pub fn inline_completion(&mut self, uri: &str, line: u32, character: u32) -> Value {
        self.request_full(
            "textDocument/inlineCompletion",
            json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": character }, "context": { "triggerKind": 2 } }),
        )
    }

    pub fn notifications_named(&self, method: &str) -> Vec<&Value> {
        self.notifications
            .iter()
            .filter(|n| n["method"] == method)
            .collect()
    }

    /// Clean shutdown: `shutdown`, `exit`, and the process ends by itself.
    pub fn shutdown(&mut self) -> std::process::ExitStatus {
        self.shut_down = true;
        let r = self.request_full("shutdown", json!(null));
        assert!(r.get("error").is_none(), "shutdown failed: {r}");
        self.notify("exit", json!(null));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit after `exit`"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Close the server's stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Whether the response to request `id` has already arrived (it came
    /// while waiting for another one).
    pub fn answered(&self, id: i64) -> bool {
        self.early.contains_key(&id)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything logged to stderr so far, one string.
    pub fn log_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Wait (up to `timeout`) for the process to end by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.shut_down = true;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if !self.shut_down {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
