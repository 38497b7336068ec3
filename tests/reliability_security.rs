//! Security properties over the real binary's stdio:
//!
//! - no network at all during normal (local) completion, even with a
//!   remote explain provider configured, until a remote command is invoked;
//! - API keys never appear in logs (at trace level), notifications,
//!   responses, error messages or stats, even when the remote server echoes
//!   the key back in its error;
//! - paths from the client are untrusted: no shell runs, and the server
//!   opens no file it was not pointed at (document URIs are never read).
//!
//! With `strace` installed the checks are exact (every `socket`, `connect`,
//! `openat` and `execve` of every thread); without it they sample
//! `/proc/<pid>/fd` every few milliseconds.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestServer;
use serde_json::{json, Value};

const KEY: &str = "sk-slmls-test-SECRET-7f3a9c1e5b2d";

fn strace() -> Option<PathBuf> {
    ["/usr/bin/strace", "/bin/strace"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("slm-ls-sec-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The server, under strace when available (trace file returned).
fn spawn_traced(name: &str, env: &[(&str, &str)]) -> (TestServer, Option<PathBuf>) {
    match strace() {
        Some(st) => {
            let out = scratch(name).join("strace.txt");
            let out_s = out.to_str().unwrap().to_string();
            let bin = env!("CARGO_BIN_EXE_slm-ls");
            let args = [
                "-f",
                "-qq",
                "-e",
                "trace=socket,connect,sendto,openat,open,execve,bind",
                "-o",
                &out_s,
                bin,
            ];
            let s = TestServer::spawn_program(st.to_str().unwrap(), &args, env);
            (s, Some(out))
        }
        None => {
            eprintln!("strace not found: sampling /proc/<pid>/fd instead");
            (TestServer::spawn(&[], env), None)
        }
    }
}

/// Sample the process's open sockets until stopped; returns what was seen.
struct SocketWatch {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl SocketWatch {
    fn start(pid: u32) -> SocketWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop2, seen2) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let mut samples = 0u64;
            while !stop2.load(Ordering::Relaxed) {
                // The server may run under strace: watch it and its children.
                for p in process_tree(pid) {
                    if let Ok(dir) = std::fs::read_dir(format!("/proc/{p}/fd")) {
                        for e in dir.flatten() {
                            if let Ok(t) = std::fs::read_link(e.path()) {
                                let t = t.to_string_lossy().into_owned();
                                if let Some(inode) =
                                    t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']'))
                                {
                                    // Unix socket pairs (tokio's signal
                                    // driver) are local plumbing; flag
                                    // only Internet and raw sockets.
                                    if let Some(kind) = inet_socket_kind(p, inode) {
                                        let mut seen = seen2.lock().unwrap();
                                        let entry = format!("{kind} socket {inode}");
                                        if !seen.contains(&entry) {
                                            seen.push(entry);
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                samples += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            samples
        });
        SocketWatch {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (Vec<String>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self.thread.take().unwrap().join().unwrap();
        (self.seen.lock().unwrap().clone(), samples)
    }
}

/// Whether socket `inode` of process `pid` is a TCP/UDP/raw socket.
fn inet_socket_kind(pid: u32, inode: &str) -> Option<&'static str> {
    for kind in ["tcp", "tcp6", "udp", "udp6", "raw", "raw6"] {
        let table = std::fs::read_to_string(format!("/proc/{pid}/net/{kind}")).unwrap_or_default();
        // Columns: sl local rem st tx:rx tr:when retrnsmt uid timeout inode
        if table
            .lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(9) == Some(inode))
        {
            return Some(kind);
        }
    }
    None
}

fn process_tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
            out.extend(process_tree(c));
        }
    }
    out
}

fn trace_lines(path: &Path, syscalls: &[&str]) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| {
            syscalls.iter().any(|s| {
                let (_, rest) = l.split_once(' ').unwrap_or(("", l));
                rest.trim_start().starts_with(&format!("{s}("))
            })
        })
        .map(str::to_string)
        .collect()
}

fn remote_settings(endpoint: &str) -> Value {
    json!({
        "completion": { "maxTokens": 8 },
        "remote": { "provider": "openai", "endpoint": endpoint, "model": "gpt-test", "timeoutMs": 3000, "maxRetries": 0 }
    })
}

/// Open, edit, complete (inline and menu), stats, close: the whole normal
/// session with the real model and a remote provider configured but not
/// invoked. Not one socket is created.
#[test]
fn zero_network_during_normal_completion() {
    common::model_path();
    let (mut s, trace) = spawn_traced("net", &[("OPENAI_API_KEY", KEY)]);
    let watch = SocketWatch::start(s.pid());
    s.initialize(remote_settings("http://127.0.0.1:9"), json!({}));
    s.wait_ready();
    let uri = "file:///work/net.py";
    s.open(uri, "python", "def greet(name):\n    return \n");
    for (i, ch) in "\"Hello, \" + name".chars().enumerate() {
        let col = 11 + i as u32;
        s.change(uri, 2 + i as i32, json!([{ "range": { "start": { "line": 1, "character": col }, "end": { "line": 1, "character": col } }, "text": ch.to_string() }]));
    }
    let r = s.inline_completion(uri, 1, 11);
    assert!(r.get("error").is_none(), "{r}");
    let r = s.request_full(
        "textDocument/completion",
        json!({ "textDocument": { "uri": uri }, "position": { "line": 1, "character": 11 } }),
    );
    assert!(r.get("error").is_none(), "{r}");
    s.request("slm-ls/stats", json!(null));
    s.notify(
        "textDocument/didClose",
        json!({ "textDocument": { "uri": uri } }),
    );
    s.request("slm-ls/stats", json!(null));
    let (sockets, samples) = watch.finish();
    assert!(s.shutdown().success());
    assert!(samples > 10, "the watcher did not run");
    assert!(sockets.is_empty(), "the server opened sockets: {sockets:?}");
    if let Some(t) = trace {
        let net: Vec<_> = trace_lines(&t, &["socket", "connect", "sendto", "bind"])
            .into_iter()
            .filter(|l| !l.contains("AF_UNIX"))
            .collect();
        assert!(
            net.is_empty(),
            "network syscalls during local completion:\n{}",
            net.join("\n")
        );
        eprintln!(
            "strace: 0 network syscalls in {} traced lines",
            std::fs::read_to_string(&t).unwrap().lines().count()
        );
    }
}

/// A fake OpenAI endpoint that answers 401 and echoes the key, as the
/// real one does ("Incorrect API key provided: sk-..."). Returns its
/// address and what it received.
fn echoing_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let got2 = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut conn = conn;
            conn.set_read_timeout(Some(Duration::from_secs(2))).ok();
            let mut buf = vec![0u8; 65536];
            let n = conn.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            got2.lock().unwrap().push(req.clone());
            let echoed = req
                .lines()
                .find_map(|l| {
                    l.strip_prefix("Authorization: Bearer ")
                        .or_else(|| l.strip_prefix("authorization: Bearer "))
                })
                .unwrap_or("none")
                .trim()
                .to_string();
            let body = format!(
                "{{\"error\":{{\"message\":\"Incorrect API key provided: {echoed}. You can find your API key at https://example.invalid\",\"type\":\"invalid_request_error\",\"code\":\"invalid_api_key\"}}}}"
            );
            let resp = format!(
                "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(resp.as_bytes());
        }
    });
    (addr, got)
}

