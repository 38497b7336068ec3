//! The explain request: from a document, a selection and the settings to
//! the exact [`Plan`] that would be sent (or the reason nothing may be).
//!
//! Order of checks, each before any byte leaves the machine: the file's
//! path against `neverSend`; the selection and its enclosing scope go
//! through [`redact`] whole (within [`REDACT_BUDGET`], else nothing is
//! sent), are cut to size and built into the prompt, which goes through
//! [`redact`] once more; then the provider body is built. A dry run stops
//! here and returns the plan.
//!
//! The enclosing scope (for an empty selection: what to explain) is found
//! by [`enclosing_scope`], a brace/indentation heuristic: this build has no
//! syntax trees yet. It prefers the innermost function-like block, falls
//! back to the outermost block, then to the lines around the cursor.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use regex::Regex;
use ropey::Rope;

use super::chat::{self, ChatRequest, Plan};
use super::{glob, redact, RemoteConfig, RemoteError};

/// Longest selection sent as is; longer ones are cut (and the prompt says so).
pub const MAX_SELECTION_CHARS: usize = 16_000;
/// Longest enclosing scope sent; a longer one is windowed around the selection.
pub const MAX_SCOPE_CHARS: usize = 16_000;
/// A selection with fewer non-blank characters than this is taken for a
/// cursor: the enclosing scope is explained.
const MIN_SELECTION_CHARS: usize = 2;
/// Lines of context kept on each side of the selection when windowing.
const WINDOW_LINES: usize = 60;
/// Time allowed for redacting what one explain would send, selection of
/// any size included (10,000 lines take well under 50 ms); past it the
/// request is refused with [`RemoteError::TooLarge`] and nothing is sent.
pub const REDACT_BUDGET: Duration = Duration::from_secs(2);
/// Larger selections are refused without trying to redact them.
pub const MAX_REDACT_BYTES: usize = 64 << 20;

pub const SYSTEM_PROMPT: &str = "You explain code to a software developer inside their editor. \
Answer in concise Markdown: start with one or two sentences saying what the code does and why, \
then only the points that matter (inputs and outputs, side effects, edge cases, likely bugs). \
Refer to identifiers in `backticks`. Do not restate the code line by line and do not repeat it back. \
Values shown as [REDACTED:kind] were removed for privacy before sending; do not guess them.";

/// Where the code comes from: plain data, no LSP types.
pub struct Source<'a> {
    pub rope: &'a Rope,
    /// Workspace-relative path (what the prompt shows and globs match).
    pub path: &'a str,
    /// The absolute path when known, also checked against `neverSend`.
    pub abs_path: Option<&'a str>,
    pub language: &'a str,
    /// Selection as char indices; `start == end` (or a selection of less
    /// than two non-blank characters) means "the enclosing scope".
    pub start: usize,
    pub end: usize,
}

/// A prepared explain request.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub plan: Plan,
    /// Secrets removed, by kind.
    pub redactions: BTreeMap<&'static str, usize>,
    /// 0-based inclusive line ranges of what was sent.
    pub selection_lines: (usize, usize),
    pub scope_lines: Option<(usize, usize)>,
}

