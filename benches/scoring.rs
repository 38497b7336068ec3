//! Scores and confidence intervals shared by the quality benches
//! (`quality.rs`, `repo_context.rs`): one definition of "edit similarity"
//! and of the intervals, so their tables mean the same thing.

#![allow(dead_code)]

/// Levenshtein distance over chars.
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + (ca != *cb) as usize)
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// 1 − Levenshtein / longer length (1.0 for two empty texts).
pub fn edit_similarity(got: &str, want: &str) -> f64 {
    let n = got.chars().count().max(want.chars().count());
    if n == 0 {
        return 1.0;
    }
    1.0 - levenshtein(got, want) as f64 / n as f64
}

/// Wilson 95% interval of `k` successes in `n`, as fractions.
pub fn wilson(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 0.0);
    }
    let (z, n, p) = (1.96f64, n as f64, k as f64 / n as f64);
    let d = 1.0 + z * z / n;
    let c = (p + z * z / (2.0 * n)) / d;
    let h = z * ((p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt()) / d;
    ((c - h).max(0.0), (c + h).min(1.0))
}

/// Mean and the half-width of its normal 95% interval.
pub fn mean_ci(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (m, 1.96 * (var / n).sqrt())
}
