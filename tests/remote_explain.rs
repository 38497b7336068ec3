//! `slm-ls.explain` end to end: the real binary over stdio, a fake provider
//! on 127.0.0.1 speaking each real wire format. No local model is needed
//! (the tests point `SLM_LS_MODEL` at nothing): explain does not use it.

mod common;
mod remote_support;

use std::time::{Duration, Instant};

use common::TestServer;
use remote_support::{anthropic_messages, ollama_chat, openai_chat, FakeServer, Reply};
use serde_json::{json, Value};

/// Looks like an OpenAI key so redaction and scrubbing both have work to do.
const KEY: &str = "sk-test-abcdefghijklmnopqrstuvwx2345";
const KEY_ENV: &str = "SLM_TEST_REMOTE_KEY";
const URI: &str = "file:///work/src/db.py";

const DB_PY: &str = r#"import os

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"


def connect(host):
    """Open a connection to the app database."""
    password = "hunter2-very-secret"
    url = f"postgres://admin:s3cretpw@{host}/app"
    token = "ghp_0123456789abcdefghijABCDEFGHIJ012345"
    return open_db(url, password, token)
"#;

/// Every secret in `DB_PY`.
const SECRETS: &[&str] = &[
    "AKIAIOSFODNN7EXAMPLE",
    "hunter2-very-secret",
    "s3cretpw",
    "ghp_0123456789abcdefghij",
];

fn spawn(settings: Value) -> TestServer {
    let mut s = TestServer::spawn(
        &[],
        &[("SLM_LS_MODEL", "/nonexistent/model.gguf"), (KEY_ENV, KEY)],
    );
    let init = s.initialize(settings, json!({}));
    assert_eq!(init["capabilities"]["codeActionProvider"], true);
    s
}

fn openai_settings(url: &str) -> Value {
    json!({ "remote": { "provider": "openai", "endpoint": format!("{url}/v1"), "model": "gpt-test", "apiKeyEnv": KEY_ENV } })
}

fn range(l0: u32, c0: u32, l1: u32, c1: u32) -> Value {
    json!({ "start": { "line": l0, "character": c0 }, "end": { "line": l1, "character": c1 } })
}

/// Run `slm-ls.explain`; returns the whole response message.
fn explain(s: &mut TestServer, uri: &str, range: Value, extra: Value) -> Value {
    let id = explain_async(s, uri, range, extra);
    s.response(id, Duration::from_secs(60))
}

fn explain_async(s: &mut TestServer, uri: &str, range: Value, extra: Value) -> i64 {
    let mut arg = json!({ "uri": uri, "range": range });
    let mut params = json!({ "command": "slm-ls.explain" });
    for (k, v) in extra.as_object().unwrap() {
        if k == "workDoneToken" {
            params[k] = v.clone();
        } else {
            arg[k] = v.clone();
        }
    }
    params["arguments"] = json!([arg]);
    s.request_async("workspace/executeCommand", params)
}

/// Collect notifications that arrive within `d`. tower-lsp merges its
/// response and notification streams fairly, so the last `$/progress`
/// messages sent before a response may be written just after it.
fn drain(s: &mut TestServer, d: Duration) {
    let end = Instant::now() + d;
    while let Some(m) = s.recv(end.saturating_duration_since(Instant::now())) {
        if m.get("method").is_some() {
            s.notifications.push(m);
        }
    }
}

fn progress_of(s: &TestServer, token: &str) -> Vec<Value> {
    s.notifications_named("$/progress")
        .into_iter()
        .filter(|n| n["params"]["token"] == token)
        .map(|n| n["params"]["value"].clone())
        .collect()
}

fn user_message(body: &Value) -> String {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "user")
        .unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string()
}

fn assert_no_secrets(text: &str) {
    for secret in SECRETS.iter().chain([&KEY]) {
        assert!(!text.contains(secret), "secret {secret:?} was sent: {text}");
    }
}

