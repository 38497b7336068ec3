//! Context fixtures: a document with a `$0` cursor, named by its file name
//! (the extension picks the grammar).

use super::*;
use crate::document::Document;

/// Fixture: `$0` marks the cursor; `path`'s extension picks the language.
pub(crate) fn fixture_with(
    path: &str,
    fixture: &str,
    cfg: &ContextConfig,
    others: &[OtherDoc],
) -> Context {
    let cursor = fixture.find("$0").expect("fixture needs $0");
    let text = fixture.replace("$0", "");
    let doc = Document::with_path(&text, 0, "", path);
    let cursor_char = text[..cursor].chars().count();
    build_with(
        &doc,
        cursor_char,
        cfg,
        path,
        true,
        Head::Search(others),
        &Estimate,
    )
}

/// Several files in one fixture: a `//- path` line starts each file; the
/// one holding `$0` is completed, the others are open alongside (in
/// order; `edits` are applied to them first, as `didChange` would).
pub(crate) fn fixture_files(src: &str, cfg: &ContextConfig, edits: &[(&str, u32)]) -> Context {
    let mut files: Vec<(String, String)> = Vec::new();
    for part in src.split("//- ").filter(|p| !p.is_empty()) {
        let (path, text) = part.split_once('\n').expect("//- path, then the text");
        files.push((path.trim().to_string(), text.to_string()));
    }
    let (path, text) = files
        .iter()
        .find(|(_, t)| t.contains("$0"))
        .cloned()
        .expect("one file holds $0");
    let open = |p: &str, t: &str| {
        let mut doc = Document::with_path(t, 0, "", p);
        for (_, line) in edits.iter().filter(|(f, _)| *f == p) {
            let at = crate::document::Position::new(*line, 0);
            let edit = crate::document::Edit {
                range: Some((at, at)),
                text: String::new(),
            };
            doc.apply(&edit, crate::document::Encoding::Utf16).unwrap();
        }
        doc.reparse();
        doc
    };
    let others: Vec<OtherDoc> = files
        .iter()
        .filter(|(p, _)| *p != path)
        .map(|(p, t)| OtherDoc {
            path: p.clone(),
            doc: open(p, t),
        })
        .collect();
    let cursor = text.find("$0").unwrap();
    let doc = open(&path, &text.replace("$0", ""));
    let cursor_char = text[..cursor].chars().count();
    build_with(
        &doc,
        cursor_char,
        cfg,
        &path,
        true,
        Head::Search(&others),
        &Estimate,
    )
}

/// Budgets wider than the defaults (those of a faster model), for tests
/// about windows and snippets that need room.
fn wide() -> ContextConfig {
    ContextConfig {
        prefix_tokens: 1536,
        suffix_tokens: 256,
        extra_tokens: 256,
        ..ContextConfig::default()
    }
}

pub(crate) fn fixture(path: &str, fixture: &str) -> Context {
    fixture_with(path, fixture, &ContextConfig::default(), &[])
}

fn ctx(fixture: &str, multiline: bool) -> Context {
    let cursor = fixture.find("$0").expect("fixture needs $0");
    let text = fixture.replace("$0", "");
    let doc = Document::new(&text, 0, "python");
    let cursor_char = text[..cursor].chars().count();
    build(
        &doc,
        cursor_char,
        &ContextConfig::default(),
        "a.py",
        multiline,
    )
}

#[test]
fn splits_prefix_and_suffix_at_the_cursor() {
    let c = ctx("def f(x):\n    return x$0 + 1\n", true);
    assert_eq!(c.input.prefix, "def f(x):\n    return x");
    assert_eq!(c.input.suffix, " + 1\n");
    assert!(
        c.stop.single_line,
        "code after the cursor means single line"
    );
    assert_eq!(c.lang, Some(Lang::Python));
}

