//! Fixtures for the workspace index's part of the prompt head: a `//- path`
//! header starts each file; the one holding `$0` is the document being
//! completed (the only one open), the others are files of the project the
//! editor never opened, known only through the index.

use crate::config::ContextConfig;
use crate::context::{build_with, Context, Estimate, Head};
use crate::document::Document;
use crate::index::{Index, Limits};
use crate::syntax::Lang;

fn project(src: &str) -> (Index, String, String) {
    let index = Index::new(Limits::default());
    let mut current = None;
    for part in src.split("//- ").filter(|p| !p.is_empty()) {
        let (path, text) = part.split_once('\n').expect("//- path, then the text");
        let path = path.trim();
        if text.contains("$0") {
            current = Some((path.to_string(), text.to_string()));
        }
        // The current file is indexed too (from the disk, as a walk would):
        // resolution must still not offer its own definitions.
        let text = text.replace("$0", "");
        index.set_text(path, Lang::from_path(path).unwrap(), &text);
    }
    let (path, text) = current.expect("one file holds $0");
    (index, path, text)
}

fn complete(index: &Index, path: &str, fixture: &str, cfg: &ContextConfig) -> Context {
    let cursor = fixture.find("$0").expect("fixture needs $0");
    let text = fixture.replace("$0", "");
    let doc = Document::with_path(&text, 0, "", path);
    let cursor = text[..cursor].chars().count();
    build_with(
        &doc,
        cursor,
        cfg,
        path,
        true,
        Head::Workspace(&[], index),
        &Estimate,
    )
}

fn workspace_head(src: &str) -> Vec<(String, String)> {
    let (index, path, text) = project(src);
    let c = complete(&index, &path, &text, &cfg());
    c.input
        .extras
        .into_iter()
        .map(|s| (s.path, s.text))
        .collect()
}

fn cfg() -> ContextConfig {
    ContextConfig {
        extra_tokens: 256,
        ..ContextConfig::default()
    }
}

/// Lines that say nothing (no identifiers worth resolving).
fn filler(n: usize) -> String {
    (0..n).map(|i| format!("x{i} = {i}\n")).collect()
}

#[test]
fn a_name_imported_from_an_unopened_file_reaches_the_head_before_it_is_typed() {
    let src = format!(
        "//- pkg/output.py\ndef emit(msg, *, err=False):\n    \"\"\"Print msg to the console.\n\n    Long text.\"\"\"\n    pass\n\ndef strip_escapes(text):\n    \"\"\"Remove ANSI escape sequences.\"\"\"\n    return text\n\ndef _unrelated():\n    pass\n//- pkg/other.py\ndef elsewhere():\n    pass\n//- pkg/cli.py\nimport os\nfrom .output import emit, strip_escapes\n\n{}\ndef run(line):\n    clean = $0\n",
        filler(120)
    );
    assert_eq!(
        workspace_head(&src),
        [(
            "pkg/output.py".to_string(),
            "def emit(msg, *, err=False):\n    \"\"\"Print msg to the console.\"\"\"\ndef strip_escapes(text):\n    \"\"\"Remove ANSI escape sequences.\"\"\"".to_string()
        )]
    );
}

#[test]
fn a_module_the_cursor_qualifies_gives_its_names() {
    let src = "//- app/util.py\ndef slugify(s):\n    pass\n\nclass Cache:\n    def get(self, k):\n        pass\n//- app/views.py\nfrom . import util\n\ndef show(title):\n    return util.$0\n";
    let head = workspace_head(src);
    assert_eq!(head.len(), 1, "{head:#?}");
    assert_eq!(head[0].0, "app/util.py");
    assert_eq!(
        head[0].1, "def slugify(s):\nclass Cache:",
        "top-level names only"
    );
}

#[test]
fn rust_use_paths_resolve_through_the_crate() {
    let src = "//- src/render/mod.rs\n/// Render a page.\npub fn render(page: &Page, out: &mut String) -> usize {\n    0\n}\n//- src/page.rs\npub struct Page {\n    pub title: String,\n}\n//- src/main.rs\nuse crate::page::Page;\nuse crate::render::render;\n\nfn main() {\n    let p = Page { title: String::new() };\n    let mut s = String::new();\n    let n = $0\n}\n";
    let head = workspace_head(src);
    assert_eq!(
        head,
        [
            (
                "src/page.rs".to_string(),
                "pub struct Page {\n    pub title: String,\n}".to_string()
            ),
            (
                "src/render/mod.rs".to_string(),
                "// Render a page.\npub fn render(page: &Page, out: &mut String) -> usize"
                    .to_string()
            ),
        ]
    );
}