pub fn prepare(cfg: &RemoteConfig, src: &Source) -> Result<Prepared, RemoteError> {
    for p in std::iter::once(src.path).chain(src.abs_path) {
        if let Some(pattern) = glob::never_send(p, &cfg.never_send) {
            return Err(RemoteError::NeverSend {
                path: src.path.to_string(),
                pattern,
            });
        }
    }
    if !cfg.is_configured() {
        return Err(RemoteError::NotConfigured(
            "set remote.model (and remote.provider, remote.endpoint)".into(),
        ));
    }
    let rope = src.rope;
    let (start, mut end) = (
        src.start.min(src.end).min(rope.len_chars()),
        src.end.max(src.start).min(rope.len_chars()),
    );
    // Shorter than a token: an editor's bare cursor (Helix sends the one
    // character under it as the range), not a selection worth a question
    // of its own. Explain the enclosing scope, as for an empty range.
    let non_blank = rope
        .slice(start..end)
        .chars()
        .filter(|c| !c.is_whitespace())
        .take(MIN_SELECTION_CHARS)
        .count();
    if non_blank < MIN_SELECTION_CHARS {
        end = start;
    }
    let sel_first = rope.char_to_line(start);
    // A selection ending at column 0 does not include that line.
    let sel_last = if end > start && end == rope.line_to_char(rope.char_to_line(end)) {
        rope.char_to_line(end).saturating_sub(1).max(sel_first)
    } else {
        rope.char_to_line(end)
    };
    let scope = trim_blank(
        rope,
        enclosing_scope(rope, src.language, sel_first, sel_last),
    );

    // Secrets go before the texts are cut to size: a cut through a token
    // would leave a piece no rule recognises. The whole selection is
    // redacted (or nothing is sent), within one time budget.
    let deadline = Instant::now() + REDACT_BUDGET;
    let mut redactions: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut clean = |text: &str| -> Result<String, RemoteError> {
        let too_large = || RemoteError::TooLarge {
            chars: text.chars().count(),
            ms: REDACT_BUDGET.as_millis() as u64,
        };
        if text.len() > MAX_REDACT_BYTES {
            return Err(too_large());
        }
        let r =
            redact::redact_within(text, src.language, Some(deadline)).map_err(|_| too_large())?;
        for (k, n) in r.counts {
            *redactions.entry(k).or_default() += n;
        }
        Ok(r.text)
    };
    let (selection_lines, selection_text, scope_part) = if start == end {
        let lines = window(scope, (sel_first, sel_first));
        (lines, cut_scope(clean(&line_text_full(rope, lines))?), None)
    } else {
        let text = clean(&rope.slice(start..end).to_string())?;
        let scope_part = if scope.0 < sel_first || scope.1 > sel_last {
            let lines = window(scope, (sel_first, sel_last));
            Some((lines, cut_scope(clean(&line_text_full(rope, lines))?)))
        } else {
            None
        };
        ((sel_first, sel_last), text, scope_part)
    };

    let user = user_message(
        src.path,
        src.language,
        selection_lines,
        &selection_text,
        scope_part.as_ref(),
        start == end,
    );
    // Once more over the whole message: the path, and anything a cut or
    // the fences put together.
    let user = clean(&user)?;
    let request = ChatRequest {
        system: SYSTEM_PROMPT.to_string(),
        user,
    };
    let plan = chat::plan(cfg, &request)?;
    Ok(Prepared {
        plan,
        redactions,
        selection_lines,
        scope_lines: scope_part.map(|(l, _)| l),
    })
}

/// `range` without blank lines at either end.
fn trim_blank(rope: &Rope, (mut a, mut b): (usize, usize)) -> (usize, usize) {
    while a < b && line(rope, a).trim().is_empty() {
        a += 1;
    }
    while b > a && line(rope, b).trim().is_empty() {
        b -= 1;
    }
    (a, b)
}

/// Shrink a line range that is too long to a window around `focus`.
fn window(range: (usize, usize), focus: (usize, usize)) -> (usize, usize) {
    let (a, b) = range;
    let (fa, fb) = (focus.0.clamp(a, b), focus.1.clamp(a, b));
    // Rough: ~40 chars per line; exact sizes are bounded again in `line_text`.
    if (b - a + 1) * 40 <= MAX_SCOPE_CHARS {
        return (a, b);
    }
    (
        fa.saturating_sub(WINDOW_LINES).max(a),
        (fb + WINDOW_LINES).min(b),
    )
}

#[cfg(test)]
fn line_text(rope: &Rope, lines: (usize, usize)) -> String {
    cut_scope(line_text_full(rope, lines))
}

/// Lines `a..=b` as they are (redact before [`cut_scope`]).
fn line_text_full(rope: &Rope, (a, b): (usize, usize)) -> String {
    let start = rope.line_to_char(a);
    let end = if b + 1 < rope.len_lines() {
        rope.line_to_char(b + 1)
    } else {
        rope.len_chars()
    };
    rope.slice(start..end).to_string()
}

/// A scope text bounded to [`MAX_SCOPE_CHARS`], saying where it was cut.
fn cut_scope(mut s: String) -> String {
    if s.chars().count() > MAX_SCOPE_CHARS {
        s = s.chars().take(MAX_SCOPE_CHARS).collect();
        s.push_str("\n… (cut here)\n");
    }
    s
}

/// A fence longer than any backtick run in `code`.
fn fence(code: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in code.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    "`".repeat((longest + 1).max(3))
}

fn block(lang: &str, code: &str) -> String {
    let f = fence(code);
    let code = code.strip_suffix('\n').unwrap_or(code);
    format!("{f}{lang}\n{code}\n{f}")
}

