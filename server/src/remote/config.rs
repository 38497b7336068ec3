//! Settings for remote models: the `remote` section (the explain provider)
//! and `completion.backend` / `completion.server` (a team inference server
//! serving completions). Every field has a default so a partial object is
//! valid; see `docs/remote.md` for examples per provider.

use serde::{Deserialize, Serialize};

/// Which wire format the explain provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// `POST /v1/chat/completions` with `stream: true` (SSE): OpenAI, and
    /// any vLLM / llama-server / LM Studio / Ollama `/v1` endpoint.
    #[default]
    #[serde(
        alias = "openai-compatible",
        alias = "vllm",
        alias = "llama-server",
        alias = "lmstudio"
    )]
    Openai,
    /// `POST /v1/messages` (SSE with typed events), `x-api-key` header.
    Anthropic,
    /// Ollama's native `POST /api/chat` (NDJSON stream).
    Ollama,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Ollama => "ollama",
        }
    }

    fn default_endpoint(self) -> &'static str {
        match self {
            Provider::Openai => "https://api.openai.com",
            Provider::Anthropic => "https://api.anthropic.com",
            Provider::Ollama => "http://127.0.0.1:11434",
        }
    }

    fn default_key_env(self) -> Option<&'static str> {
        match self {
            Provider::Openai => Some("OPENAI_API_KEY"),
            Provider::Anthropic => Some("ANTHROPIC_API_KEY"),
            Provider::Ollama => None,
        }
    }
}

/// The `remote` section: the model that answers `slm-ls.explain`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct RemoteConfig {
    pub provider: Provider,
    /// Base URL. `None`: the provider's public endpoint (Ollama: the local
    /// daemon). A trailing `/v1` or the full method path are accepted too.
    pub endpoint: Option<String>,
    /// Model name as the provider knows it. Empty: explain is off.
    pub model: String,
    /// The NAME of the environment variable holding the API key (never the
    /// key itself). `None`: `OPENAI_API_KEY` / `ANTHROPIC_API_KEY` / no key
    /// for Ollama. `""`: send no key (self-hosted servers).
    pub api_key_env: Option<String>,
    /// Connect timeout, and the longest wait for the first byte of the
    /// answer and between streamed chunks.
    pub timeout_ms: u64,
    /// Upper bound on the answer's length, in tokens.
    pub max_tokens: u32,
    /// Glob patterns of files that are never sent, in addition to the
    /// built-in list ([`crate::remote::glob::BUILTIN_NEVER_SEND`]).
    pub never_send: Vec<String>,
    /// Price of 1000 remote tokens (any currency; USD in the docs), used to
    /// report the cost of explain calls and the cost saved by serving
    /// completions locally.
    pub price_per_1k_tokens: f64,
    /// Retries after a 429 or 5xx answer (with backoff), before giving up.
    pub max_retries: u32,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            provider: Provider::Openai,
            endpoint: None,
            model: String::new(),
            api_key_env: None,
            timeout_ms: 30_000,
            max_tokens: 1024,
            never_send: Vec::new(),
            price_per_1k_tokens: 0.002,
            max_retries: 2,
        }
    }
}

impl RemoteConfig {
    pub fn is_configured(&self) -> bool {
        !self.model.trim().is_empty()
    }

    /// The environment variable to read the key from, if any.
    pub fn key_env(&self) -> Option<String> {
        match &self.api_key_env {
            Some(s) if s.trim().is_empty() => None,
            Some(s) => Some(s.trim().to_string()),
            None => self.provider.default_key_env().map(str::to_string),
        }
    }

    /// The URL explain requests go to.
    pub fn chat_url(&self) -> String {
        let base = self
            .endpoint
            .as_deref()
            .filter(|e| !e.trim().is_empty())
            .unwrap_or(self.provider.default_endpoint());
        match self.provider {
            Provider::Openai => join(base, "/v1", "/chat/completions"),
            Provider::Anthropic => join(base, "/v1", "/messages"),
            Provider::Ollama => join(base, "/api", "/chat"),
        }
    }
}

/// Build `base + api + method` unless `base` already ends with the method
/// path or with the API prefix (users paste OpenAI-style `…/v1` base URLs).
pub(crate) fn join(base: &str, api: &str, method: &str) -> String {
    let base = base.trim().trim_end_matches('/');
    if base.ends_with(&format!("{api}{method}")) || (api.is_empty() && base.ends_with(method)) {
        return base.to_string();
    }
    if base.ends_with(api) && !api.is_empty() {
        return format!("{base}{method}");
    }
    format!("{base}{api}{method}")
}

/// Where completions come from (`completion.backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CompletionBackend {
    /// The in-process llama.cpp engine.
    #[default]
    Local,
    /// llama-server's `POST /infill` (`input_extra`, `cache_prompt`).
    #[serde(alias = "llama.cpp", alias = "llamacpp")]
    LlamaServer,
    /// OpenAI-compatible `POST /v1/completions` with `suffix` (or a
    /// client-side FIM prompt when `completion.server.fimFormat` is set).
    #[serde(alias = "vllm", alias = "openai-compatible")]
    Openai,
    /// Ollama's `POST /api/generate` with `suffix`.
    Ollama,
}