#[test]
fn auto_closed_brackets_leave_the_prompts_suffix_as_it_was() {
    // Typing `(` in an editor that closes brackets gives `print($0)`: the
    // prompt's suffix must not change (suffix first, that would
    // re-evaluate the whole prompt), and the answer still knows the `)`.
    let before = ctx("def f(x):\n    print$0\n    return x\n", true);
    let after = ctx("def f(x):\n    print($0)\n    return x\n", true);
    assert_eq!(after.input.suffix, before.input.suffix);
    assert_eq!(after.input.suffix, "\n    return x\n");
    assert_eq!(after.line_suffix, ")");
    let quoted = ctx("def f(x):\n    print(\"$0\")\n    return x\n", true);
    assert_eq!(quoted.input.suffix, before.input.suffix);
    // Code after the cursor stays in the suffix.
    let code = ctx("def f(x):\n    print($0, x)\n    return x\n", true);
    assert_eq!(code.input.suffix, ", x)\n    return x\n");
}

#[test]
fn block_opener_allows_multiline_within_scope() {
    let c = ctx("def f(x):$0\n\nprint(1)\n", true);
    assert!(!c.stop.single_line);
    assert_eq!(c.stop.scope_indent, Some(1));
    assert_eq!(c.stop.suffix_line.as_deref(), Some("print(1)"));
}

#[test]
fn mid_statement_is_single_line() {
    let c = ctx("x = foo$0\n", true);
    assert!(c.stop.single_line);
}

#[test]
fn empty_block_body_and_blank_line_in_a_block_are_multiline() {
    let c = fixture("a.rs", "fn f() {$0}\n");
    assert!(!c.stop.single_line);
    let c = fixture("a.go", "func f() {\n\tx := 1\n\t$0\n}\n");
    assert!(!c.stop.single_line);
    let c = fixture("a.ts", "function f(a: number) {\n  return g(a, $0);\n}\n");
    assert!(c.stop.single_line);
}

#[test]
fn window_start_moves_in_steps_and_not_while_typing() {
    let cfg = wide();
    for lang in ["python", "text"] {
        let body: String = (0..600).map(|i| format!("line_{i:03} = {i}\n")).collect();
        let start_of = |line: usize, typed: &str| {
            let mut text = body.clone();
            let at = text.match_indices('\n').nth(line - 1).unwrap().0 + 1;
            text.insert_str(at, typed);
            let doc = Document::new(&text, 0, lang);
            let cursor = doc.rope.line_to_char(line) + typed.chars().count();
            let c = build(&doc, cursor, &cfg, "a.py", true);
            let first = c.input.prefix.lines().next().unwrap_or("").to_string();
            first[5..8].parse::<usize>().unwrap()
        };
        // Typing on the cursor's line keeps the same first line.
        let first = start_of(450, "");
        for typed in [
            "x",
            "x = 1",
            "x = some_call(argument_one, argument_two) + 1",
        ] {
            assert_eq!(start_of(450, typed), first, "{lang}: typed {typed:?}");
        }
        // The start moves in steps of a few lines as lines are added.
        let starts: Vec<usize> = (450..470).map(|l| start_of(l, "")).collect();
        let moves = starts.windows(2).filter(|w| w[0] != w[1]).count();
        assert!(moves > 0 && moves < starts.len() / 2, "{lang}: {starts:?}");
    }
}

/// The prefix window uses its token budget (issue 18: steps of 32 lines
/// and a fixed header reserve left a quarter of it used).
#[test]
fn prefix_window_uses_most_of_its_budget() {
    for (path, line) in [
        (
            "a.py",
            "        total = compute(values[index], offset) + 1\n",
        ),
        (
            "a.rs",
            "        let total = compute(&values[index], offset)?;\n",
        ),
        ("a.go", "\t\ttotal := compute(values[index], offset)\n"),
    ] {
        let head = match path {
            "a.py" => "def f(values, offset):\n    for index in range(10):\n",
            "a.rs" => "fn f(values: &[u8], offset: u8) {\n    for index in 0..10 {\n",
            _ => "func f(values []int, offset int) {\n\tfor index := 0; index < 10; index++ {\n",
        };
        let src = format!(
            "{head}{}{}$0\n",
            line.repeat(300),
            &line[..line.len() - line.trim_start().len()]
        );
        let cfg = ContextConfig {
            prefix_tokens: 384,
            ..Default::default()
        };
        let c = fixture_with(path, &src, &cfg, &[]);
        let used = Estimate.count(&c.input.prefix);
        assert!(
            used * 10 >= 384 * 9 && used <= 384,
            "{path}: {used} of 384 tokens"
        );
    }
}

