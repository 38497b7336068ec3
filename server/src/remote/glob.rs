//! `neverSend` patterns: gitignore-flavoured globs over workspace paths.
//!
//! - A pattern without `/` matches any path component (`.env` matches
//!   `.env` and `config/.env`; `secrets` matches everything under a
//!   `secrets/` directory).
//! - A pattern with `/` matches the workspace-relative path from its start
//!   (a leading `/` is allowed); `**/` at the start matches at any depth.
//! - `*` matches within one component, `**` across components, `?` one
//!   character, `{a,b}` either alternative, `[abc]`/`[a-z]`/`[!a]` a class.
//!
//! Matching is case-sensitive except that paths and patterns are compared
//! with `\` turned into `/`.

/// Always refused, whatever the settings say: files whose whole point is
/// to hold secrets.
pub const BUILTIN_NEVER_SEND: &[&str] = &[
    ".env",
    ".env.*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".netrc",
    ".pgpass",
    ".npmrc",
    ".pypirc",
    "credentials.json",
    "**/.aws/credentials",
    ".ssh",
    ".gnupg",
    "*.tfstate",
    "*.tfvars",
    "secrets.*",
];

/// The first pattern (built-in, then user) that `path` matches.
pub fn never_send(path: &str, user: &[String]) -> Option<String> {
    BUILTIN_NEVER_SEND
        .iter()
        .copied()
        .chain(user.iter().map(String::as_str))
        .find(|p| matches(p, path))
        .map(str::to_string)
}

/// Does `path` match `pattern` (see the module docs)?
pub fn matches(pattern: &str, path: &str) -> bool {
    let path = path.replace('\\', "/");
    let path = path.trim_start_matches("./");
    expand_braces(&pattern.replace('\\', "/"))
        .iter()
        .any(|p| matches_one(p.trim(), path))
}

fn matches_one(pattern: &str, path: &str) -> bool {
    if pattern.is_empty() {
        return false;
    }
    let dir_only = pattern.ends_with('/');
    let pattern = pattern.trim_end_matches('/');
    if !pattern.contains('/') {
        // Any component; a directory component also covers what is below it.
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        return comps.iter().enumerate().any(|(i, c)| {
            (!dir_only || i + 1 < comps.len()) && wildcard(pattern.as_bytes(), c.as_bytes())
        });
    }
    let pattern = pattern.trim_start_matches('/');
    let path = path.trim_start_matches('/');
    // A matched directory covers everything below it.
    wildcard(pattern.as_bytes(), path.as_bytes())
        || path
            .match_indices('/')
            .any(|(i, _)| wildcard(pattern.as_bytes(), &path.as_bytes()[..i]))
}

/// `{a,b}c` → `ac`, `bc` (nested braces expand recursively).
fn expand_braces(p: &str) -> Vec<String> {
    let Some(open) = p.find('{') else {
        return vec![p.to_string()];
    };
    let mut depth = 0;
    let mut close = None;
    for (i, ch) in p[open..].char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(open + i);
                    break;
                }
            }
            _ => {}
        }
    }
    let Some(close) = close else {
        return vec![p.to_string()];
    };
    let (head, body, tail) = (&p[..open], &p[open + 1..close], &p[close + 1..]);
    let mut alts = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, ch) in body.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                alts.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    alts.push(&body[start..]);
    alts.iter()
        .flat_map(|a| expand_braces(&format!("{head}{a}{tail}")))
        .collect()
}

