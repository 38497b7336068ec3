//! Finding the catalog's secrets in a text, with gitleaks' semantics.
//!
//! Per text: the keyword prefilter (one Aho-Corasick pass, ASCII case
//! insensitive) picks the rules to run; each rule's regex runs over the
//! whole text; for each match the secret is `secretGroup` (else the first
//! non-empty group, else the match without surrounding newlines); a secret
//! at or below the rule's entropy floor is dropped, as is one that a global
//! or rule allowlist covers (`regexTarget` secret/match/line, stopwords,
//! `condition` OR/AND).
//!
//! Where this differs from gitleaks (all in the direction of redacting
//! more):
//! - the secret is read from the capture group's span in the text (gitleaks
//!   runs the regex again on the trimmed match), and without `secretGroup`
//!   the span withheld runs to the end of the last group and over the token
//!   characters around it within the match (see [`scan_rule`]);
//! - rule `path`s are ignored (a Terraform password rule runs on every
//!   text), and allowlist paths/commits never pass (redaction has neither);
//! - no decoding passes (base64/hex/percent), no `gitleaks:allow` comments,
//!   no multi-part (`required`) rules.

use std::time::Instant;

use super::catalog::{Allowlist, Catalog, Target};

/// One secret found: the byte range to withhold and the rule that found it.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub start: usize,
    pub end: usize,
    /// Index into [`Catalog::rules`].
    pub rule: usize,
}

/// The scan ran past its deadline; nothing it found may be relied on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Overtime;

/// Shannon entropy in bits per character, as gitleaks computes it
/// (counts per char, divided by the length in bytes).
pub fn shannon_entropy(s: &str) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut ascii = [0u32; 128];
    let mut wide: Vec<(char, u32)> = Vec::new();
    for c in s.chars() {
        if (c as u32) < 128 {
            ascii[c as usize] += 1;
        } else if let Some(e) = wide.iter_mut().find(|(w, _)| *w == c) {
            e.1 += 1;
        } else {
            wide.push((c, 1));
        }
    }
    let inv = 1.0 / s.len() as f64;
    ascii
        .iter()
        .copied()
        .chain(wide.iter().map(|(_, n)| *n))
        .filter(|&n| n > 0)
        .map(|n| {
            let p = n as f64 * inv;
            -p * p.log2()
        })
        .sum()
}

/// The rules whose keywords occur in `text` (and those without keywords),
/// in catalog order.
pub fn active_rules(cat: &Catalog, text: &str) -> Vec<usize> {
    let mut seen = vec![false; cat.keyword_rules.len()];
    let mut left = seen.len();
    let mut on = vec![false; cat.rules.len()];
    for i in &cat.always {
        on[*i] = true;
    }
    for m in cat.prefilter.find_overlapping_iter(text) {
        let p = m.pattern().as_usize();
        if !seen[p] {
            seen[p] = true;
            for r in &cat.keyword_rules[p] {
                on[*r] = true;
            }
            left -= 1;
            if left == 0 {
                break;
            }
        }
    }
    (0..on.len()).filter(|i| on[*i]).collect()
}

/// Every catalog secret in `text`. Checks `deadline` between rules.
pub fn scan(
    cat: &Catalog,
    text: &str,
    deadline: Option<Instant>,
) -> Result<Vec<Finding>, Overtime> {
    let mut out = Vec::new();
    for r in active_rules(cat, text) {
        if deadline.is_some_and(|d| Instant::now() > d) {
            return Err(Overtime);
        }
        scan_rule(cat, r, text, &mut out);
    }
    Ok(out)
}

/// The findings of one rule, appended to `out`.
pub fn scan_rule(cat: &Catalog, r: usize, text: &str, out: &mut Vec<Finding>) {
    let rule = &cat.rules[r];
    let hay = text.as_bytes();
    for caps in rule.regex.captures_iter(hay) {
        let Some(m) = caps.get(0) else { continue };
        // gitleaks trims newlines off both ends of the match.
        let (mut ms, mut me) = (m.start(), m.end());
        while ms < me && hay[ms] == b'\n' {
            ms += 1;
        }
        while me > ms && hay[me - 1] == b'\n' {
            me -= 1;
        }
        let group = if rule.secret_group > 0 {
            caps.get(rule.secret_group)
        } else {
            caps.iter().skip(1).flatten().find(|g| !g.is_empty())
        };
        let (mut s, mut e) = group.map_or((ms, me), |g| (g.start(), g.end()));
        // What is withheld can be more than gitleaks' secret (which its
        // checks below still use): without `secretGroup`, gitleaks takes
        // the first group, which in some rules is a fragment (`jwt-base64`)
        // or a word of the name (`sonar-api-token`'s `(login|token)`), the
        // value being further on. So the span runs to the end of the last
        // group, and over token characters next to it within the match.
        let mut span = (s, e);
        if rule.secret_group == 0 && group.is_some() {
            if let Some(last) = caps
                .iter()
                .skip(1)
                .flatten()
                .filter(|g| !g.is_empty())
                .last()
            {
                span.1 = span.1.max(last.end());
            }
            while span.0 > ms && is_token_byte(hay[span.0 - 1]) {
                span.0 -= 1;
            }
            while span.1 < me && (is_token_byte(hay[span.1]) || hay[span.1] == b'=') {
                span.1 += 1;
            }
        }
        // A bytes regex can stop inside a multi-byte char; widen to whole chars.
        while s > 0 && !text.is_char_boundary(s) {
            s -= 1;
        }
        while e < text.len() && !text.is_char_boundary(e) {
            e += 1;
        }
        if s >= e {
            continue;
        }
        let secret = &text[s..e];
        if rule.entropy != 0.0 && shannon_entropy(secret) <= rule.entropy {
            continue;
        }
        let mut mstart = ms;
        while mstart > 0 && !text.is_char_boundary(mstart) {
            mstart -= 1;
        }
        let mut mend = me.max(mstart);
        while mend < text.len() && !text.is_char_boundary(mend) {
            mend += 1;
        }
        let matched = &text[mstart..mend];
        let line = || {
            let a = text[..mstart].rfind('\n').map_or(0, |i| i + 1);
            let b = text[mend..].find('\n').map_or(text.len(), |i| mend + i);
            &text[a..b]
        };
        let allowed = |lists: &[Allowlist]| lists.iter().any(|a| allows(a, secret, matched, &line));
        if allowed(&cat.global) || allowed(&rule.allowlists) {
            continue;
        }
        let (mut a, mut b) = span;
        while a > 0 && !text.is_char_boundary(a) {
            a -= 1;
        }
        while b < text.len() && !text.is_char_boundary(b) {
            b += 1;
        }
        out.push(Finding {
            start: a,
            end: b,
            rule: r,
        });
    }
}

