//! The index on real temporary trees: what is read, what is skipped (and
//! that nothing crashes), outlines per language, import resolution.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use super::*;

/// A fresh folder under the system temp dir, removed on drop.
struct TempTree(PathBuf);

impl TempTree {
    fn new(name: &str) -> TempTree {
        let p = std::env::temp_dir().join(format!(
            "slm-ls-index-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempTree(p)
    }

    fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        // An unreadable folder must be made readable again to be removed.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let locked = self.0.join("locked");
            let _ = std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755));
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn build(root: &Path, limits: Limits) -> Index {
    let index = Index::new(limits);
    index.build(root, &AtomicBool::new(false));
    index
}

fn names(index: &Index, rel: &str) -> Vec<String> {
    index
        .file(rel)
        .map(|f| f.defs.iter().map(|d| d.name.to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn bad_input_is_skipped_by_kind_and_the_rest_is_indexed() {
    let t = TempTree::new("bad");
    t.write(".gitignore", "build/\n*.gen.py\n");
    t.write(
        "pkg/util.py",
        "def strip_escapes(s):\n    \"\"\"Remove ANSI escapes.\"\"\"\n    return s\n",
    );
    t.write("build/out.py", "def generated(): pass\n");
    t.write("pkg/x.gen.py", "def generated2(): pass\n");
    t.write("pkg/blob.py", b"def f():\x00\x01 pass\n");
    t.write("pkg/latin1.py", b"def caf\xe9(): pass\n");
    t.write("pkg/huge.py", "x = 1\n".repeat(200_000));
    t.write(".env", "SECRET=1\n");
    t.write("pkg/secrets.py", "API_KEY = 'x'\n");
    t.write("pkg/key.py", "K = '''-----BEGIN RSA PRIVATE KEY-----'''\n");
    t.write("README.md", "# hi\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::os::unix::fs::symlink(&t.0, t.0.join("pkg/loop")).unwrap();
        std::os::unix::fs::symlink(t.0.join("pkg/util.py"), t.0.join("pkg/link.py")).unwrap();
        t.write("locked/hidden.py", "def nope(): pass\n");
        std::fs::set_permissions(t.0.join("locked"), std::fs::Permissions::from_mode(0o000))
            .unwrap();
    }
    let index = build(&t.0, Limits::default());
    let st = index.stats();
    assert_eq!(st.state, "ready");
    assert_eq!(names(&index, "pkg/util.py"), ["strip_escapes"]);
    // Root reads the locked folder anyway.
    #[cfg(unix)]
    let root_user = unsafe { libc::geteuid() } == 0;
    #[cfg(not(unix))]
    let root_user = false;
    assert_eq!(
        st.files,
        1 + root_user as usize,
        "only pkg/util.py is indexed: {st:?}"
    );
    for (kind, why) in [
        ("binary", "NUL bytes"),
        ("notUtf8", "Latin-1 text"),
        ("tooLarge", "1.2 MB"),
        ("secret", "secrets.py and a private key"),
        ("notSource", "README.md"),
    ] {
        assert!(
            st.skipped.get(kind).is_some_and(|&n| n > 0),
            "{kind} ({why}): {st:?}"
        );
    }
    #[cfg(unix)]
    {
        assert!(st.skipped.get("symlink").is_some_and(|&n| n > 0), "{st:?}");
        // Root can read anything: the permission test means something only
        // for other users.
        if !root_user {
            assert!(
                st.skipped.get("walkError").is_some_and(|&n| n > 0),
                "{st:?}"
            );
        }
    }
    assert!(
        index.file("build/out.py").is_none(),
        ".gitignore is respected"
    );
    assert!(index.file("pkg/x.gen.py").is_none(), ".gitignore globs too");
    assert!(st.bytes > 0 && st.source_bytes > 0);
}

#[test]
fn a_root_that_does_not_exist_is_an_empty_index_with_a_reason() {
    let index = build(Path::new("/nonexistent/slm-ls/root"), Limits::default());
    let st = index.stats();
    assert_eq!(st.files, 0);
    assert!(st.state.contains("not a folder"), "{}", st.state);
}

#[test]
fn caps_stop_the_index_and_say_so() {
    let t = TempTree::new("caps");
    for i in 0..30 {
        t.write(
            &format!("m{i:02}.py"),
            format!("def f{i}(x):\n    return x\n"),
        );
    }
    let index = build(
        &t.0,
        Limits {
            max_files: 10,
            ..Default::default()
        },
    );
    let st = index.stats();
    assert_eq!(st.files, 10);
    assert!(st.skipped.get("overCap").is_some_and(|&n| n > 0), "{st:?}");
    let small = build(
        &t.0,
        Limits {
            max_index_bytes: 2000,
            ..Default::default()
        },
    );
    assert!(small.stats().bytes <= 2000, "{:?}", small.stats());
    assert!(small.stats().files < 30);
}

#[test]
fn a_vanished_file_is_dropped_on_refresh_and_a_changed_one_reread() {
    let t = TempTree::new("refresh");
    let p = t.write("a.py", "def old(): pass\n");
    let index = build(&t.0, Limits::default());
    assert_eq!(names(&index, "a.py"), ["old"]);
    std::fs::write(&p, "def new(): pass\n").unwrap();
    index.refresh(&p);
    assert_eq!(names(&index, "a.py"), ["new"]);
    assert_eq!(
        index.defined_in("old", 4),
        Some(vec![]),
        "the old name is gone"
    );
    std::fs::remove_file(&p).unwrap();
    index.refresh(&p);
    assert!(index.file("a.py").is_none());
    assert_eq!(index.stats().definitions, 0);
}

/// The outline of `src` as `name: text` lines.
fn outline_of(path: &str, src: &str) -> String {
    let lang = crate::syntax::Lang::from_path(path).unwrap();
    outline::outline(lang, src)
        .iter()
        .map(|d| match &d.container {
            Some(c) => format!("{} in {c:?}: {}", d.name, d.text),
            None => format!("{}: {}", d.name, d.text),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn outlines_keep_signatures_and_first_doc_lines_per_language() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "a.py",
            "MAX_RETRIES = 3\nlimit = 4\n\ndef helper(a, b=2):\n    \"\"\"Add them.\n\n    More.\"\"\"\n    return a + b\n\nclass Box:\n    def get(self):\n        return 1\n",
            "MAX_RETRIES: MAX_RETRIES = 3\nhelper: def helper(a, b=2):\n    \"\"\"Add them.\"\"\"\nBox: class Box:\nget in \"class Box:\":     def get(self):",
        ),
        (
            "a.rs",
            "/// Parse it.\n/// More.\npub fn parse(s: &str) -> u32 {\n    0\n}\npub struct P {\n    x: u32,\n}\nimpl P {\n    pub fn x(&self) -> u32 { self.x }\n}\nconst N: usize = 3;\n",
            "parse: // Parse it.\npub fn parse(s: &str) -> u32\nP: pub struct P {\n    x: u32,\n}\nP: impl P\nx in \"impl P\":     pub fn x(&self) -> u32\nN: const N: usize = 3;",
        ),
        (
            "a.ts",
            "/** Make one. */\nexport function make(n: number): Thing {\n  return new Thing();\n}\nexport const LIMIT = 10;\nexport class Thing {\n  size(): number { return 1; }\n}\n",
            "make: // Make one.\nexport function make(n: number): Thing\nLIMIT: export const LIMIT = 10;\nThing: export class Thing\nsize in \"export class Thing\":   size(): number",
        ),
        (
            "a.go",
            "package x\n\n// Sum adds.\nfunc Sum(a, b int) int {\n\treturn a + b\n}\n\ntype T struct {\n\tA int\n}\n\nfunc (t *T) Get() int { return t.A }\n",
            "Sum: // Sum adds.\nfunc Sum(a, b int) int\nT: type T struct {\n\tA int\n}\nGet: func (t *T) Get() int",
        ),
        (
            "a.h",
            "/* Open it. */\nint open_it(const char *p);\n#define MAXN 10\n",
            "open_it: // Open it.\nint open_it(const char *p);\nMAXN: #define MAXN 10",
        ),
    ];
    for (path, src, want) in cases {
        assert_eq!(outline_of(path, src), *want, "{path}");
    }
}

#[test]
fn imports_resolve_to_project_files() {
    let t = TempTree::new("imports");
    t.write("pkg/__init__.py", "");
    t.write("pkg/util.py", "def helper(): pass\n");
    t.write("pkg/sub/deep.py", "def deep(): pass\n");
    t.write("crate/src/lib.rs", "pub mod util;\n");
    t.write("crate/src/util.rs", "pub fn h() {}\n");
    t.write("crate/src/a/b.rs", "pub fn b() {}\n");
    t.write("web/src/x.ts", "export function x() {}\n");
    t.write("go/pkg/util/u.go", "package util\nfunc U() {}\n");
    let index = build(&t.0, Limits::default());
    let files = |lang, from: &str, module: &str| -> Vec<String> {
        index
            .files_for(&imports::targets(lang, from, module))
            .iter()
            .map(|p| p.to_string())
            .collect()
    };
    use crate::syntax::Lang::*;
    assert_eq!(files(Python, "pkg/main.py", ".util"), ["pkg/util.py"]);
    assert_eq!(files(Python, "pkg/sub/deep.py", "..util"), ["pkg/util.py"]);
    assert_eq!(files(Python, "pkg/main.py", "."), ["pkg/__init__.py"]);
    assert_eq!(
        files(Python, "other/x.py", "pkg.sub.deep"),
        ["pkg/sub/deep.py"]
    );
    assert!(files(Python, "pkg/main.py", "os.path").is_empty());
    assert_eq!(
        files(Rust, "crate/src/a/b.rs", "crate::util"),
        ["crate/src/util.rs"]
    );
    assert_eq!(
        files(Rust, "crate/src/a.rs", "self::b"),
        ["crate/src/a/b.rs"]
    );
    assert_eq!(
        files(Rust, "crate/src/a/b.rs", "super::super::util"),
        ["crate/src/util.rs"]
    );
    assert_eq!(files(TypeScript, "web/src/y.ts", "./x"), ["web/src/x.ts"]);
    assert_eq!(
        files(TypeScript, "web/src/y.ts", "./x.js"),
        ["web/src/x.ts"]
    );
    assert!(files(TypeScript, "web/src/y.ts", "react").is_empty());
    assert_eq!(
        files(Go, "go/main.go", "example.com/m/pkg/util"),
        ["go/pkg/util/u.go"]
    );
}
