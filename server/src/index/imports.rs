//! A file's imports, read from its syntax tree, and the project files they
//! point to: Python `import` / `from … import`, Rust `use` / `mod`,
//! JS/TS `import … from`, Go `import` (and the file's own package), C/C++
//! `#include "…"`, Java `import` (and the file's own package).
//!
//! Only what can be resolved without a build system is resolved: relative
//! paths, paths from a Rust crate's `src/`, and otherwise paths matched by
//! their tail (`pkg.mod` → any indexed `…/pkg/mod.py`). An import of a
//! library outside the project resolves to nothing and costs nothing.

use ropey::Rope;
use tree_sitter::Node;

use crate::syntax::Lang;

/// Imports looked at per file (bounded cost on generated files).
const MAX_IMPORTS: usize = 200;

/// One import of the current file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Import {
    /// The module as written (`..util`, `crate::a::b`, `./x`, `fmt`, `a.h`).
    pub module: String,
    /// Names imported from it (`from m import a, b`, `use m::{A, b}`,
    /// `import {a} from`); empty for a module import.
    pub names: Vec<String>,
    /// The name the module is used by in this file (`import m as x`,
    /// Go's package name, `import * as x`): `x.name` then means a name of
    /// the module.
    pub alias: Option<String>,
}

/// Where a module's files may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// This path, relative to the root.
    Exact(String),
    /// Any indexed path that ends with this (at a `/`).
    Suffix(String),
    /// Every file of the folder with this exact path (Go, Java packages).
    Dir(String),
    /// Every file of the folder whose path ends with this (Java's
    /// `com/x/y` under `src/main/java/`).
    DirSuffix(String),
    /// Every file of the folder sharing the longest tail with this (Go's
    /// `example.com/proj/pkg/util` for the folder `go/pkg/util`).
    DirTailOf(String),
}

fn text(rope: &Rope, n: Node<'_>) -> String {
    let end = n.end_byte().min(rope.len_bytes());
    let start = n.start_byte().min(end);
    rope.slice(rope.byte_to_char(start)..rope.byte_to_char(end))
        .to_string()
}

/// The imports at the top level of `tree` (and in a Rust `mod` declared
/// there), in document order.
pub fn imports(lang: Lang, rope: &Rope, tree: &tree_sitter::Tree) -> Vec<Import> {
    let mut out = Vec::new();
    let root = tree.root_node();
    let mut walk = root.walk();
    for node in root.named_children(&mut walk).take(4000) {
        if out.len() >= MAX_IMPORTS {
            break;
        }
        match (lang, node.kind()) {
            (Lang::Python, "import_statement") => python_import(rope, node, &mut out),
            (Lang::Python, "import_from_statement") => python_from(rope, node, &mut out),
            (Lang::Rust, "use_declaration") => {
                if let Some(arg) = node.child_by_field_name("argument") {
                    rust_use(rope, arg, "", &mut out);
                }
            }
            (Lang::Rust, "mod_item") if node.child_by_field_name("body").is_none() => {
                if let Some(n) = node.child_by_field_name("name") {
                    let name = text(rope, n);
                    out.push(Import {
                        module: format!("self::{name}"),
                        alias: Some(name),
                        names: vec![],
                    });
                }
            }
            (Lang::JavaScript | Lang::TypeScript | Lang::Tsx, "import_statement") => {
                js_import(rope, node, &mut out)
            }
            (
                Lang::JavaScript | Lang::TypeScript | Lang::Tsx,
                "lexical_declaration" | "variable_declaration",
            ) => js_require(rope, node, &mut out),
            (Lang::Go, "import_declaration") => go_import(rope, node, &mut out),
            (Lang::C | Lang::Cpp, "preproc_include") => {
                if let Some(p) = node
                    .child_by_field_name("path")
                    .filter(|p| p.kind() == "string_literal")
                {
                    out.push(Import {
                        module: unquote(&text(rope, p)),
                        ..Default::default()
                    });
                }
            }
            (Lang::Java, "import_declaration") => {
                let t = text(rope, node);
                let path = t
                    .trim_start_matches("import")
                    .trim()
                    .trim_start_matches("static ")
                    .trim_end_matches(';')
                    .trim()
                    .to_string();
                let (module, name) = path.rsplit_once('.').unwrap_or(("", &path));
                out.push(Import {
                    module: module.to_string(),
                    names: vec![name.to_string()],
                    alias: None,
                });
            }
            _ => {}
        }
    }
    out
}

