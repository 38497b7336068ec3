//! slm-ls: a code-completion language server running a small local model.
//!
//! See `ARCHITECTURE.md` at the repository root for the code map.

pub mod config;
pub mod document;
pub mod engine;
