//! Secrets out of every text that leaves the machine.
//!
//! [`redact`] replaces each secret it recognises with a marker naming its
//! kind (`[REDACTED:github-token]`), so the remote model still sees that a
//! value was there, and counts them by kind (the explain answer says how
//! many values of which kinds were withheld). Three layers run in order,
//! each on the text the one before left:
//!
//! 1. slm-ls' own token rules, most specific first, so a GitHub token
//!    inside a `token = "..."` assignment is reported as a GitHub token:
//!    private key blocks (PEM, OpenSSH, PGP, also unterminated), AWS access
//!    key ids, GitHub, OpenAI, Anthropic, Slack, Google, Stripe tokens, JWTs;
//! 2. gitleaks' rule catalog ([`super::secrets`]): some two hundred token
//!    formats and provider-named assignments, kind = the gitleaks rule id;
//! 3. structural rules: AWS secret keys, bearer/basic credentials,
//!    passwords in URLs, `.env`-style `KEY=value` lines with a sensitive
//!    name or a high-entropy value, and assignments to sensitive names
//!    (`password = "..."`, `"api_key": "..."`, `secret: ...` in config files);
//!    last, quoted one-token literals that read as random
//!    (`high-entropy-string`, see [`random_literal`]): the values of
//!    catalog rules that need a provider's name, under a name that says
//!    nothing.
//!
//! Redaction is best effort and errs towards removing too much; the
//! `neverSend` patterns keep whole files (`.env`, keys) from being sent.
//! [`redact_within`] gives up at a deadline instead of running on, for
//! callers whose text may be many megabytes (an explain selection).

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Instant;

use regex::{Captures, Regex};

use super::secrets;
pub use super::secrets::Overtime;

/// The result: the cleaned text and how many secrets of each kind went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Redacted {
    pub text: String,
    pub counts: BTreeMap<&'static str, usize>,
}

impl Redacted {
    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }
}

const MARK: &str = "[REDACTED:";

fn marker(kind: &str) -> String {
    format!("{MARK}{kind}]")
}

/// A whole-match rule: every match is a secret of `kind`.
struct Rule {
    kind: &'static str,
    re: Regex,
}

fn rule(kind: &'static str, re: &str) -> Rule {
    Rule {
        kind,
        re: Regex::new(re).expect("valid redaction regex"),
    }
}

static TOKEN_RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    vec![
        rule(
            "private-key",
            r"(?s)-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\z)",
        ),
        rule(
            "aws-access-key-id",
            r"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}\b",
        ),
        rule(
            "github-token",
            r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b",
        ),
        rule("anthropic-key", r"\bsk-ant-[A-Za-z0-9_-]{20,}"),
        rule(
            "openai-key",
            r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
        ),
        rule(
            "stripe-key",
            r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}\b",
        ),
        rule("slack-token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
        rule(
            "slack-webhook",
            r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_-]+",
        ),
        rule("google-api-key", r"\bAIza[0-9A-Za-z_-]{35}"),
        rule("google-oauth-token", r"\bya29\.[0-9A-Za-z_-]{20,}"),
        rule("google-client-secret", r"\bGOCSPX-[A-Za-z0-9_-]{20,}"),
        rule(
            "jwt",
            r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
        ),
    ]
});

/// `aws_secret_access_key = wJalr...` (40 base64 chars).
static AWS_SECRET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)(aws_?secret_?(?:access_?)?key[A-Za-z0-9_]*["']?\s*(?::=|=>|=|:)\s*["']?)([A-Za-z0-9/+=]{40})"#).unwrap()
});

/// `scheme://user:password@host`.
static URL_PASSWORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"\b([a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@"'<>]+:)([^\s@/"'<>]+)(@)"#).unwrap()
});

/// `Bearer abc...`, `Basic dXNlcjpwYXNz`.
static BEARER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(bearer|basic|token)(\s+)([A-Za-z0-9._~+/-]{16,}=*)").unwrap()
});

/// `.env` lines: `[export ]UPPER_NAME=value` at the start of a line.
static DOTENV: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?m)^([ \t]*(?:export[ \t]+)?([A-Z][A-Z0-9_]*)[ \t]*=[ \t]*)([^\r\n]*?)([ \t]*\r?)$",
    )
    .unwrap()
});

