//! Text-level stop conditions checked after every generated token.
//!
//! Token-level stops (end-of-generation, FIM pad/sep, any control token),
//! the token budget and the time budget live in the actor; these are the
//! rules that need the decoded text.

/// How a generation should end, decided by the context builder.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StopRules {
    /// Stop at the first newline (cursor inside a line with code after it).
    pub single_line: bool,
    /// Width of the indentation of the cursor's scope: a later non-empty line
    /// indented less than this ends the block. `None` disables the rule.
    pub scope_indent: Option<usize>,
    /// The first non-blank line of the text after the cursor: when the
    /// completion starts writing it, it has run into the suffix.
    pub suffix_line: Option<String>,
    /// The cursor's column text (what is already on the line before the
    /// cursor), needed to measure the first generated line's indentation.
    pub line_prefix: String,
}

/// Where to cut `text` (a byte index), if a rule fires. Only complete lines
/// are judged, so callers check again as text grows.
pub fn cut_point(rules: &StopRules, text: &str) -> Option<usize> {
    if rules.single_line {
        return text.find('\n');
    }
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if !line.ends_with('\n') {
            break; // incomplete line: judge it later
        }
        let body = line.trim_end_matches(['\n', '\r']);
        if i > 0 && !body.trim().is_empty() {
            if let Some(scope) = rules.scope_indent {
                if indent_width(body) < scope {
                    return Some(offset);
                }
            }
            if let Some(s) = &rules.suffix_line {
                // A lone closer (`}`, `end`) only matches at the suffix
                // line's own indentation: `    }` closing a block the
                // completion opened is not the suffix's `  }`.
                let short = s.trim().len() <= 3;
                let same = if short {
                    body.trim_end() == s.trim_end()
                } else {
                    body.trim() == s.trim()
                };
                if same {
                    return Some(offset);
                }
            }
        }
        offset += line.len();
    }
    None
}

/// Columns of leading whitespace, a tab counting as 4.
pub fn indent_width(line: &str) -> usize {
    line.chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .map(|c| if c == '\t' { 4 } else { 1 })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_cuts_at_newline() {
        let r = StopRules {
            single_line: true,
            ..Default::default()
        };
        assert_eq!(cut_point(&r, "x = 1\ny = 2"), Some(5));
        assert_eq!(cut_point(&r, "x = 1"), None);
    }

    #[test]
    fn dedent_ends_the_block() {
        let r = StopRules {
            scope_indent: Some(4),
            ..Default::default()
        };
        let text = "return a\n    b = 2\ndef g():\n";
        assert_eq!(cut_point(&r, text), Some("return a\n    b = 2\n".len()));
    }

    #[test]
    fn running_into_the_suffix_stops() {
        let r = StopRules {
            suffix_line: Some("}".into()),
            ..Default::default()
        };
        assert_eq!(cut_point(&r, "a();\n}\n"), Some(5));
        // A closer at another indentation closes the completion's own block.
        let r = StopRules {
            suffix_line: Some("  }".into()),
            ..Default::default()
        };
        assert_eq!(
            cut_point(&r, "if a {\n    b();\n    }\n  }\n"),
            Some("if a {\n    b();\n    }\n".len())
        );
    }

    #[test]
    fn blank_lines_do_not_dedent() {
        let r = StopRules {
            scope_indent: Some(4),
            ..Default::default()
        };
        assert_eq!(cut_point(&r, "a\n\n    b\n"), None);
    }
}