/// A long Python function: the cut window keeps the imports, the class
/// line and the method signature, and starts at a statement.
#[test]
fn python_cut_window_keeps_imports_and_enclosing_headers() {
    let mut src = String::from("import os\nfrom typing import List\n\nclass Store(Base):\n    def load(self, path: str) -> List[str]:\n        out = []\n");
    for i in 0..120 {
        src.push_str(&format!(
            "        value_{i} = os.path.join(path, \"part_{i}\")\n"
        ));
    }
    src.push_str("        $0\n");
    let cfg = ContextConfig {
        prefix_tokens: 600,
        ..Default::default()
    };
    let c = fixture_with("store.py", &src, &cfg, &[]);
    let p = &c.input.prefix;
    assert!(
        p.starts_with("import os\nfrom typing import List\n\nclass Store(Base):\n    def load(self, path: str) -> List[str]:\n        value_"),
        "{p}"
    );
    assert!(p.len() <= 600 * CHARS_PER_TOKEN, "{}", p.len());
    assert!(p.lines().count() > 12, "{p}");
}

/// Rust: `use` lines and the `impl` + `fn` headers are kept; the window
/// does not start inside a multi-line expression.
#[test]
fn rust_cut_window_keeps_use_and_impl_header() {
    let mut src = String::from("use std::io;\nuse std::collections::HashMap;\n\nimpl Server {\n    pub fn handle(&mut self, req: Request) -> io::Result<()> {\n");
    for i in 0..80 {
        src.push_str(&format!(
            "        let v{i} = self.call(\n            req.part({i}),\n        )?;\n"
        ));
    }
    src.push_str("        $0\n    }\n}\n");
    let cfg = ContextConfig {
        prefix_tokens: 300,
        ..Default::default()
    };
    let c = fixture_with("server.rs", &src, &cfg, &[]);
    let p = &c.input.prefix;
    assert!(
        p.starts_with("use std::io;\nuse std::collections::HashMap;\n\nimpl Server {\n    pub fn handle(&mut self, req: Request) -> io::Result<()> {\n        let v"),
        "{p}"
    );
    assert!(c.block_closed);
}

/// JS and Go: imports kept; the window does not start in the middle of an
/// object literal or a call's arguments.
#[test]
fn js_and_go_windows_start_at_statements() {
    let mut js = String::from("import { a } from './a.js';\n\nexport function build(items) {\n");
    for i in 0..60 {
        js.push_str(&format!(
            "  const o{i} = make({{\n    id: {i},\n    name: 'n{i}',\n  }});\n"
        ));
    }
    js.push_str("  $0\n}\n");
    let cfg = ContextConfig {
        prefix_tokens: 300,
        ..Default::default()
    };
    let c = fixture_with("build.js", &js, &cfg, &[]);
    assert!(
        c.input.prefix.starts_with(
            "import { a } from './a.js';\n\nexport function build(items) {\n  const o"
        ),
        "{}",
        c.input.prefix
    );

    let mut go = String::from("package main\n\nimport \"fmt\"\n\nfunc run(xs []int) {\n");
    for i in 0..60 {
        go.push_str(&format!("\tfmt.Println(\n\t\txs[{i}],\n\t)\n"));
    }
    go.push_str("\t$0\n}\n");
    let c = fixture_with("main.go", &go, &cfg, &[]);
    assert!(
        c.input
            .prefix
            .starts_with("package main\nimport \"fmt\"\n\nfunc run(xs []int) {\n\tfmt.Println(\n"),
        "{}",
        c.input.prefix
    );
    assert_eq!(c.indent, Indent::Tabs);
}