fn unquote(s: &str) -> String {
    s.trim_matches(|c| c == '"' || c == '\'' || c == '`' || c == '<' || c == '>')
        .to_string()
}

fn python_import(rope: &Rope, node: Node<'_>, out: &mut Vec<Import>) {
    let mut walk = node.walk();
    for n in node.children_by_field_name("name", &mut walk) {
        let (module, alias) = match n.kind() {
            "aliased_import" => (
                n.child_by_field_name("name").map(|m| text(rope, m)),
                n.child_by_field_name("alias").map(|a| text(rope, a)),
            ),
            _ => (Some(text(rope, n)), None),
        };
        if let Some(module) = module {
            let alias = alias.unwrap_or_else(|| module.clone());
            out.push(Import {
                module,
                names: vec![],
                alias: Some(alias),
            });
        }
    }
}

fn python_from(rope: &Rope, node: Node<'_>, out: &mut Vec<Import>) {
    let Some(m) = node.child_by_field_name("module_name") else {
        return;
    };
    let module = text(rope, m);
    let mut names = Vec::new();
    let mut walk = node.walk();
    for n in node.children_by_field_name("name", &mut walk) {
        let name = match n.kind() {
            "aliased_import" => n.child_by_field_name("name").map(|m| text(rope, m)),
            _ => Some(text(rope, n)),
        };
        names.extend(name);
    }
    if names.is_empty()
        && node
            .named_children(&mut node.walk())
            .any(|c| c.kind() == "wildcard_import")
    {
        names.push("*".into());
    }
    out.push(Import {
        module,
        names,
        alias: None,
    });
}

/// Flatten a `use` tree: `a::{b, c::D}` → (`a`, [b]), (`a::c`, [D]).
fn rust_use(rope: &Rope, node: Node<'_>, base: &str, out: &mut Vec<Import>) {
    let join = |a: &str, b: &str| match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}::{b}"),
    };
    match node.kind() {
        "scoped_use_list" => {
            let path = node
                .child_by_field_name("path")
                .map(|p| text(rope, p))
                .unwrap_or_default();
            let base = join(base, &path);
            if let Some(list) = node.child_by_field_name("list") {
                rust_use(rope, list, &base, out);
            }
        }
        "use_list" => {
            let mut walk = node.walk();
            for c in node.named_children(&mut walk) {
                rust_use(rope, c, base, out);
            }
        }
        "use_as_clause" => {
            if let Some(p) = node.child_by_field_name("path") {
                rust_use(rope, p, base, out);
            }
        }
        "use_wildcard" => {
            let t = text(rope, node);
            let path = t.trim_end_matches("*").trim_end_matches("::");
            out.push(Import {
                module: join(base, path),
                names: vec!["*".into()],
                alias: None,
            });
        }
        "self" => out.push(Import {
            alias: base.rsplit("::").next().map(str::to_string),
            module: base.to_string(),
            names: vec![],
        }),
        _ => {
            let full = join(base, &text(rope, node));
            let (module, name) = full.rsplit_once("::").unwrap_or(("self", &full));
            out.push(Import {
                module: module.to_string(),
                names: vec![name.to_string()],
                alias: None,
            });
        }
    }
}

