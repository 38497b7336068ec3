//! Post-processing: from raw model output to the suggestion we show.
//!
//! Each step is a small pure function `(text, &Context) -> String` with its
//! own fixture tests (`tests.rs`, `$0` fixtures). [`clean`] runs them in
//! order; in `context.naive` mode it returns the raw text (the quality
//! benchmark's baseline).

mod lex;
#[cfg(test)]
mod tests;

use crate::context::{Context, Indent};
use crate::engine::stop;
use crate::syntax::{self, kinds};

/// The final text of a finished generation. `truncated`: the token or time
/// budget stopped it, so its last line may be cut mid-thought, and a broken
/// suggestion is worse than none: a multi-line text loses its unfinished
/// last line; a text that never finished its first line is kept only if
/// that line is complete where it stands ([`line_is_complete`]).
pub fn clean_final(raw: &str, ctx: &Context, truncated: bool) -> String {
    if !truncated || ctx.naive {
        return clean(raw, ctx);
    }
    match raw.rfind('\n') {
        Some(nl) => {
            // The last line may have ended exactly at the budget (`}`):
            // keep it when the whole text leaves the code well-formed.
            let whole = clean(raw, ctx);
            if whole.contains('\n') && insertion_parses(&whole, ctx) {
                return whole;
            }
            clean(&raw[..nl], ctx)
        }
        None => {
            let text = clean(raw, ctx);
            if line_is_complete(&text, ctx) {
                text
            } else {
                String::new()
            }
        }
    }
}

/// Would inserting the one-line `text` at the cursor leave the code as
/// well-formed as it was? Brackets and quotes must balance against the
/// rest of the line, and where the language has a grammar the parse of
/// the window with the text in it has no more errors than without it
/// (`n * factorial(n -` fails; `n * factorial(n - 1)` passes).
pub fn line_is_complete(text: &str, ctx: &Context) -> bool {
    if text.trim().is_empty() {
        return true;
    }
    // An operator with nothing after it (grammars often recover from that
    // with a MISSING node that the code without the text had too).
    let end = text.trim_end();
    let dangling = end.ends_with(|c: char| "+-*/%=<>&|^,.!~?".contains(c))
        && !end.ends_with("++")
        && !end.ends_with("--")
        && ctx.line_suffix.trim().is_empty();
    if dangling {
        return false;
    }
    let state = lex::State::after(ctx.lang, &ctx.line_prefix);
    let line = format!("{text}{}", ctx.line_suffix);
    if !lex::balanced_after(ctx.lang, state, &line, true) {
        return false;
    }
    insertion_parses(text, ctx)
}

/// The window with `text` inserted at the cursor parses with no more
/// errors than without it (true where the language has no grammar).
fn insertion_parses(text: &str, ctx: &Context) -> bool {
    let Some(lang) = ctx.lang else {
        return true;
    };
    let prefix = format!("{}{}", ctx.input.prefix, ctx.input.heal);
    let errors = |doc: &str| syntax::parse_str(lang, doc).map(|t| syntax::error_count(&t));
    let after = ctx.after_cursor();
    match (
        errors(&format!("{prefix}{text}{after}")),
        errors(&format!("{prefix}{after}")),
    ) {
        (Some(with), Some(without)) => with <= without,
        _ => true,
    }
}

/// Run every step in order.
pub fn clean(raw: &str, ctx: &Context) -> String {
    if ctx.naive {
        return raw.to_string();
    }
    let mut text = raw.replace("\r\n", "\n");
    text = unheal(&text, ctx);
    text = trim_trailing_whitespace(&text);
    text = drop_copy_of_line_above(&text, ctx);
    text = drop_comment_after_opener(&text, ctx);
    text = drop_repeated_lines(&text, ctx);
    text = drop_trailing_loop(&text, ctx);
    text = first_line_if_single(&text, ctx);
    text = stop_at_scope_end(&text, ctx);
    text = stop_at_unit_end(&text, ctx);
    text = balance_against_suffix(&text, ctx);
    text = drop_suffix_overlap(&text, ctx);
    text = drop_suffix_lines(&text, ctx);
    text = match_indent_style(&text, ctx);
    text = finish_whitespace(&text, ctx);
    drop_whitespace_only(&text, ctx)
}

