//! The LSP edge: the only module that knows LSP types and JSON-RPC.
//!
//! - `server.rs`: the `LanguageServer` impl, one line per method, and the
//!   stdio entry point.
//! - `handlers.rs`: document sync, settings, commands, stats, model
//!   loading and warm-up, as plain functions over the session state.
//! - `completion.rs`: the latency-sensitive requests (inline completion,
//!   the completion menu item) from the local engine.
//! - `remote_completion.rs`: the same suggestion from a completion server
//!   (`completion.backend` other than `local`).
//! - `explain.rs`: `slm-ls.explain` and its code action.
//! - `remote_call.rs`: how a handler runs a blocking remote call (own
//!   thread, cancel on drop, latest wins, errors naming the fault).
//! - `progress.rs`: `$/progress`, on the client's token or one we create.
//! - `acceptance.rs`: noticing from later edits that a suggestion was
//!   accepted (for clients that do not run the item's command).
//! - `lifetime.rs`: the session's end (exit, end of input, signals): the
//!   process does not outlive its editor.
//! - `proto.rs`: conversions between LSP types and our plain types.
//! - `state.rs`: the session state shared by handlers.
//! - `client_log.rs`: forwards warn+ tracing events to `window/logMessage`;
//!   stderr verbosity.
//! - `framing.rs`: hardened stdin framing in front of tower-lsp (malformed
//!   input is answered, not fatal).
//! - `test_hooks.rs`: test-only requests behind `SLM_LS_TEST_HOOKS=1`.
//!
//! Dependencies run one way: `server` → `handlers` → `completion` →
//! `remote_completion` → `remote_call`; `handlers` → `explain` →
//! `remote_call`; everything may use `state`, `proto` and `progress`.

mod acceptance;
pub mod client_log;
mod completion;
// [remote] issue 5: slm-ls.explain and its code action.
mod explain;
pub mod framing;
pub mod handlers;
pub mod lifetime;
mod progress;
pub mod proto;
mod remote_call;
// [remote] issue 5: completion backends other than the local engine.
mod remote_completion;
pub mod server;
pub mod state;
pub mod test_hooks;

pub use lifetime::exit_now;
pub use server::serve_stdio;