#[test]
fn openai_explain_streams_markdown_and_sends_the_right_body() {
    let pieces = [
        "`connect` opens",
        " a connection to the app database",
        ".\n\n- builds a Postgres URL from `host`",
    ];
    let fake = FakeServer::always(Reply::sse(openai_chat(&pieces), Duration::from_millis(40)));
    let mut s = spawn(openai_settings(&fake.url));
    s.open(URI, "python", DB_PY);
    // An empty range inside `connect`: the enclosing function is explained.
    let r = explain(
        &mut s,
        URI,
        range(7, 4, 7, 4),
        json!({ "workDoneToken": "explain-1" }),
    );
    let result = &r["result"];
    let full = pieces.concat();
    assert_eq!(result["markdown"], full, "{r}");
    assert_eq!(result["model"], "gpt-test");
    assert_eq!(
        result["usage"],
        json!({ "promptTokens": 120, "completionTokens": 30, "estimated": false })
    );

    // Streamed: begin, reports with the Markdown so far, end.
    drain(&mut s, Duration::from_millis(300));
    let progress = progress_of(&s, "explain-1");
    assert_eq!(progress.first().unwrap()["kind"], "begin");
    assert_eq!(progress.first().unwrap()["title"], "Explain with gpt-test");
    assert_eq!(progress.last().unwrap()["kind"], "end");
    let reports: Vec<&str> = progress
        .iter()
        .filter(|v| v["kind"] == "report")
        .map(|v| v["message"].as_str().unwrap())
        .collect();
    assert!(
        reports.len() >= 2,
        "the answer was not streamed: {progress:?}"
    );
    for r in &reports {
        assert!(
            full.starts_with(r),
            "report {r:?} is not a prefix of the answer"
        );
    }
    assert_eq!(
        *reports.last().unwrap(),
        full,
        "the last report is the whole answer"
    );

    // The request: OpenAI chat completions, streaming, bearer key.
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert!(req
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let body = req.json();
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(body["stream"], true);
    assert_eq!(
        body["max_tokens"], 1024,
        "self-hosted endpoints get max_tokens"
    );
    assert_eq!(body["messages"][0]["role"], "system");
    let user = user_message(&body);
    assert!(
        user.contains("`src/db.py`") && user.contains("python"),
        "path and language: {user}"
    );
    assert!(
        user.contains("def connect(host):") && user.contains("return open_db("),
        "the enclosing function: {user}"
    );
    assert!(
        !user.contains("import os"),
        "only the enclosing scope is sent: {user}"
    );
    assert_no_secrets(&req.text());

    let stats = s.request("slm-ls/stats", json!(null));
    assert_eq!(stats["remote"]["explainRequests"], 1);
    assert_eq!(stats["remote"]["explainPromptTokens"], 120);
    assert_eq!(stats["remote"]["remoteTokens"], 150);
    assert!(s.shutdown().success());
}

#[test]
fn anthropic_messages_wire_format() {
    let pieces = ["It ", "connects."];
    let fake = FakeServer::always(Reply::sse(
        anthropic_messages(&pieces),
        Duration::from_millis(20),
    ));
    let mut s = spawn(
        json!({ "remote": { "provider": "anthropic", "endpoint": fake.url, "model": "claude-test", "apiKeyEnv": KEY_ENV, "maxTokens": 300 } }),
    );
    s.open(URI, "python", DB_PY);
    let r = explain(
        &mut s,
        URI,
        range(5, 0, 10, 0),
        json!({ "workDoneToken": "a" }),
    );
    assert_eq!(r["result"]["markdown"], "It connects.", "{r}");
    assert_eq!(r["result"]["usage"]["promptTokens"], 200);
    assert_eq!(r["result"]["usage"]["completionTokens"], 40);
    let req = &fake.requests()[0];
    assert_eq!(req.path, "/v1/messages");
    assert_eq!(req.header("x-api-key"), Some(KEY));
    assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        req.header("authorization"),
        None,
        "Anthropic takes the key in x-api-key only"
    );
    let body = req.json();
    assert_eq!(body["model"], "claude-test");
    assert_eq!(body["max_tokens"], 300);
    assert_eq!(body["stream"], true);
    assert!(
        body["system"].as_str().unwrap().contains("Markdown"),
        "system prompt is top-level"
    );
    assert_eq!(body["messages"].as_array().unwrap().len(), 1);
    let user = user_message(&body);
    assert!(
        user.contains("Explain the selected code, lines 6–10"),
        "{user}"
    );
    assert_no_secrets(&req.text());
    let reports = progress_of(&s, "a")
        .into_iter()
        .filter(|v| v["kind"] == "report")
        .count();
    assert!(reports >= 1);
}