/// At the end of a block opener (`for …:`, `… {`), a suggestion whose part
/// on the cursor's line is only a trailing comment and that goes on with
/// the body: keep the body, on the next line, where the user is headed.
/// (With the suffix first in the prompt, Qwen2.5-Coder sometimes writes
/// `  # check divisibility` after a Python header before the body.)
pub fn drop_comment_after_opener(text: &str, ctx: &Context) -> String {
    let opener = ctx.line_prefix.trim_end().ends_with([':', '{']);
    let Some(nl) = text.find('\n') else {
        return text.to_string();
    };
    let first = text[..nl].trim_start();
    let comment = first.starts_with('#') || first.starts_with("//");
    if opener && ctx.line_suffix.trim().is_empty() && comment && !text[nl..].trim().is_empty() {
        return text[nl..].to_string();
    }
    text.to_string()
}

/// The final trim: like [`trim_trailing_whitespace`], except that a
/// single-line suggestion keeps a trailing space the text after the cursor
/// needs (`if x $0{` + `> 0 ` gives `if x > 0 {`).
pub fn finish_whitespace(text: &str, ctx: &Context) -> String {
    let trimmed = trim_trailing_whitespace(text);
    let glued = ctx.line_suffix.starts_with(|c: char| !c.is_whitespace());
    if glued && !text.contains('\n') && text.ends_with(' ') && !trimmed.is_empty() {
        return format!("{trimmed} ");
    }
    trimmed
}

/// Undo what the prompt did to the text before the cursor:
/// - the prompt left out the space, indentation or punctuation character
///   right before the cursor (see `PromptInput::heal`); the model wrote it
///   itself: remove it again;
/// - on a blank line, a model that first wrote a line break (it took the
///   indentation for an empty line) means the line itself: drop the break
///   and the re-typed indentation.
pub fn unheal(text: &str, ctx: &Context) -> String {
    let lp = ctx.line_prefix.as_str();
    if !lp.is_empty() && lp.trim().is_empty() && text.starts_with(['\n', '\r']) {
        let t = text.trim_start_matches(['\n', '\r']);
        if let Some(rest) = t.strip_prefix(lp) {
            return rest.to_string();
        }
        let lead = t.len() - t.trim_start_matches([' ', '\t']).len();
        return t[lead.min(lp.len())..].to_string();
    }
    if !ctx.input.heal.is_empty() {
        if let Some(rest) = text.strip_prefix(ctx.input.heal.as_str()) {
            return rest.to_string();
        }
    }
    text.to_string()
}

/// No trailing spaces on any line, no trailing blank lines. Leading blank
/// lines stay (a completion after `{` starts with a line break).
pub fn trim_trailing_whitespace(text: &str) -> String {
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.trim_end_matches([' ', '\t', '\r']))
        .collect();
    lines.join("\n").trim_end_matches('\n').to_string()
}

/// Nothing but whitespace is no suggestion.
pub fn drop_whitespace_only(text: &str, _ctx: &Context) -> String {
    if text.trim().is_empty() {
        String::new()
    } else {
        text.to_string()
    }
}

/// A first line that makes the cursor's line a copy of the line above is
/// the model looping, not a suggestion.
pub fn drop_copy_of_line_above(text: &str, ctx: &Context) -> String {
    let first = text.split('\n').next().unwrap_or("");
    let line = format!("{}{}", ctx.line_prefix, first);
    let line = line.trim();
    let above = ctx.line_above.trim();
    if !first.trim().is_empty()
        && line.len() > 3
        && line == above
        && ctx.line_suffix.trim().is_empty()
    {
        return String::new();
    }
    text.to_string()
}