/// `name <sep> value` where name is sensitive. Groups: 1 name+sep,
/// 2 separator, 3/4/5 double/single/back-quoted value, 6 unquoted value.
static ASSIGNMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)(\b(?:[A-Za-z_][A-Za-z0-9_.-]*?)?(?:password|passwd|passphrase|pwd|secret|token|api_?key|apikey|access_?key|private_?key|auth_?key|credentials?)[A-Za-z0-9_]*["'\]]{0,2}[ \t]*(:=|=>|=|:)[ \t]*)(?:"((?:[^"\\\n]|\\.)*)"|'((?:[^'\\\n]|\\.)*)'|`([^`\n]*)`|([^\s,;)}\]]+))"#,
    )
    .unwrap()
});

/// A line [`ASSIGNMENT`] could match has one of its names in it. Found
/// with literal search over the whole text, so that the assignment regex
/// (whose optional identifier prefix rules out literal prefilters) runs
/// only on those lines: 60 ms → 1 ms on 10,000 lines of Rust.
static ASSIGNMENT_HINT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)pass(?:word|wd|phrase)|pwd|secret|token|api_?key|access_?key|private_?key|auth_?key|credential").unwrap()
});

/// `text` with `f` applied to each line `hint` finds something on (the
/// line without its newline); other lines are copied as they are.
fn on_hinted_lines(text: &str, hint: &Regex, mut f: impl FnMut(&str) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut done = 0;
    for m in hint.find_iter(text) {
        if m.start() < done {
            continue; // on a line already done
        }
        let a = text[..m.start()].rfind('\n').map_or(0, |i| i + 1);
        let b = text[m.start()..]
            .find('\n')
            .map_or(text.len(), |i| m.start() + i);
        out.push_str(&text[done..a]);
        out.push_str(&f(&text[a..b]));
        done = b;
    }
    out.push_str(&text[done..]);
    out
}

/// The last sensitive word of an assignment's name and what follows it.
static SENSITIVE_TAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:password|passwd|passphrase|pwd|secret|token|api_?key|apikey|access_?key|private_?key|auth_?key|credentials?)([A-Za-z0-9_]*)").unwrap()
});

/// Whether an assignment's name (`token_type = `, `secret_name: `) says
/// it holds something about a secret rather than the secret: the word
/// after the sensitive one is a qualifier like gitleaks' allowlist names.
fn names_no_secret(head: &str) -> bool {
    const QUALIFIERS: &[&str] = &[
        "type",
        "types",
        "kind",
        "name",
        "names",
        "id",
        "ids",
        "len",
        "length",
        "size",
        "count",
        "url",
        "uri",
        "endpoint",
        "file",
        "path",
        "dir",
        "env",
        "var",
        "field",
        "header",
        "prefix",
        "suffix",
        "format",
        "class",
        "label",
        "pattern",
        "regex",
        "re",
        "index",
        "idx",
        "pos",
        "start",
        "end",
        "ends",
        "expiry",
        "expires",
        "expiration",
        "ttl",
        "policy",
        "hint",
        "prompt",
        "source",
        "provider",
        "store",
        "manager",
        "location",
    ];
    let Some(c) = SENSITIVE_TAIL.captures_iter(head).last() else {
        return false;
    };
    let tail = c[1].trim_start_matches('_').to_ascii_lowercase();
    let first = tail.split('_').next().unwrap_or("");
    !first.is_empty() && QUALIFIERS.contains(&first)
}

static SENSITIVE_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(PASSWORD|PASSWD|PASSPHRASE|PWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|AUTH|CREDENTIAL|_PASS$|^PASS$|_KEY$|DSN$)").unwrap()
});

/// Languages whose unquoted `key: value` pairs are data, not type annotations.
fn is_config_language(lang: &str) -> bool {
    matches!(
        lang,
        "yaml"
            | "yml"
            | "toml"
            | "ini"
            | "properties"
            | "dotenv"
            | "env"
            | "conf"
            | "plaintext"
            | "text"
            | ""
            | "dockerfile"
            | "shellscript"
            | "sh"
            | "bash"
    )
}

