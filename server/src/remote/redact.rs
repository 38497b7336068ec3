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
//!    last, the values of catalog rules that need a provider's name,
//!    under a name that says nothing (`CONFIG_7 = "…"`): quoted one-token
//!    literals in such a rule's own value format (kind = the rule id, see
//!    [`catalog_format`]) or that read as random (`high-entropy-string`,
//!    see [`random_literal`]).
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

/// A number no secret is, in code: up to 3 decimal digits or a hex
/// constant of up to 8 (`IFLA_INET6_TOKEN = 7,`, `DEVSTAT_PASS = 0x04,`,
/// `CXToken_Keyword = 1`: enum values whose names hold `token` or `pass`).
/// Not in `.env`/config files, where `PASS=123` is a password.
fn small_number(v: &str) -> bool {
    let v = v.trim_end_matches([',', ';']).trim();
    let v = v.strip_prefix('-').unwrap_or(v);
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) => (1..=8).contains(&h.len()) && h.bytes().all(|c| c.is_ascii_hexdigit()),
        None => (1..=3).contains(&v.len()) && v.bytes().all(|c| c.is_ascii_digit()),
    }
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
/// shapes, `%2B` escapes), possibly with markers an earlier layer left in
/// it.
static QUOTED_TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    let body = r"(?:[A-Za-z0-9+/=_.~:%-]|\[REDACTED:[a-z0-9-]+\])";
    Regex::new(&format!(
        r#""({body}{{10,}})"|'({body}{{10,}})'|`({body}{{10,}})`"#
    ))
    .unwrap()
});

/// The smallest value [`random_literal`] considers as it is. Random keys
/// and ids shorter than this are hard to tell from code by their letters
/// alone; those of [`SHORT_LITERAL_MIN`] and more need more entropy.
pub const RANDOM_LITERAL_MIN: usize = 14;

/// The smallest value [`random_literal`] considers at all: gitleaks'
/// `generic-api-key` takes values of 10 characters and more whose entropy
/// is above its floor (3.5 bits), which only values of 12 and more can
/// reach; under [`RANDOM_LITERAL_MIN`] a literal needs that much.
pub const SHORT_LITERAL_MIN: usize = 10;

/// Whether a one-token literal reads as random (a key, a token, an id)
/// rather than as code: detect-secrets' `HighEntropyString` idea, made to
/// work on short values too. A random value of its length and alphabet
/// (digits, hex, letters of one case and digits, base62: [`alphabet`])
/// fails each test below about once in a thousand times or less:
///
/// - **entropy** at least what random values of its length and alphabet
///   have, less three standard deviations ([`entropy_floor`]); under
///   [`RANDOM_LITERAL_MIN`] characters, also above the catalog's generic
///   floor;
/// - **mixed character classes**: two of upper case, lower case and
///   digits (values of digits only: numeric client ids of 16 to 20
///   digits, not a decimal bound of an integer type,
///   `18446744073709551615`);
/// - **not words**: either its letters do not read as code ([`letters`]:
///   long pronounceable segments, classes that change at word boundaries
///   only), or its words cost clearly more bits as words than as random
///   characters ([`words_cost_more`]);
/// - **no placeholder** ([`placeholder`]), no `://` (a URL), no `::` (a
///   path).
fn random_literal(v: &str) -> bool {
    let n = v.len();
    if !(SHORT_LITERAL_MIN..=4096).contains(&n) {
        return false;
    }
    if n < RANDOM_LITERAL_MIN {
        let generic = secrets::catalog()
            .rules
            .iter()
            .find(|r| r.id == "generic-api-key")
            .map(|r| r.entropy);
        if generic.is_none_or(|floor| floor == 0.0 || secrets::shannon_entropy(v) <= floor) {
            return false;
        }
    }
    reads_random(v)
}