/// Cut where the model starts looping: a non-blank line that repeats the
/// line before it, or a pair of lines that repeats an earlier pair.
pub fn drop_repeated_lines(text: &str, _ctx: &Context) -> String {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut offsets = Vec::with_capacity(lines.len());
    let mut o = 0;
    for l in &lines {
        offsets.push(o);
        o += l.len() + 1;
    }
    let code: Vec<usize> = (0..lines.len())
        .filter(|&i| !lines[i].trim().is_empty())
        .collect();
    for k in 1..code.len() {
        let cur = lines[code[k]].trim();
        let prev = lines[code[k - 1]].trim();
        if cur.len() > 1 && prev == cur {
            return text[..offsets[code[k]]].trim_end().to_string();
        }
        // The pair (k-1, k) already appeared as (j-1, j), j <= k-2.
        if (1..k.saturating_sub(1))
            .any(|j| lines[code[j - 1]].trim() == prev && lines[code[j]].trim() == cur)
        {
            return text[..offsets[code[k - 1]]].trim_end().to_string();
        }
    }
    text.to_string()
}

/// Shortest run that counts as a loop (chars), and most chars in its unit.
const LOOP_MIN_CHARS: usize = 24;
const LOOP_MAX_UNIT: usize = 16;

/// Cut a run that repeats up to the very end of the text
/// (`std::box::box::box…`, `&&&&&&…`): the model was looping when its token
/// budget stopped it. One instance of the unit stays (the loop starts at the
/// second). Separator lines (`// ======`) are not loops.
pub fn drop_trailing_loop(text: &str, _ctx: &Context) -> String {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    let mut best: Option<usize> = None; // char index where the kept text ends
    for p in 1..=LOOP_MAX_UNIT.min(n / 4) {
        // The text may end inside a unit: try each partial tail.
        for t in 0..p {
            let end = n - t;
            if end < p {
                break;
            }
            let unit = &chars[end - p..end];
            if chars[end..] != unit[..t] {
                continue;
            }
            let mut start = end - p;
            while start >= p && chars[start - p..start] == *unit {
                start -= p;
            }
            let line_art = unit.iter().all(|c| "=-*#~_/+. ".contains(*c));
            let reps = (end - start) / p;
            if reps >= 4 && n - start >= LOOP_MIN_CHARS && !line_art {
                let keep = start + p;
                best = Some(best.map_or(keep, |b: usize| b.min(keep)));
            }
        }
    }
    match best {
        Some(keep) => chars[..keep]
            .iter()
            .collect::<String>()
            .trim_end()
            .to_string(),
        None => text.to_string(),
    }
}

/// In single-line mode only the first line is a suggestion.
pub fn first_line_if_single(text: &str, ctx: &Context) -> String {
    if ctx.stop.single_line {
        text.split('\n').next().unwrap_or("").to_string()
    } else {
        text.to_string()
    }
}

/// The engine's text stop rules (dedent below the cursor's scope, running
/// into the next line of the suffix) applied to the whole text, including
/// its last line.
pub fn stop_at_scope_end(text: &str, ctx: &Context) -> String {
    let mut rules = ctx.stop.clone();
    rules.single_line = false;
    if ctx.lang.is_some_and(|l| !l.indent_scoped()) {
        // In bracket languages a closing `}` at a lower indentation is
        // judged by `stop_at_unit_end`, which knows whether the suffix
        // already closes the block.
        rules.scope_indent = None;
    }
    let full = format!("{text}\n");
    match stop::cut_point(&rules, &full) {
        Some(cut) => full[..cut].trim_end_matches('\n').to_string(),
        None => text.to_string(),
    }
}