/// The key is sent where it was configured to go, and nowhere else: not in
/// the trace-level log, not in any message to the client, not in the
/// error, not in stats, even when the remote echoes it back.
#[test]
fn api_keys_never_reach_logs_messages_or_errors() {
    let (endpoint, received) = echoing_server();
    let mut s = TestServer::spawn(
        &[],
        &[
            ("OPENAI_API_KEY", KEY),
            ("RUST_LOG", "trace"),
            ("SLM_LS_MODEL", "/nonexistent/slm-ls-test.gguf"),
        ],
    );
    s.initialize(remote_settings(&endpoint), json!({}));
    let uri = "file:///work/explain.py";
    s.open(uri, "python", "def add(a, b):\n    return a + b\n");
    let r = s.request_full(
        "workspace/executeCommand",
        json!({ "command": "slm-ls.explain", "arguments": [{ "uri": uri, "range": { "start": { "line": 0, "character": 0 }, "end": { "line": 1, "character": 16 } } }], "workDoneToken": "explain-1" }),
    );
    assert!(r.get("error").is_some(), "a 401 must be an error: {r}");
    let stats = s.request("slm-ls/stats", json!(null));
    std::thread::sleep(Duration::from_millis(300));
    while let Some(m) = s.recv(Duration::from_millis(100)) {
        s.notifications.push(m);
    }
    let reached = received.lock().unwrap().clone();
    assert!(
        reached.iter().any(|req| req.contains(KEY)),
        "the configured endpoint should have received the key (test setup): {reached:?}"
    );
    let everything = format!(
        "{r}\n{stats}\n{}\n{}",
        serde_json::to_string(&s.notifications).unwrap(),
        s.log_text()
    );
    assert!(
        !everything.contains(KEY) && !everything.contains("SECRET-7f3a9c1e5b2d"),
        "the API key leaked:\n{}",
        everything
            .lines()
            .filter(|l| l.contains("SECRET"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(s.shutdown().success());
}

/// Document URIs, workspace folders and settings paths with shell syntax
/// and sensitive targets: the server reads none of them (documents come
/// with their text), runs no program, and opens only what it was pointed
/// at (its model file).
#[test]
fn client_paths_are_untrusted_and_never_read() {
    let Some(_) = strace() else {
        eprintln!("strace not found: skipping the exact file-access check");
        return;
    };
    let real_model = common::model_path();
    let dir = scratch("paths");
    let secret = dir.join("secret.py");
    std::fs::write(&secret, "API_TOKEN = 'do-not-read'\n").unwrap();
    let marker = dir.join("pwned");
    let (mut s, trace) = spawn_traced("paths", &[]);
    let trace = trace.unwrap();
    let root = format!("file://{}", dir.display());
    s.request(
        "initialize",
        json!({
            "processId": null,
            "rootUri": root,
            "workspaceFolders": [{ "uri": root, "name": "w" }, { "uri": "file:///etc", "name": "etc" }],
            "capabilities": {},
            // The workspace index reads the root folder by design (what it
            // reads and never reads: tests/workspace_index.rs, src/index/);
            // this test is about the paths a client hands over in URIs.
            "initializationOptions": { "model": { "path": real_model }, "completion": { "maxTokens": 4 }, "context": { "workspace": false } }
        }),
    );
    s.notify("initialized", json!({}));
    s.wait_ready();
    let uris = [
        format!("file://{}", secret.display()),
        "file:///etc/shadow".to_string(),
        format!("file://{}/$(touch%20{})", dir.display(), marker.display()),
        "file:///~/.ssh/id_rsa".to_string(),
        "untitled:$(id)".to_string(),
    ];
    for uri in &uris {
        s.open(uri, "python", "import os\nx = os.");
        let r = s.inline_completion(uri, 1, 7);
        assert!(r.get("error").is_none(), "{uri}: {r}");
    }
    assert!(s.shutdown().success());
    assert!(!marker.exists(), "a shell ran a command from a URI");
    let execs = trace_lines(&trace, &["execve"]);
    assert_eq!(
        execs.len(),
        1,
        "the server started programs:\n{}",
        execs.join("\n")
    );
    let opens = trace_lines(&trace, &["openat", "open"]);
    let forbidden: Vec<_> = opens
        .iter()
        .filter(|l| {
            l.contains(dir.to_str().unwrap()) && !l.contains("strace.txt")
                || l.contains("/etc/shadow")
                || l.contains(".ssh")
        })
        .collect();
    assert!(
        forbidden.is_empty(),
        "the server opened client paths:\n{forbidden:#?}"
    );
    assert!(
        opens
            .iter()
            .any(|l| l.contains(real_model.to_str().unwrap())),
        "the model file is opened (the trace works)"
    );
}