/// Classic backtracking glob over bytes; `**` crosses `/`, `*` does not.
fn wildcard(p: &[u8], s: &[u8]) -> bool {
    if p.is_empty() {
        return s.is_empty();
    }
    match p[0] {
        b'*' if p.get(1) == Some(&b'*') => {
            // `**/` may also match nothing at all.
            let rest = &p[2..];
            if let Some(after_slash) = rest.strip_prefix(b"/") {
                if wildcard(after_slash, s) {
                    return true;
                }
            }
            (0..=s.len()).any(|i| wildcard(rest, &s[i..]))
        }
        b'*' => {
            let rest = &p[1..];
            for i in 0..=s.len() {
                if wildcard(rest, &s[i..]) {
                    return true;
                }
                if i < s.len() && s[i] == b'/' {
                    break;
                }
            }
            false
        }
        b'?' => !s.is_empty() && s[0] != b'/' && wildcard(&p[1..], &s[1..]),
        b'[' => {
            let Some(end) = p.iter().skip(1).position(|&c| c == b']').map(|i| i + 1) else {
                return !s.is_empty() && s[0] == b'[' && wildcard(&p[1..], &s[1..]);
            };
            if s.is_empty() || s[0] == b'/' {
                return false;
            }
            let class = &p[1..end];
            let (negate, class) = match class.first() {
                Some(b'!') | Some(b'^') => (true, &class[1..]),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= class[i] <= s[0] && s[0] <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == s[0];
                    i += 1;
                }
            }
            hit != negate && wildcard(&p[end + 1..], &s[1..])
        }
        c => !s.is_empty() && s[0] == c && wildcard(&p[1..], &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_match_any_component() {
        assert!(matches(".env", ".env"));
        assert!(matches(".env", "services/api/.env"));
        assert!(!matches(".env", "src/env.rs"));
        assert!(matches(".env.*", "config/.env.production"));
        assert!(matches("*.pem", "certs/server.pem"));
        assert!(!matches("*.pem", "docs/pem.md"));
        assert!(
            matches("secrets", "deploy/secrets/db.yaml"),
            "a directory name covers its contents"
        );
        assert!(matches("secrets/", "secrets/db.yaml"));
        assert!(
            !matches("secrets/", "src/secrets"),
            "trailing / means a directory"
        );
    }

    #[test]
    fn anchored_and_double_star() {
        assert!(matches("config/prod/*.yaml", "config/prod/db.yaml"));
        assert!(!matches("config/prod/*.yaml", "other/config/prod/db.yaml"));
        assert!(
            !matches("config/*.yaml", "config/prod/db.yaml"),
            "* stays in one component"
        );
        assert!(matches("config/**/*.yaml", "config/prod/eu/db.yaml"));
        assert!(
            matches("config/**/*.yaml", "config/db.yaml"),
            "**/ matches zero directories"
        );
        assert!(matches("**/internal/**", "a/b/internal/c/d.rs"));
        assert!(matches("/infra", "infra/main.tf"));
        assert!(matches("infra/terraform", "infra/terraform/main.tf"));
    }

    #[test]
    fn braces_classes_question_mark() {
        assert!(matches("*.{pem,key}", "a/b.key"));
        assert!(matches("id_{rsa,ed25519}{,.pub}", "id_ed25519.pub"));
        assert!(matches("file?.txt", "file1.txt"));
        assert!(!matches("file?.txt", "file10.txt"));
        assert!(matches("log[0-9].txt", "log7.txt"));
        assert!(!matches("log[!0-9].txt", "log7.txt"));
        assert!(
            matches("keys/*.key", "keys\\x.key"),
            "backslashes are separators"
        );
    }

    #[test]
    fn builtins_cover_the_usual_suspects_and_user_patterns_add() {
        for p in [
            ".env",
            "app/.env.local",
            "deploy/key.pem",
            "home/.ssh/config",
            "id_rsa",
            ".aws/credentials",
            "prod.tfvars",
        ] {
            assert!(never_send(p, &[]).is_some(), "{p} must never be sent");
        }
        for p in ["src/main.rs", "README.md", "src/env.py", "keys.rs"] {
            assert_eq!(never_send(p, &[]), None, "{p}");
        }
        let user = vec!["internal/**".to_string()];
        assert_eq!(
            never_send("internal/payroll.rs", &user).as_deref(),
            Some("internal/**")
        );
    }
}
