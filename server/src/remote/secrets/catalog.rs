//! The pinned gitleaks rule catalog (`gitleaks.toml`, compiled in), parsed
//! into plain structs and compiled for Rust's `regex`.
//!
//! Compiling never panics: a rule whose regex the `regex` crate rejects
//! (even after [`translate::go_to_rust`]) is left out and listed in
//! [`Catalog::skipped`]; an allowlist regex that fails is dropped, which
//! only means more gets redacted. The count is logged when the catalog is
//! built, printed by `update.sh` and checked by the tests.
//!
//! Regexes are compiled as `regex::bytes` with Unicode off: gitleaks runs
//! on Go's RE2, whose `\w`, `\s`, `\d`, `\b` and `.`-free classes are
//! ASCII, and ASCII classes keep the automata small (a 10,000-line
//! selection is scanned by every rule whose keyword it contains).

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::bytes::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use regex_syntax::hir::{Capture, Class, Hir, HirKind, Repetition};
use serde::Deserialize;

use super::translate;
use super::words::Words;

/// The catalog as vendored (see `PROVENANCE.md` beside it).
pub const GITLEAKS_TOML: &str = include_str!("gitleaks.toml");

/// What an allowlist regex is tested against (`regexTarget`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// The secret (the capture group), gitleaks' default.
    Secret,
    /// The whole match of the rule's regex.
    Match,
    /// The line(s) the match is on.
    Line,
}

/// One allowlist: a finding it covers is not a secret.
#[derive(Debug)]
pub struct Allowlist {
    /// `condition = "AND"`: every kind of check present must pass.
    pub all: bool,
    pub target: Target,
    pub regexes: Vec<Regex>,
    /// Lowercase; a secret containing one is allowed.
    pub stopwords: Vec<String>,
    /// Whether the allowlist also names paths or commits. Redaction has
    /// neither (it sees text, and a secret under `node_modules/` must not
    /// leave either), so those checks never pass: an OR allowlist made only
    /// of paths allows nothing, an AND allowlist with paths allows nothing.
    pub has_path_or_commit: bool,
}

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// gitleaks' rule id; also the kind shown to the user.
    pub id: String,
    pub regex: Regex,
    /// Pattern text as compiled (after translation), for tests and reports.
    pub pattern: String,
    /// `secretGroup`; 0: the first non-empty capture group, else the match.
    pub secret_group: usize,
    /// Minimum Shannon entropy of the secret; 0.0: none.
    pub entropy: f64,
    /// Lowercase keywords; empty: the rule always runs.
    pub keywords: Vec<String>,
    pub allowlists: Vec<Allowlist>,
    /// The rule's `path` (gitleaks only runs it on matching files). Ignored
    /// here: redaction errs towards removing a secret wherever it is.
    pub path: Option<String>,
    /// The format of the rule's value on its own, for rules written as a
    /// provider's name, an assignment and a value whose value format fixes
    /// more than a character class and a length (see [`value_format`]).
    pub value: Option<ValueFormat>,
    /// The value of a rule written as a provider's name, an assignment and
    /// a value, on its own, in full (`^(?:[a-z0-9]{16})$` for LinkedIn's
    /// client secret), whatever its format: what a literal must be to be
    /// this rule's value when the provider is named near it but not before
    /// it (see [`semi_generic_value`] and [`named_value`]).
    pub named_value: Option<Regex>,
}

/// What a semi-generic rule's value looks like without the name before
/// it: `[a-f0-9]{8}:[a-f0-9]{8}` (Sidekiq), a UUID (Heroku, HubSpot,
/// Snyk), `[0-9]{5,16}:A[\w-]{34}` (Telegram), `su[0-9a-zA-Z]{12}`
/// (Sumo Logic).
#[derive(Debug)]
pub struct ValueFormat {
    /// `^(?:…)$`: a literal that is such a value, in full.
    pub pattern: String,
    /// The same, with each part that varies (a class of more than two
    /// characters, or a repetition of one) in a capture group, in order.
    pub parts: Regex,
    /// How much the format fixes, in bits over token characters: for each
    /// character of its shortest value, `log2(64 / choices)` (a literal
    /// fixes 6 bits, a hex digit about 1.5, `[0-9A-Za-z]` nothing to speak
    /// of). Sidekiq's format fixes 31 bits, a UUID's 73, Sumo Logic's `su`
    /// prefix 12.
    pub bits: f64,
}

impl ValueFormat {
    /// The parts of `literal` that vary (`c064c74d` and `d6b44ccb` of
    /// `c064c74d:d6b44ccb`), if `literal` is of this format.
    pub fn varying<'a>(&self, literal: &'a str) -> Option<Vec<&'a str>> {
        let caps = self.parts.captures(literal.as_bytes())?;
        Some(
            caps.iter()
                .skip(1)
                .flatten()
                .filter_map(|g| literal.get(g.start()..g.end()))
                .collect(),
        )
    }
}

