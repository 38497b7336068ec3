//! Remote completion backends end to end: the real binary over stdio with
//! `completion.backend` set to each inference server kind, a fake server
//! on 127.0.0.1 speaking its wire format. The scenarios are the local
//! engine's e2e tests (`lsp_e2e.rs`), run against each backend. No local
//! model is needed (`SLM_LS_MODEL` points at nothing): the point of a
//! remote backend is that the laptop does not run one.

mod common;
mod remote_support;

use std::time::{Duration, Instant};

use common::{fixture, TestServer};
use remote_support::{
    llama_infill, ollama_generate, openai_completions, FakeServer, Recorded, Reply,
};
use serde_json::{json, Value};

const URI: &str = "file:///work/src/fib.py";
const TEAM_KEY: &str = "team-secret-token-0123456789";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    LlamaServer,
    Openai,
    OpenaiFim,
    Ollama,
}

impl Kind {
    fn settings(self, url: &str) -> Value {
        let (backend, server) = match self {
            Kind::LlamaServer => (
                "llama-server",
                json!({ "endpoint": url, "apiKeyEnv": "SLM_TEST_TEAM_KEY" }),
            ),
            Kind::Openai => (
                "openai",
                json!({ "endpoint": format!("{url}/v1"), "model": "qwen-coder", "apiKeyEnv": "SLM_TEST_TEAM_KEY" }),
            ),
            Kind::OpenaiFim => (
                "openai",
                json!({ "endpoint": url, "model": "qwen-coder", "fimFormat": "qwen" }),
            ),
            Kind::Ollama => (
                "ollama",
                json!({ "endpoint": url, "model": "qwen2.5-coder:1.5b" }),
            ),
        };
        json!({ "completion": { "backend": backend, "server": server, "maxTokens": 24 } })
    }

    fn path(self) -> &'static str {
        match self {
            Kind::LlamaServer => "/infill",
            Kind::Openai | Kind::OpenaiFim => "/v1/completions",
            Kind::Ollama => "/api/generate",
        }
    }

    /// The server's answer, streamed: `pieces` quickly, then `late` after
    /// a long pause (a stop rule must have ended the request by then).
    fn reply(self, pieces: &[&str], late: &str) -> Reply {
        let mut all: Vec<&str> = pieces.to_vec();
        all.push(late);
        let chunks: Vec<String> = match self {
            Kind::LlamaServer => llama_infill(&all),
            Kind::Openai | Kind::OpenaiFim => openai_completions(&all),
            Kind::Ollama => ollama_generate(&all)
                .into_iter()
                .map(|l| l + "\n")
                .collect(),
        };
        let n = pieces.len();
        let chunks = chunks
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                (
                    if i == n {
                        Duration::from_secs(3)
                    } else {
                        Duration::from_millis(30)
                    },
                    c,
                )
            })
            .collect();
        let content_type = if self == Kind::Ollama {
            "application/x-ndjson"
        } else {
            "text/event-stream"
        };
        Reply::Stream {
            content_type: content_type.into(),
            chunks,
            end: remote_support::End::Clean,
        }
    }

    /// The text before the cursor as this backend sent it.
    fn prefix_sent(self, body: &Value) -> String {
        match self {
            Kind::LlamaServer => format!(
                "{}{}",
                body["input_prefix"].as_str().unwrap(),
                body["prompt"].as_str().unwrap()
            ),
            Kind::OpenaiFim => {
                let p = body["prompt"].as_str().unwrap();
                p.split("<|fim_prefix|>")
                    .nth(1)
                    .unwrap()
                    .split("<|fim_suffix|>")
                    .next()
                    .unwrap()
                    .to_string()
            }
            Kind::Openai | Kind::Ollama => body["prompt"].as_str().unwrap().to_string(),
        }
    }

    fn suffix_sent(self, body: &Value) -> String {
        match self {
            Kind::LlamaServer => body["input_suffix"].as_str().unwrap().to_string(),
            Kind::OpenaiFim => {
                let p = body["prompt"].as_str().unwrap();
                p.split("<|fim_suffix|>")
                    .nth(1)
                    .unwrap()
                    .split("<|fim_middle|>")
                    .next()
                    .unwrap()
                    .to_string()
            }
            Kind::Openai | Kind::Ollama => body["suffix"].as_str().unwrap().to_string(),
        }
    }

    /// Wire-format details each server needs.
    fn check_request(self, r: &Recorded) {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, self.path(), "{self:?}");
        let b = r.json();
        assert_eq!(b["stream"], true);
        match self {
            Kind::LlamaServer => {
                assert_eq!(b["cache_prompt"], true);
                assert!(b["input_extra"].is_array(), "input_extra: {b}");
                assert_eq!(b["n_predict"], 24);
                assert_eq!(
                    r.header("authorization"),
                    Some(format!("Bearer {TEAM_KEY}").as_str())
                );
            }
            Kind::Openai => {
                assert_eq!(b["model"], "qwen-coder");
                assert_eq!(b["max_tokens"], 24);
                assert_eq!(
                    r.header("authorization"),
                    Some(format!("Bearer {TEAM_KEY}").as_str())
                );
            }
            Kind::OpenaiFim => {
                assert!(
                    b.get("suffix").is_none(),
                    "FIM prompt built client-side: no suffix field"
                );
                assert!(b["prompt"].as_str().unwrap().ends_with("<|fim_middle|>"));
                assert_eq!(r.header("authorization"), None);
            }
            Kind::Ollama => {
                assert_eq!(b["model"], "qwen2.5-coder:1.5b");
                assert_eq!(b["options"]["num_predict"], 24);
                assert_eq!(r.header("authorization"), None);
            }
        }
    }
}

