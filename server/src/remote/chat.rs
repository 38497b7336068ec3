//! Chat requests to the explain provider, one wire format per provider:
//!
//! | provider  | request                          | stream                                  | done when            |
//! |-----------|----------------------------------|-----------------------------------------|----------------------|
//! | openai    | `POST /v1/chat/completions`      | SSE `data: {choices:[{delta:{content}}]}` | `data: [DONE]`      |
//! | anthropic | `POST /v1/messages`              | SSE typed events, `content_block_delta`  | `event: message_stop` |
//! | ollama    | `POST /api/chat`                 | NDJSON `{message:{content}, done}`       | `"done": true`       |
//!
//! [`plan`] builds everything about a request except the key; it is what a
//! dry run returns. [`run`] sends it and streams the answer's text to a
//! callback. A stream that ends before its format's "done" marker is
//! [`RemoteError::Truncated`]; an event that is not valid JSON is
//! [`RemoteError::Malformed`]; an error event is [`RemoteError::Provider`].

use serde::Serialize;
use serde_json::{json, Value};

use super::http::{self, Post};
use super::sse::{read_lines, Ended, Flow, SseParser};
use super::{Cancel, Provider, RemoteConfig, RemoteError, Usage};

/// Anthropic's API version header value.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// The two messages every explain request carries.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub system: String,
    pub user: String,
}

/// Everything about one request except the key.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Plan {
    pub provider: Provider,
    pub url: String,
    pub model: String,
    /// Exactly the JSON body that is sent (serialized with `serde_json`).
    pub body: Value,
}

/// The answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatOutcome {
    pub text: String,
    pub usage: Usage,
    /// `stop`, `length`, `end_turn`, `max_tokens`... as the provider says.
    pub finish_reason: Option<String>,
}

impl ChatOutcome {
    /// The answer stopped because it hit `maxTokens`.
    pub fn hit_max_tokens(&self) -> bool {
        matches!(
            self.finish_reason.as_deref(),
            Some("length") | Some("max_tokens")
        )
    }
}

pub fn plan(cfg: &RemoteConfig, req: &ChatRequest) -> Result<Plan, RemoteError> {
    if !cfg.is_configured() {
        return Err(RemoteError::NotConfigured(
            "set remote.model (and remote.provider, remote.endpoint)".into(),
        ));
    }
    let url = cfg.chat_url();
    let model = cfg.model.trim().to_string();
    let body = match cfg.provider {
        Provider::Openai => {
            // OpenAI's own API wants `max_completion_tokens` (newer models
            // reject `max_tokens`); self-hosted servers know `max_tokens`.
            let limit_field = if url.contains("://api.openai.com") {
                "max_completion_tokens"
            } else {
                "max_tokens"
            };
            json!({
                "model": model,
                "messages": [
                    { "role": "system", "content": req.system },
                    { "role": "user", "content": req.user },
                ],
                limit_field: cfg.max_tokens,
                "stream": true,
                "stream_options": { "include_usage": true },
            })
        }
        Provider::Anthropic => json!({
            "model": model,
            "max_tokens": cfg.max_tokens,
            "system": req.system,
            "messages": [ { "role": "user", "content": req.user } ],
            "stream": true,
        }),
        Provider::Ollama => json!({
            "model": model,
            "messages": [
                { "role": "system", "content": req.system },
                { "role": "user", "content": req.user },
            ],
            "stream": true,
            "options": { "num_predict": cfg.max_tokens },
        }),
    };
    Ok(Plan {
        provider: cfg.provider,
        url,
        model,
        body,
    })
}