/// The prompt head is byte-identical while the user types a line.
#[test]
fn prompt_head_is_stable_while_typing() {
    let mut src = String::from("import os\n\ndef main():\n");
    for i in 0..150 {
        src.push_str(&format!(
            "    settings = load_config(settings, environ) # {i}\n"
        ));
    }
    let cfg = ContextConfig {
        prefix_tokens: 400,
        ..Default::default()
    };
    let other = OtherDoc {
        path: "util.py".into(),
        doc: Document::new(
            "def load_config(settings, environ):\n    return settings.update(environ)\n",
            0,
            "python",
        ),
    };
    let mut heads = Vec::new();
    for typed in ["", "p", "pr", "pri", "prin", "print(x1"] {
        let fx = format!("{src}    {typed}$0\n");
        let c = fixture_with("main.py", &fx, &cfg, std::slice::from_ref(&other));
        let p = &c.input.prefix;
        let head = p[..p.len() - (c.line_prefix.len() - c.input.heal.len())].to_string();
        heads.push((c.input.extras.clone(), head));
    }
    assert!(!heads[0].0.is_empty(), "the similar snippet is found");
    for w in heads.windows(2) {
        assert_eq!(w[0], w[1]);
    }
}

#[test]
fn cross_file_snippets_ranked_deduplicated_and_never_secrets() {
    let cfg = ContextConfig::default();
    let mk = |path: &str, text: &str| OtherDoc {
        path: path.into(),
        doc: Document::with_path(text, 0, "", path),
    };
    let related = "def parse_header(line):\n    key, value = line.split(':', 1)\n    return key.strip(), value.strip()\n";
    let others = vec![
        mk("http/headers.py", related),
        mk("copy/headers.py", related),
        mk("unrelated.py", "def area(r):\n    return 3.14 * r * r\n"),
        mk(".env", "API_KEY=parse_header_secret line split strip\n"),
        mk(
            "deploy/id_rsa",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nparse_header line split\n",
        ),
        mk(
            "notes.txt",
            "-----BEGIN RSA PRIVATE KEY-----\nparse_header key value line split strip\n",
        ),
    ];
    let c = fixture_with(
        "server.py",
        "def handle(line):\n    key, value = parse_header(line)\n    $0\n",
        &cfg,
        &others,
    );
    let paths: Vec<&str> = c.input.extras.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths.len(), 1, "{paths:?}: duplicates are dropped");
    assert!(paths[0].ends_with("headers.py"));
    for s in &c.input.extras {
        assert!(!s.text.contains("PRIVATE KEY") && !s.text.contains("API_KEY"));
    }
}

/// Filler: `n` distinct lines without identifiers (nothing is similar).
fn filler(n: usize) -> String {
    (0..n).map(|i| format!("x = {i}\n")).collect()
}

#[test]
fn definitions_of_names_used_near_the_cursor_come_first() {
    let cfg = wide();
    let body: String = (0..12).map(|i| format!("        step{i}()\n")).collect();
    let src = format!(
        "//- util.py\n{}def parse_header(line, sep=\":\"):\n    key, value = line.split(sep, 1)\n    return key.strip(), value.strip()\n\n{}class Config:\n    def load(self, strict=False):\n{body}\n//- main.py\ndef handle(line):\n    cfg = Config(line)\n    key, value = parse_header(line)\n    cfg.load(strict=True)\n    $0\n",
        filler(40),
        filler(40),
    );
    let c = fixture_files(&src, &cfg, &[]);
    let texts: Vec<&str> = c.input.extras.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(c.input.extras[0].path, "util.py");
    // A short definition whole; a long class by its header and the header
    // of the method used.
    assert_eq!(
        texts,
        [
            "def parse_header(line, sep=\":\"):\n    key, value = line.split(sep, 1)\n    return key.strip(), value.strip()",
            "class Config:",
            "    def load(self, strict=False):",
        ],
        "{texts:#?}"
    );
}

