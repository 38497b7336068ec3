//! Fill-in-the-middle end to end: the real default model (Qwen2.5-Coder
//! 0.5B) over LSP, filling holes where the text *after* the cursor decides
//! the answer. Every case is a `$0` fixture; the checks are properties a
//! user would judge by (inserting the suggestion gives well-indented code
//! that does not repeat what follows), not exact strings, so a change of
//! model revision does not break them while a regression in the prompt
//! layout, token healing or stop rules does.

mod common;

use common::{fixture, TestServer};
use serde_json::json;
use slm_ls::syntax::{parse_str, Lang};

/// One server for a whole test; small budgets keep the cold prompts short.
fn server() -> TestServer {
    common::model_path();
    let mut s = TestServer::start(json!({
        "completion": { "maxTokens": 48, "maxTimeMs": 30000 },
        "context": { "prefixTokens": 384, "suffixTokens": 128, "extraTokens": 128 }
    }));
    s.wait_ready();
    s
}

/// Open `src` (a `$0` fixture) as `uri` and return the suggestion there.
fn complete(s: &mut TestServer, uri: &str, language: &str, src: &str) -> String {
    let (text, line, col) = fixture(src);
    s.open(uri, language, &text);
    let r = s.inline_completion(uri, line, col);
    let items = r["result"]["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items for {src:?}: {r}"));
    let text = items
        .first()
        .and_then(|i| i["insertText"].as_str())
        .unwrap_or("")
        .to_string();
    eprintln!("--- {uri}\n{src}\n=> {text:?}");
    text
}

/// The document after accepting `suggestion` at the `$0` of `src`.
fn accept(src: &str, suggestion: &str) -> String {
    src.replacen("$0", suggestion, 1)
}

fn assert_no_control_text(s: &str) {
    for marker in ["<|", "|>", "<fim", "endoftext"] {
        assert!(!s.contains(marker), "control token text in {s:?}");
    }
}

/// A real suggestion for a cursor placed after the line's indentation:
/// no control text, not empty, and no indentation of its own.
fn assert_suggestion_at_indent(got: &str) {
    assert_no_control_text(got);
    assert!(!got.trim().is_empty(), "no suggestion");
    assert!(
        !got.starts_with([' ', '\t']),
        "leading whitespace on an indented line: {got:?}"
    );
}

/// The non-blank lines a multi-line suggestion adds after the cursor's.
fn added_lines(got: &str) -> impl Iterator<Item = &str> {
    got.lines().skip(1).filter(|l| !l.trim().is_empty())
}

fn parses(lang: Lang, text: &str) -> bool {
    parse_str(lang, text).is_some_and(|t| !t.root_node().has_error())
}

#[test]
fn the_suffix_decides_the_arguments_of_a_call() {
    let mut s = server();
    let src = "def area(width, height):\n    return width * height\n\n\ndef describe(w, h):\n    a = area($0)\n    return f\"{w}x{h} has area {a}\"\n";
    let got = complete(&mut s, "file:///w/geometry.py", "python", src);
    assert_no_control_text(&got);
    assert!(!got.trim().is_empty(), "no suggestion");
    assert!(!got.contains('\n'), "one line inside a call: {got:?}");
    // The closing parenthesis is already there: not repeated.
    let done = accept(src, &got);
    assert!(parses(Lang::Python, &done), "does not parse:\n{done}");
    assert!(got.contains('w') && got.contains('h'), "{got:?}");
    assert!(s.shutdown().success());
}

#[test]
fn a_body_whose_return_is_below_fills_what_the_return_needs() {
    let mut s = server();
    let src = "def mean(xs):\n    $0\n    return total / len(xs)\n";
    let got = complete(&mut s, "file:///w/stats.py", "python", src);
    assert_no_control_text(&got);
    assert!(got.contains("total"), "the suffix uses `total`: {got:?}");
    assert!(
        !got.contains("return total / len(xs)"),
        "repeats the suffix: {got:?}"
    );
    // The cursor is after the indentation: no extra leading whitespace.
    assert!(!got.starts_with([' ', '\t']), "re-indented: {got:?}");
    let done = accept(src, &got);
    assert!(parses(Lang::Python, &done), "does not parse:\n{done}");
    assert!(s.shutdown().success());
}