const ALL: [Kind; 4] = [
    Kind::LlamaServer,
    Kind::Openai,
    Kind::OpenaiFim,
    Kind::Ollama,
];

fn spawn(settings: Value) -> TestServer {
    let mut s = TestServer::spawn(
        &[],
        &[
            ("SLM_LS_MODEL", "/nonexistent/model.gguf"),
            ("SLM_TEST_TEAM_KEY", TEAM_KEY),
        ],
    );
    s.initialize(settings, json!({}));
    s
}

fn start(kind: Kind) -> FakeServer {
    FakeServer::start(move |req, _| {
        let body = req.json();
        let prefix = kind.prefix_sent(&body);
        // The prompt ends at the cursor, after the indentation (a remote
        // model gets no healing): the model goes on after it.
        if prefix.ends_with("for i in range(10):\n    ") {
            kind.reply(
                &["total += i", "\n    print(i)", "\nprint(total)\n"],
                "never",
            )
        } else {
            kind.reply(
                &["onacci(n - 1)", " + fibonacci(n - 2)  ", "\n    print(n)\n"],
                "never",
            )
        }
    })
}

/// `lsp_e2e::open_edit_and_complete_with_the_real_model` and friends, per backend.
#[test]
fn each_backend_passes_the_e2e_completion_scenario() {
    for kind in ALL {
        let fake = start(kind);
        let mut s = spawn(kind.settings(&fake.url));
        let (text, line, col) = fixture("def fibonacci(n):\n    if n < 2:\n        return n\n    return fib$0\n\nprint(fibonacci(10))\n");
        // Open without the last three characters, then type them as edits.
        s.open(
            URI,
            "python",
            &text.replacen("return fib\n", "return \n", 1),
        );
        for (i, ch) in ["f", "i", "b"].iter().enumerate() {
            let c = col - 3 + i as u32;
            s.change(URI, 2 + i as i32, json!([{ "range": { "start": { "line": line, "character": c }, "end": { "line": line, "character": c } }, "text": ch }]));
        }
        let t = Instant::now();
        let r = s.inline_completion(URI, line, col);
        let took = t.elapsed();
        let items = r["result"]["items"]
            .as_array()
            .unwrap_or_else(|| panic!("{kind:?}: no items: {r}"));
        assert_eq!(items.len(), 1, "{kind:?}");
        let item = &items[0];
        // Same post-processing as local: the single-line stop rule and trailing-space trim.
        assert_eq!(
            item["insertText"], "onacci(n - 1) + fibonacci(n - 2)",
            "{kind:?}: {r}"
        );
        assert_eq!(
            item["range"]["start"],
            json!({ "line": line, "character": col })
        );
        assert_eq!(
            item["range"]["end"],
            json!({ "line": line, "character": col })
        );
        assert_eq!(item["command"]["command"], "slm-ls.accepted");
        assert!(
            took < Duration::from_secs(2),
            "{kind:?}: the stop rule did not end the stream early ({took:?})"
        );

        // The request: the same context extraction as the local engine.
        let reqs = fake.requests();
        assert_eq!(reqs.len(), 1, "{kind:?}");
        kind.check_request(&reqs[0]);
        let body = reqs[0].json();
        assert!(
            kind.prefix_sent(&body)
                .ends_with("        return n\n    return fib"),
            "{kind:?}: {body}"
        );
        assert!(
            kind.suffix_sent(&body).contains("print(fibonacci(10))"),
            "{kind:?}: {body}"
        );

        // `textDocument/completion` at the same place: the typed-ahead cache
        // answers (no second request), shaped for menus.
        let r = s.request("textDocument/completion", json!({ "textDocument": { "uri": URI }, "position": { "line": line, "character": col } }));
        let item = &r["items"][0];
        assert_eq!(item["filterText"], "fibonacci(n - 1) + fibonacci(n - 2)");
        assert_eq!(
            item["textEdit"]["newText"],
            "fibonacci(n - 1) + fibonacci(n - 2)"
        );
        assert_eq!(
            item["textEdit"]["range"]["start"],
            json!({ "line": line, "character": col - 3 })
        );
        // Typing the suggestion's first character is served from the cache too.
        s.change(URI, 5, json!([{ "range": { "start": { "line": line, "character": col }, "end": { "line": line, "character": col } }, "text": "o" }]));
        let r = s.inline_completion(URI, line, col + 1);
        assert_eq!(
            r["result"]["items"][0]["insertText"], "nacci(n - 1) + fibonacci(n - 2)",
            "{kind:?}: {r}"
        );
        assert_eq!(
            fake.requests().len(),
            1,
            "{kind:?}: typed-ahead hits must not reach the server"
        );

        // Streaming partial text through work-done progress, multi-line
        // within the block's indentation.
        let (text, line, col) = fixture("total = 0\nfor i in range(10):\n    $0\n");
        s.open("file:///work/src/loop.py", "python", &text);
        let r = s.request_full(
            "textDocument/inlineCompletion",
            json!({ "textDocument": { "uri": "file:///work/src/loop.py" }, "position": { "line": line, "character": col }, "context": { "triggerKind": 1 }, "workDoneToken": "tok" }),
        );
        let final_text = r["result"]["items"][0]["insertText"]
            .as_str()
            .unwrap_or_else(|| panic!("{kind:?}: {r}"))
            .to_string();
        assert_eq!(
            final_text, "total += i\n    print(i)",
            "{kind:?}: the dedent ends the block"
        );
        let reports: Vec<String> = s
            .notifications_named("$/progress")
            .into_iter()
            .filter(|n| n["params"]["token"] == "tok" && n["params"]["value"]["kind"] == "report")
            .map(|n| {
                n["params"]["value"]["message"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert!(!reports.is_empty(), "{kind:?}: nothing streamed");
        for p in &reports {
            assert!(
                final_text.starts_with(p.trim_end()),
                "{kind:?}: partial {p:?} is not a prefix of {final_text:?}"
            );
        }
        let stats = s.request("slm-ls/stats", json!(null));
        assert_eq!(
            stats["remote"]["completionBackendRequests"], 2,
            "{kind:?}: {stats}"
        );
        assert!(s.shutdown().success());
    }
}

/// `lsp_e2e::each_completion_sees_its_own_edit` against a server that
/// answers with the word it was sent.
#[test]
fn each_completion_sees_its_own_edit() {
    let fake = FakeServer::start(|req, _| {
        let b = req.json();
        let line = b["prompt"].as_str().unwrap();
        let word: String = line
            .chars()
            .rev()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        Reply::sse(
            llama_infill(&[&format!("_{word}")]),
            Duration::from_millis(20),
        )
    });
    let mut s = spawn(Kind::LlamaServer.settings(&fake.url));
    let n = 12;
    for d in 0..n {
        s.open(&format!("file:///work/d{d}.py"), "python", "x = ");
    }
    let mut ids = Vec::new();
    for d in 0..n {
        let uri = format!("file:///work/d{d}.py");
        let word = format!("tok{d}");
        s.change(&uri, 2, json!([{ "range": { "start": { "line": 0, "character": 4 }, "end": { "line": 0, "character": 4 } }, "text": word }]));
        let id = s.request_async("textDocument/completion", json!({ "textDocument": { "uri": uri }, "position": { "line": 0, "character": 4 + word.len() } }));
        ids.push((id, word));
    }
    for (id, word) in ids {
        let r = s.response(id, Duration::from_secs(30));
        let item = &r["result"]["items"][0];
        assert_eq!(
            item["textEdit"]["range"],
            json!({ "start": { "line": 0, "character": 4 }, "end": { "line": 0, "character": 4 + word.len() } }),
            "completion {id} saw stale text: {r}"
        );
        assert_eq!(
            item["textEdit"]["newText"],
            json!(format!("{word}_{word}")),
            "the server got the edit: {r}"
        );
    }
    // Rapid typing in one document: superseded requests are cancelled,
    // every request is answered exactly once, answered ones saw their edit.
    s.open("file:///work/same.py", "python", "value = ");
    let mut ids = Vec::new();
    let mut col = 8;
    for (v, ch) in "abcdefgh".chars().enumerate() {
        s.change("file:///work/same.py", 2 + v as i32, json!([{ "range": { "start": { "line": 0, "character": col }, "end": { "line": 0, "character": col } }, "text": ch.to_string() }]));
        col += 1;
        ids.push((s.request_async("textDocument/completion", json!({ "textDocument": { "uri": "file:///work/same.py" }, "position": { "line": 0, "character": col } })), "abcdefgh"[..v + 1].to_string()));
    }
    let mut answered = 0;
    for (id, word) in ids {
        let r = s.response(id, Duration::from_secs(30));
        if let Some(err) = r.get("error") {
            assert_eq!(
                err["code"], -32800,
                "only cancellation is an acceptable error: {r}"
            );
        } else {
            answered += 1;
            // Answered: the text it saw, or (typed past) nothing.
            if let Some(item) = r["result"]["items"].as_array().and_then(|a| a.first()) {
                assert_eq!(
                    item["textEdit"]["range"],
                    json!({ "start": { "line": 0, "character": 8 }, "end": { "line": 0, "character": 8 + word.len() } }),
                    "stale text for {id}: {r}"
                );
            }
        }
    }
    assert!(answered >= 1, "the last request must be answered");
    while let Some(m) = s.recv(Duration::from_millis(300)) {
        assert!(m.get("method").is_some(), "unexpected extra response: {m}");
    }
}

#[test]
fn backend_faults_are_clear_and_nothing_private_is_sent() {
    // Server down: a specific error, the server stays up.
    let mut s = spawn(Kind::LlamaServer.settings("http://127.0.0.1:1"));
    s.open(URI, "python", "def f():\n    return 1\n");
    let r = s.inline_completion(URI, 1, 12);
    let msg = r["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"));
    assert!(
        msg.contains("completion server (llama-server)")
            && msg.contains("cannot reach http://127.0.0.1:1/infill"),
        "{msg}"
    );
    assert_eq!(r["error"]["data"]["kind"], "unreachable");
    assert!(s.is_alive());

    // A server error body is passed on (vLLM rejecting `suffix` gets a hint).
    let fake = FakeServer::always(Reply::json(
        400,
        json!({ "error": { "message": "suffix is not currently supported", "type": "BadRequestError", "code": 400 } }),
    ));
    let mut s = spawn(Kind::Openai.settings(&fake.url));
    s.open(URI, "python", "def f():\n    return 1\n");
    let r = s.inline_completion(URI, 1, 12);
    let msg = r["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"));
    assert!(
        msg.contains("HTTP 400: suffix is not currently supported") && msg.contains("fimFormat"),
        "{msg}"
    );
    assert_eq!(fake.requests().len(), 1, "completions are not retried");

    // Missing model name for a server that needs one.
    let mut settings = Kind::Ollama.settings("http://127.0.0.1:1");
    settings["completion"]["server"]["model"] = json!("");
    let mut s = spawn(settings);
    s.open(URI, "python", "x = 1\n");
    let r = s.inline_completion(URI, 0, 5);
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("completion.server.model is empty"),
        "{r}"
    );

    // Secrets in the context are redacted; denied files are never sent.
    let fake = start(Kind::LlamaServer);
    let mut s = spawn(Kind::LlamaServer.settings(&fake.url));
    let key = "sk-proj-AbCdEf0123456789GhIjKlMnOpQrStUvWxYz";
    let (text, line, col) = fixture(&format!("OPENAI_KEY = \"{key}\"\nDB = \"postgres://app:hunter2@db/app\"\n\ndef fibonacci(n):\n    return fib$0\n"));
    s.open(URI, "python", &text);
    let r = s.inline_completion(URI, line, col);
    assert!(r["result"]["items"].is_array(), "{r}");
    let sent = fake.requests()[0].text();
    assert!(
        !sent.contains(key) && !sent.contains("hunter2"),
        "a secret was sent: {sent}"
    );
    assert!(sent.contains("[REDACTED:openai-key]"), "{sent}");
    s.open("file:///work/.env", "dotenv", "TOKEN=abc\nNAME=");
    let r = s.inline_completion("file:///work/.env", 1, 5);
    assert_eq!(r["result"]["items"], json!([]), "{r}");
    assert_eq!(fake.requests().len(), 1, ".env content reached the server");
}