/// Something the catalog names that could not be used.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub rule: String,
    /// `regex`, or `allowlist regex`.
    pub what: &'static str,
    pub error: String,
}

/// The compiled catalog: rules, global allowlists and the keyword prefilter.
pub struct Catalog {
    pub rules: Vec<Rule>,
    pub global: Vec<Allowlist>,
    pub skipped: Vec<Skipped>,
    /// Rules with no regex (gitleaks' path-only rules, e.g. `pkcs12-file`):
    /// they flag file names, not text. `neverSend` covers those files.
    pub path_only: Vec<String>,
    /// Rules that compiled only after [`translate::go_to_rust`].
    pub translated: Vec<String>,
    /// Every distinct keyword, ASCII case-insensitive.
    pub prefilter: AhoCorasick,
    /// For each prefilter pattern, the rules that list it.
    pub keyword_rules: Vec<Vec<usize>>,
    /// Rules without keywords: they run on every text.
    pub always: Vec<usize>,
    /// Every [`Rule::value`], one set: which rules' value formats a
    /// literal is, in one pass over it.
    pub values: RegexSet,
    /// For each pattern of `values`, its rule.
    pub value_rules: Vec<usize>,
    /// How the words of every allowlist's stopwords are spelled.
    pub words: Words,
}

#[derive(Deserialize)]
struct RawCatalog {
    #[serde(default)]
    allowlist: Option<RawAllowlist>,
    #[serde(default)]
    allowlists: Vec<RawAllowlist>,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRule {
    id: String,
    regex: Option<String>,
    #[serde(default)]
    secret_group: usize,
    #[serde(default)]
    entropy: f64,
    #[serde(default)]
    keywords: Vec<String>,
    path: Option<String>,
    /// The older single-table form, still accepted by gitleaks.
    allowlist: Option<RawAllowlist>,
    #[serde(default)]
    allowlists: Vec<RawAllowlist>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawAllowlist {
    condition: Option<String>,
    regex_target: Option<String>,
    #[serde(default)]
    regexes: Vec<String>,
    #[serde(default)]
    stopwords: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    commits: Vec<String>,
}

/// A regex as gitleaks writes it, compiled for `regex::bytes`: as is, then
/// translated, each with Unicode off and then on. `Err` carries the first
/// error (the one for the pattern as written).
fn compile(pattern: &str) -> Result<(Regex, String, bool), String> {
    let build = |p: &str, unicode: bool| {
        RegexBuilder::new(p)
            .unicode(unicode)
            .size_limit(64 << 20)
            .build()
    };
    let first = match build(pattern, false).or_else(|_| build(pattern, true)) {
        Ok(re) => return Ok((re, pattern.to_string(), false)),
        Err(e) => e.to_string(),
    };
    let t = translate::go_to_rust(pattern);
    if t != pattern {
        if let Ok(re) = build(&t, false).or_else(|_| build(&t, true)) {
            return Ok((re, t, true));
        }
    }
    Err(first)
}

/// How gitleaks' semi-generic rules (`GenerateSemiGenericRegex` in its
/// generator) join the provider's name to the value:
/// `[\w.-]{0,50}?(?:NAME)(?:[ \t\w.-]{0,20})[\s'"]{0,3}OPERATOR[\x60'"\s=]{0,5}(VALUE)…`.
const SEMI_GENERIC_NAME: &str = r"[\w.-]{0,50}?(?";
const SEMI_GENERIC_ASSIGN: &str = r#")(?:[ \t\w.-]{0,20})[\s'"]{0,3}"#;

/// A catalog regex as regex-syntax's tree: byte classes first (gitleaks'
/// patterns are ASCII), Unicode where a pattern needs it.
pub fn parse_hir(pattern: &str) -> Option<Hir> {
    let parse = |unicode: bool| {
        regex_syntax::ParserBuilder::new()
            .unicode(unicode)
            .utf8(false)
            .build()
            .parse(pattern)
            .ok()
    };
    parse(false).or_else(|| parse(true))
}

/// The value format of a semi-generic rule (its last capture group at the
/// top level: the value after the assignment), when that format is more
/// than a class and a length ([`fixes_something`]). A literal of such a
/// format may be that rule's secret even where the provider's name is not
/// before it (`CONFIG_7 = "c064c74d:d6b44ccb"`); one of `[a-z0-9]{32}`
/// could be anything, and is left to redaction's randomness test alone.
pub fn value_format(value: &Hir) -> Option<ValueFormat> {
    if !fixes_something(value) {
        return None;
    }
    let build = |p: &str| RegexBuilder::new(p).unicode(false).build().ok();
    let pattern = format!("^(?:{value})$");
    build(&pattern)?;
    Some(ValueFormat {
        parts: build(&format!("^(?:{})$", capture_varying(value)))?,
        bits: fixed_bits(value),
        pattern,
    })
}

/// The value of a semi-generic rule: its last capture group at the top
/// level (not the first group, gitleaks' secret: in `sonar-api-token` that
/// is a word of the name, `(login|token)`).
pub fn semi_generic_value(pattern: &str) -> Option<Hir> {
    if !(pattern.contains(SEMI_GENERIC_NAME) && pattern.contains(SEMI_GENERIC_ASSIGN)) {
        return None;
    }
    let hir = parse_hir(pattern)?;
    let HirKind::Concat(parts) = hir.kind() else {
        return None;
    };
    parts
        .iter()
        .rev()
        .find(|p| matches!(p.kind(), HirKind::Capture(_)))
        .cloned()
}

/// [`Rule::named_value`]: a semi-generic rule's value, in full, with the
/// rule's own flags (case-insensitive where the rule is).
fn named_value(value: &Hir) -> Option<Regex> {
    RegexBuilder::new(&format!("^(?:{value})$"))
        .unicode(false)
        .build()
        .ok()
}

/// The number of characters class `h` allows, if `h` is a class.
fn class_size(h: &Hir) -> Option<usize> {
    match h.kind() {
        HirKind::Class(Class::Bytes(c)) => Some(
            c.ranges()
                .iter()
                .map(|r| usize::from(r.end() - r.start()) + 1)
                .sum(),
        ),
        HirKind::Class(Class::Unicode(c)) => Some(
            c.ranges()
                .iter()
                .map(|r| r.end() as usize - r.start() as usize + 1)
                .sum(),
        ),
        _ => None,
    }
}

/// Whether every string `h` matches has a fixed piece in it: a literal,
/// or a class of at most two characters (`[Aa]`: a letter of a
/// case-insensitive literal; `[%|]`), not under `?` or `*`. Every
/// alternative must have one.
fn fixes_something(h: &Hir) -> bool {
    match h.kind() {
        HirKind::Literal(_) => true,
        HirKind::Class(_) => class_size(h).is_some_and(|n| n <= 2),
        HirKind::Repetition(r) => r.min >= 1 && fixes_something(&r.sub),
        HirKind::Capture(c) => fixes_something(&c.sub),
        HirKind::Concat(v) => v.iter().any(fixes_something),
        HirKind::Alternation(v) => v.iter().all(fixes_something),
        HirKind::Empty | HirKind::Look(_) => false,
    }
}

/// [`ValueFormat::bits`] of `h`: the least over its alternatives.
fn fixed_bits(h: &Hir) -> f64 {
    match h.kind() {
        HirKind::Literal(l) => 6.0 * l.0.len() as f64,
        HirKind::Class(_) => class_size(h).map_or(0.0, |n| (64.0 / n as f64).log2().max(0.0)),
        HirKind::Repetition(r) => f64::from(r.min) * fixed_bits(&r.sub),
        HirKind::Capture(c) => fixed_bits(&c.sub),
        HirKind::Concat(v) => v.iter().map(fixed_bits).sum(),
        HirKind::Alternation(v) => v.iter().map(fixed_bits).fold(f64::INFINITY, f64::min),
        HirKind::Empty | HirKind::Look(_) => 0.0,
    }
}

/// `h` with its own groups made plain and each part that varies (a class
/// of more than two characters, or a repetition of one) in a group.
fn capture_varying(h: &Hir) -> Hir {
    let group = |sub: Hir| {
        Hir::capture(Capture {
            index: 1, // renumbered when the pattern is parsed again
            name: None,
            sub: Box::new(sub),
        })
    };
    let varies = |h: &Hir| class_size(h).is_some_and(|n| n > 2);
    match h.kind() {
        HirKind::Class(_) if varies(h) => group(h.clone()),
        HirKind::Repetition(r) if varies(&r.sub) => group(h.clone()),
        HirKind::Repetition(r) => Hir::repetition(Repetition {
            sub: Box::new(capture_varying(&r.sub)),
            ..r.clone()
        }),
        HirKind::Capture(c) => capture_varying(&c.sub),
        HirKind::Concat(v) => Hir::concat(v.iter().map(capture_varying).collect()),
        HirKind::Alternation(v) => Hir::alternation(v.iter().map(capture_varying).collect()),
        _ => h.clone(),
    }
}

fn allowlist(raw: &RawAllowlist, owner: &str, skipped: &mut Vec<Skipped>) -> Allowlist {
    let mut regexes = Vec::new();
    for r in &raw.regexes {
        match compile(r) {
            Ok((re, _, _)) => regexes.push(re),
            Err(error) => skipped.push(Skipped {
                rule: owner.to_string(),
                what: "allowlist regex",
                error,
            }),
        }
    }
    Allowlist {
        all: raw
            .condition
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case("AND")),
        target: match raw.regex_target.as_deref() {
            Some("match") => Target::Match,
            Some("line") => Target::Line,
            _ => Target::Secret,
        },
        regexes,
        stopwords: raw.stopwords.iter().map(|s| s.to_lowercase()).collect(),
        has_path_or_commit: !raw.paths.is_empty() || !raw.commits.is_empty(),
    }
}

impl Catalog {
    /// Parse and compile `toml`. Only a file that is not TOML of the
    /// catalog's shape is an error; bad rules are skipped and listed.
    pub fn build(toml: &str) -> Result<Catalog, String> {
        let raw: RawCatalog =
            toml::from_str(toml).map_err(|e| format!("the secret catalog is not valid: {e}"))?;
        let mut skipped = Vec::new();
        let global: Vec<Allowlist> = raw
            .allowlist
            .iter()
            .chain(&raw.allowlists)
            .map(|a| allowlist(a, "(global)", &mut skipped))
            .collect();
        let mut rules = Vec::new();
        let mut path_only = Vec::new();
        let mut translated = Vec::new();
        for r in raw.rules {
            let Some(pattern) = r.regex.as_deref() else {
                path_only.push(r.id);
                continue;
            };
            let (regex, pattern, was_translated) = match compile(pattern) {
                Ok(c) => c,
                Err(error) => {
                    skipped.push(Skipped {
                        rule: r.id,
                        what: "regex",
                        error,
                    });
                    continue;
                }
            };
            if was_translated {
                translated.push(r.id.clone());
            }
            let allowlists = r
                .allowlist
                .iter()
                .chain(&r.allowlists)
                .map(|a| allowlist(a, &r.id, &mut skipped))
                .collect();
            // (A format that does not compile alone, none today, only means
            // that rule's values need its name before them.)
            let semi_generic = semi_generic_value(&pattern);
            rules.push(Rule {
                value: semi_generic.as_ref().and_then(value_format),
                named_value: semi_generic.as_ref().and_then(named_value),
                secret_group: r.secret_group.min(regex.captures_len().saturating_sub(1)),
                entropy: r.entropy,
                keywords: r.keywords.iter().map(|k| k.to_lowercase()).collect(),
                allowlists,
                path: r.path,
                id: r.id,
                regex,
                pattern,
            });
        }

        let mut words: Vec<String> = Vec::new();
        let mut keyword_rules: Vec<Vec<usize>> = Vec::new();
        let mut always = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            if rule.keywords.is_empty() {
                always.push(i);
            }
            for k in &rule.keywords {
                let at = match words.iter().position(|w| w == k) {
                    Some(at) => at,
                    None => {
                        words.push(k.clone());
                        keyword_rules.push(Vec::new());
                        words.len() - 1
                    }
                };
                if !keyword_rules[at].contains(&i) {
                    keyword_rules[at].push(i);
                }
            }
        }
        let prefilter = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&words)
            .map_err(|e| format!("the secret catalog's keywords: {e}"))?;