/// Values that are code, not secrets: calls, indexing, attribute chains,
/// plain identifiers without digits, literals like `None`.
fn looks_like_code(v: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "None",
        "null",
        "nil",
        "true",
        "false",
        "True",
        "False",
        "undefined",
        "NULL",
        "self",
        "this",
    ];
    if KEYWORDS.contains(&v) || v.starts_with(MARK) {
        return true;
    }
    if v.contains(['(', '[', '{', '<', '&', '*', '$']) {
        return true;
    }
    let ident = |s: &str| {
        let mut c = s.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
            && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
    };
    let parts: Vec<&str> = v.split('.').collect();
    if parts.len() > 1 && parts.iter().all(|p| ident(p)) {
        return true; // os.environ, self.token, config.secret
    }
    // A plain identifier without digits reads as a variable name.
    ident(v) && !v.chars().any(|c| c.is_ascii_digit())
}

/// Shannon-ish test for random-looking values: long, no spaces, a mix of
/// letters and digits.
fn high_entropy(v: &str) -> bool {
    v.len() >= 20
        // One token: `text/html;charset=utf-8` is a value, not a key.
        && v.chars().all(|c| c.is_ascii_alphanumeric() || "+/=_-.~".contains(c))
        && v.chars().any(|c| c.is_ascii_digit())
        && v.chars().any(|c| c.is_ascii_alphabetic())
        && v.chars().collect::<std::collections::HashSet<_>>().len() >= 10
}

/// A quoted literal that is one token: `"…"`, `'…'` or `` `…` `` whose
/// body is token characters (base64/base64url, hex, dotted and `id:secret`
/// shapes), possibly with markers an earlier layer left in it.
static QUOTED_TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    let body = r"(?:[A-Za-z0-9+/=_.~:-]|\[REDACTED:[a-z0-9-]+\])";
    Regex::new(&format!(
        r#""({body}{{14,}})"|'({body}{{14,}})'|`({body}{{14,}})`"#
    ))
    .unwrap()
});

/// The smallest value [`random_literal`] considers. Random keys and ids
/// shorter than this cannot be told from code by their letters alone.
pub const RANDOM_LITERAL_MIN: usize = 14;

/// Whether a one-token literal reads as random (a key, a token, an id)
/// rather than as code: detect-secrets' `HighEntropyString` idea, made to
/// work on short values too, with two tests code rarely passes:
///
/// - **entropy near the most its length allows**: Shannon entropy of at
///   least [`ENTROPY_SHARE`] of `log2(min(len, charset))`, the charset
///   being hex (16) when the value is all hex digits, else base64 (64).
///   Fixed floors (detect-secrets' 4.5 and 3.0) cannot work below 24
///   characters, where even a perfectly random value cannot reach them;
/// - **mixed character classes, mixed often**: two of upper case, lower
///   case and digits, changing from one to another at a quarter of the
///   places or more. Identifiers (`HTTPConnectionPool`,
///   `x86_64-unknown-linux-gnu`) change class at word boundaries only;
///
/// and none of the patterns random values almost never have: a run of 5
/// ascending or descending characters (`abcde`, `0123`: alphabets and
/// test strings), 4 of the same character in a row, a `://` (a URL).
/// Values of digits only (numeric client ids of 16 to 20 digits) pass
/// with no two digits in a row the same more than twice and not a
/// decimal bound of an integer type (`18446744073709551615`).
fn random_literal(v: &str) -> bool {
    const ENTROPY_SHARE: f64 = 0.8;
    let b = v.as_bytes();
    let n = b.len();
    if !(RANDOM_LITERAL_MIN..=4096).contains(&n) || v.contains("://") {
        return false;
    }
    let class = |c: u8| match c {
        b'a'..=b'z' => 1u8,
        b'A'..=b'Z' => 2,
        b'0'..=b'9' => 3,
        _ => 0,
    };
    let mut seen = [false; 4];
    let mut changes = 0;
    let mut pairs = 0;
    let (mut up, mut down, mut same) = (1, 1, 1);
    for i in 0..n {
        seen[class(b[i]) as usize] = true;
        if i == 0 {
            continue;
        }
        let (p, c) = (b[i - 1], b[i]);
        let (cp, cc) = (class(p), class(c));
        if cp != 0 && cc != 0 {
            pairs += 1;
            changes += usize::from(cp != cc);
        }
        up = if c == p.wrapping_add(1) && cc != 0 {
            up + 1
        } else {
            1
        };
        down = if c.wrapping_add(1) == p && cc != 0 {
            down + 1
        } else {
            1
        };
        same = if c == p { same + 1 } else { 1 };
        if up >= 5 || down >= 5 || same >= 4 {
            return false;
        }
    }
    let classes = seen[1..].iter().filter(|s| **s).count();
    let h = secrets::shannon_entropy(v);
    if classes == 1 && seen[3] && !seen[0] {
        const BOUNDS: &[&str] = &[
            "18446744073709551615",
            "9223372036854775807",
            "9223372036854775808",
            "4294967295",
            "2147483647",
            "2147483648",
        ];
        return (16..=20).contains(&n) && !BOUNDS.contains(&v) && h >= 2.5;
    }
    if classes < 2 || changes * 4 < pairs || v.contains("::") {
        return false;
    }
    // Words: identifiers are made of them, random values of letters.
    let (segments, alnum) = word_segments(b);
    let letters = b.iter().filter(|c| c.is_ascii_alphabetic()).count();
    let vowels = b.iter().filter(|c| b"aeiouAEIOU".contains(c)).count();
    let short_words = alnum <= 5 * segments / 2;
    let unpronounceable = letters > 0 && vowels * 4 <= letters;
    if !(short_words || unpronounceable) {
        return false;
    }
    let hex = b.iter().all(u8::is_ascii_hexdigit);
    let k = if hex { 16.0 } else { 64.0 };
    h >= ENTROPY_SHARE * (n as f64).min(k).log2()
}