#[test]
fn indented_empty_lines_get_code_not_more_indentation() {
    let mut s = server();
    // The last line of a function after a blank line, cursor after the
    // indentation (the case that came back as `   return result`).
    let cases = [
        "def double_all(items):\n    result = []\n    for item in items:\n        result.append(item * 2)\n\n    $0\n",
        // Right after a `:` opener.
        "def count_words(text):\n    counts = {}\n    for word in text.split():\n        $0\n",
        // A dedent point: the `if` branch is done.
        "def sign(x):\n    if x >= 0:\n        return 1\n    $0\n\n\nprint(sign(-3))\n",
    ];
    for (i, src) in cases.iter().enumerate() {
        let got = complete(&mut s, &format!("file:///w/indent{i}.py"), "python", src);
        assert_suggestion_at_indent(&got);
        let done = accept(src, &got);
        // Every line the suggestion adds is indented at least as deep as
        // the cursor's block: nothing escapes the function.
        for line in added_lines(&got) {
            assert!(line.starts_with("    "), "{line:?} in {got:?}");
        }
        assert!(parses(Lang::Python, &done), "does not parse:\n{done}");
    }
    assert!(s.shutdown().success());
}

#[test]
fn a_block_opener_gets_a_multi_line_body_in_the_documents_indentation() {
    let mut s = server();
    // Two-space Rust: the body must keep two-space steps.
    let src = "fn sum_even(values: &[i64]) -> i64 {\n  let mut total = 0;\n  for v in values {\n    $0\n  }\n  total\n}\n";
    let got = complete(&mut s, "file:///w/sum.rs", "rust", src);
    assert_suggestion_at_indent(&got);
    for line in added_lines(&got) {
        let lead = line.len() - line.trim_start().len();
        assert!(lead >= 4 && lead % 2 == 0, "{line:?} in {got:?}");
        assert!(!line.contains('\t'), "{line:?}");
    }
    // The loop's `}` and `total` are below: not repeated.
    assert!(!got.contains("total\n}"), "{got:?}");
    let done = accept(src, &got);
    assert!(parses(Lang::Rust, &done), "does not parse:\n{done}");
    assert!(s.shutdown().success());
}

#[test]
fn definitions_from_another_open_file_reach_the_model() {
    let mut s = server();
    // Defined only in the other file, under a name the model cannot guess.
    let other = "def frobnicate_invoice_total(invoice, currency):\n    \"\"\"Sum an invoice's lines in `currency`.\"\"\"\n    return sum(line.amount for line in invoice.lines)\n";
    s.open("file:///w/billing/helpers.py", "python", other);
    let src = "from helpers import frobnicate_invoice_total\n\n\ndef report(invoice):\n    value = frobnicate_$0\n    print(value)\n";
    let got = complete(&mut s, "file:///w/billing/report.py", "python", src);
    assert_no_control_text(&got);
    assert!(
        got.starts_with("invoice_total(invoice"),
        "the definition's name and first parameter: {got:?}"
    );
    assert!(s.shutdown().success());
}

/// Issue 18's regression: at an indented empty line the prompt used to
/// leave the whole indentation out (token healing) and make the model
/// write it first; it lost the nesting level and ran away into 50 spaces
/// (nothing shown). The kept indentation says the `else:` body is being
/// written: the model decrements.
#[test]
fn an_else_body_at_its_indentation_gets_code_at_that_depth() {
    let mut s = server();
    let src = "def balanced(text):\n    depth = 0\n    for ch in text:\n        if ch == \"(\":\n            depth += 1\n        else:\n            $0\n        if depth < 0:\n            return False\n    return depth == 0\n";
    let got = complete(&mut s, "file:///w/balanced.py", "python", src);
    assert_suggestion_at_indent(&got);
    assert_eq!(
        got.lines().next().unwrap().trim_end(),
        "depth -= 1",
        "{got:?}"
    );
    assert!(parses(Lang::Python, &accept(src, &got)), "{got:?}");
}