/// [`random_literal`]'s tests but the length.
fn reads_random(v: &str) -> bool {
    let b = v.as_bytes();
    let n = b.len();
    if n == 0 || v.contains("://") || v.contains("::") || placeholder(b) {
        return false;
    }
    // A dotted name in lower case (`lib2to3.fixes`, `setup.cfg`,
    // `docs.rs`) or a format string (`%04d-%02d-%02d`): code, not a key.
    let dotted = v.contains('.')
        && v.split('.').all(|p| {
            (1..=16).contains(&p.len())
                && p.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && p.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
        });
    if dotted
        || (v.contains('%')
            && PRINTF
                .replace_all(v, "")
                .bytes()
                .filter(u8::is_ascii_alphanumeric)
                .count()
                < 4)
    {
        return false;
    }
    let h = secrets::shannon_entropy(v);
    if h < entropy_floor(n, class_alphabet(b)) {
        return false;
    }
    if b.iter().all(u8::is_ascii_digit) {
        const BOUNDS: &[&str] = &[
            "18446744073709551615",
            "9223372036854775807",
            "9223372036854775808",
            "4294967295",
            "2147483647",
            "2147483648",
        ];
        return (16..=20).contains(&n) && !BOUNDS.contains(&v);
    }
    let classes = [
        u8::is_ascii_lowercase,
        u8::is_ascii_uppercase,
        u8::is_ascii_digit,
    ]
    .iter()
    .filter(|f| b.iter().any(f))
    .count();
    // Base64 with its padding and a `+` or `/` inside or a length that is
    // a multiple of 4 is no word of code (`7U+huzqostAZ=`,
    // `yaj0GjcshuplU===`), however its letters read.
    let base64 = b.ends_with(b"=")
        && (b.iter().any(|c| matches!(c, b'+' | b'/')) || n % 4 == 0)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='));
    classes >= 2
        && match letters(b) {
            _ if base64 => true,
            Letters::Random => true,
            Letters::Words => words_cost_more(b, WORDS_MARGIN),
            Letters::Identifier => words_cost_more(b, IDENTIFIER_MARGIN),
        }
}

/// The least entropy [`reads_random`] accepts for `n` characters drawn
/// from `k`: the expected Shannon entropy of a random value of that length
/// and alphabet ([`expected_entropy`]) less three standard deviations, a
/// standard deviation being about `1/sqrt(n)` bits (measured: the 0.1%
/// quantile of 20,000 random values lies 2.6 to 2.9 `/sqrt(n)` below the
/// mean, for `k` from 10 to 64 and `n` from 10 to 100).
fn entropy_floor(n: usize, k: f64) -> f64 {
    expected_entropy(n, k) - 3.0 / (n as f64).sqrt()
}

/// The expected Shannon entropy, in bits per character, of `n` characters
/// drawn at random from `k`: `log2 n - (k/n) E[c log2 c]`, `c` the count
/// of one character, binomial `(n, 1/k)`. Short values have far less than
/// `log2 k` (16 random hex digits: 3.2 bits, not 4).
fn expected_entropy(n: usize, k: f64) -> f64 {
    if n < 2 {
        return 0.0;
    }
    let nf = n as f64;
    let (p, q) = (1.0 / k, 1.0 - 1.0 / k);
    // P(c) from P(c-1), from P(0) = q^n; terms past the bulk are nothing.
    let mut pc = q.powf(nf);
    let mut sum = 0.0;
    let last = (nf * p + 12.0 * (nf * p).sqrt() + 12.0).min(nf) as usize;
    for c in 1..=last {
        let cf = c as f64;
        pc *= (nf - cf + 1.0) / cf * (p / q);
        sum += pc * cf * cf.log2();
    }
    nf.log2() - k * sum / nf
}