/// The rules whose value format ([`super::catalog::Rule::value`]) `literal`
/// is, in full, with each rule's entropy floor and allowlists (the global
/// ones too) applied as to a finding whose secret and match are `literal`
/// and whose line is `line`; in catalog order.
pub fn value_formats(cat: &Catalog, literal: &str, line: &str) -> Vec<usize> {
    if cat.value_rules.is_empty() {
        return Vec::new();
    }
    let line = || line;
    cat.values
        .matches(literal.as_bytes())
        .into_iter()
        .map(|p| cat.value_rules[p])
        .filter(|&r| taken_as(cat, r, literal, &line))
        .collect()
}

/// Whether rule `r` takes `literal` as its secret and its match, on `line`:
/// the rule's entropy floor and allowlists (the global ones too).
fn taken_as<'a>(cat: &Catalog, r: usize, literal: &str, line: &dyn Fn() -> &'a str) -> bool {
    let rule = &cat.rules[r];
    let allowed = |lists: &[Allowlist]| lists.iter().any(|a| allows(a, literal, literal, line));
    (rule.entropy == 0.0 || shannon_entropy(literal) > rule.entropy)
        && !allowed(&cat.global)
        && !allowed(&rule.allowlists)
}

/// The rules whose provider `near` names (one of a rule's keywords of 4
/// letters or more occurs in it; generic rules, whose keywords `key`,
/// `token`, `access` any code has, never) and whose value `literal` is in
/// full ([`super::catalog::Rule::named_value`]), with the rule's entropy
/// floor and allowlists; in catalog order. gitleaks finds such a value
/// only with the name right before it; a comment naming the provider on
/// the line above (`# LinkedIn` over `CLIENT = "…"`) says as much.
pub fn named_values(cat: &Catalog, literal: &str, near: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut seen = vec![false; cat.keyword_rules.len()];
    for m in cat.prefilter.find_overlapping_iter(near) {
        let p = m.pattern().as_usize();
        if std::mem::replace(&mut seen[p], true) || m.len() < 4 {
            continue;
        }
        for &r in &cat.keyword_rules[p] {
            let rule = &cat.rules[r];
            if out.contains(&r)
                || rule.id.starts_with("generic")
                || !rule
                    .named_value
                    .as_ref()
                    .is_some_and(|v| v.is_match(literal.as_bytes()))
            {
                continue;
            }
            if taken_as(cat, r, literal, &|| near) {
                out.push(r);
            }
        }
    }
    out.sort_unstable();
    out
}

/// Characters of a token's body (base64, base64url, hex, dotted ids).
fn is_token_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'_' | b'-' | b'.' | b'\\')
}

/// Whether allowlist `a` covers this finding (gitleaks' `checkFindingAllowed`).
fn allows<'a>(a: &Allowlist, secret: &str, matched: &str, line: &dyn Fn() -> &'a str) -> bool {
    let regex_hit = || {
        if a.regexes.is_empty() {
            return false;
        }
        let target: &str = match a.target {
            Target::Secret => secret,
            Target::Match => matched,
            Target::Line => line(),
        };
        !target.is_empty() && a.regexes.iter().any(|re| re.is_match(target.as_bytes()))
    };
    let stopword_hit = || {
        if a.stopwords.is_empty() {
            return false;
        }
        let lower = secret.to_lowercase();
        a.stopwords.iter().any(|w| lower.contains(w.as_str()))
    };
    if a.all {
        // Paths and commits never pass here; regexes and stopwords must
        // both pass when present.
        !a.has_path_or_commit
            && (!a.regexes.is_empty() || !a.stopwords.is_empty())
            && (a.regexes.is_empty() || regex_hit())
            && (a.stopwords.is_empty() || stopword_hit())
    } else {
        regex_hit() || stopword_hit()
    }
}