        let words = Words::learn(
            global
                .iter()
                .chain(rules.iter().flat_map(|r| &r.allowlists))
                .flat_map(|a| &a.stopwords)
                .map(String::as_str),
        );
        let value_rules: Vec<usize> = (0..rules.len())
            .filter(|&i| rules[i].value.is_some())
            .collect();
        let values = RegexSetBuilder::new(
            value_rules
                .iter()
                .map(|&i| &rules[i].value.as_ref().unwrap().pattern),
        )
        .unicode(false)
        .build()
        .map_err(|e| format!("the secret catalog's value formats: {e}"))?;
        Ok(Catalog {
            words,
            values,
            value_rules,
            rules,
            global,
            skipped,
            path_only,
            translated,
            prefilter,
            keyword_rules,
            always,
        })
    }

    /// Rules whose regex could not be used (allowlist regexes not counted).
    pub fn skipped_rules(&self) -> impl Iterator<Item = &Skipped> {
        self.skipped.iter().filter(|s| s.what == "regex")
    }

    /// A report for people: what loaded, what did not and why.
    pub fn report(&self) -> String {
        let mut s = format!(
            "{} rules loaded ({} after translating Go regex syntax, {} with a value format known without the name), {} skipped, {} path-only rules not used",
            self.rules.len(),
            self.translated.len(),
            self.value_rules.len(),
            self.skipped_rules().count(),
            self.path_only.len()
        );
        for k in &self.skipped {
            s.push_str(&format!(
                "\n  skipped {} of {}: {}",
                k.what,
                k.rule,
                k.error.replace('\n', " ")
            ));
        }
        for t in &self.translated {
            s.push_str(&format!("\n  translated: {t}"));
        }
        s
    }
}