/// Whether the letters of `b`, split into words the way identifiers are
/// (`HTTPServer` → `HTTP` `Server`; digits and punctuation apart), cost
/// more bits as words (the catalog's [`secrets::words::Words`], one bit a
/// word and one for a capital, digits at `log2 10` each and two bits a
/// number, three bits a separator) than as characters drawn at random
/// from its [`alphabet`], by `margin` bits a character or more: a
/// likelihood ratio, words against random. `sueaYMIhoAhuzd` costs 98 bits
/// as words and 83 at random; `AbstractChildWatcher` 86 as words and 119
/// at random; `x86_64-unknown-linux-gnu` about as much either way.
fn words_cost_more(b: &[u8], margin: f64) -> bool {
    let words = &secrets::catalog().words;
    let k = alphabet(b);
    let (mut as_words, mut at_random) = (0.0, 0.0);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_digit() {
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            as_words += 2.0 + 10f64.log2() * (i - start) as f64;
        } else if !c.is_ascii_alphabetic() {
            i += 1;
            as_words += 3.0;
            at_random += (k + 4.0).log2();
            continue;
        } else if c.is_ascii_uppercase() && b.get(i + 1).is_some_and(u8::is_ascii_lowercase) {
            i += 1; // `Server`
            while i < b.len() && b[i].is_ascii_lowercase() {
                i += 1;
            }
        } else if c.is_ascii_uppercase() {
            // `HTTP` in `HTTPServer`: capitals up to the one a word starts with.
            while i < b.len()
                && b[i].is_ascii_uppercase()
                && !b.get(i + 1).is_some_and(u8::is_ascii_lowercase)
            {
                i += 1;
            }
            if i == start {
                i += 1;
            }
        } else {
            while i < b.len() && b[i].is_ascii_lowercase() {
                i += 1;
            }
        }
        if c.is_ascii_alphabetic() {
            as_words +=
                1.0 + f64::from(u8::from(c.is_ascii_uppercase())) + words.bits(&b[start..i]);
        }
        at_random += k.log2() * (i - start) as f64;
    }
    as_words > at_random + margin * b.len() as f64
}

/// How many bits a character a literal whose letters read as words
/// ([`Letters::Words`]) must cost more as words than as random characters
/// to read as random after all: a quarter, a likelihood ratio of 11 for
/// 14 characters, of 256 for 32. [`IDENTIFIER_MARGIN`] for one whose
/// classes change at word boundaries only, the stronger sign of code.
///
/// Measured on 20,000 random values each: of 14 base62 characters, one in
/// 350 still reads as code (one in 40 without this test), of 14 lower-case
/// letters and digits one in 21 (one in 4), of 32 lower-case hex digits
/// one in 120 (one in 10). On the 2.3 million lines of the crates in the
/// cargo registry (`windows-sys` aside) and the Python standard library,
/// 136 distinct literals are taken for random (target triples, file names,
/// hashes), 104 without this test; on the 285,000 lines of the crates
/// `tests/remote_secrets.rs` reads, the same 6 either way.
const WORDS_MARGIN: f64 = 0.25;

/// [`WORDS_MARGIN`] for [`Letters::Identifier`]: three quarters of a bit
/// a character.
const IDENTIFIER_MARGIN: f64 = 0.75;

/// Whether `b` has a pattern random values almost never have: a run of
/// ascending or descending letters or digits (`abcde`, `01234`: alphabets
/// and test strings), or of the same character (`0000`, `xxxx`), longer
/// than chance makes in one value of its length and alphabet in a
/// thousand (at least 5 and 4; in 18 random digits a `7777` comes once
/// in 70, so those runs must be 6 long).
fn placeholder(b: &[u8]) -> bool {
    const CHANCE: f64 = 1e-3;
    let n = b.len() as f64;
    let k = alphabet(b);
    if k < 10.0 {
        return true; // no letters or digits at all: `----------`
    }
    // A run of `l` at a given place: `k^-(l-1)` (twice that for either
    // direction of a sequence).
    let shortest = |at_least: i32, ways: f64| {
        (at_least..)
            .find(|&l| ways * n * k.powi(1 - l) <= CHANCE)
            .unwrap()
    };
    let (seq, rep) = (shortest(5, 2.0), shortest(4, 1.0));
    let (mut up, mut down, mut same) = (1, 1, 1);
    for w in b.windows(2) {
        let (p, c) = (w[0], w[1]);
        let alnum = c.is_ascii_alphanumeric();
        up = if alnum && c == p.wrapping_add(1) {
            up + 1
        } else {
            1
        };
        down = if alnum && c.wrapping_add(1) == p {
            down + 1
        } else {
            1
        };
        same = if c == p { same + 1 } else { 1 };
        if up >= seq || down >= seq || same >= rep {
            return true;
        }
    }
    false
}