/// Send `plan` and stream the answer: `on_text` gets each new piece of
/// text as it arrives. Blocking; run it on a blocking thread.
pub fn run(
    cfg: &RemoteConfig,
    plan: &Plan,
    key: Option<&str>,
    cancel: &Cancel,
    on_text: &mut dyn FnMut(&str),
) -> Result<ChatOutcome, RemoteError> {
    let body = serde_json::to_vec(&plan.body).expect("a JSON value serializes");
    let key_env = cfg.key_env();
    let (auth, headers) = match (plan.provider, key) {
        (Provider::Anthropic, k) => (
            k.map(|k| ("x-api-key", k.to_string())),
            vec![("anthropic-version", ANTHROPIC_VERSION.to_string())],
        ),
        (_, Some(k)) => (Some(("authorization", format!("Bearer {k}"))), vec![]),
        (_, None) => (None, vec![]),
    };
    let post = Post {
        url: &plan.url,
        body: &body,
        headers,
        auth,
        key,
        key_env: key_env.as_deref(),
        timeout_ms: cfg.timeout_ms,
        max_retries: cfg.max_retries,
    };
    let opened = http::post(&post, cancel)?;
    let mut state = StreamState::default();
    let prompt_chars = plan.body.to_string().len();
    let whole_json =
        opened.content_type.contains("json") && !opened.content_type.contains("ndjson");

    if whole_json && plan.provider != Provider::Ollama {
        // The server ignored `stream: true` and sent one JSON answer.
        let mut all = String::new();
        let ended = read_lines(opened.reader, cancel, &plan.url, cfg.timeout_ms, |l| {
            all.push_str(l);
            all.push('\n');
            Ok(Flow::Continue)
        })?;
        if let Ended::EofMidLine(rest) = ended {
            all.push_str(&rest);
        }
        whole_answer(plan.provider, &all, &mut state, key)?;
        on_text(&state.text);
    } else {
        let mut sse = SseParser::default();
        let provider = plan.provider;
        let ended =
            read_lines(
                opened.reader,
                cancel,
                &plan.url,
                cfg.timeout_ms,
                |line| match provider {
                    Provider::Ollama => ollama_line(line, &mut state, key, on_text),
                    _ => match sse.line(line) {
                        Some(ev) => {
                            sse_event(provider, &ev.event, &ev.data, &mut state, key, on_text)
                        }
                        None if provider == Provider::Openai
                            && line.trim_start().starts_with('{') =>
                        {
                            // Not SSE at all: a bare JSON error object on a 200.
                            bare_json(line, key)
                        }
                        None => Ok(Flow::Continue),
                    },
                },
            )?;
        match ended {
            Ended::Eof if !state.done && provider != Provider::Ollama => {
                if let Some(ev) = sse.finish() {
                    sse_event(provider, &ev.event, &ev.data, &mut state, key, on_text)?;
                }
            }
            Ended::EofMidLine(_) if !state.done => {
                return Err(RemoteError::Truncated(format!(
                    "the connection closed in the middle of an event, {} characters into the answer",
                    state.text.chars().count()
                )));
            }
            _ => {}
        }
    }

    let lenient_done = plan.provider == Provider::Openai && state.finish_reason.is_some();
    if !state.done && !lenient_done {
        let what = match plan.provider {
            Provider::Openai => "data: [DONE]",
            Provider::Anthropic => "message_stop",
            Provider::Ollama => "\"done\": true",
        };
        return Err(RemoteError::Truncated(format!(
            "the stream ended without {what} after {} characters of the answer",
            state.text.chars().count()
        )));
    }
    let usage = match (state.prompt_tokens, state.completion_tokens) {
        (Some(p), Some(c)) => Usage {
            prompt_tokens: p,
            completion_tokens: c,
            estimated: false,
        },
        _ => Usage::estimate(prompt_chars, state.text.len()),
    };
    Ok(ChatOutcome {
        text: state.text,
        usage,
        finish_reason: state.finish_reason,
    })
}

