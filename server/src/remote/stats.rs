//! Remote token accounting for `slm-ls/stats`.
//!
//! Process-wide counters (a `static`, like the engine's own `Stats` they
//! sit next to in the report): the session state belongs to `lsp/`, and a
//! remote call must be countable from the blocking thread that made it.
//!
//! "Cost saved" is what the tokens the local engine processed would have
//! cost at `remote.pricePer1kTokens`: every local completion's prompt and
//! generated tokens, i.e. the traffic that did not go to a paid API.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

use super::Usage;

#[derive(Debug, Default)]
pub struct RemoteStats {
    pub explain_requests: AtomicU64,
    pub explain_failed: AtomicU64,
    pub explain_prompt_tokens: AtomicU64,
    pub explain_completion_tokens: AtomicU64,
    pub completion_requests: AtomicU64,
    pub completion_failed: AtomicU64,
    pub completion_prompt_tokens: AtomicU64,
    pub completion_completion_tokens: AtomicU64,
}

pub static STATS: RemoteStats = RemoteStats {
    explain_requests: AtomicU64::new(0),
    explain_failed: AtomicU64::new(0),
    explain_prompt_tokens: AtomicU64::new(0),
    explain_completion_tokens: AtomicU64::new(0),
    completion_requests: AtomicU64::new(0),
    completion_failed: AtomicU64::new(0),
    completion_prompt_tokens: AtomicU64::new(0),
    completion_completion_tokens: AtomicU64::new(0),
};

impl RemoteStats {
    pub fn explain(&self, r: Result<Usage, ()>) {
        self.explain_requests.fetch_add(1, Relaxed);
        match r {
            Ok(u) => {
                self.explain_prompt_tokens
                    .fetch_add(u.prompt_tokens, Relaxed);
                self.explain_completion_tokens
                    .fetch_add(u.completion_tokens, Relaxed);
            }
            Err(()) => {
                self.explain_failed.fetch_add(1, Relaxed);
            }
        }
    }

    pub fn completion(&self, r: Result<Usage, ()>) {
        self.completion_requests.fetch_add(1, Relaxed);
        match r {
            Ok(u) => {
                self.completion_prompt_tokens
                    .fetch_add(u.prompt_tokens, Relaxed);
                self.completion_completion_tokens
                    .fetch_add(u.completion_tokens, Relaxed);
            }
            Err(()) => {
                self.completion_failed.fetch_add(1, Relaxed);
            }
        }
    }
}

/// The `remote` object of `slm-ls/stats`.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RemoteReport {
    pub explain_requests: u64,
    pub explain_failed: u64,
    pub explain_prompt_tokens: u64,
    pub explain_completion_tokens: u64,
    pub completion_backend_requests: u64,
    pub completion_backend_failed: u64,
    pub completion_backend_prompt_tokens: u64,
    pub completion_backend_completion_tokens: u64,
    /// All tokens sent to or received from remote models.
    pub remote_tokens: u64,
    /// Prompt + generated tokens of completions served by the local engine.
    pub local_completion_tokens: u64,
    pub price_per_1k_tokens: f64,
    /// `remote_tokens` at the configured price.
    pub estimated_remote_cost: f64,
    /// `local_completion_tokens` at the configured price.
    pub estimated_cost_saved: f64,
}

pub fn report(
    stats: &RemoteStats,
    price_per_1k: f64,
    local_completion_tokens: u64,
) -> RemoteReport {
    let g = |a: &AtomicU64| a.load(Relaxed);
    let remote_tokens = g(&stats.explain_prompt_tokens)
        + g(&stats.explain_completion_tokens)
        + g(&stats.completion_prompt_tokens)
        + g(&stats.completion_completion_tokens);
    let money = |tokens: u64| (tokens as f64 / 1000.0 * price_per_1k * 1e6).round() / 1e6;
    RemoteReport {
        explain_requests: g(&stats.explain_requests),
        explain_failed: g(&stats.explain_failed),
        explain_prompt_tokens: g(&stats.explain_prompt_tokens),
        explain_completion_tokens: g(&stats.explain_completion_tokens),
        completion_backend_requests: g(&stats.completion_requests),
        completion_backend_failed: g(&stats.completion_failed),
        completion_backend_prompt_tokens: g(&stats.completion_prompt_tokens),
        completion_backend_completion_tokens: g(&stats.completion_completion_tokens),
        remote_tokens,
        local_completion_tokens,
        price_per_1k_tokens: price_per_1k,
        estimated_remote_cost: money(remote_tokens),
        estimated_cost_saved: money(local_completion_tokens),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_follow_the_price() {
        let s = RemoteStats::default();
        s.explain(Ok(Usage {
            prompt_tokens: 1500,
            completion_tokens: 500,
            estimated: false,
        }));
        s.explain(Err(()));
        s.completion(Ok(Usage {
            prompt_tokens: 1000,
            completion_tokens: 0,
            estimated: true,
        }));
        let r = report(&s, 0.01, 250_000);
        assert_eq!(r.explain_requests, 2);
        assert_eq!(r.explain_failed, 1);
        assert_eq!(r.remote_tokens, 3000);
        assert_eq!(r.estimated_remote_cost, 0.03);
        assert_eq!(r.estimated_cost_saved, 2.5);
    }
}