/// How many characters a random value like `b` is drawn from, judged by
/// the letters and digits in it: 10 (digits), 16 (hex of one case), 22
/// (hex), 36 (digits and one case of letters), 62 (both cases), 0 (no
/// letters or digits). The alphabets keys are written in, not the classes
/// `b` happens to have: a word in lower case is no likelier random for
/// having no digits.
fn alphabet(b: &[u8]) -> f64 {
    let alnum = || b.iter().filter(|c| c.is_ascii_alphanumeric());
    let lower = alnum().any(u8::is_ascii_lowercase);
    let upper = alnum().any(u8::is_ascii_uppercase);
    if alnum().next().is_none() {
        0.0
    } else if alnum().all(u8::is_ascii_digit) {
        10.0
    } else if alnum().all(u8::is_ascii_hexdigit) {
        if lower && upper {
            22.0
        } else {
            16.0
        }
    } else if lower && upper {
        62.0
    } else {
        36.0
    }
}

/// The characters of the classes `b` has: 10 for digits, 26 for each case
/// of letters; hex as in [`alphabet`]. What [`entropy_floor`] expects: a
/// random value of 32 letters of either case, drawn from 62 characters,
/// has no digit once in 280 and less entropy then.
fn class_alphabet(b: &[u8]) -> f64 {
    let k = alphabet(b);
    if k != 36.0 && k != 62.0 {
        return k;
    }
    let has = |f: fn(&u8) -> bool| usize::from(b.iter().any(f));
    (10 * has(u8::is_ascii_digit)
        + 26 * (has(u8::is_ascii_lowercase) + has(u8::is_ascii_uppercase))) as f64
}

/// What the letters and digits of a literal say it is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Letters {
    /// Letters and digits mixed as a random value's.
    Random,
    /// Long segments that can be pronounced: words.
    Words,
    /// Classes that change at under a quarter of the places: at word
    /// boundaries only, as in identifiers (`HTTPConnectionPool`,
    /// `x86_64-unknown-linux-gnu`).
    Identifier,
}

/// What the letters and digits of `b` say it is ([`Letters`]).
fn letters(b: &[u8]) -> Letters {
    let class = |c: u8| match c {
        b'a'..=b'z' => 1u8,
        b'A'..=b'Z' => 2,
        b'0'..=b'9' => 3,
        _ => 0,
    };
    let (mut changes, mut pairs) = (0, 0);
    for w in b.windows(2) {
        let (cp, cc) = (class(w[0]), class(w[1]));
        if cp != 0 && cc != 0 {
            pairs += 1;
            changes += usize::from(cp != cc);
        }
    }
    if changes * 4 < pairs {
        return Letters::Identifier;
    }
    // Words: identifiers are made of them, random values of letters.
    let (segments, alnum) = word_segments(b);
    let letters = b.iter().filter(|c| c.is_ascii_alphabetic()).count();
    let vowels = b.iter().filter(|c| b"aeiouAEIOU".contains(c)).count();
    let short_words = alnum <= 5 * segments / 2;
    // Under a quarter vowels (random letters of both cases: a fifth);
    // `AbstractChildWatcher` has exactly a quarter.
    let unpronounceable = letters > 0 && vowels * 4 < letters;
    if short_words || unpronounceable {
        Letters::Random
    } else {
        Letters::Words
    }
}

/// Formats that fix this many bits ([`secrets::catalog::ValueFormat::bits`])
/// or more tell a value by themselves: 4 fixed characters' worth, one
/// random token in 16 million has them by chance. Sidekiq's `hex8:hex8`
/// (31 bits), UUIDs (73), Telegram's (25) do; Sumo Logic's `su` and 12
/// letters (12) does not.
const FORMAT_BITS: f64 = 24.0;

/// The kind of a one-token literal that is, in full, a value in the
/// format of a catalog rule ([`secrets::catalog::Rule::value`]) under a
/// name that says nothing: the rule's id, or `catalog-format` where
/// several rules share the format (UUIDs). A format of [`FORMAT_BITS`]
/// or more needs only that the parts of the literal that vary are no
/// placeholders (`00000000-0000-…`; each judged on its own alphabet, so
/// that Telegram's `90000:A…` passes): it makes the value's own entropy low
/// (16 hex digits), too low for [`random_literal`]. A weaker one needs
/// those parts to read as random ([`reads_random`]), so that a word that
/// happens to fit it stays (`superclassName` is `su` and 12 letters).
fn catalog_format(v: &str, line: &str) -> Option<&'static str> {
    if v.len() > 4096 {
        return None;
    }
    let cat = secrets::catalog();
    let mut found = secrets::scan::value_formats(cat, v, line)
        .into_iter()
        .filter(|&r| {
            let f = cat.rules[r].value.as_ref().unwrap();
            f.varying(v).is_some_and(|parts| {
                if f.bits >= FORMAT_BITS {
                    parts.iter().all(|p| !placeholder(p.as_bytes()))
                } else {
                    reads_random(&parts.concat())
                }
            })
        });
    kind_of(cat, &mut found)
}

