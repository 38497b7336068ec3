//! One blocking HTTP POST with bounded retries, turned into a specific
//! [`RemoteError`] when it fails.
//!
//! Retry policy: a 429 is retried after the provider's `retry-after` (or
//! `retry-after-ms`) when that wait fits the budget, else it fails at once
//! saying how long to wait; 408 and 5xx (including Anthropic's 529
//! "overloaded") are retried with exponential backoff plus jitter. At most
//! `max_retries` retries; nothing is retried once the body started
//! streaming (the user already saw part of the answer). Connection errors
//! and 4xx are not retried: they will not fix themselves.
//!
//! Agents are cached per timeout so keep-alive connections are reused
//! across requests (it matters for the completion backends, one request
//! per keystroke).

use std::collections::HashMap;
use std::io::Read;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{redact, Cancel, RemoteError};

/// One request. Only `auth` holds the key; nothing else here may.
pub struct Post<'a> {
    pub url: &'a str,
    pub body: &'a [u8],
    /// Extra, non-secret headers (`anthropic-version`).
    pub headers: Vec<(&'static str, String)>,
    /// The header that carries the key, and its value.
    pub auth: Option<(&'static str, String)>,
    /// The raw key, so error texts can be scrubbed of it.
    pub key: Option<&'a str>,
    /// The environment variable's name, for "check the key in X".
    pub key_env: Option<&'a str>,
    pub timeout_ms: u64,
    pub max_retries: u32,
}

/// A successful response, ready to stream.
pub struct Opened {
    pub reader: Box<dyn Read + Send + Sync + 'static>,
    pub content_type: String,
    /// 1 + retries used.
    pub attempts: u32,
}

/// Longest `retry-after` we wait for (also capped by the timeout).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// First backoff after a 5xx; doubles each retry.
const BACKOFF_BASE: Duration = Duration::from_millis(400);
const BACKOFF_MAX: Duration = Duration::from_secs(8);

static AGENTS: LazyLock<Mutex<HashMap<u64, ureq::Agent>>> = LazyLock::new(Default::default);

fn agent(timeout_ms: u64) -> ureq::Agent {
    let mut agents = AGENTS.lock().unwrap();
    agents
        .entry(timeout_ms)
        .or_insert_with(|| {
            let t = Duration::from_millis(timeout_ms.max(1));
            ureq::AgentBuilder::new()
                .timeout_connect(t)
                .timeout_read(t)
                .timeout_write(t)
                .user_agent(concat!("slm-ls/", env!("CARGO_PKG_VERSION")))
                .build()
        })
        .clone()
}

/// POST `p.body` and return the response body for streaming.
pub fn post(p: &Post, cancel: &Cancel) -> Result<Opened, RemoteError> {
    let mut attempt: u32 = 0;
    loop {
        if cancel.is_cancelled() {
            return Err(RemoteError::Cancelled);
        }
        attempt += 1;
        let mut req = agent(p.timeout_ms)
            .post(p.url)
            .set("content-type", "application/json");
        for (k, v) in &p.headers {
            req = req.set(k, v);
        }
        if let Some((k, v)) = &p.auth {
            req = req.set(k, v);
        }
        let retries_left = attempt <= p.max_retries;
        match req.send_bytes(p.body) {
            Ok(resp) => {
                let content_type = resp
                    .header("content-type")
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if content_type.starts_with("text/html") {
                    return Err(RemoteError::Malformed(format!(
                        "{} answered with an HTML page, not a model response; check the endpoint URL",
                        p.url
                    )));
                }
                return Ok(Opened {
                    reader: resp.into_reader(),
                    content_type,
                    attempts: attempt,
                });
            }
            Err(ureq::Error::Status(status, resp)) => {
                let wait = retry_after(&resp);
                let detail = error_detail(&read_limited(resp), p.key);
                match status {
                    401 | 403 => {
                        return Err(RemoteError::Auth {
                            status,
                            detail,
                            key_env: p.key_env.map(str::to_string),
                        });
                    }
                    429 => {
                        let budget = MAX_RETRY_AFTER.min(Duration::from_millis(p.timeout_ms));
                        let wait_s = wait.map(|w| w.as_secs_f64().ceil() as u64);
                        match wait {
                            Some(w) if retries_left && w <= budget => sleep(w, cancel)?,
                            None if retries_left => sleep(backoff(attempt), cancel)?,
                            _ => {
                                return Err(RemoteError::RateLimited {
                                    retry_after_s: wait_s,
                                    detail,
                                })
                            }
                        }
                    }
                    408 | 500..=599 => {
                        if !retries_left {
                            return Err(RemoteError::Server {
                                status,
                                detail,
                                attempts: attempt,
                            });
                        }
                        let w = wait
                            .filter(|w| *w <= MAX_RETRY_AFTER)
                            .unwrap_or_else(|| backoff(attempt));
                        sleep(w, cancel)?;
                    }
                    404 => {
                        let hint = (!detail.to_lowercase().contains("model"))
                            .then(|| format!("check the endpoint: nothing answers at {}", p.url));
                        return Err(RemoteError::Http {
                            status,
                            detail,
                            hint,
                        });
                    }
                    _ => {
                        return Err(RemoteError::Http {
                            status,
                            detail,
                            hint: None,
                        })
                    }
                }
                tracing::info!(status, attempt, "remote request will be retried");
            }
            Err(ureq::Error::Transport(t)) => return Err(transport_error(p, &t)),
        }
    }
}

fn transport_error(p: &Post, t: &ureq::Transport) -> RemoteError {
    use std::error::Error as _;
    let mut src = t.source();
    while let Some(e) = src {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) {
                return RemoteError::Timeout {
                    url: p.url.to_string(),
                    ms: p.timeout_ms,
                };
            }
        }
        src = e.source();
    }
    let text = t.to_string();
    // ureq prefixes its message with the URL; we print the URL ourselves.
    let text = text
        .strip_prefix(&format!("{}: ", p.url))
        .unwrap_or(&text)
        .to_string();
    if text.to_lowercase().contains("timed out") {
        return RemoteError::Timeout {
            url: p.url.to_string(),
            ms: p.timeout_ms,
        };
    }
    RemoteError::Unreachable {
        url: p.url.to_string(),
        detail: scrub(&text, p.key),
    }
}