#[derive(Default)]
struct StreamState {
    text: String,
    done: bool,
    finish_reason: Option<String>,
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

impl StreamState {
    fn push(&mut self, piece: &str, on_text: &mut dyn FnMut(&str)) {
        if !piece.is_empty() {
            self.text.push_str(piece);
            on_text(piece);
        }
    }
}

fn parse(data: &str) -> Result<Value, RemoteError> {
    let v: Value = serde_json::from_str(data).map_err(|e| {
        let shown: String = data.chars().take(80).collect();
        RemoteError::Malformed(format!(
            "an event is not valid JSON ({e}): {}",
            http::scrub(&shown, None)
        ))
    })?;
    if !v.is_object() {
        return Err(RemoteError::Malformed(format!(
            "an event is JSON but not an object: {}",
            http::scrub(data, None)
        )));
    }
    Ok(v)
}

/// An `error` member as the providers send it mid-stream.
fn stream_error(v: &Value, key: Option<&str>) -> Option<RemoteError> {
    let e = v.get("error").filter(|e| !e.is_null())?;
    let msg = e["message"]
        .as_str()
        .or_else(|| e.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| e.to_string());
    let kind = e["type"]
        .as_str()
        .map(|t| format!("{t}: "))
        .unwrap_or_default();
    Some(RemoteError::Provider(http::scrub(
        &format!("{kind}{msg}"),
        key,
    )))
}

fn bare_json(line: &str, key: Option<&str>) -> Result<Flow, RemoteError> {
    let v = parse(line)?;
    Err(stream_error(&v, key).unwrap_or_else(|| {
        RemoteError::Malformed("expected SSE `data:` lines, got a JSON object".into())
    }))
}

fn sse_event(
    provider: Provider,
    event: &str,
    data: &str,
    st: &mut StreamState,
    key: Option<&str>,
    on_text: &mut dyn FnMut(&str),
) -> Result<Flow, RemoteError> {
    match provider {
        Provider::Openai => {
            if data.trim() == "[DONE]" {
                st.done = true;
                return Ok(Flow::Stop);
            }
            let v = parse(data)?;
            if let Some(e) = stream_error(&v, key) {
                return Err(e);
            }
            if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                st.prompt_tokens = u["prompt_tokens"].as_u64().or(st.prompt_tokens);
                st.completion_tokens = u["completion_tokens"].as_u64().or(st.completion_tokens);
            }
            if let Some(choices) = v.get("choices") {
                let Some(choices) = choices.as_array() else {
                    return Err(RemoteError::Malformed("`choices` is not an array".into()));
                };
                for c in choices {
                    if let Some(t) = c["delta"]["content"].as_str() {
                        st.push(t, on_text);
                    }
                    if let Some(f) = c["finish_reason"].as_str() {
                        st.finish_reason = Some(f.to_string());
                    }
                }
            }
            Ok(Flow::Continue)
        }
        Provider::Anthropic => {
            let v = parse(data)?;
            let kind = v["type"].as_str().unwrap_or(event);
            match kind {
                "message_start" => {
                    let u = &v["message"]["usage"];
                    st.prompt_tokens = u["input_tokens"].as_u64();
                    st.completion_tokens = u["output_tokens"].as_u64();
                }
                "content_block_start" => {
                    if let Some(t) = v["content_block"]["text"].as_str() {
                        st.push(t, on_text);
                    }
                }
                "content_block_delta" => {
                    let d = &v["delta"];
                    if d["type"] == "text_delta" {
                        let Some(t) = d["text"].as_str() else {
                            return Err(RemoteError::Malformed("a text_delta without text".into()));
                        };
                        st.push(t, on_text);
                    }
                }
                "message_delta" => {
                    if let Some(r) = v["delta"]["stop_reason"].as_str() {
                        st.finish_reason = Some(r.to_string());
                    }
                    if let Some(n) = v["usage"]["output_tokens"].as_u64() {
                        st.completion_tokens = Some(n);
                    }
                    if let Some(n) = v["usage"]["input_tokens"].as_u64() {
                        st.prompt_tokens = Some(n);
                    }
                }
                "message_stop" => {
                    st.done = true;
                    return Ok(Flow::Stop);
                }
                "error" => {
                    return Err(stream_error(&v, key).unwrap_or_else(|| {
                        RemoteError::Provider("unspecified error event".into())
                    }));
                }
                // ping, content_block_stop, and event types added later.
                _ => {}
            }
            Ok(Flow::Continue)
        }
        Provider::Ollama => unreachable!("Ollama streams NDJSON"),
    }
}

fn ollama_line(
    line: &str,
    st: &mut StreamState,
    key: Option<&str>,
    on_text: &mut dyn FnMut(&str),
) -> Result<Flow, RemoteError> {
    if line.trim().is_empty() {
        return Ok(Flow::Continue);
    }
    let v = parse(line)?;
    if let Some(e) = stream_error(&v, key) {
        return Err(e);
    }
    if let Some(t) = v["message"]["content"].as_str() {
        st.push(t, on_text);
    } else if v.get("message").is_none() && v.get("done").is_none() {
        return Err(RemoteError::Malformed(
            "an NDJSON line has neither `message` nor `done`".into(),
        ));
    }
    if v["done"] == true {
        st.done = true;
        st.finish_reason = v["done_reason"].as_str().map(str::to_string);
        st.prompt_tokens = v["prompt_eval_count"].as_u64();
        st.completion_tokens = v["eval_count"].as_u64();
        return Ok(Flow::Stop);
    }
    Ok(Flow::Continue)
}

