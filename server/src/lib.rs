//! slm-ls: a code-completion language server running a small local model.
//!
//! See `ARCHITECTURE.md` at the repository root for the code map.

pub mod complete;
pub mod config;
pub mod context;
pub mod document;
pub mod engine;
// [index] issue 19: the workspace index (definitions of the whole project).
pub mod index;
pub mod lsp;
pub mod machine;
pub mod models;
pub mod postprocess;
// [context] tree-sitter grammars and per-document trees (issue 4).
pub mod syntax;
// [remote] explain + remote completion backends (issue 5).
pub mod remote;
