//! Remote completion backends: completions from a team's inference server
//! instead of the in-process engine (`completion.backend`).
//!
//! The caller does the same context extraction (`complete::prepare`) and
//! the same post-processing (`postprocess::clean`) as for the local engine;
//! this module sends the prepared prefix/suffix/snippets in the server's
//! wire format, streams the answer, and applies the same text-level stop
//! rules ([`crate::engine::stop::cut_point`]) and time budget while it
//! arrives, hanging up as soon as one fires.
//!
//! | backend        | request                                   | stream                       |
//! |----------------|-------------------------------------------|------------------------------|
//! | `llama-server` | `POST /infill` `input_prefix`, `input_suffix`, `input_extra`, `prompt` (the cursor line), `cache_prompt` | SSE `{content, stop}` |
//! | `openai`       | `POST /v1/completions` `prompt` + `suffix`, or a FIM prompt built here (`fimFormat`) | SSE `{choices:[{text}]}`, `[DONE]` |
//! | `ollama`       | `POST /api/generate` `prompt` + `suffix`   | NDJSON `{response, done}`    |

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::http::{self, Post};
use super::sse::{read_lines, Ended, Flow, SseParser};
use super::{Cancel, CompletionBackend, CompletionServer, RemoteError, Usage};
use crate::engine::stop::cut_point;
use crate::engine::{FimFamily, PromptInput, StopRules};

/// One completion, as prepared by `complete::prepare`.
pub struct Request<'a> {
    pub input: &'a PromptInput,
    /// The cursor line's text before the cursor (the tail of `input.prefix`).
    pub line_prefix: &'a str,
    pub max_tokens: u32,
    /// Budget for the whole remote call; what arrived by then is used.
    pub max_time_ms: u64,
    pub stop: &'a StopRules,
}

/// URL and body: what would be sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub url: String,
    pub body: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RemoteCompletion {
    /// Raw text (stop rules applied, not yet post-processed).
    pub text: String,
    pub usage: Usage,
}

pub fn plan(
    backend: CompletionBackend,
    server: &CompletionServer,
    req: &Request,
) -> Result<Planned, RemoteError> {
    let input = req.input;
    let model = server.model.trim();
    let needs_model = matches!(
        backend,
        CompletionBackend::Openai | CompletionBackend::Ollama
    );
    if needs_model && model.is_empty() {
        return Err(RemoteError::NotConfigured(format!(
            "completion.backend is \"{}\" but completion.server.model is empty",
            backend.name()
        )));
    }
    // Single-line suggestions end at the newline: let the server stop there too.
    let stop: Vec<&str> = if req.stop.single_line {
        vec!["\n"]
    } else {
        vec![]
    };
    let body = match backend {
        CompletionBackend::Local => {
            return Err(RemoteError::NotConfigured(
                "completion.backend is \"local\"".into(),
            ));
        }
        CompletionBackend::LlamaServer => {
            // As llama.vim does: the cursor line goes in `prompt` (after the
            // FIM middle token) so the cached head stays stable as you type.
            let head = input
                .prefix
                .strip_suffix(req.line_prefix)
                .unwrap_or(&input.prefix);
            let line = &input.prefix[head.len()..];
            let extra: Vec<Value> = input
                .extras
                .iter()
                .map(|s| json!({ "filename": s.path, "text": s.text }))
                .collect();
            let mut b = json!({
                "input_prefix": head,
                "input_suffix": input.suffix,
                "input_extra": extra,
                "prompt": line,
                "n_predict": req.max_tokens,
                "cache_prompt": true,
                "stream": true,
                "temperature": 0.0,
                "t_max_predict_ms": req.max_time_ms,
            });
            if !model.is_empty() {
                b["model"] = json!(model);
            }
            if !stop.is_empty() {
                b["stop"] = json!(stop);
            }
            b
        }
        CompletionBackend::Openai => {
            let mut b = json!({
                "model": model,
                "max_tokens": req.max_tokens,
                "temperature": 0.0,
                "stream": true,
                "stream_options": { "include_usage": true },
            });
            let fim = server.fim_format.trim();
            if fim.is_empty() {
                b["prompt"] = json!(with_extras_as_comments(input));
                b["suffix"] = json!(input.suffix);
            } else {
                let family = FimFamily::parse(fim)
                    .flatten()
                    .filter(|f| !matches!(f, FimFamily::None | FimFamily::Generic));
                let Some(family) = family else {
                    return Err(RemoteError::NotConfigured(format!(
                        "unknown completion.server.fimFormat \"{fim}\" (expected qwen, starcoder, deepseek, codellama, codestral or codegemma)"
                    )));
                };
                b["prompt"] = json!(fim_text(family, input));
            }
            if !stop.is_empty() {
                b["stop"] = json!(stop);
            }
            b
        }
        CompletionBackend::Ollama => {
            let mut options = json!({ "num_predict": req.max_tokens, "temperature": 0.0 });
            if !stop.is_empty() {
                options["stop"] = json!(stop);
            }
            json!({
                "model": model,
                "prompt": with_extras_as_comments(input),
                "suffix": input.suffix,
                "stream": true,
                "options": options,
            })
        }
    };
    Ok(Planned {
        url: server.url(backend),
        body,
    })
}

