//! The LSP edge: the only module that knows LSP types and JSON-RPC.
//!
//! - `server.rs`: the `LanguageServer` impl; one line per method, each
//!   delegating to a plain function in `handlers.rs`.
//! - `handlers.rs`: the handlers, grouped by kind (state mutation,
//!   latency-sensitive requests, background work).
//! - `proto.rs`: conversions between LSP types and our plain types.
//! - `state.rs`: the session state shared by handlers.
//! - `client_log.rs`: forwards warn+ tracing events to `window/logMessage`.
//! - `framing.rs`: hardened stdin framing in front of tower-lsp (malformed
//!   input is answered, not fatal).
//! - `test_hooks.rs`: test-only requests behind `SLM_LS_TEST_HOOKS=1`.
//! - `explain.rs`: `slm-ls.explain`, its code action, and the remote
//!   completion backends' handler (the only handlers that reach `remote/`).

pub mod client_log;
pub mod framing;
// [remote] issue 5: slm-ls.explain, its code action, remote completion backends.
mod explain;
pub mod handlers;
pub mod proto;
pub mod server;
pub mod state;
pub mod test_hooks;

pub use server::serve_stdio;
