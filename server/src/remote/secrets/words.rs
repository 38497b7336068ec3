//! How words are spelled, learnt from the catalog's stopwords.
//!
//! gitleaks lists some twelve hundred words (`abstract`, `child`,
//! `watcher`, …) whose presence in a value says it is not a secret. Read
//! as text, they are also a sample of English and of the words code is
//! made of: [`Words`] counts which letter follows which in them (a letter
//! bigram model, with the start and end of a word as letters of their
//! own), so that redaction can ask how likely a literal is as words
//! rather than as random characters (`remote::redact`). Built with the
//! catalog, from its own data: nothing else is shipped or fetched.

/// Costs in bits of each letter after each letter: `cost[a][b]`, `a` in
/// `0..27` (`0`: the start of a word, `1..=26`: `a`..`z`), `b` in `0..27`
/// (`0..26`: `a`..`z`, `26`: the end of the word).
#[derive(Debug, Clone)]
pub struct Words {
    cost: [[f32; 27]; 27],
}

impl Words {
    /// The model of `words` (lowercased; those that are not letters once
    /// `-`, `.` and `_` are trimmed off their ends are left out). Each
    /// pair seen counts 1 per distinct word, every pair 0.5 more, so that
    /// a pair never seen costs a lot but not infinitely much.
    pub fn learn<'a>(words: impl IntoIterator<Item = &'a str>) -> Words {
        let mut distinct: Vec<String> = words
            .into_iter()
            .map(|w| w.trim_matches(['-', '.', '_']).to_ascii_lowercase())
            .filter(|w| !w.is_empty() && w.bytes().all(|c| c.is_ascii_lowercase()))
            .collect();
        distinct.sort();
        distinct.dedup();
        let mut count = [[0.5f64; 27]; 27];
        for w in &distinct {
            let mut prev = 0;
            for c in w.bytes() {
                let i = usize::from(c - b'a');
                count[prev][i] += 1.0;
                prev = i + 1;
            }
            count[prev][26] += 1.0;
        }
        let mut cost = [[0f32; 27]; 27];
        for (row, counts) in cost.iter_mut().zip(&count) {
            let total: f64 = counts.iter().sum();
            for (c, n) in row.iter_mut().zip(counts) {
                *c = -(n / total).log2() as f32;
            }
        }
        Words { cost }
    }

    /// The cost in bits of `word` (ASCII letters, either case) as a word:
    /// its letters, its start and its end.
    pub fn bits(&self, word: &[u8]) -> f64 {
        let mut prev = 0;
        let mut bits = 0.0;
        for c in word {
            let i = usize::from(c.to_ascii_lowercase().wrapping_sub(b'a')).min(25);
            bits += f64::from(self.cost[prev][i]);
            prev = i + 1;
        }
        bits + f64::from(self.cost[prev][26])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn words_cost_less_than_letters_at_random() {
        let w = &super::super::catalog().words;
        // Letters at random cost log2(27) = 4.75 bits each (the end too).
        let per_letter = |s: &str| w.bits(s.as_bytes()) / (s.len() + 1) as f64;
        for word in ["child", "watcher", "split", "abstract", "result"] {
            assert!(per_letter(word) < 4.0, "{word}: {}", per_letter(word));
        }
        for random in ["vrogv", "kjdhqpzm", "wnycaxkdcet"] {
            assert!(
                per_letter(random) > 4.75,
                "{random}: {}",
                per_letter(random)
            );
        }
        assert_eq!(w.bits(b"Child"), w.bits(b"child"));
    }
}