fn user_message(
    path: &str,
    lang: &str,
    sel: (usize, usize),
    selection: &str,
    scope: Option<&((usize, usize), String)>,
    whole_scope: bool,
) -> String {
    let lines = |(a, b): (usize, usize)| {
        if a == b {
            format!("line {}", a + 1)
        } else {
            format!("lines {}–{}", a + 1, b + 1)
        }
    };
    let mut m = format!("File: `{path}` (language: {lang})\n\n");
    let mut selection = selection.to_string();
    let mut cut = false;
    if selection.chars().count() > MAX_SELECTION_CHARS {
        selection = selection.chars().take(MAX_SELECTION_CHARS).collect();
        cut = true;
    }
    if let Some((range, text)) = scope {
        m.push_str(&format!(
            "The enclosing scope, {}:\n{}\n\n",
            lines(*range),
            block(lang, text)
        ));
        m.push_str(&format!(
            "Explain the selected code, {}:\n{}\n",
            lines(sel),
            block(lang, &selection)
        ));
    } else if whole_scope {
        m.push_str(&format!(
            "Explain this code ({}):\n{}\n",
            lines(sel),
            block(lang, &selection)
        ));
    } else {
        m.push_str(&format!(
            "Explain the selected code, {}:\n{}\n",
            lines(sel),
            block(lang, &selection)
        ));
    }
    if cut {
        m.push_str(&format!(
            "\n(The selection was cut to its first {MAX_SELECTION_CHARS} characters.)\n"
        ));
    }
    m
}

// ---------------------------------------------------------------------------
// Enclosing scope, without a parser.
// ---------------------------------------------------------------------------

/// Languages whose blocks are made by indentation.
fn indentation_language(lang: &str) -> bool {
    matches!(
        lang,
        "python"
            | "yaml"
            | "coffeescript"
            | "nim"
            | "fsharp"
            | "haskell"
            | "elm"
            | "gdscript"
            | "pug"
            | "sass"
    )
}

/// Languages where `#` starts a comment.
fn hash_comments(lang: &str) -> bool {
    matches!(
        lang,
        "python"
            | "shellscript"
            | "sh"
            | "bash"
            | "ruby"
            | "perl"
            | "r"
            | "toml"
            | "yaml"
            | "elixir"
            | "makefile"
            | "dockerfile"
            | "cmake"
            | "powershell"
            | "nim"
            | "coffeescript"
    )
}

/// The 0-based inclusive line range of the scope enclosing lines
/// `first..=last`: the innermost function-like block, else the outermost
/// block, else ±15 lines around the selection.
pub fn enclosing_scope(rope: &Rope, lang: &str, first: usize, last: usize) -> (usize, usize) {
    let found = if indentation_language(lang) {
        indent_scope(rope, first, last)
    } else {
        brace_scope(rope, lang, first, last).or_else(|| indent_scope(rope, first, last))
    };
    found.unwrap_or_else(|| {
        let n = rope.len_lines().saturating_sub(1);
        (first.saturating_sub(15), (last + 15).min(n))
    })
}

static FUNCTION_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?x)
        \b(?:fn|func|function|def|fun|sub|proc|method|lambda|constructor|init)\b
        | =>\s*\{?\s*$
        | ^\s*(?:[\w:<>,\*&\[\]\.]+\s+)*[\w~:<>]+\s*\([^;]*\)\s*(?:const|override|noexcept|mutable|throws\s+[\w.,\s]+|->\s*[^{]+|:\s*[^{]+)*\s*\{?\s*$
        ",
    )
    .unwrap()
});

static CONTROL_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*\}?\s*(?:if|else|for|foreach|while|switch|catch|do|try|match|loop|finally|unsafe|select|case|with)\b").unwrap()
});

fn indent_of(line: &str) -> usize {
    crate::engine::stop::indent_width(line)
}

fn line(rope: &Rope, i: usize) -> String {
    rope.line(i)
        .to_string()
        .trim_end_matches(['\n', '\r'])
        .to_string()
}

/// Doc comments, attributes and decorators directly above `header` belong
/// to it.
fn with_leading_comments(rope: &Rope, header: usize) -> usize {
    let mut h = header;
    while h > 0 {
        let t = line(rope, h - 1);
        let t = t.trim_start();
        let attached = t.starts_with("//")
            || t.starts_with("#[")
            || t.starts_with('@')
            || t.starts_with("/*")
            || t.starts_with("* ")
            || t == "*"
            || t.starts_with("*/")
            || t.starts_with("--")
            || t.starts_with(";;")
            || (t.starts_with('#') && !t.starts_with("#include") && !t.starts_with("#define"));
        if !attached || t.is_empty() {
            break;
        }
        h -= 1;
    }
    h
}

