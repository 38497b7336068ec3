//! Prompt-lookup drafting for speculative decoding.
//!
//! Code repeats itself, and a user retyping (or accepting) a suggestion
//! repeats what the model produced a keystroke ago. So before asking a
//! draft model (`drafter.rs`, when one is set) we look up the last few
//! generated tokens in text we already have —
//! the KV slot's previous contents (the old prompt *and* the old
//! suggestion) and the current prompt — and propose the tokens that
//! followed there. The actor verifies the whole draft with one batched
//! `decode` and keeps the longest prefix that greedy decoding agrees with,
//! so output is identical to plain greedy decoding; only the number of
//! sequential decode steps changes.

/// Longest n-gram tried first; shorter ones down to `MIN_NGRAM`.
const MAX_NGRAM: usize = 4;
const MIN_NGRAM: usize = 2;

/// Propose up to `max` tokens to follow `tail` (the sequence so far), taken
/// from the most recent earlier occurrence of its last n tokens in any of
/// `corpora` (searched in order, each from its end).
pub fn draft(corpora: &[&[i32]], tail: &[i32], max: usize) -> Vec<i32> {
    if max == 0 {
        return Vec::new();
    }
    for n in (MIN_NGRAM..=MAX_NGRAM).rev() {
        if tail.len() < n {
            continue;
        }
        let key = &tail[tail.len() - n..];
        for corpus in corpora {
            // An occurrence must be followed by at least one token, and must
            // not be the tail itself (when the corpus *is* the sequence).
            let last_start = corpus.len().saturating_sub(n + 1);
            for start in (0..=last_start).rev() {
                if corpus.len() < n + 1 {
                    break;
                }
                if &corpus[start..start + n] == key {
                    let from = start + n;
                    let to = (from + max).min(corpus.len());
                    return corpus[from..to].to_vec();
                }
            }
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Vec<i32> {
        s.bytes().map(i32::from).collect()
    }

    fn s(v: &[i32]) -> String {
        v.iter().map(|b| *b as u8 as char).collect()
    }

    #[test]
    fn previous_suggestion_is_the_draft() {
        // Last keystroke's slot: prompt "x = foo" + suggestion "(bar, baz)".
        let old = t("x = foo(bar, baz)");
        // Now the user typed "(" and the model has produced "(ba".
        let tail = t("x = foo(ba");
        assert_eq!(s(&draft(&[&old], &tail, 8)), "r, baz)");
    }

    #[test]
    fn repeated_code_in_the_prompt_is_found() {
        let prompt = t("self.width = width\nself.height = height\nself.");
        let tail = t("self.height = height\nself.hei");
        let d = draft(&[&prompt], &tail, 5);
        assert_eq!(s(&d), "ght =");
    }

    #[test]
    fn no_match_no_draft() {
        assert!(draft(&[&t("abcdef")], &t("xyz"), 8).is_empty());
        assert!(draft(&[&t("abcdef")], &t("ab"), 0).is_empty());
    }

    #[test]
    fn the_tail_itself_is_not_a_match() {
        let seq = t("one two");
        // The only occurrence of "wo" is the end of the corpus: nothing follows.
        assert!(draft(&[&seq], &t("wo"), 4).is_empty());
    }

    #[test]
    fn longer_ngrams_win() {
        // "ab" occurs twice; "cab" only once, followed by "X".
        let corpus = t("cabX zabY");
        assert_eq!(s(&draft(&[&corpus], &t("..cab"), 1)), "X");
    }
}