#[test]
fn definitions_are_found_per_language() {
    let cfg = ContextConfig::default();
    for (file, other, use_line, want) in [
        ("a.rs", "pub struct Point {\n    pub x: f64,\n    pub y: f64,\n}\n\nimpl Point {\n    pub fn norm(&self) -> f64 {\n        (self.x * self.x + self.y * self.y).sqrt()\n    }\n}\n", "let p = Point { x: 1.0, y: 2.0 };\n    let n = p.norm();", "pub struct Point {\n    pub x: f64,\n    pub y: f64,\n}"),
        ("a.go", "package geo\n\ntype Point struct {\n\tX, Y float64\n}\n\nfunc Distance(a, b Point) float64 {\n\treturn 0\n}\n", "d := Distance(a, b)", "func Distance(a, b Point) float64 {\n\treturn 0\n}"),
        ("a.ts", "export function clamp(x: number, lo: number, hi: number): number {\n  return Math.min(hi, Math.max(lo, x));\n}\n", "const y = clamp(x, 0, 1);", "export function clamp(x: number, lo: number, hi: number): number {\n  return Math.min(hi, Math.max(lo, x));\n}"),
        ("a.c", "static int add_one(int x) {\n    return x + 1;\n}\n", "int y = add_one(x);", "static int add_one(int x) {\n    return x + 1;\n}"),
    ] {
        let ext = file.rsplit('.').next().unwrap();
        let src = format!("//- lib.{ext}\n{other}//- {file}\nfn f() {{\n    {use_line}\n    $0\n}}\n");
        let c = fixture_files(&src, &cfg, &[]);
        let texts: Vec<&str> = c.input.extras.iter().map(|s| s.text.as_str()).collect();
        assert!(texts.iter().any(|t| t.contains(want)), "{file}: {texts:#?}");
    }
}

#[test]
fn recently_edited_chunks_join_the_context() {
    let cfg = ContextConfig {
        prefix_tokens: 64,
        ..ContextConfig::default()
    };
    // notes.py shares nothing with the text at the cursor, but line 40 was
    // just edited; so was main.py's line 3, far above the window; main.py's
    // line 199 is inside the window (the prompt shows it already).
    let notes = format!(
        "{}def recently_touched():\n    pass\n{}",
        filler(40),
        filler(40)
    );
    let main = format!("{}value = compute()\n$0\n", filler(200));
    let src = format!("//- notes.py\n{notes}//- .env\nTOKEN=abc\n//- main.py\n{main}");
    let c = fixture_files(
        &src,
        &cfg,
        &[
            ("notes.py", 40),
            ("main.py", 3),
            ("main.py", 199),
            (".env", 0),
        ],
    );
    let got: Vec<(&str, &str)> = c
        .input
        .extras
        .iter()
        .map(|s| (s.path.as_str(), s.text.lines().next().unwrap_or("")))
        .collect();
    assert_eq!(
        got,
        [("main.py", "x = 0"), ("notes.py", "x = 32")],
        "{got:?}"
    );
    assert!(c.input.extras[1].text.contains("def recently_touched():"));
}

#[test]
fn skips_mid_word_comments_and_prose_strings() {
    assert_eq!(
        fixture("a.py", "value = compu$0te(x)\n").skip,
        Some(Skip::MidWord)
    );
    assert_eq!(
        fixture("a.py", "x = 1  # the value of $0\n").skip,
        Some(Skip::Comment)
    );
    assert_eq!(
        fixture("a.rs", "fn f() {\n    // TODO: handle $0\n}\n").skip,
        Some(Skip::Comment)
    );
    assert_eq!(
        fixture("a.go", "/* block $0 comment */\nfunc f() {}\n").skip,
        Some(Skip::Comment)
    );
    assert_eq!(
        fixture("a.py", "def f():\n    \"\"\"Return the $0\"\"\"\n").skip,
        Some(Skip::ProseString)
    );
    assert_eq!(
        fixture("a.js", "throw new Error('could not open the file $0');\n").skip,
        Some(Skip::ProseString)
    );
    // Code positions are not skipped.
    assert_eq!(fixture("a.py", "x = compute($0)\n").skip, None);
    assert_eq!(fixture("a.py", "open(\"$0\")\n").skip, None);
    assert_eq!(fixture("a.rs", "let s = \"a\";$0\n").skip, None);
    assert_eq!(fixture("a.rs", "/* done */ $0\n").skip, None);
    // The line under a comment (tree-sitter-rust's doc comments hold their
    // newline) is code.
    for src in [
        "/// Docs.\n$0\npub enum E {}\n",
        "// note\n$0\nfn f() {}\n",
        "fn f() {\n    /// Docs.\n    $0\n}\n",
    ] {
        assert_eq!(fixture("a.rs", src).skip, None, "{src:?}");
    }
    assert_eq!(
        fixture("a.rs", "/// Docs $0\nfn f() {}\n").skip,
        Some(Skip::Comment)
    );
    assert_eq!(fixture("a.ts", "const k = `${a}-$0`;\n").skip, None);
    // Comments are allowed when configured.
    let cfg = ContextConfig {
        comments: true,
        ..Default::default()
    };
    assert_eq!(fixture_with("a.py", "# $0\n", &cfg, &[]).skip, None);
    // Unknown languages: only the mid-word rule applies.
    assert_eq!(fixture("notes.txt", "# see $0\n").skip, None);
    assert_eq!(fixture("notes.txt", "wo$0rd\n").skip, Some(Skip::MidWord));
}