#[test]
fn go_sees_its_own_package_and_imported_packages() {
    let src = "//- go/pkg/text/wrap.go\npackage text\n\n// Wrap cuts lines at width.\nfunc Wrap(s string, width int) []string {\n\treturn nil\n}\n//- go/cmd/tool/flags.go\npackage main\n\nfunc parseFlags(args []string) int {\n\treturn 0\n}\n//- go/cmd/tool/main.go\npackage main\n\nimport \"example.com/tool/pkg/text\"\n\nfunc main() {\n\tn := parseFlags(nil)\n\tlines := text.$0\n}\n";
    let head = workspace_head(src);
    let paths: Vec<&str> = head.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        ["go/cmd/tool/flags.go", "go/pkg/text/wrap.go"],
        "{head:#?}"
    );
    assert!(head[1]
        .1
        .contains("func Wrap(s string, width int) []string"));
}

#[test]
fn a_name_used_near_the_cursor_that_one_file_defines_is_found_without_an_import() {
    let src = "//- lib/geometry.ts\nexport function area(w: number, h: number): number {\n  return w * h;\n}\n//- lib/other.ts\nexport function area2() {}\n//- lib/main.ts\nconst a = area(2, 3);\nconst b = $0\n";
    let head = workspace_head(src);
    assert_eq!(
        head,
        [(
            "lib/geometry.ts".to_string(),
            "export function area(w: number, h: number): number".to_string()
        )]
    );
}

#[test]
fn a_method_is_shown_under_its_class_and_common_names_are_not_guessed() {
    // `get` is defined by two files: not unique, so not offered; `render`
    // only by one, under its class.
    let src = "//- a/x.py\nclass Widget:\n    def render(self, ctx):\n        pass\n    def get(self):\n        pass\n//- a/y.py\nclass Other:\n    def get(self):\n        pass\n//- a/main.py\ndef f(w):\n    w.get()\n    w.render(None)\n    $0\n";
    assert_eq!(
        workspace_head(src),
        [(
            "a/x.py".to_string(),
            "class Widget:\n    def render(self, ctx):".to_string()
        )]
    );
}

#[test]
fn the_head_is_stable_while_typing_and_costed_within_its_budget() {
    let mut defs = String::new();
    for i in 0..40 {
        defs += &format!("def helper_number_{i}(argument_one, argument_two, argument_three):\n    \"\"\"Helper {i} does a thing with its arguments.\"\"\"\n    pass\n\n");
    }
    let names: Vec<String> = (0..40).map(|i| format!("helper_number_{i}")).collect();
    let src = format!(
        "//- pkg/helpers.py\n{defs}//- pkg/main.py\nfrom .helpers import {}\n\ndef run():\n    value = $0\n",
        names.join(", ")
    );
    let (index, path, text) = project(&src);
    let cfg = cfg();
    let first = complete(&index, &path, &text, &cfg).input.extras;
    let cost: usize = first
        .iter()
        .map(|s| crate::context::TokenCount::count(&Estimate, &s.text))
        .sum();
    assert!(!first.is_empty());
    assert!(cost <= cfg.extra_tokens as usize, "{cost} tokens");
    for typed in ["h", "help", "helper_n"] {
        let t = text.replace("$0", &format!("{typed}$0"));
        assert_eq!(
            complete(&index, &path, &t, &cfg).input.extras,
            first,
            "after {typed:?}"
        );
    }
}

#[test]
fn without_the_index_nothing_comes_from_unopened_files() {
    let src = "//- pkg/output.py\ndef emit(msg):\n    pass\n//- pkg/cli.py\nfrom .output import emit\n\ndef run():\n    $0\n";
    let (_, path, text) = project(src);
    let cursor = text.find("$0").unwrap();
    let doc = Document::with_path(&text.replace("$0", ""), 0, "", &path);
    let c = build_with(
        &doc,
        cursor,
        &cfg(),
        &path,
        true,
        Head::Search(&[]),
        &Estimate,
    );
    assert!(c.input.extras.is_empty(), "{:?}", c.input.extras);
}
