//! The LSP edge: the only module that knows LSP types and JSON-RPC.
//!
//! - `server.rs`: the `LanguageServer` impl; one line per method, each
//!   delegating to a plain function in `handlers.rs`.
//! - `handlers.rs`: the handlers, grouped by kind (state mutation,
//!   latency-sensitive requests, background work).
//! - `proto.rs`: conversions between LSP types and our plain types.
//! - `state.rs`: the session state shared by handlers.
//! - `client_log.rs`: forwards warn+ tracing events to `window/logMessage`.

pub mod client_log;
pub mod handlers;
pub mod proto;
pub mod server;
pub mod state;

pub use server::serve_stdio;