/// Parse the document window with the completion inserted and stop at the
/// end of the syntactic unit the cursor is in: where the block around the
/// cursor closes (before its closer when the document already closes it,
/// after it otherwise), and before a second definition at the cursor's
/// level.
pub fn stop_at_unit_end(text: &str, ctx: &Context) -> String {
    let Some(lang) = ctx.lang else {
        return text.to_string();
    };
    if !text.contains('\n') {
        return text.to_string();
    }
    // The document as it is: the prompt left the healed whitespace out.
    let prefix = format!("{}{}", ctx.input.prefix, ctx.input.heal);
    let doc = format!("{prefix}{text}{}", ctx.after_cursor());
    let Some(tree) = syntax::parse_str(lang, &doc) else {
        return text.to_string();
    };
    let c0 = prefix.len();
    let c1 = c0 + text.len();
    let root = tree.root_node();
    let Some(mut node) = root.descendant_for_byte_range(c0, c0) else {
        return text.to_string();
    };
    // The innermost container that starts before the cursor.
    let container = loop {
        if node.start_byte() < c0 && kinds::is_delimited_container(node.kind()) {
            break node;
        }
        match node.parent() {
            Some(p) => node = p,
            None => break node,
        }
    };
    let mut cut = text.len();
    if container.parent().is_some() && container.end_byte() <= c1 && container.end_byte() > c0 {
        let end = container.end_byte() - c0;
        let last = container.child(container.child_count().saturating_sub(1));
        let closer = last.filter(|l| !l.is_named() && !l.is_missing() && l.start_byte() >= c0);
        cut = match closer {
            // Already closed after the cursor: stop before this closer's line.
            Some(l) if ctx.block_closed => line_start(text, l.start_byte() - c0),
            Some(_) => end,
            // Indentation-scoped block: it ends where its last statement does.
            None => end,
        };
    }
    // A second definition at the cursor's level ends the unit.
    let first_nl = text.find('\n').unwrap_or(text.len());
    let blank_line = ctx.line_prefix.trim().is_empty() && ctx.line_suffix.trim().is_empty();
    let mut walk = container.walk();
    let mut seen_definition = false;
    for child in container.children(&mut walk) {
        if child.start_byte() < c0 || child.start_byte() >= c0 + cut {
            continue;
        }
        let at = child.start_byte() - c0;
        let is_def = kinds::is_scope(child.kind()) || child.kind() == "decorated_definition";
        if !is_def {
            continue;
        }
        if blank_line && !seen_definition && at <= first_nl {
            seen_definition = true; // the definition being written
            continue;
        }
        if at > first_nl || seen_definition {
            cut = cut.min(line_start(text, at));
            break;
        }
    }
    text[..cut.min(text.len())].trim_end().to_string()
}

/// Byte index of the start of the line holding `at` (the text's start for
/// its first line).
fn line_start(text: &str, at: usize) -> usize {
    let at = at.min(text.len());
    text[..at].rfind('\n').map(|i| i + 1).unwrap_or(0).min(at)
}

/// Balance brackets and quotes against the suffix: on the first line, a
/// closer (or closing quote) that closes something opened before the
/// cursor, when the line's suffix starts with the same closer, ends the
/// suggestion there — the suffix already has it.
pub fn balance_against_suffix(text: &str, ctx: &Context) -> String {
    let first_end = text.find('\n').unwrap_or(text.len());
    let rest = ctx.line_suffix.trim_start();
    let Some(next) = rest.chars().next() else {
        return text.to_string();
    };
    if !")]}\"'`".contains(next) {
        return text.to_string();
    }
    let state = lex::State::after(ctx.lang, &ctx.line_prefix);
    if let Some((at, ch)) = lex::first_outer_close(ctx.lang, state, &text[..first_end]) {
        if ch == next {
            return text[..at].to_string();
        }
    }
    text.to_string()
}