fn read_limited(resp: ureq::Response) -> String {
    let mut buf = Vec::new();
    let _ = resp.into_reader().take(64 * 1024).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// The provider's error message from an error body: OpenAI
/// `{"error":{"message"}}`, Anthropic `{"type":"error","error":{"message"}}`,
/// Ollama `{"error":"..."}`, FastAPI `{"detail":...}`, or the raw text.
/// Scrubbed of the key and of anything that looks like a secret.
pub fn error_detail(body: &str, key: Option<&str>) -> String {
    let body = body.trim();
    let msg = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let e = &v["error"];
            e["message"]
                .as_str()
                .or_else(|| e.as_str())
                .or_else(|| v["message"].as_str())
                .or_else(|| v["detail"].as_str())
                .map(str::to_string)
                .or_else(|| v.get("detail").map(|d| d.to_string()))
        })
        .unwrap_or_else(|| {
            body.lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .to_string()
        });
    let msg = if msg.is_empty() {
        "(empty error body)".to_string()
    } else {
        msg
    };
    scrub(&msg, key)
}

/// Remove the key (whole, or masked like `sk-abc***xyz`) and any secret
/// from a text that came from outside, and bound its length.
pub fn scrub(text: &str, key: Option<&str>) -> String {
    let mut s = text.to_string();
    if let Some(k) = key.filter(|k| k.len() >= 4) {
        s = s.replace(k, "[REDACTED:api-key]");
    }
    // Providers echo masked keys ("Incorrect API key provided: sk-te****2345").
    let words: Vec<String> = s
        .split(' ')
        .map(|w| {
            let core = w.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '*');
            if core.len() >= 8 && core.contains("**") {
                w.replace(core, "[REDACTED:api-key]")
            } else {
                w.to_string()
            }
        })
        .collect();
    s = words.join(" ");
    s = redact::redact(&s, "prose").text;
    if s.chars().count() > 400 {
        s = s.chars().take(400).collect::<String>() + "…";
    }
    s
}