#[test]
fn ollama_native_wire_format_without_a_key() {
    let pieces = ["Opens ", "the ", "database."];
    let fake = FakeServer::always(Reply::ndjson(
        ollama_chat(&pieces),
        Duration::from_millis(20),
    ));
    let mut s = spawn(
        json!({ "remote": { "provider": "ollama", "endpoint": fake.url, "model": "llama3", "maxTokens": 200 } }),
    );
    s.open(URI, "python", DB_PY);
    let r = explain(&mut s, URI, range(7, 4, 7, 4), json!({}));
    assert_eq!(r["result"]["markdown"], "Opens the database.", "{r}");
    assert_eq!(
        r["result"]["usage"],
        json!({ "promptTokens": 90, "completionTokens": 20, "estimated": false })
    );
    let req = &fake.requests()[0];
    assert_eq!(req.path, "/api/chat");
    assert_eq!(
        req.header("authorization"),
        None,
        "no key is configured for Ollama"
    );
    let body = req.json();
    assert_eq!(body["model"], "llama3");
    assert_eq!(body["stream"], true);
    assert_eq!(body["options"]["num_predict"], 200);
    assert_eq!(body["messages"][0]["role"], "system");
    assert_no_secrets(&req.text());
}

#[test]
fn dry_run_returns_exactly_the_body_that_is_sent() {
    let fake = FakeServer::always(Reply::sse(openai_chat(&["ok"]), Duration::ZERO));
    let mut s = spawn(openai_settings(&fake.url));
    s.open(URI, "python", DB_PY);
    let all = range(0, 0, 11, 0);
    let dry = explain(&mut s, URI, all.clone(), json!({ "dryRun": true }));
    let dry = &dry["result"];
    assert_eq!(dry["dryRun"], true, "{dry}");
    assert_eq!(dry["url"], format!("{}/v1/chat/completions", fake.url));
    assert_eq!(dry["apiKeyEnv"], KEY_ENV);
    assert_eq!(fake.connections(), 0, "a dry run sends nothing");
    assert_no_secrets(&dry.to_string());
    let red = &dry["redactions"];
    // `password = "hunter2-very-secret"` is named by gitleaks' catalog
    // (issue 21) when its Terraform password rule sees it first.
    for kinds in [
        &["aws-access-key-id"][..],
        &["github-token"],
        &["url-password"],
        &["password", "hashicorp-tf-password"],
    ] {
        assert!(
            kinds.iter().any(|k| red[k].as_u64().unwrap_or(0) >= 1),
            "{kinds:?} not counted: {red}"
        );
    }
    // The real request carries byte for byte the body the dry run showed.
    let r = explain(&mut s, URI, all, json!({}));
    assert_eq!(r["result"]["markdown"], "ok");
    let sent = &fake.requests()[0].body;
    assert_eq!(
        String::from_utf8_lossy(sent),
        serde_json::to_string(&dry["body"]).unwrap()
    );
}

