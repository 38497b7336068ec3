//! Go (RE2) regex syntax that Rust's `regex` reads differently.
//!
//! gitleaks' patterns are written for Go, which takes a `{` that does not
//! open a counted repetition (`${VAR}`, `{{ template }}`) as a literal;
//! Rust's parser rejects it. [`go_to_rust`] escapes such braces and
//! changes nothing else. Used only when a pattern fails to compile as
//! written, and the catalog records which rules needed it.

/// `pattern` with every `{`/`}` that is not part of a counted repetition
/// (`{n}`, `{n,}`, `{n,m}`) escaped. Character classes and escapes are
/// copied as they are.
pub fn go_to_rust(pattern: &str) -> String {
    let b = pattern.as_bytes();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut i = 0;
    let mut class = false;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' {
            // An escape: copy it with the (possibly multi-byte) char after.
            let next = pattern[i + 1..].chars().next().map_or(0, char::len_utf8);
            out.push_str(&pattern[i..i + 1 + next]);
            i += 1 + next;
            continue;
        }
        if class {
            if c == b']' {
                class = false;
            }
        } else if c == b'[' {
            class = true;
            out.push('[');
            i += 1;
            // `[]...]` and `[^]...]`: a leading `]` is a literal.
            if b.get(i) == Some(&b'^') {
                out.push('^');
                i += 1;
            }
            if b.get(i) == Some(&b']') {
                out.push(']');
                i += 1;
            }
            continue;
        } else if c == b'{' {
            if let Some(len) = repetition_len(&b[i..]) {
                out.push_str(&pattern[i..i + len]);
                i += len;
                continue;
            }
            out.push_str("\\{");
            i += 1;
            continue;
        } else if c == b'}' {
            out.push_str("\\}");
            i += 1;
            continue;
        }
        let ch = pattern[i..].chars().next().unwrap_or('\0');
        out.push(ch);
        i += ch.len_utf8().max(1);
    }
    out
}

/// Length of `{n}`, `{n,}` or `{n,m}` at the start of `b`, if it is one.
fn repetition_len(b: &[u8]) -> Option<usize> {
    let mut i = 1;
    let digits = |i: &mut usize| {
        let s = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > s
    };
    if !digits(&mut i) {
        return None;
    }
    if b.get(i) == Some(&b',') {
        i += 1;
        digits(&mut i);
    }
    (b.get(i) == Some(&b'}')).then_some(i + 1)
}

#[cfg(test)]
mod tests {
    use super::go_to_rust;

    #[test]
    fn literal_braces_are_escaped_and_repetitions_kept() {
        assert_eq!(go_to_rust(r"^\${(?:[A-Z_]+)}$"), r"^\$\{(?:[A-Z_]+)\}$");
        assert_eq!(go_to_rust(r"a{2}b{3,}c{1,5}"), r"a{2}b{3,}c{1,5}");
        assert_eq!(go_to_rust(r"\{\{[ \t]*x}}"), r"\{\{[ \t]*x\}\}");
        assert_eq!(go_to_rust(r"[{}]{2}"), r"[{}]{2}");
        assert_eq!(go_to_rust(r"[^]]+]"), r"[^]]+]");
    }
}