/// `retry-after-ms`, then `retry-after` as seconds or an HTTP date.
fn retry_after(resp: &ureq::Response) -> Option<Duration> {
    if let Some(ms) = resp
        .header("retry-after-ms")
        .and_then(|v| v.trim().parse::<f64>().ok())
    {
        return Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }
    parse_retry_after(resp.header("retry-after")?, SystemTime::now())
}

pub fn parse_retry_after(v: &str, now: SystemTime) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<f64>() {
        return (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s));
    }
    let at = parse_http_date(v)?;
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (IMF-fixdate) → Unix seconds.
fn parse_http_date(v: &str) -> Option<u64> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    let [_, day, mon, year, time, "GMT"] = parts[..] else {
        return None;
    };
    let day: u64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == mon)? as u64
        + 1;
    let year: u64 = year.parse().ok()?;
    let hms: Vec<u64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = hms[..] else { return None };
    // Days from civil (Howard Hinnant's algorithm).
    let (y, mth) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mth + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + h * 3600 + m * 60 + s)
}

/// Exponential backoff with up to 25% jitter (no RNG dependency: the
/// clock's nanoseconds are random enough to spread retries).
fn backoff(attempt: u32) -> Duration {
    let base = BACKOFF_BASE
        .saturating_mul(1 << (attempt.saturating_sub(1)).min(8))
        .min(BACKOFF_MAX);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0) as u64;
    base + Duration::from_millis(nanos % (base.as_millis() as u64 / 4 + 1))
}

/// Sleep in small steps so a cancel is noticed.
fn sleep(d: Duration, cancel: &Cancel) -> Result<(), RemoteError> {
    let end = std::time::Instant::now() + d;
    while std::time::Instant::now() < end {
        if cancel.is_cancelled() {
            return Err(RemoteError::Cancelled);
        }
        std::thread::sleep((end - std::time::Instant::now()).min(Duration::from_millis(25)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_of_each_provider() {
        let openai = r#"{"error":{"message":"Incorrect API key provided: sk-test-************************2345. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        let d = error_detail(openai, Some("sk-test-abcdefghijklmnopqrstuvwx2345"));
        assert!(
            d.starts_with("Incorrect API key provided: [REDACTED:api-key]."),
            "{d}"
        );
        let anthropic = r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#;
        assert_eq!(error_detail(anthropic, None), "invalid x-api-key");
        let ollama = r#"{"error":"model \"qwen9\" not found, try pulling it first"}"#;
        assert_eq!(
            error_detail(ollama, None),
            "model \"qwen9\" not found, try pulling it first"
        );
        assert_eq!(
            error_detail("<html>\n<h1>502 Bad Gateway</h1>", None),
            "<html>"
        );
        assert_eq!(error_detail("", None), "(empty error body)");
    }

    #[test]
    fn the_key_never_survives_scrubbing() {
        let key = "sk-proj-SECRETSECRETSECRET1234567890";
        let s = scrub(&format!("bad key {key}!"), Some(key));
        assert!(!s.contains("SECRET"), "{s}");
        let s = scrub(
            "weird-custom-key-value-123 was rejected",
            Some("weird-custom-key-value-123"),
        );
        assert!(!s.contains("weird-custom"), "{s}");
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(784111777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after("0.5", now),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO),
            "past dates mean now"
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) >= BACKOFF_BASE && backoff(1) < BACKOFF_BASE * 2);
        assert!(backoff(2) >= BACKOFF_BASE * 2);
        assert!(backoff(30) <= BACKOFF_MAX + BACKOFF_MAX / 4 + Duration::from_millis(1));
    }
}
