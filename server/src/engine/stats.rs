//! Counters and latency samples since start, for `slm-ls/stats` and logs.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use serde::Serialize;

#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub completed: AtomicU64,
    pub cancelled: AtomicU64,
    pub failed: AtomicU64,
    pub warmups: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub reused_tokens: AtomicU64,
    pub evaluated_tokens: AtomicU64,
    pub generated_tokens: AtomicU64,
    pub generate_ms: AtomicU64,
    pub typed_ahead_hits: AtomicU64,
    /// Requests that joined a running generation instead of restarting it.
    pub joined_inflight: AtomicU64,
    /// Prefills that gave way to a newer request for another document.
    pub preempted: AtomicU64,
    pub shown: AtomicU64,
    pub accepted: AtomicU64,
    /// Tokens the draft model proposed, and how many the model kept.
    pub draft_proposed: AtomicU64,
    pub draft_accepted: AtomicU64,
    /// End-to-end engine latency of finished completions, ms. Bounded: the
    /// oldest half is dropped when it grows past `MAX_SAMPLES`.
    latencies: Mutex<Vec<f64>>,
}

const MAX_SAMPLES: usize = 10_000;

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatsReport {
    pub requests: u64,
    pub completed: u64,
    pub cancelled: u64,
    pub failed: u64,
    pub warmups: u64,
    pub prompt_tokens: u64,
    pub reused_tokens: u64,
    pub evaluated_tokens: u64,
    pub generated_tokens: u64,
    pub reuse_ratio: f64,
    pub tokens_per_second: f64,
    pub typed_ahead_hits: u64,
    pub joined_inflight: u64,
    pub preempted: u64,
    pub shown: u64,
    pub accepted: u64,
    pub draft_proposed: u64,
    pub draft_accepted: u64,
    pub latency_ms_p50: f64,
    pub latency_ms_p95: f64,
}

impl Stats {
    pub fn record_latency(&self, ms: f64) {
        let mut l = self.latencies.lock().unwrap();
        if l.len() >= MAX_SAMPLES {
            l.drain(..MAX_SAMPLES / 2);
        }
        l.push(ms);
    }

    pub fn report(&self) -> StatsReport {
        let mut l = self.latencies.lock().unwrap().clone();
        l.sort_by(|a, b| a.total_cmp(b));
        let prompt = self.prompt_tokens.load(Relaxed);
        let reused = self.reused_tokens.load(Relaxed);
        let generated = self.generated_tokens.load(Relaxed);
        let gen_ms = self.generate_ms.load(Relaxed);
        StatsReport {
            requests: self.requests.load(Relaxed),
            completed: self.completed.load(Relaxed),
            cancelled: self.cancelled.load(Relaxed),
            failed: self.failed.load(Relaxed),
            warmups: self.warmups.load(Relaxed),
            prompt_tokens: prompt,
            reused_tokens: reused,
            evaluated_tokens: self.evaluated_tokens.load(Relaxed),
            generated_tokens: generated,
            reuse_ratio: if prompt == 0 {
                0.0
            } else {
                reused as f64 / prompt as f64
            },
            tokens_per_second: if gen_ms == 0 {
                0.0
            } else {
                generated as f64 * 1000.0 / gen_ms as f64
            },
            typed_ahead_hits: self.typed_ahead_hits.load(Relaxed),
            joined_inflight: self.joined_inflight.load(Relaxed),
            preempted: self.preempted.load(Relaxed),
            shown: self.shown.load(Relaxed),
            accepted: self.accepted.load(Relaxed),
            draft_proposed: self.draft_proposed.load(Relaxed),
            draft_accepted: self.draft_accepted.load(Relaxed),
            latency_ms_p50: percentile(&l, 0.50),
            latency_ms_p95: percentile(&l, 0.95),
        }
    }
}

/// Nearest-rank percentile of sorted samples; 0 when there are none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(|x| x as f64).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.95), 95.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