/// Cross-file context over LSP: the definition of a name used above the
/// cursor (from another open file) and a chunk edited a moment ago (in a
/// file that shares nothing with the cursor's text) reach the prompt, as
/// llama-server's `input_extra`; a secrets file or one the user's
/// `remote.neverSend` names never does.
#[test]
fn cross_file_context_reaches_the_prompt() {
    let kind = Kind::LlamaServer;
    let fake = start(kind);
    let mut settings = kind.settings(&fake.url);
    settings["remote"] = json!({ "neverSend": ["src/private/**"] });
    let mut s = spawn(settings);
    let filler = |n: usize| -> String { (0..n).map(|i| format!("x = {i}\n")).collect() };
    s.open(
        "file:///work/src/util.py",
        "python",
        &format!(
            "{}def parse_header(line, sep=\":\"):\n    key, value = line.split(sep, 1)\n    return key.strip(), value.strip()\n{}",
            filler(40),
            filler(40)
        ),
    );
    s.open("file:///work/src/notes.py", "python", &filler(80));
    s.change(
        "file:///work/src/notes.py",
        2,
        json!([{ "range": { "start": { "line": 40, "character": 0 }, "end": { "line": 40, "character": 0 } }, "text": "touched = True\n" }]),
    );
    s.open(
        "file:///work/src/private/keys.py",
        "python",
        "def parse_header(line):\n    return PRIVATE_PARSER(line)\n",
    );
    s.open("file:///work/.env", "dotenv", "API_TOKEN=parse_header\n");
    s.change(
        "file:///work/.env",
        2,
        json!([{ "range": { "start": { "line": 0, "character": 0 }, "end": { "line": 0, "character": 0 } }, "text": "X=1\n" }]),
    );
    let (text, line, col) =
        fixture("def handle(line):\n    key, value = parse_header(line)\n    $0\n");
    s.open("file:///work/src/main.py", "python", &text);
    let r = s.inline_completion("file:///work/src/main.py", line, col);
    assert!(r.get("error").is_none(), "{r}");
    let reqs = fake.requests();
    let body = reqs.last().expect("the server was asked").json();
    // The cursor line goes in `prompt`, indentation and all (a remote
    // model gets no token healing).
    assert_eq!(body["prompt"], "    ", "{body}");
    let extra = body["input_extra"].clone();
    let files: Vec<(String, String)> = extra
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["filename"].as_str().unwrap().to_string(),
                e["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let util = files.iter().find(|(f, _)| f.ends_with("util.py"));
    assert!(
        util.is_some_and(|(_, t)| t.starts_with("def parse_header(line, sep=\":\"):")),
        "the definition: {files:#?}"
    );
    let notes = files.iter().find(|(f, _)| f.ends_with("notes.py"));
    assert!(
        notes.is_some_and(|(_, t)| t.contains("touched = True")),
        "the recent edit: {files:#?}"
    );
    // Neither the built-in secrets list nor the user's neverSend.
    assert!(
        !files.iter().any(|(f, t)| f.ends_with(".env")
            || t.contains("API_TOKEN")
            || f.contains("private")
            || t.contains("PRIVATE_PARSER")),
        "{files:#?}"
    );
    assert!(s.shutdown().success());
}

/// With a completion server configured, no local model is loaded (not even
/// tried: the configured path does not exist, and nothing says so); going
/// back to `backend: local` loads it, and its error is the model's.
#[test]
fn no_local_model_is_loaded_for_a_completion_server() {
    let kind = Kind::LlamaServer;
    let fake = start(kind);
    let settings = kind.settings(&fake.url);
    let mut s = spawn(settings.clone());
    s.open(URI, "python", "def f(n):\n    return n\n");
    let r = s.inline_completion(URI, 1, 12);
    assert!(r.get("error").is_none(), "{r}");
    // Editors show the server as the model, ready (not an error).
    let stats = s.request("slm-ls/stats", json!(null));
    assert_eq!(stats["model"]["backend"], "llama-server", "{stats}");
    assert_eq!(
        stats["model"]["name"], "completion server (llama-server)",
        "{stats}"
    );
    assert!(
        !s.log_text().contains("/nonexistent/model.gguf"),
        "the local model was tried: {}",
        s.log_text()
    );
    // Back to the local engine: now it loads (and this path fails).
    let mut local = settings;
    local["completion"]["backend"] = json!("local");
    s.notify(
        "workspace/didChangeConfiguration",
        json!({ "settings": local }),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = s.inline_completion(URI, 1, 12);
        let msg = r["error"]["message"].as_str().unwrap_or("").to_string();
        if msg.contains("/nonexistent/model.gguf") {
            break;
        }
        assert!(Instant::now() < deadline, "no load after the switch: {r}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(s.shutdown().success());
}

/// The local engine leaves a trailing `!` out of the prompt and makes the
/// model write it first (token healing); a remote model is not constrained,
/// so its prompt keeps the `!` and the answer is shown as the model wrote it.
#[test]
fn a_remote_prompt_keeps_healed_punctuation() {
    for kind in ALL {
        let fake = start(kind);
        let mut s = spawn(kind.settings(&fake.url));
        let (text, line, col) = fixture("fn t() {\n    assert_eq!$0\n}\n");
        s.open("file:///work/t.rs", "rust", &text);
        let r = s.inline_completion("file:///work/t.rs", line, col);
        assert!(r.get("error").is_none(), "{kind:?}: {r}");
        let reqs = fake.requests();
        let body = reqs.last().expect("the server was asked").json();
        let sent = kind.prefix_sent(&body);
        assert!(sent.ends_with("    assert_eq!"), "{kind:?}: {sent:?}");
        let items = r["result"]["items"].as_array().unwrap();
        assert_eq!(
            items[0]["insertText"], "onacci(n - 1) + fibonacci(n - 2)",
            "{kind:?}"
        );
        assert!(s.shutdown().success());
    }
}