/// If the completion's first line ends with text that is already after the
/// cursor on this line (`x + 1` with ` + 1` after the cursor), drop it so
/// accepting does not duplicate it. The overlap must hold a symbol, or be
/// the whole rest of the line, so a word is not eaten by chance.
pub fn drop_suffix_overlap(text: &str, ctx: &Context) -> String {
    let rest = ctx.line_suffix.trim_end_matches(['\r', '\n']).trim_end();
    if rest.trim().is_empty() {
        return text.to_string();
    }
    let first_end = text.find('\n').unwrap_or(text.len());
    let first = text[..first_end].trim_end();
    // Longest k: first line ends with rest[..k] (rest trimmed at start too).
    let rest_t = rest.trim_start();
    // Dropping the overlap must not unbalance a line that was balanced
    // (`b.len()` before `);`: its `)` is its own, not the suffix's).
    let balanced = |first: &str| {
        let line = format!("{}{first}{rest}", ctx.line_prefix);
        lex::balanced_after(ctx.lang, lex::State::default(), &line, false)
    };
    let was_balanced = balanced(first);
    let mut best = 0;
    for (k, _) in rest_t.char_indices().skip(1).chain([(rest_t.len(), ' ')]) {
        let piece = &rest_t[..k];
        if first.ends_with(piece) && (!was_balanced || balanced(&first[..first.len() - k])) {
            let symbolic = piece
                .chars()
                .any(|c| !c.is_alphanumeric() && !c.is_whitespace() && c != '_');
            if symbolic || k == rest_t.len() {
                best = k;
            }
        }
    }
    if best == 0 {
        return text.to_string();
    }
    // The space before the overlap is the suffix's own leading space.
    let kept = &first[..first.len() - best];
    let kept = if rest.starts_with([' ', '\t']) {
        kept.trim_end()
    } else {
        kept
    };
    format!("{}{}", kept, &text[first_end..])
}

/// Multi-line: drop trailing lines that repeat the lines right after the
/// cursor (the closing `}` that is already there).
pub fn drop_suffix_lines(text: &str, ctx: &Context) -> String {
    if !text.contains('\n') {
        return text.to_string();
    }
    // A lone closer (`}`, `end`) is compared with its indentation: `    }`
    // closing a block the completion opened is not the suffix's `  }`.
    let key = |l: &str| -> String {
        if l.trim().len() <= 3 {
            l.trim_end().to_string()
        } else {
            l.trim().to_string()
        }
    };
    let after: Vec<String> = ctx
        .after_cursor()
        .split('\n')
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(key)
        .take(8)
        .collect();
    if after.is_empty() {
        return text.to_string();
    }
    let lines: Vec<&str> = text.split('\n').collect();
    // Largest k: the last k non-blank lines equal the first k suffix lines.
    for k in (1..=after.len().min(lines.len() - 1)).rev() {
        let tail: Vec<String> = lines[lines.len() - k..].iter().map(|l| key(l)).collect();
        if tail == after[..k] {
            return lines[..lines.len() - k].join("\n").trim_end().to_string();
        }
    }
    text.to_string()
}

/// Multi-line results use the document's indentation: tabs become spaces
/// (or the reverse) at the start of every line after the first.
pub fn match_indent_style(text: &str, ctx: &Context) -> String {
    if !text.contains('\n') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
            let body = line.trim_start_matches([' ', '\t']);
            let lead = &line[..line.len() - body.len()];
            let width: usize = lead.chars().map(|c| if c == '\t' { 4 } else { 1 }).sum();
            match ctx.indent {
                Indent::Tabs if lead.contains(' ') => {
                    let unit = 4;
                    out.push_str(&"\t".repeat(width / unit));
                    out.push_str(&" ".repeat(width % unit));
                }
                Indent::Spaces(n) if lead.contains('\t') => {
                    let tabs = lead.chars().filter(|c| *c == '\t').count();
                    let spaces = lead.chars().filter(|c| *c == ' ').count();
                    out.push_str(&" ".repeat(tabs * n + spaces));
                }
                _ => out.push_str(lead),
            }
            out.push_str(body);
        } else {
            out.push_str(line);
        }
    }
    out
}