/// Brace blocks by a forward scan that skips strings and comments.
fn brace_scope(rope: &Rope, lang: &str, first: usize, last: usize) -> Option<(usize, usize)> {
    // Multi-line blocks that contain the selection's lines, innermost first.
    let mut enclosing: Vec<(usize, usize)> = brace_pairs(rope, hash_comments(lang))
        .into_iter()
        .filter(|&(o, c)| {
            let (lo, lc) = (rope.char_to_line(o), rope.char_to_line(c));
            lc > lo && lo <= first && lc >= last
        })
        .collect();
    enclosing.sort_by_key(|&(o, _)| std::cmp::Reverse(o));
    if enclosing.is_empty() {
        return None;
    }
    let header_of = |open: usize| -> usize {
        let l = rope.char_to_line(open);
        // Allman style: a `{` alone on its line belongs to the line above.
        if line(rope, l).trim() == "{" && l > 0 {
            let mut h = l - 1;
            while h > 0 && line(rope, h).trim().is_empty() {
                h -= 1;
            }
            h
        } else {
            // The header may span several lines (long parameter lists):
            // walk up while the line above does not end a statement.
            let mut h = l;
            while h > 0 {
                let above = line(rope, h - 1);
                let t = above.trim_end();
                if t.is_empty() || t.ends_with([';', '{', '}']) || t.trim_start().starts_with("//")
                {
                    break;
                }
                if indent_of(&above) < indent_of(&line(rope, h)) || t.ends_with([',', '(']) {
                    h -= 1;
                } else {
                    break;
                }
            }
            h
        }
    };
    let function = enclosing.iter().find(|&&(o, _)| {
        let h = header_of(o);
        let text: String = (h..=rope.char_to_line(o))
            .map(|i| line(rope, i))
            .collect::<Vec<_>>()
            .join(" ");
        FUNCTION_HEADER.is_match(&text) && !CONTROL_HEADER.is_match(&text)
    });
    let &(o, c) = function.unwrap_or(enclosing.last().unwrap());
    Some((
        with_leading_comments(rope, header_of(o)),
        rope.char_to_line(c),
    ))
}

/// All matched `{…}` pairs as char indices (an unclosed `{` closes at EOF).
fn brace_pairs(rope: &Rope, hash: bool) -> Vec<(usize, usize)> {
    #[derive(PartialEq)]
    enum S {
        Code,
        LineComment,
        BlockComment,
        Str(char),
    }
    let mut st = S::Code;
    let mut stack = Vec::new();
    let mut pairs = Vec::new();
    let mut escaped = false;
    let chars: Vec<char> = rope.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied().unwrap_or('\0');
        match st {
            S::Code => match c {
                '/' if next == '/' => st = S::LineComment,
                '/' if next == '*' => {
                    st = S::BlockComment;
                    i += 1;
                }
                '#' if hash => st = S::LineComment,
                '"' | '`' => st = S::Str(c),
                // `'` opens a char literal only when it closes on the same
                // line soon (Rust lifetimes, English in comments...).
                '\'' if chars[i + 1..].iter().take(4).any(|&x| x == '\'') => st = S::Str('\''),
                '{' => stack.push(i),
                '}' => {
                    if let Some(o) = stack.pop() {
                        pairs.push((o, i));
                    }
                }
                _ => {}
            },
            S::LineComment => {
                if c == '\n' {
                    st = S::Code;
                }
            }
            S::BlockComment => {
                if c == '*' && next == '/' {
                    st = S::Code;
                    i += 1;
                }
            }
            S::Str(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q || (c == '\n' && q != '`') {
                    st = S::Code;
                }
            }
        }
        i += 1;
    }
    let end = chars.len().saturating_sub(1);
    pairs.extend(stack.into_iter().map(|o| (o, end)));
    pairs
}

