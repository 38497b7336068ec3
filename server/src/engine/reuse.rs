//! KV-cache reuse planning, on plain token sequences.
//!
//! Given the tokens a KV sequence already holds (`cached`) and the tokens
//! of the new prompt, decide which cached entries survive, which are moved
//! to a new position, and where evaluation must restart. The plan is pure
//! data so it can be tested without a model; `actor.rs` applies it with
//! `kv_cache_seq_rm` / `kv_cache_seq_add`.
//!
//! The rule (llama-server's `n_cache_reuse`): keep the longest common
//! prefix; then walk both sequences and, wherever a run of at least
//! `min_chunk` tokens of the cache matches the prompt at the current
//! position, shift that run into place instead of re-evaluating it. A
//! shifted chunk's keys were computed with slightly different context
//! before it; like llama-server we accept that approximation in exchange
//! for not recomputing it.

/// Move `len` cached tokens from position `from` to position `to` (`to <= from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shift {
    pub from: usize,
    pub to: usize,
    pub len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReusePlan {
    /// Tokens kept in place at the start (longest common prefix).
    pub prefix: usize,
    /// Chunks moved to earlier positions, in order.
    pub shifts: Vec<Shift>,
    /// Number of prompt tokens already in the cache after the plan is
    /// applied: evaluation starts at this index of the prompt.
    pub n_past: usize,
}

impl ReusePlan {
    pub fn reused(&self) -> usize {
        self.n_past
    }
}

pub fn common_prefix<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Plan reuse of `cached` for `prompt`. `min_chunk == 0` keeps only the
/// common prefix. At least one prompt token is always left to evaluate,
/// because we need fresh logits for the last position.
///
/// `exact`: no chunk is moved when the prompt first differs from the
/// cache at an index in this range (the text just before the cursor, and
/// in the suffix-first layout the suffix too). A moved chunk keeps keys computed with the
/// old text before it; when that text is the cursor's (a keystroke, a
/// backspace), the chunk is the fill-in-the-middle suffix, and its stale
/// keys made the model answer as if the edit had not happened (measured:
/// 11 of 12 answers while typing were the answer from before the first
/// keystroke). Edits well above the cursor (the window start moved, a line
/// deleted higher up) still shift.
pub fn plan<T: PartialEq>(
    cached: &[T],
    prompt: &[T],
    min_chunk: usize,
    exact: std::ops::Range<usize>,
) -> ReusePlan {
    let prefix = common_prefix(cached, prompt).min(prompt.len().saturating_sub(1));
    let mut plan = ReusePlan {
        prefix,
        shifts: Vec::new(),
        n_past: prefix,
    };
    if min_chunk == 0 || exact.contains(&prefix) {
        return plan;
    }
    let limit = prompt.len().saturating_sub(1);
    let mut head_c = prefix;
    let mut head_p = prefix;
    while head_c < cached.len() && head_p < limit {
        let mut n = 0;
        while head_c + n < cached.len()
            && head_p + n < limit
            && cached[head_c + n] == prompt[head_p + n]
        {
            n += 1;
        }
        if n >= min_chunk {
            plan.shifts.push(Shift {
                from: head_c,
                to: head_p,
                len: n,
            });
            head_c += n;
            head_p += n;
            plan.n_past = head_p;
        } else {
            head_c += 1;
        }
    }
    plan
}

/// Apply a plan to the cached token list itself (what the KV cells now
/// hold, in position order), mirroring what the KV operations do.
pub fn apply_to_tokens<T: Clone>(cached: &mut Vec<T>, plan: &ReusePlan) {
    for s in &plan.shifts {
        for i in 0..s.len {
            cached[s.to + i] = cached[s.from + i].clone();
        }
    }
    cached.truncate(plan.n_past);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    fn replay(cached: &str, prompt: &str, min_chunk: usize) -> (ReusePlan, String) {
        let mut c = toks(cached);
        let p = plan(&c, &toks(prompt), min_chunk, usize::MAX..usize::MAX);
        apply_to_tokens(&mut c, &p);
        (p, c.into_iter().collect())
    }

    #[test]
    fn append_keeps_everything() {
        let (p, kept) = replay("fn main() {", "fn main() { let", 4);
        assert_eq!(p.n_past, 11);
        assert!(p.shifts.is_empty());
        assert_eq!(kept, "fn main() {");
    }

    #[test]
    fn identical_prompt_reevaluates_last_token() {
        let (p, _) = replay("abcdef", "abcdef", 2);
        assert_eq!(p.n_past, 5);
    }

    #[test]
    fn backspace_truncates() {
        let (p, kept) = replay("hello world", "hello wor", 4);
        assert_eq!(p.n_past, 8);
        assert_eq!(kept, "hello wo");
    }

    #[test]
    fn delete_in_the_middle_shifts_the_tail() {
        let cached = "AAAA-deleted-BBBBBBBBBBBB";
        let prompt = "AAAA-BBBBBBBBBBBBx";
        let (p, kept) = replay(cached, prompt, 8);
        assert_eq!(p.prefix, 5);
        assert_eq!(
            p.shifts,
            vec![Shift {
                from: 13,
                to: 5,
                len: 12
            }]
        );
        assert_eq!(kept, "AAAA-BBBBBBBBBBBB");
        assert_eq!(p.n_past, 17);
    }

    #[test]
    fn window_shift_reuses_the_shared_body() {
        // The prefix window moved down: its first line fell off.
        let cached = "alpha\nline2 body body\nline3 more more\n";
        let prompt = "line2 body body\nline3 more more\nnew";
        let (p, kept) = replay(cached, prompt, 8);
        assert_eq!(p.prefix, 0);
        assert_eq!(kept, "line2 body body\nline3 more more\n");
        assert_eq!(p.n_past, 32);
    }

    #[test]
    fn short_matches_are_not_worth_a_shift() {
        let (p, kept) = replay("abXYZabc", "abcd", 4);
        assert_eq!(p.n_past, 2);
        assert!(p.shifts.is_empty());
        assert_eq!(kept, "ab");
    }

    #[test]
    fn min_chunk_zero_is_prefix_only() {
        let (p, _) = replay("AAAA-deleted-BBBBBBBBBBBB", "AAAA-BBBBBBBBBBBBx", 0);
        assert_eq!(p.n_past, 5);
    }

    #[test]
    fn an_edit_near_the_cursor_moves_nothing() {
        // A backspace at the cursor of a fill-in-the-middle prompt: the
        // suffix after it must be evaluated again, not moved stale.
        let cached = "<P>fn main() { let x<S>;\n    println!(x);\n}<M>";
        let prompt = "<P>fn main() { let <S>;\n    println!(x);\n}<M>";
        let cursor = prompt.find("<S>").unwrap();
        let p = plan(
            &toks(cached),
            &toks(prompt),
            8,
            cursor.saturating_sub(4)..usize::MAX,
        );
        assert!(p.shifts.is_empty(), "{p:?}");
        assert_eq!(p.n_past, cursor);
        // The same edit far above the cursor may move the rest.
        let p = plan(&toks(cached), &toks(prompt), 8, usize::MAX..usize::MAX);
        assert_eq!(p.shifts.len(), 1);
    }

    #[test]
    fn empty_cache_and_empty_prompt() {
        assert_eq!(
            plan::<char>(&[], &toks("abc"), 4, usize::MAX..usize::MAX).n_past,
            0
        );
        assert_eq!(plan(&toks("abc"), &[], 4, usize::MAX..usize::MAX).n_past, 0);
    }
}