impl CompletionBackend {
    pub fn name(self) -> &'static str {
        match self {
            CompletionBackend::Local => "local",
            CompletionBackend::LlamaServer => "llama-server",
            CompletionBackend::Openai => "openai",
            CompletionBackend::Ollama => "ollama",
        }
    }
}

/// `completion.server`: the inference server a remote backend talks to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct CompletionServer {
    /// Base URL. `None`: llama-server `http://127.0.0.1:8080`, OpenAI-style
    /// `http://127.0.0.1:8000` (vLLM's default), Ollama `http://127.0.0.1:11434`.
    pub endpoint: Option<String>,
    /// Model name (required by OpenAI-compatible servers and Ollama;
    /// llama-server serves the model it was started with).
    pub model: String,
    /// Name of the environment variable with a bearer token, if the server
    /// wants one (llama-server `--api-key`, vLLM `--api-key`). `None`: none.
    pub api_key_env: Option<String>,
    /// Connect timeout and the longest wait for streamed data.
    pub timeout_ms: u64,
    /// OpenAI-compatible backend only: render the FIM prompt here with this
    /// model family's tokens and send it as `prompt` (no `suffix`), for
    /// servers that reject `suffix` (vLLM). One of `qwen`, `starcoder`,
    /// `deepseek`, `codellama`, `codestral`, `codegemma`; empty: send `suffix`.
    pub fim_format: String,
}

impl Default for CompletionServer {
    fn default() -> Self {
        CompletionServer {
            endpoint: None,
            model: String::new(),
            api_key_env: None,
            timeout_ms: 5_000,
            fim_format: String::new(),
        }
    }
}

impl CompletionServer {
    pub fn url(&self, backend: CompletionBackend) -> String {
        let explicit = self.endpoint.as_deref().filter(|e| !e.trim().is_empty());
        match backend {
            CompletionBackend::Local => String::new(),
            CompletionBackend::LlamaServer => {
                join(explicit.unwrap_or("http://127.0.0.1:8080"), "", "/infill")
            }
            CompletionBackend::Openai => join(
                explicit.unwrap_or("http://127.0.0.1:8000"),
                "/v1",
                "/completions",
            ),
            CompletionBackend::Ollama => join(
                explicit.unwrap_or("http://127.0.0.1:11434"),
                "/api",
                "/generate",
            ),
        }
    }

    pub fn key_env(&self) -> Option<String> {
        self.api_key_env
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoints_accept_base_v1_and_full_paths() {
        let mut c = RemoteConfig {
            model: "m".into(),
            ..Default::default()
        };
        assert_eq!(c.chat_url(), "https://api.openai.com/v1/chat/completions");
        for e in [
            "http://h:8000",
            "http://h:8000/",
            "http://h:8000/v1",
            "http://h:8000/v1/chat/completions",
        ] {
            c.endpoint = Some(e.into());
            assert_eq!(c.chat_url(), "http://h:8000/v1/chat/completions", "{e}");
        }
        c.provider = Provider::Anthropic;
        c.endpoint = None;
        assert_eq!(c.chat_url(), "https://api.anthropic.com/v1/messages");
        c.provider = Provider::Ollama;
        assert_eq!(c.chat_url(), "http://127.0.0.1:11434/api/chat");
        let s = CompletionServer {
            endpoint: Some("http://gpu:8080/".into()),
            ..Default::default()
        };
        assert_eq!(
            s.url(CompletionBackend::LlamaServer),
            "http://gpu:8080/infill"
        );
        assert_eq!(
            s.url(CompletionBackend::Openai),
            "http://gpu:8080/v1/completions"
        );
        assert_eq!(
            s.url(CompletionBackend::Ollama),
            "http://gpu:8080/api/generate"
        );
    }

    #[test]
    fn key_env_defaults_per_provider_and_empty_means_none() {
        let mut c = RemoteConfig::default();
        assert_eq!(c.key_env().as_deref(), Some("OPENAI_API_KEY"));
        c.provider = Provider::Anthropic;
        assert_eq!(c.key_env().as_deref(), Some("ANTHROPIC_API_KEY"));
        c.provider = Provider::Ollama;
        assert_eq!(c.key_env(), None);
        c.provider = Provider::Openai;
        c.api_key_env = Some(String::new());
        assert_eq!(c.key_env(), None);
    }

    #[test]
    fn parses_camel_case_json() {
        let c: RemoteConfig = serde_json::from_value(json!({
            "provider": "anthropic", "model": "claude", "apiKeyEnv": "K", "timeoutMs": 5, "maxTokens": 9,
            "neverSend": ["*.secret"], "pricePer1kTokens": 0.5
        }))
        .unwrap();
        assert_eq!(c.provider, Provider::Anthropic);
        assert_eq!(
            (c.timeout_ms, c.max_tokens, c.price_per_1k_tokens),
            (5, 9, 0.5)
        );
        assert_eq!(c.never_send, vec!["*.secret".to_string()]);
        let b: CompletionBackend = serde_json::from_value(json!("llama-server")).unwrap();
        assert_eq!(b, CompletionBackend::LlamaServer);
        let p: Provider = serde_json::from_value(json!("vllm")).unwrap();
        assert_eq!(p, Provider::Openai);
    }
}