/// Indentation blocks: headers ending in `:` (Python) or any less-indented
/// line above (YAML and friends).
fn indent_scope(rope: &Rope, first: usize, last: usize) -> Option<(usize, usize)> {
    let n = rope.len_lines();
    let is_blank = |i: usize| line(rope, i).trim().is_empty();
    // The indentation the selection lives at.
    let mut probe = first;
    while probe < n && is_blank(probe) {
        probe += 1;
    }
    if probe >= n {
        return None;
    }
    let mut level = indent_of(&line(rope, probe));
    let mut headers = Vec::new(); // (line, indent), innermost first
    let mut i = first;
    while i > 0 && level > 0 {
        i -= 1;
        if is_blank(i) {
            continue;
        }
        let l = line(rope, i);
        let ind = indent_of(&l);
        if ind < level {
            headers.push((i, ind));
            level = ind;
        }
    }
    // Is the selection's own first line a header (explain on a `def` line)?
    let own = line(rope, probe);
    if own.trim_end().ends_with(':') && def_like(&own) {
        headers.insert(0, (probe, indent_of(&own)));
    }
    let end_of = |h: usize, ind: usize| -> usize {
        let mut e = h;
        let mut j = h + 1;
        while j < n {
            if !is_blank(j) {
                if indent_of(&line(rope, j)) <= ind {
                    break;
                }
                e = j;
            }
            j += 1;
        }
        e
    };
    let candidates: Vec<(usize, usize)> = headers
        .iter()
        .map(|&(h, ind)| (h, end_of(h, ind)))
        .filter(|&(_, e)| e >= last)
        .collect();
    let pick = candidates
        .iter()
        .find(|&&(h, _)| def_like(&line(rope, h)))
        .or_else(|| candidates.last())
        .copied()?;
    Some((with_leading_comments(rope, pick.0), pick.1))
}