/// A non-streamed answer (a server that ignored `stream: true`).
fn whole_answer(
    provider: Provider,
    body: &str,
    st: &mut StreamState,
    key: Option<&str>,
) -> Result<(), RemoteError> {
    let v = parse(body.trim())?;
    if let Some(e) = stream_error(&v, key) {
        return Err(e);
    }
    let text = match provider {
        Provider::Openai => {
            st.finish_reason = v["choices"][0]["finish_reason"]
                .as_str()
                .map(str::to_string);
            st.prompt_tokens = v["usage"]["prompt_tokens"].as_u64();
            st.completion_tokens = v["usage"]["completion_tokens"].as_u64();
            v["choices"][0]["message"]["content"].as_str()
        }
        Provider::Anthropic => {
            st.finish_reason = v["stop_reason"].as_str().map(str::to_string);
            st.prompt_tokens = v["usage"]["input_tokens"].as_u64();
            st.completion_tokens = v["usage"]["output_tokens"].as_u64();
            v["content"][0]["text"].as_str()
        }
        Provider::Ollama => v["message"]["content"].as_str(),
    };
    st.text = text
        .ok_or_else(|| RemoteError::Malformed("the JSON answer has no message text".into()))?
        .to_string();
    st.done = true;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> ChatRequest {
        ChatRequest {
            system: "sys".into(),
            user: "usr".into(),
        }
    }

    #[test]
    fn bodies_per_provider() {
        let mut cfg = RemoteConfig {
            model: "m1".into(),
            max_tokens: 77,
            ..Default::default()
        };
        let p = plan(&cfg, &req()).unwrap();
        assert_eq!(
            p.body["max_completion_tokens"], 77,
            "api.openai.com gets max_completion_tokens"
        );
        assert_eq!(
            p.body["messages"][0],
            json!({"role": "system", "content": "sys"})
        );
        assert_eq!(p.body["stream"], true);
        cfg.endpoint = Some("http://vllm:8000/v1".into());
        assert_eq!(plan(&cfg, &req()).unwrap().body["max_tokens"], 77);
        cfg.provider = Provider::Anthropic;
        let p = plan(&cfg, &req()).unwrap();
        assert_eq!(p.body["system"], "sys");
        assert_eq!(
            p.body["messages"],
            json!([{"role": "user", "content": "usr"}])
        );
        cfg.provider = Provider::Ollama;
        assert_eq!(
            plan(&cfg, &req()).unwrap().body["options"]["num_predict"],
            77
        );
        cfg.model = " ".into();
        assert!(matches!(
            plan(&cfg, &req()),
            Err(RemoteError::NotConfigured(_))
        ));
    }

    fn feed_sse(provider: Provider, stream: &str) -> (StreamState, Result<(), RemoteError>) {
        let mut st = StreamState::default();
        let mut p = SseParser::default();
        let mut sink = |_: &str| {};
        let r = read_lines(stream.as_bytes(), &Cancel::default(), "u", 1, |l| {
            match p.line(l) {
                Some(ev) => sse_event(provider, &ev.event, &ev.data, &mut st, None, &mut sink),
                None => Ok(Flow::Continue),
            }
        })
        .map(|_| ());
        (st, r)
    }

    #[test]
    fn openai_stream_with_usage() {
        let s = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n\
                 data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n\
                 data: {\"choices\":[{\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n\
                 data: {\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":2}}\n\n\
                 data: [DONE]\n\n";
        let (st, r) = feed_sse(Provider::Openai, s);
        r.unwrap();
        assert_eq!(st.text, "Hello");
        assert!(st.done);
        assert_eq!(
            (st.prompt_tokens, st.completion_tokens),
            (Some(10), Some(2))
        );
    }

    #[test]
    fn anthropic_stream_and_error_event() {
        let s = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n\
                 event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
                 event: ping\ndata: {\"type\": \"ping\"}\n\n\
                 event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n\
                 event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
                 event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":15}}\n\n\
                 event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let (st, r) = feed_sse(Provider::Anthropic, s);
        r.unwrap();
        assert_eq!(st.text, "Hi");
        assert_eq!(
            (st.prompt_tokens, st.completion_tokens),
            (Some(25), Some(15))
        );
        let err = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        let (_, r) = feed_sse(Provider::Anthropic, err);
        assert_eq!(
            r.unwrap_err(),
            RemoteError::Provider("overloaded_error: Overloaded".into())
        );
    }

    #[test]
    fn malformed_events() {
        let (_, r) = feed_sse(Provider::Openai, "data: {\"choices\": [\n\n");
        assert!(matches!(r, Err(RemoteError::Malformed(_))), "{r:?}");
        let (_, r) = feed_sse(Provider::Openai, "data: [1,2]\n\n");
        assert!(matches!(r, Err(RemoteError::Malformed(_))), "{r:?}");
        let (_, r) = feed_sse(
            Provider::Anthropic,
            "event: content_block_delta\ndata: nope\n\n",
        );
        assert!(matches!(r, Err(RemoteError::Malformed(_))), "{r:?}");
    }

    #[test]
    fn ollama_lines() {
        let mut st = StreamState::default();
        let mut sink = |_: &str| {};
        for l in [
            r#"{"model":"m","message":{"role":"assistant","content":"A"},"done":false}"#,
            "",
            r#"{"model":"m","message":{"role":"assistant","content":"B"},"done":false}"#,
            r#"{"model":"m","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":7,"eval_count":3}"#,
        ] {
            ollama_line(l, &mut st, None, &mut sink).unwrap();
        }
        assert_eq!(st.text, "AB");
        assert!(st.done);
        assert_eq!((st.prompt_tokens, st.completion_tokens), (Some(7), Some(3)));
        let e = ollama_line(
            r#"{"error":"model 'x' not found"}"#,
            &mut st,
            None,
            &mut sink,
        )
        .unwrap_err();
        assert_eq!(e, RemoteError::Provider("model 'x' not found".into()));
    }
}