/// Snippets from other files in front of the prefix, for servers without a
/// field for them.
fn with_extras_as_comments(input: &PromptInput) -> String {
    let mut s = crate::engine::prompt::extras_as_comments(input);
    s.push_str(&input.prefix);
    s
}

/// The FIM prompt as text, for OpenAI-compatible servers that tokenize
/// special tokens in the prompt (vLLM, TGI). Same layouts as the local
/// engine's `engine::prompt` (which works on token ids).
pub fn fim_text(family: FimFamily, input: &PromptInput) -> String {
    let (p, s) = (&input.prefix, &input.suffix);
    let mut out = String::new();
    if family == FimFamily::Qwen && !input.extras.is_empty() {
        for e in &input.extras {
            out.push_str(&format!("<|file_sep|>{}\n{}\n", e.path, e.text));
        }
        out.push_str(&format!("<|file_sep|>{}\n", input.path));
    } else if !input.extras.is_empty() {
        out.push_str(&with_extras_as_comments(&PromptInput {
            prefix: String::new(),
            ..input.clone()
        }));
    }
    out.push_str(&match family {
        FimFamily::StarCoder => format!("<fim_prefix>{p}<fim_suffix>{s}<fim_middle>"),
        FimFamily::Qwen | FimFamily::CodeGemma => {
            format!("<|fim_prefix|>{p}<|fim_suffix|>{s}<|fim_middle|>")
        }
        FimFamily::DeepSeek => format!("<｜fim▁begin｜>{p}<｜fim▁hole｜>{s}<｜fim▁end｜>"),
        FimFamily::CodeLlama => format!("<PRE> {p} <SUF>{s} <MID>"),
        FimFamily::Codestral => format!("[SUFFIX]{s}[PREFIX]{p}"),
        FimFamily::None | FimFamily::Generic => p.to_string(),
    });
    out
}

/// Send the request and stream the suggestion. `on_text` sees the raw text
/// so far after each piece. Blocking; run it on a blocking thread.
pub fn complete(
    backend: CompletionBackend,
    server: &CompletionServer,
    req: &Request,
    key: Option<&str>,
    cancel: &Cancel,
    on_text: &mut dyn FnMut(&str),
) -> Result<RemoteCompletion, RemoteError> {
    let planned = plan(backend, server, req)?;
    let body = serde_json::to_vec(&planned.body).expect("a JSON value serializes");
    let key_env = server.key_env();
    let post = Post {
        url: &planned.url,
        body: &body,
        headers: vec![],
        auth: key.map(|k| ("authorization", format!("Bearer {k}"))),
        key,
        key_env: key_env.as_deref(),
        timeout_ms: server.timeout_ms,
        // Latency-sensitive: a retry would answer a keystroke long gone.
        max_retries: 0,
    };
    let opened = http::post(&post, cancel).map_err(|e| with_hint(e, backend))?;
    let deadline = Instant::now() + Duration::from_millis(req.max_time_ms.max(1));
    let mut st = State::default();
    let mut sse = SseParser::default();
    let whole_json =
        opened.content_type.contains("json") && !opened.content_type.contains("ndjson");
    let mut body_text = String::new();
    let ended = read_lines(
        opened.reader,
        cancel,
        &planned.url,
        server.timeout_ms,
        |line| {
            if whole_json && backend != CompletionBackend::Ollama {
                body_text.push_str(line);
                return Ok(Flow::Continue);
            }
            let flow = match backend {
                CompletionBackend::Ollama => ollama_line(line, &mut st, key)?,
                _ => {
                    if let Some(rest) = line.strip_prefix("error:") {
                        // llama-server reports stream errors as `error: {json}`.
                        return Err(RemoteError::Provider(http::error_detail(rest, key)));
                    }
                    match sse.line(line) {
                        Some(ev) => sse_event(backend, &ev.data, &mut st, key)?,
                        None => Flow::Continue,
                    }
                }
            };
            if let Some(cut) = cut_point(req.stop, &st.text) {
                st.text.truncate(cut);
                st.done = true;
                return Ok(Flow::Stop);
            }
            if st.grew {
                st.grew = false;
                on_text(&st.text);
            }
            if flow == Flow::Continue && Instant::now() >= deadline {
                st.done = true; // the time budget: keep what arrived
                return Ok(Flow::Stop);
            }
            Ok(flow)
        },
    )?;
    if let Ended::EofMidLine(rest) = ended {
        if whole_json {
            body_text.push_str(&rest);
        } else if !st.done {
            return Err(RemoteError::Truncated(format!(
                "the connection closed in the middle of an event ({} characters in)",
                st.text.chars().count()
            )));
        }
    }
    if whole_json && backend != CompletionBackend::Ollama {
        let v: Value = serde_json::from_str(&body_text)
            .map_err(|e| RemoteError::Malformed(format!("the answer is not valid JSON ({e})")))?;
        let text = match backend {
            CompletionBackend::LlamaServer => v["content"].as_str(),
            _ => v["choices"][0]["text"].as_str(),
        };
        st.text = text
            .ok_or_else(|| RemoteError::Malformed("the JSON answer has no completion text".into()))?
            .to_string();
        if let Some(cut) = cut_point(req.stop, &st.text) {
            st.text.truncate(cut);
        }
        st.done = true;
    }
    if !st.done {
        return Err(RemoteError::Truncated(format!(
            "the completion stream ended before the server said it was done ({} characters in)",
            st.text.chars().count()
        )));
    }
    let usage = match (st.prompt_tokens, st.completion_tokens) {
        (Some(p), Some(c)) => Usage {
            prompt_tokens: p,
            completion_tokens: c,
            estimated: false,
        },
        _ => Usage::estimate(body.len(), st.text.len()),
    };
    Ok(RemoteCompletion {
        text: st.text,
        usage,
    })
}

