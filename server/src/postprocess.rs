//! Post-processing: from raw model output to the suggestion we show.
//!
//! Each step is a small pure function so it can be tested on fixtures.

use crate::context::Context;

/// Run every step in order.
pub fn clean(raw: &str, ctx: &Context) -> String {
    let mut text = raw.to_string();
    text = trim_trailing_whitespace(&text);
    text = drop_suffix_overlap(&text, &ctx.line_suffix);
    text
}

/// No trailing spaces on any line, no trailing blank lines.
pub fn trim_trailing_whitespace(text: &str) -> String {
    let lines: Vec<&str> = text.split('\n').map(|l| l.trim_end_matches([' ', '\t', '\r'])).collect();
    lines.join("\n").trim_end_matches('\n').to_string()
}

/// If the completion ends with the text already after the cursor on this
/// line (e.g. the closing `)`), drop it so accepting does not duplicate it.
pub fn drop_suffix_overlap(text: &str, line_suffix: &str) -> String {
    let rest = line_suffix.trim_end_matches(['\r', '\n']).trim_end();
    if rest.is_empty() {
        return text.to_string();
    }
    let first_line_end = text.find('\n').unwrap_or(text.len());
    let first = &text[..first_line_end];
    if let Some(stripped) = first.trim_end().strip_suffix(rest) {
        return format!("{}{}", stripped, &text[first_line_end..]);
    }
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_whitespace_goes() {
        assert_eq!(trim_trailing_whitespace("a  \n b\t\n\n"), "a\n b");
    }

    #[test]
    fn closing_bracket_already_there_is_not_repeated() {
        assert_eq!(drop_suffix_overlap("x, y)", ")"), "x, y");
        assert_eq!(drop_suffix_overlap("x, y", ")"), "x, y");
    }
}