fn js_import(rope: &Rope, node: Node<'_>, out: &mut Vec<Import>) {
    let Some(src) = node.child_by_field_name("source") else {
        return;
    };
    let module = unquote(&text(rope, src));
    let mut imp = Import {
        module,
        ..Default::default()
    };
    let mut stack: Vec<Node<'_>> = vec![node];
    while let Some(n) = stack.pop() {
        match n.kind() {
            "import_specifier" => {
                if let Some(name) = n.child_by_field_name("name") {
                    imp.names.push(text(rope, name));
                }
            }
            "namespace_import" => {
                imp.alias = n.named_child(0).map(|a| text(rope, a));
            }
            "import_clause" | "named_imports" | "import_statement" => {
                let mut walk = n.walk();
                for c in n.named_children(&mut walk) {
                    if c.kind() == "identifier" && n.kind() == "import_clause" {
                        // A default import: used as the module's main name.
                        imp.alias = Some(text(rope, c));
                    } else {
                        stack.push(c);
                    }
                }
            }
            _ => {}
        }
    }
    out.push(imp);
}

/// CommonJS: `const x = require('./x')`, `const { a, b } = require('./x')`.
fn js_require(rope: &Rope, node: Node<'_>, out: &mut Vec<Import>) {
    let mut walk = node.walk();
    for d in node
        .named_children(&mut walk)
        .filter(|d| d.kind() == "variable_declarator")
    {
        let (Some(name), Some(value)) = (
            d.child_by_field_name("name"),
            d.child_by_field_name("value"),
        ) else {
            continue;
        };
        let is_require = value.kind() == "call_expression"
            && value
                .child_by_field_name("function")
                .is_some_and(|f| text(rope, f) == "require");
        let Some(arg) = value
            .child_by_field_name("arguments")
            .and_then(|a| a.named_child(0))
            .filter(|a| is_require && a.kind() == "string")
        else {
            continue;
        };
        let mut imp = Import {
            module: unquote(&text(rope, arg)),
            ..Default::default()
        };
        match name.kind() {
            "identifier" => imp.alias = Some(text(rope, name)),
            "object_pattern" => {
                let mut w = name.walk();
                for p in name.named_children(&mut w) {
                    let n = match p.kind() {
                        "pair_pattern" => p.child_by_field_name("key"),
                        _ => Some(p),
                    };
                    imp.names.extend(n.map(|n| text(rope, n)));
                }
            }
            _ => continue,
        }
        out.push(imp);
    }
}

fn go_import(rope: &Rope, node: Node<'_>, out: &mut Vec<Import>) {
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        if n.kind() == "import_spec" {
            let Some(p) = n.child_by_field_name("path") else {
                continue;
            };
            let module = unquote(&text(rope, p));
            let alias = n
                .child_by_field_name("name")
                .map(|a| text(rope, a))
                .or_else(|| module.rsplit('/').next().map(str::to_string));
            out.push(Import {
                module,
                names: vec![],
                alias,
            });
        } else {
            let mut walk = n.walk();
            stack.extend(n.named_children(&mut walk));
        }
    }
}

fn dir_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