fn def_like(l: &str) -> bool {
    let t = l.trim_start();
    [
        "def ",
        "async def ",
        "class ",
        "fn ",
        "func ",
        "function ",
        "fun ",
        "let ",
        "proc ",
        "sub ",
    ]
    .iter()
    .any(|k| t.starts_with(k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::Provider;

    /// `$0` is the cursor (empty selection); `$1…$2` a selection.
    fn scope_of(fixture: &str, lang: &str) -> String {
        let (text, first, last) = if let Some(at) = fixture.find("$0") {
            let text = fixture.replace("$0", "");
            let l = fixture[..at].matches('\n').count();
            (text, l, l)
        } else {
            let a = fixture.find("$1").unwrap();
            let b = fixture.find("$2").unwrap();
            let text = fixture.replace("$1", "").replace("$2", "");
            (
                text,
                fixture[..a].matches('\n').count(),
                fixture[..b].matches('\n').count(),
            )
        };
        let rope = Rope::from_str(&text);
        let (a, b) = enclosing_scope(&rope, lang, first, last);
        line_text(&rope, (a, b))
    }

    #[test]
    fn rust_function_around_the_cursor_not_the_if() {
        let src = "use std::fmt;\n\n/// Adds.\nfn add(a: i32, b: i32) -> i32 {\n    if a > 0 {\n        $0return a + b;\n    }\n    0\n}\n\nfn other() {}\n";
        assert_eq!(scope_of(src, "rust"), "/// Adds.\nfn add(a: i32, b: i32) -> i32 {\n    if a > 0 {\n        return a + b;\n    }\n    0\n}\n");
    }

    #[test]
    fn method_inside_a_class_and_braces_in_strings() {
        let src = "class A {\n  // say hi\n  greet(name) {\n    const s = \"}{\";\n    $0return `hi ${name}`;\n  }\n}\n";
        assert_eq!(
            scope_of(src, "javascript"),
            "  // say hi\n  greet(name) {\n    const s = \"}{\";\n    return `hi ${name}`;\n  }\n"
        );
    }

    #[test]
    fn allman_braces_and_c_functions() {
        let src = "static int\nsquare(int x)\n{\n    $0return x * x;\n}\n";
        assert_eq!(
            scope_of(src, "c"),
            "square(int x)\n{\n    return x * x;\n}\n"
        );
    }

    #[test]
    fn python_def_with_decorator() {
        let src = "import os\n\n@cache\ndef fib(n):\n    if n < 2:\n        $0return n\n    return fib(n - 1) + fib(n - 2)\n\nprint(fib(3))\n";
        assert_eq!(scope_of(src, "python"), "@cache\ndef fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n");
    }

    #[test]
    fn python_cursor_on_the_def_line() {
        let src = "def $0f(x):\n    return x\n\ny = 1\n";
        assert_eq!(scope_of(src, "python"), "def f(x):\n    return x\n");
    }

    #[test]
    fn top_level_code_gets_surrounding_lines() {
        let src = (0..40)
            .map(|i| format!("x{i} = {i}\n"))
            .collect::<String>()
            .replace("x20 =", "$0x20 =");
        let s = scope_of(&src, "python");
        assert!(
            s.starts_with("x5 = 5\n") && s.ends_with("x35 = 35\n"),
            "{s}"
        );
    }

    fn cfg() -> RemoteConfig {
        RemoteConfig {
            provider: Provider::Openai,
            model: "gpt-test".into(),
            endpoint: Some("http://127.0.0.1:9/v1".into()),
            ..Default::default()
        }
    }

    #[test]
    fn prompt_carries_path_language_selection_and_scope() {
        let text = "def f(x):\n    y = x * 2\n    return y\n";
        let rope = Rope::from_str(text);
        let start = text.find("y = x").unwrap();
        let src = Source {
            rope: &rope,
            path: "src/m.py",
            abs_path: None,
            language: "python",
            start,
            end: start + 9,
        };
        let p = prepare(&cfg(), &src).unwrap();
        let user = p.plan.body["messages"][1]["content"].as_str().unwrap();
        assert_eq!(
            user,
            "File: `src/m.py` (language: python)\n\nThe enclosing scope, lines 1–3:\n```python\ndef f(x):\n    y = x * 2\n    return y\n```\n\nExplain the selected code, line 2:\n```python\ny = x * 2\n```\n"
        );
        assert_eq!(p.plan.body["messages"][0]["content"], SYSTEM_PROMPT);
        assert_eq!(p.selection_lines, (1, 1));
        assert_eq!(p.scope_lines, Some((0, 2)));
    }

    #[test]
    fn empty_selection_sends_the_scope_once() {
        let text = "fn a() {\n    b();\n}\n";
        let rope = Rope::from_str(text);
        let at = text.find("b()").unwrap();
        let src = Source {
            rope: &rope,
            path: "a.rs",
            abs_path: None,
            language: "rust",
            start: at,
            end: at,
        };
        let p = prepare(&cfg(), &src).unwrap();
        let user = p.plan.body["messages"][1]["content"].as_str().unwrap();
        assert_eq!(user, "File: `a.rs` (language: rust)\n\nExplain this code (lines 1–3):\n```rust\nfn a() {\n    b();\n}\n```\n");
        assert_eq!(p.scope_lines, None);
    }

    /// Helix sends the character under a bare cursor as the range: that is
    /// the cursor, not a one-character question.
    #[test]
    fn a_selection_shorter_than_a_token_explains_the_scope() {
        let text = "fn a() {\n    b();\n}\n";
        let rope = Rope::from_str(text);
        let at = text.find("b()").unwrap();
        let ask = |start, end| {
            let src = Source {
                rope: &rope,
                path: "a.rs",
                abs_path: None,
                language: "rust",
                start,
                end,
            };
            let p = prepare(&cfg(), &src).unwrap();
            p.plan.body["messages"][1]["content"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let scope = ask(at, at);
        assert_eq!(ask(at, at + 1), scope);
        // A character and the blank after it: still less than a token.
        assert_eq!(ask(at + 3, at + 5), scope);
        // Two characters are a question of their own.
        assert_ne!(ask(at, at + 2), scope);
    }

    #[test]
    fn secrets_are_redacted_and_denied_files_refused() {
        let text = "KEY = 'sk-abcdefghijklmnopqrstuvwxyz012345'\nprint(KEY)\n";
        let rope = Rope::from_str(text);
        let src = Source {
            rope: &rope,
            path: "conf.py",
            abs_path: None,
            language: "python",
            start: 0,
            end: text.len(),
        };
        let p = prepare(&cfg(), &src).unwrap();
        let body = p.plan.body.to_string();
        assert!(!body.contains("sk-abcdefghij"), "{body}");
        assert_eq!(p.redactions.get("openai-key"), Some(&1));
        let src = Source {
            path: "deploy/.env",
            ..src
        };
        assert_eq!(
            prepare(&cfg(), &src).unwrap_err(),
            RemoteError::NeverSend {
                path: "deploy/.env".into(),
                pattern: ".env".into()
            }
        );
        let mut c = cfg();
        c.never_send = vec!["conf.*".into()];
        let src = Source {
            path: "conf.py",
            ..src
        };
        assert!(matches!(
            prepare(&c, &src),
            Err(RemoteError::NeverSend { .. })
        ));
    }

    #[test]
    fn fences_outgrow_backticks_in_the_code() {
        assert_eq!(block("md", "a ``` b"), "````md\na ``` b\n````");
    }
}
