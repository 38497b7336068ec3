//! Everything that talks to a model outside this process.
//!
//! Two features live here, both off the latency-sensitive local path:
//!
//! - **Explain** (`slm-ls.explain`): a large remote model answers a question
//!   the user explicitly asked. [`explain`] builds the prompt from plain
//!   text (selection, enclosing scope, path, language), [`chat`] turns it
//!   into one provider's wire format (OpenAI-compatible chat completions,
//!   Anthropic Messages, Ollama `/api/chat`) and parses the streamed answer.
//! - **Remote completion backends** ([`completion`]): a team's inference
//!   server (llama-server `/infill`, OpenAI-compatible `/v1/completions`,
//!   Ollama `/api/generate`) serves completions instead of the in-process
//!   engine, with the same context extraction and post-processing.
//!
//! Shared machinery: [`http`] (one blocking POST with bounded retries and
//! specific errors), [`sse`] (SSE and NDJSON framing), [`redact`] (secrets
//! out of every outgoing text, with [`secrets`]: gitleaks' rule catalog), [`glob`] (the `neverSend` file patterns),
//! [`stats`] (token counts and cost).
//!
//! **Invariant: nothing here runs unless the user invoked a remote command
//! or configured a remote completion backend.** The local completion path
//! never calls into this module; `tests/remote_privacy.rs` proves it with a
//! fake server that counts connections.
//!
//! **Invariant: the API key is never logged, echoed or put in an error.**
//! It is read from the environment variable named in the settings right
//! before a request, goes only into a request header, and error texts that
//! come back from a provider are scrubbed of it ([`http::scrub`]).
//!
//! **Invariant: this module blocks.** HTTP is `ureq` (blocking, rustls);
//! callers run it on a thread of its own (`lsp/explain.rs`, `off_runtime`)
//! and pass a cancel flag that is checked between streamed lines, so a
//! remote call can never stall the tokio runtime (and with it, local
//! completion), nor hold up shutdown.
//!
//! This module speaks plain Rust types; only `lsp/` knows LSP types.

pub mod chat;
pub mod completion;
pub mod config;
pub mod explain;
pub mod glob;
pub mod http;
pub mod redact;
pub mod secrets;
pub mod sse;
pub mod stats;

pub use config::{CompletionBackend, CompletionServer, Provider, RemoteConfig};

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Everything that can end a remote call. Each variant's message says what
/// happened and what to do about it; none of them carries the API key.
#[derive(Debug, Clone, PartialEq)]
pub enum RemoteError {
    /// `remote.model` (or the backend's `completion.server.model`) is empty.
    NotConfigured(String),
    /// The environment variable named by `apiKeyEnv` is unset or empty.
    NoKey { env: String },
    /// The file matches a `neverSend` pattern: nothing was sent.
    NeverSend { path: String, pattern: String },
    /// DNS failure, connection refused, TLS failure...
    Unreachable { url: String, detail: String },
    /// No response (or no streamed data) within `timeoutMs`.
    Timeout { url: String, ms: u64 },
    /// 401 / 403.
    Auth {
        status: u16,
        detail: String,
        key_env: Option<String>,
    },
    /// 429, and waiting would exceed the retry budget (or retries ran out).
    RateLimited {
        retry_after_s: Option<u64>,
        detail: String,
    },
    /// 5xx after all retries.
    Server {
        status: u16,
        detail: String,
        attempts: u32,
    },
    /// Any other non-success status (400 bad model, 404 wrong path...).
    Http {
        status: u16,
        detail: String,
        hint: Option<String>,
    },
    /// The provider reported an error inside the stream.
    Provider(String),
    /// A stream event that is not what the wire format says it must be.
    Malformed(String),
    /// The stream ended before the provider said it was done.
    Truncated(String),
    /// The user cancelled the request (or a newer request superseded it).
    Cancelled,
    /// The text could not be redacted within the time allowed (a selection
    /// of many megabytes): nothing was sent.
    TooLarge { chars: usize, ms: u64 },
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteError::NotConfigured(what) => write!(f, "no remote model is configured: {what} (see docs/remote.md)"),
            RemoteError::NoKey { env } => write!(
                f,
                "no API key: the environment variable {env} (named by apiKeyEnv) is not set in the editor's environment"
            ),
            RemoteError::NeverSend { path, pattern } => write!(
                f,
                "{path} matches the neverSend pattern \"{pattern}\"; nothing was sent"
            ),
            RemoteError::Unreachable { url, detail } => write!(f, "cannot reach {url}: {detail}"),
            RemoteError::Timeout { url, ms } => write!(f, "{url} did not answer within {ms} ms (timeoutMs)"),
            RemoteError::Auth { status, detail, key_env } => {
                let what = if *status == 401 { "the API key was rejected" } else { "access denied" };
                write!(f, "{what} (HTTP {status}): {detail}")?;
                if let Some(env) = key_env {
                    write!(f, "; check the key in {env}")?;
                }
                Ok(())
            }
            RemoteError::RateLimited { retry_after_s, detail } => {
                write!(f, "rate limited (HTTP 429)")?;
                if let Some(s) = retry_after_s {
                    write!(f, "; the provider asks to retry after {s} s")?;
                }
                if !detail.is_empty() {
                    write!(f, ": {detail}")?;
                }
                Ok(())
            }
            RemoteError::Server { status, detail, attempts } => {
                write!(f, "the provider failed with HTTP {status} after {attempts} attempts: {detail}")
            }
            RemoteError::Http { status, detail, hint } => {
                write!(f, "the provider answered HTTP {status}: {detail}")?;
                if let Some(h) = hint {
                    write!(f, " ({h})")?;
                }
                Ok(())
            }
            RemoteError::Provider(msg) => write!(f, "the provider reported an error mid-stream: {msg}"),
            RemoteError::Malformed(msg) => write!(f, "malformed response stream: {msg}"),
            RemoteError::Truncated(msg) => write!(f, "the response stream was cut off: {msg}"),
            RemoteError::Cancelled => write!(f, "cancelled"),
            RemoteError::TooLarge { chars, ms } => write!(
                f,
                "the selection ({chars} characters) is too large to check for secrets within {ms} ms; nothing was sent: select less"
            ),
        }
    }
}

impl std::error::Error for RemoteError {}

/// A cancel flag shared between an async request handler and the blocking
/// task doing its HTTP call. The handler holds a [`CancelOnDrop`]: when
/// tower-lsp drops the handler's future (`$/cancelRequest`) the flag is set
/// and the blocking loop stops at its next streamed line.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    /// Whether both are the same flag.
    pub fn same(&self, other: &Cancel) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Sets its [`Cancel`] when dropped.
pub struct CancelOnDrop(pub Cancel);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Token counts of one remote call. `estimated` when the provider did not
/// report usage and we counted ~4 characters per token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub estimated: bool,
}

impl Usage {
    pub fn estimate(prompt_chars: usize, completion_chars: usize) -> Usage {
        Usage {
            prompt_tokens: prompt_chars.div_ceil(4) as u64,
            completion_tokens: completion_chars.div_ceil(4) as u64,
            estimated: true,
        }
    }
}

/// Read the API key from the environment variable `env` (`None`: no key).
pub fn api_key(env: Option<&str>) -> Result<Option<String>, RemoteError> {
    let Some(env) = env.filter(|e| !e.is_empty()) else {
        return Ok(None);
    };
    match std::env::var(env) {
        Ok(v) if !v.trim().is_empty() => Ok(Some(v.trim().to_string())),
        _ => Err(RemoteError::NoKey {
            env: env.to_string(),
        }),
    }
}