fn with_hint(e: RemoteError, backend: CompletionBackend) -> RemoteError {
    match e {
        RemoteError::Http { status: 400, detail, hint: None } if backend == CompletionBackend::Openai && detail.contains("suffix") => {
            RemoteError::Http {
                status: 400,
                detail,
                hint: Some("this server does not take `suffix`: set completion.server.fimFormat to the model's family (e.g. \"qwen\") so the FIM prompt is built by slm-ls".into()),
            }
        }
        e => e,
    }
}

#[derive(Default)]
struct State {
    text: String,
    grew: bool,
    done: bool,
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

impl State {
    fn push(&mut self, t: &str) {
        if !t.is_empty() {
            self.text.push_str(t);
            self.grew = true;
        }
    }
}

fn parse(data: &str) -> Result<Value, RemoteError> {
    serde_json::from_str::<Value>(data)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| {
            RemoteError::Malformed(format!(
                "an event is not a JSON object: {}",
                http::scrub(&data.chars().take(80).collect::<String>(), None)
            ))
        })
}

fn error_in(v: &Value, key: Option<&str>) -> Option<RemoteError> {
    let e = v.get("error").filter(|e| !e.is_null())?;
    let msg = e["message"]
        .as_str()
        .or_else(|| e.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| e.to_string());
    Some(RemoteError::Provider(http::scrub(&msg, key)))
}

fn sse_event(
    backend: CompletionBackend,
    data: &str,
    st: &mut State,
    key: Option<&str>,
) -> Result<Flow, RemoteError> {
    if data.trim() == "[DONE]" {
        st.done = true;
        return Ok(Flow::Stop);
    }
    let v = parse(data)?;
    if let Some(e) = error_in(&v, key) {
        return Err(e);
    }
    match backend {
        CompletionBackend::LlamaServer => {
            if let Some(t) = v["content"].as_str() {
                st.push(t);
            }
            if v["stop"] == true {
                st.done = true;
                st.prompt_tokens = v["tokens_evaluated"].as_u64();
                st.completion_tokens = v["tokens_predicted"].as_u64();
                return Ok(Flow::Stop);
            }
        }
        _ => {
            if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                st.prompt_tokens = u["prompt_tokens"].as_u64();
                st.completion_tokens = u["completion_tokens"].as_u64();
            }
            if let Some(c) = v["choices"].get(0) {
                if let Some(t) = c["text"].as_str() {
                    st.push(t);
                }
                if c["finish_reason"].is_string() {
                    // `[DONE]` (and the usage chunk) may follow; both optional.
                    st.done = true;
                }
            }
        }
    }
    Ok(Flow::Continue)
}

