//! cargo-fuzz entry points: the checkers live in `tests/fuzz_support/`
//! (shared with the bounded CI run, `tests/fuzz_bounded.rs`) and test the
//! real `slm-ls` library.

#[path = "../../tests/fuzz_support/mod.rs"]
mod checks;

pub use checks::{check_edits, check_framing};