fn join_path(dir: &str, rest: &str) -> String {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for seg in rest.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

/// The files a module of `lang`, imported from the file at `from`
/// (relative path), may be, best first.
pub fn targets(lang: Lang, from: &str, module: &str) -> Vec<Target> {
    let dir = dir_of(from);
    match lang {
        Lang::Python => {
            let dots = module.chars().take_while(|&c| c == '.').count();
            let rest = module[dots..].replace('.', "/");
            if dots > 0 {
                let mut base = dir.to_string();
                for _ in 1..dots {
                    base = dir_of(&base).to_string();
                }
                let p = join_path(&base, &rest);
                let pre = if p.is_empty() {
                    String::new()
                } else {
                    format!("{p}/")
                };
                vec![
                    Target::Exact(format!("{p}.py")),
                    Target::Exact(format!("{pre}__init__.py")),
                ]
            } else {
                vec![
                    Target::Suffix(format!("{rest}.py")),
                    Target::Suffix(format!("{rest}/__init__.py")),
                ]
            }
        }
        Lang::Rust => {
            let Some(mut segs) = rust_module_of(from) else {
                return vec![];
            };
            let src_root = match from.rfind("src/") {
                Some(i) => &from[..i + 4],
                None => "",
            };
            let parts: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
            let mut rest = parts.as_slice();
            match rest.first() {
                Some(&"crate") => {
                    segs.clear();
                    rest = &rest[1..];
                }
                Some(&"self") => rest = &rest[1..],
                Some(&"super") => {
                    while rest.first() == Some(&"super") {
                        segs.pop();
                        rest = &rest[1..];
                    }
                }
                // A module declared in this one (`mod util;` … `use util::x`).
                Some(_) => {}
                None => return vec![],
            }
            segs.extend(rest.iter().map(|s| s.to_string()));
            if segs.is_empty() {
                return vec![
                    Target::Exact(format!("{src_root}lib.rs")),
                    Target::Exact(format!("{src_root}main.rs")),
                ];
            }
            let p = format!("{src_root}{}", segs.join("/"));
            vec![
                Target::Exact(format!("{p}.rs")),
                Target::Exact(format!("{p}/mod.rs")),
            ]
        }
        Lang::JavaScript | Lang::TypeScript | Lang::Tsx => {
            if !module.starts_with('.') {
                return vec![];
            }
            let p = join_path(dir, module);
            let mut out = vec![Target::Exact(p.clone())];
            for ext in ["ts", "tsx", "js", "jsx", "mjs", "cjs", "d.ts"] {
                out.push(Target::Exact(format!("{p}.{ext}")));
            }
            for ext in ["ts", "js", "tsx"] {
                out.push(Target::Exact(format!("{p}/index.{ext}")));
            }
            // `./x.js` written for a `x.ts` source (TypeScript's ESM rule).
            if let Some(stem) = p.strip_suffix(".js") {
                out.push(Target::Exact(format!("{stem}.ts")));
            }
            out
        }
        Lang::Go => {
            if module.is_empty() {
                return vec![Target::Dir(dir.to_string())];
            }
            vec![Target::DirTailOf(module.to_string())]
        }
        Lang::C | Lang::Cpp => vec![
            Target::Exact(join_path(dir, module)),
            Target::Suffix(module.to_string()),
        ],
        Lang::Java => {
            if module.is_empty() {
                return vec![Target::Dir(dir.to_string())];
            }
            vec![Target::DirSuffix(module.replace('.', "/"))]
        }
        Lang::Lua | Lang::Bash => vec![],
    }
}

/// The module path of a Rust file under a crate's `src/`: `src/a/b.rs` →
/// [a, b]; `src/a/mod.rs` → [a]; `src/lib.rs` → [].
fn rust_module_of(path: &str) -> Option<Vec<String>> {
    let i = path.rfind("src/").map_or(0, |i| i + 4);
    let rel = path[i..].strip_suffix(".rs")?;
    let mut segs: Vec<String> = rel.split('/').map(str::to_string).collect();
    if matches!(
        segs.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        segs.pop();
    }
    Some(segs)
}

/// How many trailing `/` segments `a` and `b` share.
pub fn common_tail(a: &str, b: &str) -> usize {
    a.rsplit('/')
        .zip(b.rsplit('/'))
        .take_while(|(x, y)| x == y && !x.is_empty())
        .count()
}

/// Does `path` match `target` (without the folder cases, which need the
/// index's listing)?
pub fn matches(path: &str, target: &Target) -> bool {
    match target {
        Target::Exact(p) => path == p,
        Target::Suffix(s) => {
            path == s || (path.ends_with(s.as_str()) && path[..path.len() - s.len()].ends_with('/'))
        }
        Target::Dir(d) => dir_of(path) == d,
        Target::DirSuffix(s) => {
            let d = dir_of(path);
            d == s || (d.ends_with(s.as_str()) && d[..d.len() - s.len()].ends_with('/'))
        }
        Target::DirTailOf(m) => common_tail(m, dir_of(path)) > 0,
    }
}