#[test]
fn secrets_and_denied_files_never_leave() {
    let fake = FakeServer::always(Reply::sse(openai_chat(&["fine"]), Duration::ZERO));
    let mut settings = openai_settings(&fake.url);
    settings["remote"]["neverSend"] = json!(["internal/**"]);
    let mut s = spawn(settings);
    let secrets_file = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7yn\n-----END RSA PRIVATE KEY-----\n\
        OPENAI = \"sk-proj-AbCdEf0123456789GhIjKlMnOpQrStUvWxYz\"\nANTHROPIC = \"sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789\"\n\
        SLACK = \"xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp\"\nGOOGLE = \"AIzaSyA-1234567890abcdefghijklmnopqrstu\"\n\
        aws_secret_access_key = \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\"\nDB_PASSWORD=hunter2\n";
    s.open("file:///work/src/keys.py", "python", secrets_file);
    let r = explain(
        &mut s,
        "file:///work/src/keys.py",
        range(0, 0, 9, 0),
        json!({}),
    );
    assert_eq!(r["result"]["markdown"], "fine", "{r}");
    let sent = fake.requests()[0].text();
    for secret in [
        "MIIEowIBAAKCAQEA7yn",
        "AbCdEf0123456789",
        "api03-AbCd",
        "xoxb-1234",
        "AIzaSyA-123",
        "wJalrXUtnFEMI",
        "hunter2",
    ] {
        assert!(!sent.contains(secret), "{secret} was sent: {sent}");
    }
    for kind in [
        "private-key",
        "openai-key",
        "anthropic-key",
        "slack-token",
        "google-api-key",
        "aws-secret-key",
    ] {
        assert!(
            sent.contains(&format!("[REDACTED:{kind}]")),
            "no {kind} marker in {sent}"
        );
    }

    // Denied files: refused with a clear error before any connection.
    let before = fake.connections();
    for (uri, pattern) in [
        ("file:///work/.env", ".env"),
        ("file:///work/deploy/tls.pem", "*.pem"),
        ("file:///work/internal/pay.py", "internal/**"),
    ] {
        s.open(uri, "python", "X = 1\n");
        let r = explain(&mut s, uri, range(0, 0, 1, 0), json!({}));
        assert_eq!(r["error"]["data"]["kind"], "neverSend", "{r}");
        let msg = r["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(pattern) && msg.contains("nothing was sent"),
            "{msg}"
        );
        let dry = explain(&mut s, uri, range(0, 0, 1, 0), json!({ "dryRun": true }));
        assert_eq!(
            dry["error"]["data"]["kind"], "neverSend",
            "a dry run refuses too: {dry}"
        );
    }
    assert_eq!(
        fake.connections(),
        before,
        "nothing was sent for denied files"
    );
}