/// The kind a literal that is the value of `rules` is withheld as: the
/// rule's id, or `catalog-format` where several rules share the format.
fn kind_of(
    cat: &'static secrets::Catalog,
    rules: &mut dyn Iterator<Item = usize>,
) -> Option<&'static str> {
    match (rules.next(), rules.next()) {
        (None, _) => None,
        (Some(r), None) => Some(cat.rules[r].id.as_str()),
        (Some(_), Some(_)) => Some("catalog-format"),
    }
}

/// The rule of a literal in the format of a rule whose provider `near`
/// (the literal's line and the two above it) names
/// ([`secrets::scan::named_values`]), judged as gitleaks judges the rule's
/// match (its own entropy floor and allowlists), not by [`reads_random`]:
/// one random 16-character value in ~100 reads as words
/// (`QendeDix83urlYun`), others repeat letters as random values do
/// (`Kj0LLDjj6jKjhKox`); 7 of the 8 misses of 300 seeds of the secrets
/// test were such values under a neutral name below a comment naming the
/// provider. A placeholder there is withheld too: nothing is lost.
fn provider_value(v: &str, near: &str) -> Option<&'static str> {
    if !(SHORT_LITERAL_MIN..=4096).contains(&v.len()) {
        return None;
    }
    let cat = secrets::catalog();
    kind_of(
        cat,
        &mut secrets::scan::named_values(cat, v, near).into_iter(),
    )
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
            if value.is_empty()
                || value.contains(MARK)
                || looks_like_code(value)
                || (!config_lang && small_number(value))
            {
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
                if v.starts_with('=')
                    || v.starts_with('>')
                    || looks_like_code(v)
                    || (!config_lang && small_number(v))
                {
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
                // Named after the catalog's format where it has one.
                let at = c.get(0).unwrap().start();
                let a = text[..at].rfind('\n').map_or(0, |i| i + 1);
                let b = text[at..].find('\n').map_or(text.len(), |i| at + i);
                // The line and the two above it: where a provider's name
                // says what a value under a neutral name is.
                let near = || {
                    let n = text[..a]
                        .match_indices('\n')
                        .nth_back(2)
                        .map_or(0, |(i, _)| i + 1);
                    &text[n..b]
                };
                let kind = match catalog_format(body, &text[a..b]) {
                    Some(kind) => kind,
                    None if random_literal(body) => "high-entropy-string",
                    None => match provider_value(body, near()) {
                        Some(kind) => kind,
                        None => return whole.to_string(),
                    },
                };
                bump(kind, &mut counts);
                return format!("{q}{}{q}", marker(kind));
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

    // Unquoted, the same: a value with a `=` inside (`5QBw…PFSzZ=rest`)
    // of which a rule took only what follows the `=`; the piece before it
    // goes too when it reads as random (`password=[REDACTED:…]` keeps its
    // name).
    // (Again while pieces go: `a=b=c=[…]` loses `c`, then `b`.)
    for _ in 0..4 {
        if !text.contains(MARK) {
            break;
        }
        let before = counts.get("high-entropy-string").copied();
        text = GLUED_BEFORE_MARK
            .replace_all(&text, |c: &Captures| {
                let piece = &c[1];
                if reads_random(piece) {
                    bump("high-entropy-string", &mut counts);
                    format!("{}={MARK}", marker("high-entropy-string"))
                } else {
                    c[0].to_string()
                }
            })
            .into_owned();
        if counts.get("high-entropy-string").copied() == before {
            break;
        }
    }

    Ok(Redacted { text, counts })
}

/// A printf directive (`%04d`, `%-8s`, `%.2f`).
static PRINTF: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"%[-+ 0#]*[0-9]*(?:\.[0-9]+)?[a-zA-Z]").unwrap());