#[test]
fn unknown_languages_complete_with_plain_text() {
    let c = fixture("notes.txt", "alpha\nbeta\n$0\n");
    assert_eq!(c.lang, None);
    assert_eq!(c.input.prefix, "alpha\nbeta\n");
    assert_eq!(c.skip, None);
}

#[test]
fn naive_mode_is_a_plain_window() {
    let cfg = ContextConfig {
        naive: true,
        ..Default::default()
    };
    let c = fixture_with(
        "a.py",
        "import os\n\ndef f():\n    # a comment $0\n",
        &cfg,
        &[],
    );
    assert!(c.naive);
    assert_eq!(c.skip, None);
    assert_eq!(c.input.prefix, "import os\n\ndef f():\n    # a comment ");
}

#[test]
fn long_lines_are_bounded() {
    let long = "a = b + c; ".repeat(50_000);
    let text = format!("import os\n{long}$0{long}\nprint(a)\n");
    let c = fixture("a.py", &text);
    assert!(c.line_prefix.len() <= MAX_LINE_CHARS * 4);
    assert!(c.line_suffix.len() <= MAX_LINE_CHARS * 4);
    let cfg = ContextConfig::default();
    assert!(c.input.prefix.chars().count() <= cfg.prefix_tokens as usize * CHARS_PER_TOKEN + 1);
    assert!(c.input.suffix.chars().count() <= cfg.suffix_tokens as usize * CHARS_PER_TOKEN + 1);
}

#[test]
fn indentation_style_is_detected() {
    assert_eq!(
        detect_indent("a:\n\tb\n\t\tc\n".chars()),
        Some(Indent::Tabs)
    );
    assert_eq!(
        detect_indent("a:\n  b\n    c\n  d\n".chars()),
        Some(Indent::Spaces(2))
    );
    assert_eq!(detect_indent("a\nb\n".chars()), None);
    assert_eq!(fixture("a.go", "func f() {\n$0").indent, Indent::Tabs);
}

/// Context extraction and post-processing never panic, whatever the text,
/// the cursor, the language and the model's output.
mod never_panics {
    use super::*;
    use proptest::prelude::*;

    const PIECES: &[&str] = &[
        "fn ",
        "def ",
        "class ",
        "x",
        "y1",
        " ",
        "\n",
        "\r\n",
        "    ",
        "\t",
        "(",
        ")",
        "{",
        "}",
        "[",
        "]",
        ":",
        ";",
        ",",
        "=",
        "\"",
        "'",
        "`",
        "#",
        "//",
        "/*",
        "*/",
        "--",
        "return ",
        "import os\n",
        "use a::b;\n",
        "é",
        "😀",
        "\\",
        "${",
        "end",
        "then",
    ];

    fn text(max: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(proptest::sample::select(PIECES), 0..max).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
        #[test]
        fn build_and_clean(
            lang_i in 0usize..Lang::ALL.len() + 1,
            body in text(80),
            other in text(40),
            raw in text(20),
            at in any::<prop::sample::Index>(),
            budget in 1u32..200,
        ) {
            let ext = ["rs", "py", "js", "ts", "tsx", "go", "c", "cpp", "java", "lua", "sh", "txt"][lang_i];
            let path = format!("a.{ext}");
            let doc = Document::with_path(&body, 0, "", &path);
            let cursor = at.index(doc.rope.len_chars() + 1);
            let cfg = ContextConfig { prefix_tokens: budget, suffix_tokens: budget / 2, extra_tokens: budget, ..Default::default() };
            let others = [OtherDoc { path: format!("b.{ext}"), doc: Document::with_path(&other, 0, "", "b.rs") }];
            let c = build_with(&doc, cursor, &cfg, &path, true, Head::Search(&others), &Estimate);
            let _ = crate::postprocess::clean(&raw, &c);
        }
    }
}