/// One server, one fault after another: each ends the command with a
/// specific error, and the server keeps answering.
#[test]
fn every_fault_is_a_clear_error_and_the_server_stays_up() {
    let mut s = spawn(json!({}));
    s.open(URI, "python", DB_PY);
    let sel = range(5, 0, 11, 0);
    let run = |s: &mut TestServer, fake_url: &str, remote_extra: Value| -> (Value, Duration) {
        let mut settings = openai_settings(fake_url);
        for (k, v) in remote_extra.as_object().unwrap() {
            settings["remote"][k] = v.clone();
        }
        s.notify(
            "workspace/didChangeConfiguration",
            json!({ "settings": settings }),
        );
        let t = Instant::now();
        let r = explain(s, URI, sel.clone(), json!({ "workDoneToken": "f" }));
        (r, t.elapsed())
    };
    let expect_err = |r: &Value, kind: &str, needles: &[&str]| {
        assert_eq!(r["error"]["data"]["kind"], kind, "{r}");
        let msg = r["error"]["message"].as_str().unwrap();
        assert!(msg.starts_with("slm-ls.explain: "), "{msg}");
        for n in needles {
            assert!(msg.contains(n), "{kind}: {msg:?} lacks {n:?}");
        }
        assert!(
            !msg.contains(KEY) && !msg.contains("sk-test"),
            "the key leaked: {msg}"
        );
    };
    let ok = |r: &Value| assert!(r["result"]["markdown"].is_string(), "{r}");
    let chat_ok = || Reply::sse(openai_chat(&["fine"]), Duration::ZERO);

    // No key.
    let fake = FakeServer::always(chat_ok());
    let (r, _) = run(
        &mut s,
        &fake.url,
        json!({ "apiKeyEnv": "SLM_TEST_UNSET_KEY" }),
    );
    expect_err(&r, "noKey", &["SLM_TEST_UNSET_KEY", "not set"]);
    assert_eq!(fake.connections(), 0);

    // Unreachable host (nothing listens on port 1).
    let (r, _) = run(&mut s, "http://127.0.0.1:1", json!({}));
    expect_err(
        &r,
        "unreachable",
        &["cannot reach http://127.0.0.1:1/v1/chat/completions"],
    );

    // Timeout: the provider accepts and never answers.
    let fake = FakeServer::always(Reply::Hang(Duration::from_secs(20)));
    let (r, took) = run(&mut s, &fake.url, json!({ "timeoutMs": 400 }));
    expect_err(&r, "timeout", &["did not answer within 400 ms"]);
    assert!(took < Duration::from_secs(5), "the timeout took {took:?}");

    // Timeout mid-stream: data, then silence.
    let mut stalled = openai_chat(&["partial"]);
    stalled.truncate(2);
    let fake = FakeServer::always(Reply::Stream {
        content_type: "text/event-stream".into(),
        chunks: stalled
            .into_iter()
            .map(|c| (Duration::ZERO, c))
            .chain([(Duration::from_secs(10), "data: [DONE]\n\n".to_string())])
            .collect(),
        end: remote_support::End::Clean,
    });
    let (r, took) = run(&mut s, &fake.url, json!({ "timeoutMs": 400 }));
    expect_err(&r, "timeout", &["400 ms"]);
    assert!(took < Duration::from_secs(5), "{took:?}");

    // 401 with OpenAI's body, which echoes a masked key.
    let body = json!({ "error": { "message": format!("Incorrect API key provided: sk-test-************************2345. Raw: {KEY}"), "type": "invalid_request_error", "code": "invalid_api_key" } });
    let fake = FakeServer::always(Reply::json(401, body));
    let (r, _) = run(&mut s, &fake.url, json!({}));
    expect_err(
        &r,
        "auth",
        &[
            "API key was rejected (HTTP 401)",
            "Incorrect API key provided",
            KEY_ENV,
        ],
    );

    // 403.
    let fake = FakeServer::always(Reply::json(
        403,
        json!({ "type": "error", "error": { "type": "permission_error", "message": "model not allowed for this key" } }),
    ));
    let (r, _) = run(&mut s, &fake.url, json!({}));
    expect_err(
        &r,
        "auth",
        &["access denied (HTTP 403)", "model not allowed"],
    );

    // 429 with retry-after: 1, then success: the wait is honoured.
    let fake = FakeServer::sequence(vec![
        Reply::json(429, json!({ "error": { "message": "Rate limit reached" } }))
            .with_header("retry-after", "1"),
        chat_ok(),
    ]);
    let (r, took) = run(&mut s, &fake.url, json!({}));
    ok(&r);
    assert_eq!(fake.requests().len(), 2);
    assert!(
        took >= Duration::from_millis(950),
        "retry-after was not honoured: {took:?}"
    );

    // 429 asking for longer than the budget: fail at once, saying how long.
    let fake = FakeServer::always(
        Reply::json(
            429,
            json!({ "error": { "message": "Rate limit reached for requests" } }),
        )
        .with_header("retry-after", "120"),
    );
    let (r, took) = run(&mut s, &fake.url, json!({}));
    expect_err(
        &r,
        "rateLimited",
        &["HTTP 429", "retry after 120 s", "Rate limit reached"],
    );
    assert_eq!(
        fake.requests().len(),
        1,
        "no retry when the wait is too long"
    );
    assert!(took < Duration::from_secs(3));

    // 5xx twice, then success: bounded retries with backoff.
    let fake = FakeServer::sequence(vec![
        Reply::json(503, json!({ "error": { "message": "overloaded" } })),
        Reply::json(502, json!({ "error": { "message": "bad gateway" } })),
        chat_ok(),
    ]);
    let (r, took) = run(&mut s, &fake.url, json!({}));
    ok(&r);
    assert_eq!(fake.requests().len(), 3);
    assert!(
        took >= Duration::from_millis(1100),
        "no backoff between retries: {took:?}"
    );

    // 5xx every time: give up after maxRetries + 1 attempts.
    let fake = FakeServer::always(Reply::json(
        500,
        json!({ "error": { "message": "internal failure" } }),
    ));
    let (r, _) = run(&mut s, &fake.url, json!({ "maxRetries": 1 }));
    expect_err(
        &r,
        "server",
        &["HTTP 500 after 2 attempts", "internal failure"],
    );
    assert_eq!(fake.requests().len(), 2);

    // 404: a wrong endpoint says where it looked.
    let fake = FakeServer::always(Reply::json(404, json!({ "detail": "Not Found" })));
    let (r, _) = run(&mut s, &fake.url, json!({}));
    expect_err(&r, "http", &["HTTP 404", "check the endpoint"]);

    // Malformed stream.
    let fake = FakeServer::always(Reply::sse(
        vec!["data: {\"choices\": [{\"delta\": \n\n".into()],
        Duration::ZERO,
    ));
    let (r, _) = run(&mut s, &fake.url, json!({}));
    expect_err(&r, "malformed", &["not valid JSON"]);

    // Truncated: a complete HTTP body that stops before `[DONE]`.
    let mut cut = openai_chat(&["Half an ", "answer"]);
    cut.truncate(3);
    let fake = FakeServer::always(Reply::sse(cut, Duration::ZERO));
    let (r, _) = run(&mut s, &fake.url, json!({}));
    expect_err(&r, "truncated", &["without data: [DONE]", "14 characters"]);

    // Truncated: the connection drops mid-chunk.
    let fake =
        FakeServer::always(Reply::sse(openai_chat(&["x"])[..2].to_vec(), Duration::ZERO).aborted());
    let (r, _) = run(&mut s, &fake.url, json!({}));
    expect_err(&r, "truncated", &["cut off"]);

    // An error event in the middle of an Anthropic stream.
    let mut events = anthropic_messages(&["Start"]);
    events.truncate(4);
    events.push("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n".into());
    let fake = FakeServer::always(Reply::sse(events, Duration::ZERO));
    let (r, _) = run(
        &mut s,
        &fake.url,
        json!({ "provider": "anthropic", "endpoint": fake.url }),
    );
    expect_err(&r, "provider", &["overloaded_error: Overloaded"]);

    // Not configured at all.
    s.notify(
        "workspace/didChangeConfiguration",
        json!({ "settings": {} }),
    );
    let r = explain(&mut s, URI, sel.clone(), json!({}));
    expect_err(&r, "notConfigured", &["remote.model"]);

    // Still up, still answering; progress always ended; the key never shown.
    assert!(s.is_alive());
    drain(&mut s, Duration::from_millis(300));
    let stats = s.request("slm-ls/stats", json!(null));
    assert_eq!(stats["openDocuments"], 1);
    assert!(
        stats["remote"]["explainFailed"].as_u64().unwrap() >= 10,
        "{stats}"
    );
    let p = progress_of(&s, "f");
    let begins = p.iter().filter(|v| v["kind"] == "begin").count();
    let ends = p.iter().filter(|v| v["kind"] == "end").count();
    assert_eq!(begins, ends, "every progress that began has ended");
    assert!(p.iter().any(|v| v["kind"] == "end"
        && v["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("failed: "))));
    let everything = serde_json::to_string(&s.notifications).unwrap();
    assert!(
        !everything.contains(KEY),
        "the key appeared in a notification"
    );
    assert!(s.shutdown().success());
}

#[test]
fn cancelling_stops_the_remote_call() {
    let slow: Vec<(Duration, String)> = openai_chat(&["a"; 40])
        .into_iter()
        .map(|c| (Duration::from_millis(250), c))
        .collect();
    let fake = FakeServer::always(Reply::Stream {
        content_type: "text/event-stream".into(),
        chunks: slow,
        end: remote_support::End::Clean,
    });
    let mut s = spawn(openai_settings(&fake.url));
    s.open(URI, "python", DB_PY);
    let id = explain_async(
        &mut s,
        URI,
        range(7, 0, 7, 0),
        json!({ "workDoneToken": "c" }),
    );
    fake.wait_requests(1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(600));
    s.notify("$/cancelRequest", json!({ "id": id }));
    let t = Instant::now();
    let r = s.response(id, Duration::from_secs(10));
    assert_eq!(r["error"]["code"], -32800, "{r}");
    assert!(t.elapsed() < Duration::from_secs(2));
    // The blocking thread notices at the next line and hangs up.
    let end = Instant::now() + Duration::from_secs(5);
    while fake.client_hung_up() == 0 {
        assert!(
            Instant::now() < end,
            "the remote call kept going after the cancel"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(s.request("slm-ls/stats", json!(null))["openDocuments"], 1);
}

#[test]
fn code_action_offers_explain_on_a_selection() {
    let fake = FakeServer::always(Reply::sse(openai_chat(&["Explained."]), Duration::ZERO));
    let mut s = spawn(openai_settings(&fake.url));
    s.open(URI, "python", DB_PY);
    let sel = range(6, 4, 8, 0);
    let actions = s.request(
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": URI }, "range": sel, "context": { "diagnostics": [] } }),
    );
    let actions = actions
        .as_array()
        .unwrap_or_else(|| panic!("no actions: {actions}"));
    assert_eq!(actions.len(), 1);
    let a = &actions[0];
    assert_eq!(a["title"], "Explain with gpt-test");
    assert_eq!(a["command"]["command"], "slm-ls.explain");
    assert_eq!(
        a["command"]["arguments"],
        json!([{ "uri": URI, "range": sel }])
    );
    // Running the action's command explains the selection.
    let r = s.request_full(
        "workspace/executeCommand",
        json!({ "command": a["command"]["command"], "arguments": a["command"]["arguments"] }),
    );
    assert_eq!(r["result"]["markdown"], "Explained.", "{r}");

    // Not offered: without a selection, for a denied file, or when a kind is asked for.
    let none = |s: &mut TestServer, uri: &str, r: Value, ctx: Value| {
        let v = s.request(
            "textDocument/codeAction",
            json!({ "textDocument": { "uri": uri }, "range": r, "context": ctx }),
        );
        assert!(
            v.is_null() || v.as_array().is_some_and(|a| a.is_empty()),
            "{v}"
        );
    };
    none(&mut s, URI, range(6, 4, 6, 4), json!({ "diagnostics": [] }));
    s.open("file:///work/.env", "dotenv", "A=1\nB=2\n");
    none(
        &mut s,
        "file:///work/.env",
        range(0, 0, 1, 0),
        json!({ "diagnostics": [] }),
    );
    none(
        &mut s,
        URI,
        sel.clone(),
        json!({ "diagnostics": [], "only": ["source.organizeImports"] }),
    );

    // Not offered when no remote model is configured.
    let mut bare = spawn(json!({}));
    bare.open(URI, "python", DB_PY);
    none(&mut bare, URI, sel, json!({ "diagnostics": [] }));
}

/// Helix (and Neovim's code-action menu) drop `workspace/executeCommand`
/// results: for a client that can open documents, the Explain code action
/// asks for the answer as a document too, and the server writes it to a
/// Markdown file and sends `window/showDocument` for it. A client without
/// that capability gets the plain action.
#[test]
fn explain_answer_opens_as_a_document_for_clients_that_drop_results() {
    let pieces = ["`connect` opens", " a connection."];
    let fake = FakeServer::always(Reply::sse(openai_chat(&pieces), Duration::from_millis(10)));
    let action_args = |caps: Value| -> (TestServer, Value) {
        let mut s = TestServer::spawn(
            &[],
            &[("SLM_LS_MODEL", "/nonexistent/model.gguf"), (KEY_ENV, KEY)],
        );
        s.initialize(openai_settings(&fake.url), caps);
        s.open(URI, "python", DB_PY);
        let r = s.request(
            "textDocument/codeAction",
            json!({ "textDocument": { "uri": URI }, "range": range(7, 0, 8, 0),
                    "context": { "diagnostics": [], "triggerKind": 1 } }),
        );
        let args = r[0]["command"]["arguments"][0].clone();
        (s, args)
    };
    let (mut plain, args) = action_args(json!({}));
    assert!(args.get("show").is_none(), "{args}");
    assert!(plain.shutdown().success());

    let (mut s, args) = action_args(json!({ "window": { "showDocument": { "support": true } } }));
    assert_eq!(args["show"], "document", "{args}");
    let id = s.request_async(
        "workspace/executeCommand",
        json!({ "command": "slm-ls.explain", "arguments": [args] }),
    );
    let r = s.response(id, Duration::from_secs(60));
    assert_eq!(r["result"]["markdown"], pieces.concat(), "{r}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let shown = loop {
        if let Some(m) = s
            .notifications
            .iter()
            .find(|m| m["method"] == "window/showDocument")
        {
            break m.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no window/showDocument"
        );
        if let Some(m) = s.recv(Duration::from_millis(200)) {
            s.notifications.push(m);
        }
    };
    let uri = shown["params"]["uri"].as_str().unwrap();
    assert_eq!(shown["params"]["takeFocus"], true);
    let path = uri.strip_prefix("file://").expect("a file URI");
    assert!(path.ends_with("db.py.md"), "{path}");
    assert_eq!(std::fs::read_to_string(path).unwrap(), pieces.concat());
    assert!(s.shutdown().success());
}
