//! A tiny bracket/quote scanner for one line of code: enough to tell which
//! closer in a completion closes something opened before the cursor,
//! skipping strings and line comments. (Whole-unit questions go through
//! tree-sitter in `stop_at_unit_end`; this runs on partial lines, on every
//! streamed delta, for any language.)

use crate::syntax::Lang;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct State {
    /// Inside a string opened with this quote.
    pub in_string: Option<char>,
}

fn quotes(lang: Option<Lang>) -> &'static [char] {
    match lang {
        Some(Lang::JavaScript | Lang::TypeScript | Lang::Tsx | Lang::Go | Lang::Bash) => {
            &['"', '\'', '`']
        }
        _ => &['"', '\''],
    }
}

fn line_comment(lang: Option<Lang>, rest: &str) -> bool {
    match lang {
        Some(Lang::Python | Lang::Bash) => rest.starts_with('#'),
        Some(Lang::Lua) => rest.starts_with("--"),
        _ => rest.starts_with("//"),
    }
}

/// Is the `'` at `i` a quote? In Rust `'a` is a lifetime unless it is a
/// char literal (`'x'`, `'\n'`).
fn is_quote(lang: Option<Lang>, chars: &[char], i: usize) -> bool {
    let c = chars[i];
    if !quotes(lang).contains(&c) {
        return false;
    }
    if c == '\'' && lang == Some(Lang::Rust) {
        return chars.get(i + 1) == Some(&'\\') || chars.get(i + 2) == Some(&'\'');
    }
    true
}

impl State {
    /// The state at the end of `line_prefix` (the text before the cursor).
    pub fn after(lang: Option<Lang>, line_prefix: &str) -> State {
        let chars: Vec<char> = line_prefix.chars().collect();
        let mut st = State::default();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            match st.in_string {
                Some(q) => {
                    if c == '\\' {
                        i += 1;
                    } else if c == q {
                        st.in_string = None;
                    }
                }
                None => {
                    let rest: String = chars[i..].iter().take(2).collect();
                    if line_comment(lang, &rest) {
                        return st;
                    }
                    if is_quote(lang, &chars, i) {
                        st.in_string = Some(c);
                    }
                }
            }
            i += 1;
        }
        st
    }
}

/// The first closer (or closing quote) in `text` that closes something
/// opened before it: (byte index, char).
pub fn first_outer_close(lang: Option<Lang>, start: State, text: &str) -> Option<(usize, char)> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let plain: Vec<char> = chars.iter().map(|(_, c)| *c).collect();
    let mut stack: Vec<char> = Vec::new();
    let mut in_string = start.in_string;
    let mut outer_string = start.in_string.is_some();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        if let Some(q) = in_string {
            if c == '\\' {
                i += 2;
                continue;
            }
            if c == q {
                in_string = None;
                if outer_string {
                    return Some((at, c));
                }
            }
            i += 1;
            continue;
        }
        outer_string = false;
        if line_comment(lang, &text[at..]) {
            return None;
        }
        if is_quote(lang, &plain, i) {
            in_string = Some(c);
        } else if "([{".contains(c) {
            stack.push(c);
        } else if ")]}".contains(c) {
            match stack.pop() {
                Some(_) => {}
                None => return Some((at, c)),
            }
        }
        i += 1;
    }
    None
}

/// Does `line` (the rest of a line from a point in state `start`) close
/// every bracket and quote it opens? With `outer_closers`, brackets opened
/// before `line` may be closed in it; without, a closer with nothing open
/// in `line` makes it unbalanced. A line comment ends the scan.
pub fn balanced_after(lang: Option<Lang>, start: State, line: &str, outer_closers: bool) -> bool {
    let plain: Vec<char> = line.chars().collect();
    let mut stack: Vec<char> = Vec::new();
    let mut in_string = start.in_string;
    let mut i = 0;
    let mut byte = 0;
    while i < plain.len() {
        let c = plain[i];
        if let Some(q) = in_string {
            if c == '\\' {
                byte += c.len_utf8() + plain.get(i + 1).map_or(0, |n| n.len_utf8());
                i += 2;
                continue;
            }
            if c == q {
                in_string = None;
            }
        } else if line_comment(lang, &line[byte..]) {
            break;
        } else if is_quote(lang, &plain, i) {
            in_string = Some(c);
        } else if "([{".contains(c) {
            stack.push(c);
        } else if let Some(open) = match c {
            ')' => Some('('),
            ']' => Some('['),
            '}' => Some('{'),
            _ => None,
        } {
            match stack.pop() {
                Some(o) if o != open => return false,
                None if !outer_closers => return false,
                _ => {}
            }
        }
        byte += c.len_utf8();
        i += 1;
    }
    in_string.is_none() && stack.is_empty()
}