fn ollama_line(line: &str, st: &mut State, key: Option<&str>) -> Result<Flow, RemoteError> {
    if line.trim().is_empty() {
        return Ok(Flow::Continue);
    }
    let v = parse(line)?;
    if let Some(e) = error_in(&v, key) {
        return Err(e);
    }
    if let Some(t) = v["response"].as_str() {
        st.push(t);
    }
    if v["done"] == true {
        st.done = true;
        st.prompt_tokens = v["prompt_eval_count"].as_u64();
        st.completion_tokens = v["eval_count"].as_u64();
        return Ok(Flow::Stop);
    }
    Ok(Flow::Continue)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Snippet;

    fn input() -> PromptInput {
        PromptInput {
            path: "src/a.py".into(),
            prefix: "import os\n\ndef f(x):\n    return x".into(),
            suffix: "\n\nprint(f(1))\n".into(),
            extras: vec![Snippet {
                path: "src/b.py".into(),
                text: "B = 1".into(),
            }],
            ..Default::default()
        }
    }

    fn req<'a>(input: &'a PromptInput, stop: &'a StopRules) -> Request<'a> {
        Request {
            input,
            line_prefix: "    return x",
            max_tokens: 16,
            max_time_ms: 900,
            stop,
        }
    }

    #[test]
    fn llama_server_infill_body() {
        let (i, stop) = (
            input(),
            StopRules {
                single_line: true,
                ..Default::default()
            },
        );
        let p = plan(
            CompletionBackend::LlamaServer,
            &CompletionServer::default(),
            &req(&i, &stop),
        )
        .unwrap();
        assert_eq!(p.url, "http://127.0.0.1:8080/infill");
        assert_eq!(p.body["input_prefix"], "import os\n\ndef f(x):\n");
        assert_eq!(p.body["prompt"], "    return x");
        assert_eq!(p.body["input_suffix"], "\n\nprint(f(1))\n");
        assert_eq!(
            p.body["input_extra"],
            json!([{ "filename": "src/b.py", "text": "B = 1" }])
        );
        assert_eq!(p.body["cache_prompt"], true);
        assert_eq!(p.body["n_predict"], 16);
        assert_eq!(p.body["stop"], json!(["\n"]));
    }

    #[test]
    fn openai_suffix_or_client_side_fim() {
        let (i, stop) = (input(), StopRules::default());
        let mut s = CompletionServer {
            model: "qwen".into(),
            ..Default::default()
        };
        let p = plan(CompletionBackend::Openai, &s, &req(&i, &stop)).unwrap();
        assert_eq!(p.body["suffix"], "\n\nprint(f(1))\n");
        assert!(p.body["prompt"]
            .as_str()
            .unwrap()
            .ends_with("def f(x):\n    return x"));
        s.fim_format = "qwen".into();
        let p = plan(CompletionBackend::Openai, &s, &req(&i, &stop)).unwrap();
        assert!(p.body.get("suffix").is_none());
        assert_eq!(
            p.body["prompt"],
            "<|file_sep|>src/b.py\nB = 1\n<|file_sep|>src/a.py\n<|fim_prefix|>import os\n\ndef f(x):\n    return x<|fim_suffix|>\n\nprint(f(1))\n<|fim_middle|>"
        );
        s.fim_format = "bogus".into();
        assert!(matches!(
            plan(CompletionBackend::Openai, &s, &req(&i, &stop)),
            Err(RemoteError::NotConfigured(_))
        ));
        s.model.clear();
        s.fim_format.clear();
        assert!(matches!(
            plan(CompletionBackend::Ollama, &s, &req(&i, &stop)),
            Err(RemoteError::NotConfigured(_))
        ));
    }

    #[test]
    fn fim_layouts() {
        let i = PromptInput {
            path: "a".into(),
            prefix: "P".into(),
            suffix: "S".into(),
            extras: vec![],
            ..Default::default()
        };
        assert_eq!(
            fim_text(FimFamily::StarCoder, &i),
            "<fim_prefix>P<fim_suffix>S<fim_middle>"
        );
        assert_eq!(
            fim_text(FimFamily::DeepSeek, &i),
            "<｜fim▁begin｜>P<｜fim▁hole｜>S<｜fim▁end｜>"
        );
        assert_eq!(fim_text(FimFamily::CodeLlama, &i), "<PRE> P <SUF>S <MID>");
        assert_eq!(fim_text(FimFamily::Codestral, &i), "[SUFFIX]S[PREFIX]P");
    }
}