/// A token of 8 characters or more joined by `=` to a marker.
static GLUED_BEFORE_MARK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"([A-Za-z0-9+/_.~%-]{8,})=\[REDACTED:").unwrap());

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
        // Asana), under a name that says nothing.
        for v in [
            "xhlDycDjYthntuEFjusNnXbf",
            "1KlI8HD5Bobdvi",
            "48MJMeJIsPJG6JBD",
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
            "__all__ = ('AbstractChildWatcher', 'SafeChildWatcher')",
            "return \"%04d-%02d-%02d\" % (y, m, d)",
            "names = get_fixers_from_package('lib2to3.fixes')",
        ] {
            untouched(code, "python");
        }
    }

    #[test]
    fn values_in_a_providers_format_where_the_provider_is_named() {
        // Letters that read as words, in LinkedIn's client-secret format
        // (16 letters and digits), under a name that says nothing: taken
        // when a comment names the provider within two lines above ...
        gone(
            "# LinkedIn app\nCONFIG_7 = \"QendeDix83urlYun\"\n",
            "QendeDix83urlYun",
            "linkedin-client-secret",
            "python",
        );
        // ... not without it, nor under a generic word (`key`, `access`),
        // nor further away.
        untouched("CONFIG_7 = \"QendeDix83urlYun\"", "python");
        untouched("# access key\nCONFIG_7 = \"QendeDix83urlYun\"", "python");
        untouched(
            "# LinkedIn\n\n\n\nCONFIG_7 = \"QendeDix83urlYun\"",
            "python",
        );
        // Base64 with its padding, however its letters read.
        gone(
            "CONFIG_7 = \"7U+huzqostAZ=\"\n",
            "7U+huzqostAZ=",
            "high-entropy-string",
            "python",
        );
    }

    #[test]
    fn random_literals_whatever_their_alphabet() {
        // Random values a fixed share of `log2(len)` missed: low entropy
        // for their length (16 hex digits, 16 digits), letters that look
        // like words at a glance, 12 characters all different (gitleaks'
        // generic floor).
        for v in [
            "c064c74dd6b44ccb",
            "7794997372467467",
            "qeaYMIhoAhuzdw",
            "k3jdhqpzm0x8w2vtr5nb",
            "wnYCaXKDcET0a",
        ] {
            gone(
                &format!("config_7 = \"{v}\"\n"),
                v,
                "high-entropy-string",
                "python",
            );
        }
        // Words of those lengths stay.
        for code in [
            "e = \"TryLockError\"",
            "t = \"wasm32-unknown-unknown\"",
            "k = 'unicode_normalization'",
            "p = \"----------------\"",
        ] {
            untouched(code, "python");
        }
    }

    #[test]
    fn values_in_a_catalog_format_under_names_that_say_nothing() {
        // Formats that fix enough tell the value by themselves, however low
        // its entropy (Sidekiq's, 16 hex digits around a colon).
        for (v, kind) in [
            ("c064c74D:d6B44CCB", "sidekiq-secret"),
            ("c064c74d:d6b44ccb", "sidekiq-secret"),
            ("b235C4D2:2A2fd7Ba", "sidekiq-secret"),
            (
                "2260769057:ABTcfomYdQaUSiy93DhGsI7SF-sgV1hZarz",
                "telegram-bot-api-token",
            ),
            ("9f8d2c4e-1b7a-4c3d-8e6f-0a1b2c3d4e5f", "catalog-format"),
            (
                "90000:AsMlm2IVhcoWdcVfqVQiCYe_fOOtwWtBXKK",
                "telegram-bot-api-token",
            ),
            (
                "aAAaaaaaAAaaAaaAAaAAAaKWQMQ0bS1pfTlWVs5yP%LpPivToKnMfQ0gWIdSx1LW9KUoSEVl%3f83dPkT58%svGZs%SS%zwUSQN1uiFDN",
                "twitter-bearer-token",
            ),
        ] {
            gone(&format!("config_7 = \"{v}\"\n"), v, kind, "python");
        }
        // A weak format (Sumo Logic's `su` and 12 letters) needs a random
        // rest; placeholders in a strong one stay.
        gone(
            "config_7 = \"sunu5TgrEVrogv\"\n",
            "sunu5TgrEVrogv",
            "sumologic-access-id",
            "python",
        );
        for code in [
            "n = \"superclassName\"",
            "u = \"00000000-0000-0000-0000-000000000000\"",
            "s = \"12345678:12345678\"",
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