/// How many words `b` splits into the way identifiers do (`HTTPConnection`
/// → `HTTP` `Connection`, `utf8Json` → `utf` `8` `Json`, `a_b` → `a` `b`),
/// and how many letters and digits it has in all.
fn word_segments(b: &[u8]) -> (usize, usize) {
    let (mut segments, mut alnum) = (0, 0);
    for i in 0..b.len() {
        let c = b[i];
        if !c.is_ascii_alphanumeric() {
            continue;
        }
        alnum += 1;
        let boundary = i == 0 || {
            let p = b[i - 1];
            !p.is_ascii_alphanumeric()
                || p.is_ascii_digit() != c.is_ascii_digit()
                || (p.is_ascii_lowercase() && c.is_ascii_uppercase())
                || (p.is_ascii_uppercase()
                    && c.is_ascii_uppercase()
                    && b.get(i + 1).is_some_and(u8::is_ascii_lowercase))
        };
        segments += usize::from(boundary);
    }
    (segments, alnum)
}

fn strip_quotes(v: &str) -> &str {
    let v = v.trim();
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

/// Redact `text`. `lang` is the LSP language id; it decides whether an
/// unquoted `key: value` is data (YAML) or a type annotation (Rust, TS).
pub fn redact(text: &str, lang: &str) -> Redacted {
    match redact_within(text, lang, None) {
        Ok(r) => r,
        // Without a deadline there is no overtime; should that ever change,
        // send nothing rather than the text.
        Err(Overtime) => Redacted {
            text: String::new(),
            counts: BTreeMap::from([("unredacted-text", 1)]),
        },
    }
}

/// [`redact`], giving up with [`Overtime`] once `deadline` has passed
/// (checked between rules; one rule's pass over the text is linear in its
/// length). Nothing of a text that ran over may be sent.
pub fn redact_within(
    text: &str,
    lang: &str,
    deadline: Option<Instant>,
) -> Result<Redacted, Overtime> {
    let over = || deadline.is_some_and(|d| Instant::now() > d);
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut text = text.to_string();

    // Layers 1 and 2 mark ranges of the same text and are applied in one
    // go: a token rule that matched only part of a catalog secret (a JWT
    // with `/` in it) must not leave the rest behind, unrecognisable.
    // Overlapping ranges become one, named by the first token rule among
    // them, else the catalog's specific rule, else its generic one.
    let mut spans: Vec<(usize, usize, (u8, usize), &'static str)> = Vec::new();
    for (i, r) in TOKEN_RULES.iter().enumerate() {
        if over() {
            return Err(Overtime);
        }
        spans.extend(
            r.re.find_iter(&text)
                .map(|m| (m.start(), m.end(), (0, i), r.kind)),
        );
    }
    for s in secrets::find(&text, deadline)? {
        let layer = if s.kind.starts_with("generic") { 2 } else { 1 };
        spans.push((s.start, s.end, (layer, 0), s.kind));
    }
    if !spans.is_empty() {
        spans.sort_by_key(|&(a, b, rank, _)| (a, std::cmp::Reverse(b), rank));
        let mut merged: Vec<(usize, usize, (u8, usize), &'static str)> = Vec::new();
        for sp in spans {
            match merged.last_mut() {
                Some(last) if sp.0 < last.1 => {
                    last.1 = last.1.max(sp.1);
                    if sp.2 < last.2 {
                        (last.2, last.3) = (sp.2, sp.3);
                    }
                }
                _ => merged.push(sp),
            }
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (a, b, _, kind) in merged {
            out.push_str(&text[at..a]);
            out.push_str(&marker(kind));
            *counts.entry(kind).or_default() += 1;
            at = b;
        }
        out.push_str(&text[at..]);
        text = out;
    }
    if over() {
        return Err(Overtime);
    }

    let bump = |kind: &'static str, counts: &mut BTreeMap<&'static str, usize>| {
        *counts.entry(kind).or_default() += 1
    };

    text = AWS_SECRET
        .replace_all(&text, |c: &Captures| {
            bump("aws-secret-key", &mut counts);
            format!("{}{}", &c[1], marker("aws-secret-key"))
        })
        .into_owned();

    text = URL_PASSWORD
        .replace_all(&text, |c: &Captures| {
            if c[2].starts_with(MARK) {
                return c[0].to_string();
            }
            bump("url-password", &mut counts);
            format!("{}{}{}", &c[1], marker("url-password"), &c[3])
        })
        .into_owned();

    text = BEARER
        .replace_all(&text, |c: &Captures| {
            let tok = &c[3];
            // Prose ("basic understanding") has no digits; credentials do.
            if !tok.chars().any(|ch| ch.is_ascii_digit()) && tok.len() < 24 {
                return c[0].to_string();
            }
            bump("bearer-token", &mut counts);
            format!("{}{}{}", &c[1], &c[2], marker("bearer-token"))
        })
        .into_owned();

    if over() {
        return Err(Overtime);
    }
    let config_lang = is_config_language(lang);
    text = DOTENV
        .replace_all(&text, |c: &Captures| {
            let (name, raw) = (&c[2], &c[3]);
            let value = strip_quotes(raw);
            if value.is_empty() || value.contains(MARK) || looks_like_code(value) {
                return c[0].to_string();
            }
            // In code, an unquoted value with spaces is an expression
            // (`TOKEN_ENDS = TSPECIALS | WSP`), not a `.env` value.
            if !config_lang && value == raw.trim() && value.contains(char::is_whitespace) {
                return c[0].to_string();
            }
            if !(SENSITIVE_NAME.is_match(name) || high_entropy(value)) {
                return c[0].to_string();
            }
            bump("env-value", &mut counts);
            format!("{}{}{}", &c[1], marker("env-value"), &c[4])
        })
        .into_owned();

    if over() {
        return Err(Overtime);
    }
    text = on_hinted_lines(&text, &ASSIGNMENT_HINT, |line| {
        ASSIGNMENT
            .replace_all(line, |c: &Captures| {
                let whole = &c[0];
                let head = &c[1];
                let sep = &c[2];
                let keep = || whole.to_string();
                if names_no_secret(head) {
                    return keep();
                }
                if let Some(v) = c.get(3).or_else(|| c.get(4)).or_else(|| c.get(5)) {
                    let v = v.as_str();
                    if v.is_empty() || v.starts_with(MARK) {
                        return keep();
                    }
                    let q = &whole[head.len()..head.len() + 1];
                    bump("password", &mut counts);
                    return format!("{head}{q}{}{q}", marker("password"));
                }
                let v = c.get(6).map(|m| m.as_str()).unwrap_or("");
                // `==` is a comparison, not an assignment.
                if v.starts_with('=') || v.starts_with('>') || looks_like_code(v) {
                    return keep();
                }
                if sep == ":" && !config_lang {
                    return keep(); // a type annotation (`password: &str`)
                }
                bump("password", &mut counts);
                format!("{head}{}", marker("password"))
            })
            .into_owned()
    });

    if over() {
        return Err(Overtime);
    }
    // Last: random-looking literals no rule above recognised (a key whose
    // rule needs a provider's name, under a name that says nothing).
    text = QUOTED_TOKEN
        .replace_all(&text, |c: &Captures| {
            let whole = &c[0];
            let body = c.get(1).or_else(|| c.get(2)).or_else(|| c.get(3)).unwrap();
            let body = body.as_str();
            let q = &whole[..1];
            if !body.contains(MARK) {
                if !random_literal(body) {
                    return whole.to_string();
                }
                bump("high-entropy-string", &mut counts);
                return format!("{q}{}{q}", marker("high-entropy-string"));
            }
            // A marker with token characters glued to it: the rest of a
            // value a rule matched only part of. Pieces of 8 or more go.
            let mut out = String::from(q);
            let mut rest = body;
            while !rest.is_empty() {
                let (piece, tail) = match rest.find(MARK) {
                    Some(0) => {
                        let end = rest.find(']').map_or(rest.len(), |i| i + 1);
                        out.push_str(&rest[..end]);
                        rest = &rest[end..];
                        continue;
                    }
                    Some(i) => rest.split_at(i),
                    None => (rest, ""),
                };
                if piece.len() >= 8 {
                    bump("high-entropy-string", &mut counts);
                    out.push_str(&marker("high-entropy-string"));
                } else {
                    out.push_str(piece);
                }
                rest = tail;
            }
            out.push_str(q);
            out
        })
        .into_owned();

    Ok(Redacted { text, counts })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redact and return (text, the kinds found).
    fn r(text: &str, lang: &str) -> (String, Vec<&'static str>) {
        let out = redact(text, lang);
        (out.text, out.counts.keys().copied().collect())
    }

    fn untouched(code: &str, lang: &str) {
        let (out, kinds) = r(code, lang);
        assert_eq!(out, code, "code was redacted ({kinds:?})");
    }

    fn gone(text: &str, secret: &str, kind: &str, lang: &str) {
        let (out, kinds) = r(text, lang);
        assert!(!out.contains(secret), "{kind}: secret survived in {out:?}");
        assert!(
            out.contains(&format!("[REDACTED:{kind}]")),
            "{kind}: no marker in {out:?} (kinds {kinds:?})"
        );
    }

    #[test]
    fn aws_access_key_and_secret() {
        gone(
            "key = AKIAIOSFODNN7EXAMPLE\n",
            "AKIAIOSFODNN7EXAMPLE",
            "aws-access-key-id",
            "python",
        );
        gone(
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws-secret-key",
            "ini",
        );
    }

    #[test]
    fn github_tokens() {
        gone(
            "t = 'ghp_0123456789abcdefghijABCDEFGHIJ012345'",
            "ghp_0123456789abcdefghijABCDEFGHIJ012345",
            "github-token",
            "python",
        );
        let pat = "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV0123456789";
        gone(&format!("GH={pat}"), pat, "github-token", "sh");
    }

    #[test]
    fn openai_and_anthropic_keys() {
        let oa = "sk-proj-AbCdEf0123456789GhIjKlMnOpQrStUvWxYz";
        gone(
            &format!("client = OpenAI(api_key=\"{oa}\")"),
            oa,
            "openai-key",
            "python",
        );
        gone(
            "k = 'sk-abcdefghijklmnopqrstuvwxyz012345'",
            "sk-abcdefghijklmnopqrstuvwxyz012345",
            "openai-key",
            "python",
        );
        let an = "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcd";
        let (out, kinds) = r(&format!("const k = \"{an}\";"), "javascript");
        assert!(!out.contains("api03"), "{out}");
        assert_eq!(
            kinds,
            vec!["anthropic-key"],
            "an Anthropic key is not reported as an OpenAI key"
        );
    }

    #[test]
    fn slack_google_stripe_jwt() {
        gone(
            "SLACK=xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp",
            "xoxb-123456789012",
            "slack-token",
            "sh",
        );
        gone(
            "url = 'https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX'",
            "XXXXXXXXXXXXXXXXXXXXXXXX",
            "slack-webhook",
            "python",
        );
        gone(
            "key: AIzaSyA-1234567890abcdefghijklmnopqrstu",
            "AIzaSyA-1234567890abcdefghijklmnopqrstu",
            "google-api-key",
            "yaml",
        );
        gone(
            "tok = ya29.a0AfH6SMBx-abcdefghijklmnopqrstuv",
            "ya29.a0AfH6SMBx",
            "google-oauth-token",
            "python",
        );
        gone(
            "cs = GOCSPX-abcdefghijklmnopqrstuvwx",
            "GOCSPX-abcdef",
            "google-client-secret",
            "python",
        );
        gone(
            "stripe.api_key = sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "4eC39HqLyjWDarjtT1zdp7dc",
            "stripe-key",
            "python",
        );
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        gone(&format!("h = \"{jwt}\""), jwt, "jwt", "python");
    }

    #[test]
    fn private_key_blocks_even_unterminated() {
        let block = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabc\n-----END RSA PRIVATE KEY-----";
        gone(
            &format!("KEY = \"\"\"\n{block}\n\"\"\"\n"),
            "MIIEowIBAAKCAQEA7",
            "private-key",
            "python",
        );
        gone("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE\n-----END OPENSSH PRIVATE KEY-----", "b3BlbnNzaC1rZXktdjE", "private-key", "");
        gone(
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOYBF\n-----END PGP PRIVATE KEY BLOCK-----",
            "lQOYBF",
            "private-key",
            "",
        );
        gone(
            "x = '''-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg",
            "MIIEvQIBADANBg",
            "private-key",
            "python",
        );
        // A public key is not a secret.
        let (out, _) = r(
            "-----BEGIN PUBLIC KEY-----\nMIIBIjAN\n-----END PUBLIC KEY-----",
            "",
        );
        assert!(out.contains("MIIBIjAN"));
    }

    #[test]
    fn passwords_in_urls() {
        gone(
            "DATABASE_URL = 'postgres://admin:hunter2@db:5432/app'",
            "hunter2",
            "url-password",
            "python",
        );
        let (out, _) = r(
            "see https://example.com/a:b and git@github.com:x/y",
            "markdown",
        );
        assert_eq!(
            out, "see https://example.com/a:b and git@github.com:x/y",
            "no false positives"
        );
    }

    #[test]
    fn password_assignments() {
        gone(
            "password = \"correct horse\"",
            "correct horse",
            "password",
            "python",
        );
        gone("db_password='hunter2'", "hunter2", "password", "python");
        gone(
            "{\"apiKey\": \"abc123xyz\"}",
            "abc123xyz",
            "password",
            "json",
        );
        gone(
            "$config['secret'] => 'letmein';",
            "letmein",
            "password",
            "php",
        );
        gone("password: hunter2\n", "hunter2", "password", "yaml");
        gone("passwd := `s3cr3t`", "s3cr3t", "password", "go");
        gone("auth_token=abc123", "abc123", "password", "python");
        // Code stays: variables, calls, attribute chains, comparisons, types.
        for code in [
            "password = get_password()",
            "token = self.token",
            "api_key = os.environ[\"API_KEY\"]",
            "if password == other:",
            "fn login(password: &str) -> bool",
            "let token: String = read();",
            "def f(password=None):",
            "secret = new_secret",
            // Names about a secret, not holding one (Python's email package).
            "token_type = 'domain-literal'",
            "mailbox.token_type = 'invalid-mailbox'",
            "TOKEN_ENDS = TSPECIALS | WSP",
            "DEFAULT_ERROR_CONTENT_TYPE = \"text/html;charset=utf-8\"",
        ] {
            untouched(code, "rust");
        }
    }

    #[test]
    fn env_style_lines() {
        let env = "PORT=8080\nDB_PASSWORD=hunter2\nexport STRIPE_SECRET=\"whatever-value\"\nSESSION=Xy9Kq2Lm8Np4Rs7Tv1Wz3\nDEBUG=true\n";
        let (out, kinds) = r(env, "dotenv");
        assert!(
            out.contains("PORT=8080") && out.contains("DEBUG=true"),
            "harmless lines stay: {out}"
        );
        for s in ["hunter2", "whatever-value", "Xy9Kq2Lm8Np4Rs7Tv1Wz3"] {
            assert!(!out.contains(s), "{s} survived: {out}");
        }
        assert!(kinds.contains(&"env-value"), "{kinds:?}");
        // Python constants that read values from the environment stay.
        let py = "API_KEY = os.environ[\"API_KEY\"]\nMAX_RETRIES = 5\n";
        assert_eq!(r(py, "python").0, py);
    }

    #[test]
    fn bearer_credentials() {
        gone(
            "curl -H 'Authorization: Bearer abc123def456ghi789jkl'",
            "abc123def456ghi789jkl",
            // gitleaks' rule for curl headers is the more specific name.
            "curl-auth-header",
            "sh",
        );
        gone(
            "Authorization: Basic dXNlcjpwYXNzd29yZDEyMw==",
            "dXNlcjpwYXNzd29yZDEyMw==",
            "bearer-token",
            "http",
        );
        let prose = "a basic understanding of bearer tokens";
        assert_eq!(r(prose, "markdown").0, prose);
    }

    #[test]
    fn catalog_tokens_under_names_that_say_nothing() {
        // gitleaks' catalog knows these by their format alone.
        for (tok, kind) in [
            (
                "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",
                "huggingface-access-token",
            ),
            ("glpat-AbCd3fGh1jKlMn0pQr5t", "gitlab-pat"),
            (
                "npm_AbCd3fGh1jKlMn0pQr5tUvWxYz0123456789",
                "npm-access-token",
            ),
        ] {
            gone(&format!("CONFIG_7 = \"{tok}\"\n"), tok, kind, "python");
            gone(
                &format!("const config7 = '{tok}';\n"),
                tok,
                kind,
                "javascript",
            );
        }
    }

    #[test]
    fn random_literals_under_names_that_say_nothing() {
        // Values of rules that need a provider's name (Adafruit, LinkedIn,
        // Sidekiq, Telegram, Asana), under a name that says nothing.
        for v in [
            "xhlDycDjYthntuEFjusNnXbf",
            "1KlI8HD5Bobdvi",
            "48MJMeJIsPJG6JBD",
            "b235C4D2:2A2fd7Ba",
            "2260769057:ABTcfomYdQaUSiy93DhGsI7SF-sgV1hZarz",
            "9378180292473869",
            "d41d8cd98f00b204e9800998ecf8427e",
        ] {
            gone(
                &format!("config_7 = \"{v}\"\n"),
                v,
                "high-entropy-string",
                "python",
            );
            gone(
                &format!("const c = '{v}';"),
                v,
                "high-entropy-string",
                "javascript",
            );
        }
        // Identifiers, header names, alphabets, bounds, paths stay.
        for code in [
            "raise CannotSendRequest(\"ResponseNotReady\")",
            "h = self.headers[\"If-Modified-Since\"]",
            "f.debug_struct(\"ClassUnicodeRange\")",
            "x = 'encode_7or8bit'",
            "t = \"x86_64-unknown-linux-gnu\"",
            "alphabet = \"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/\"",
            "m = \"18446744073709551615\"",
            "u = \"https://docs.rs/tokio/1.38.0/tokio\"",
            "/// see `HirKind::Concat`",
        ] {
            untouched(code, "python");
        }
    }

    #[test]
    fn a_deadline_that_passed_sends_nothing() {
        let past = Instant::now() - std::time::Duration::from_millis(1);
        assert_eq!(
            redact_within("x = 1\n", "python", Some(past)),
            Err(Overtime)
        );
        assert!(redact_within("x = 1\n", "python", None).is_ok());
    }

    #[test]
    fn ordinary_code_is_untouched() {
        let code = "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n";
        let out = redact(code, "python");
        assert_eq!(out.text, code);
        assert_eq!(out.total(), 0);
    }
}
