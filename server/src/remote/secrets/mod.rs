//! Secrets as a secret scanner knows them: gitleaks' rule catalog.
//!
//! The catalog (`gitleaks.toml`, MIT, `LICENSE-gitleaks`) is pinned data,
//! vendored at the upstream commit named in `PROVENANCE.md` and updated
//! with `update.sh` beside it; the code that reads and applies it is ours:
//! [`catalog`] parses and compiles it, [`scan`] applies it to a text with
//! gitleaks' semantics (and documents where they differ), [`translate`]
//! bridges Go's regex syntax and Rust's, [`words`] learns how words are
//! spelled from the catalog's stopwords.
//!
//! **One compiled catalog serves every request**: [`catalog()`] builds it
//! at first use (tens of milliseconds) and keeps it for the process. Its
//! build never panics: rules that Rust's `regex` cannot compile are
//! skipped, counted and logged once.
//!
//! `remote::redact` runs it between slm-ls' own token rules and its
//! structural rules (PEM blocks, URL passwords, `.env` lines, sensitive
//! names).

pub mod catalog;
pub mod scan;
pub mod translate;
pub mod words;

use std::sync::LazyLock;
use std::time::Instant;

pub use catalog::Catalog;
pub use scan::{shannon_entropy, Finding, Overtime};

static CATALOG: LazyLock<Catalog> = LazyLock::new(|| {
    let cat = Catalog::build(catalog::GITLEAKS_TOML).unwrap_or_else(|e| {
        // The vendored file is checked by the tests; should it still not
        // parse, redaction goes on with slm-ls' own rules only.
        tracing::error!("{e}");
        Catalog::build("").expect("an empty catalog builds")
    });
    let skipped = cat.skipped_rules().count();
    if skipped > 0 {
        tracing::warn!("secret catalog: {}", cat.report());
    } else {
        tracing::info!(
            "secret catalog: {} rules loaded, none skipped",
            cat.rules.len()
        );
    }
    cat
});

/// The process-wide compiled catalog.
pub fn catalog() -> &'static Catalog {
    &CATALOG
}

/// One secret to withhold: a byte range of the text and its kind (the
/// gitleaks rule id).
#[derive(Debug, Clone, PartialEq)]
pub struct Secret {
    pub start: usize,
    pub end: usize,
    pub kind: &'static str,
}

/// The catalog's secrets in `text`, as non-overlapping ranges in text
/// order. Where findings overlap they become one range, named after the
/// most specific rule among them (`generic-api-key` only when nothing
/// else matched there).
pub fn find(text: &str, deadline: Option<Instant>) -> Result<Vec<Secret>, Overtime> {
    let cat = catalog();
    let mut found = scan::scan(cat, text, deadline)?;
    found.sort_by_key(|f| (f.start, std::cmp::Reverse(f.end)));
    let generic = |f: &Finding| cat.rules[f.rule].id.starts_with("generic");
    let mut out: Vec<(Secret, bool)> = Vec::new();
    for f in found {
        let kind = cat.rules[f.rule].id.as_str();
        let g = generic(&f);
        match out.last_mut() {
            Some((last, last_generic)) if f.start < last.end => {
                last.end = last.end.max(f.end);
                if *last_generic && !g {
                    last.kind = kind;
                    *last_generic = false;
                }
            }
            _ => out.push((
                Secret {
                    start: f.start,
                    end: f.end,
                    kind,
                },
                g,
            )),
        }
    }
    Ok(out.into_iter().map(|(s, _)| s).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rules of the pinned catalog that Rust's `regex` cannot compile
    /// (`update.sh` reports them; review before accepting a new catalog).
    const EXPECTED_SKIPPED: &[&str] = &[];

    #[test]
    fn the_vendored_catalog_loads() {
        let cat = catalog();
        eprintln!("{}", cat.report());
        let skipped: Vec<&str> = cat.skipped_rules().map(|s| s.rule.as_str()).collect();
        let in_file = catalog::GITLEAKS_TOML
            .lines()
            .filter(|l| l.trim() == "[[rules]]")
            .count();
        assert_eq!(
            cat.rules.len() + skipped.len() + cat.path_only.len(),
            in_file,
            "every rule of the pinned catalog is loaded, skipped or path-only"
        );
        assert!(cat.rules.len() >= 200, "{}", cat.report());
        assert_eq!(skipped, EXPECTED_SKIPPED, "{}", cat.report());
    }

    #[test]
    fn overlapping_findings_take_the_specific_kind() {
        let text = "github_token = \"ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5\"\n";
        let found = find(text, None).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, "github-pat");
        assert_eq!(
            &text[found[0].start..found[0].end],
            "ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5"
        );
    }

    #[test]
    fn entropy_floor_and_allowlists_hold() {
        // Below github-pat's entropy floor of 3.
        assert_eq!(
            find("t = ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", None).unwrap(),
            vec![]
        );
        // aws-access-token's rule allowlist: `.+EXAMPLE$`.
        let aws = find("k = AKIAIOSFODNN7EXAMPLE\n", None).unwrap();
        assert!(aws.iter().all(|s| s.kind != "aws-access-token"), "{aws:?}");
        // generic-api-key's allowlist: values without digits are names.
        assert_eq!(
            find("api_key = some_configured_value_name\n", None).unwrap(),
            vec![]
        );
    }

    #[test]
    fn no_keyword_no_work() {
        let plain = "fn main() {\n    println!(\"hello\");\n}\n";
        assert!(scan::active_rules(catalog(), plain).is_empty());
    }
}
