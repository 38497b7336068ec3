//! How a handler runs one blocking call to a remote model (explain, or a
//! remote completion backend): on a thread of its own, cancelled when the
//! request's future is dropped, the newest request per slot winning, and
//! its failure turned into an LSP error that names the fault.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use serde_json::json;
use tower_lsp_server::jsonrpc::{Error, ErrorCode};

use crate::remote::{Cancel, RemoteError};

/// `RequestFailed` with the fault's kind in `data`, or `RequestCancelled`.
pub fn remote_error(prefix: &str, e: &RemoteError) -> Error {
    if *e == RemoteError::Cancelled {
        return Error::request_cancelled();
    }
    Error {
        code: ErrorCode::ServerError(-32803),
        message: format!("{prefix}: {e}").into(),
        data: Some(json!({ "kind": kind(e) })),
    }
}

/// A stable name per fault, for clients and tests.
fn kind(e: &RemoteError) -> &'static str {
    match e {
        RemoteError::NotConfigured(_) => "notConfigured",
        RemoteError::NoKey { .. } => "noKey",
        RemoteError::NeverSend { .. } => "neverSend",
        RemoteError::Unreachable { .. } => "unreachable",
        RemoteError::Timeout { .. } => "timeout",
        RemoteError::Auth { .. } => "auth",
        RemoteError::RateLimited { .. } => "rateLimited",
        RemoteError::Server { .. } => "server",
        RemoteError::Http { .. } => "http",
        RemoteError::Provider(_) => "provider",
        RemoteError::Malformed(_) => "malformed",
        RemoteError::Truncated(_) => "truncated",
        RemoteError::Cancelled => "cancelled",
        RemoteError::TooLarge { .. } => "tooLarge",
    }
}

/// Run blocking remote work on a thread of its own and await its result.
/// Not `spawn_blocking`: the runtime waits for those when it shuts down,
/// and a socket stuck in a read (up to `timeoutMs`) would hold up the
/// editor's `exit`. A detached thread just dies with the process.
pub async fn off_runtime<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> std::result::Result<T, RemoteError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("slm-ls-remote".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| {
            RemoteError::Provider(format!("cannot start a thread for the request: {e}"))
        })?;
    rx.await
        .map_err(|_| RemoteError::Provider("the request thread panicked".into()))
}

/// A running request's cancel flag and the wake-up for its waiting handler.
type Running = (Cancel, Arc<tokio::sync::Notify>);

/// The newest request per slot (`explain`, or `complete:<uri>`): a new one
/// supersedes the old, which answers `RequestCancelled` at once.
///
/// Answering at once matters: a superseded request that waited for its
/// thread (stuck in a read for up to `timeoutMs`) would hold one of
/// tower-lsp's concurrent-request slots away from completions.
static LATEST: LazyLock<Mutex<HashMap<String, Running>>> = LazyLock::new(Default::default);

/// Run `work` as the newest request of `slot`, cancelling the previous one.
pub async fn latest_wins<T>(
    slot: String,
    cancel: &Cancel,
    work: impl std::future::Future<Output = std::result::Result<T, RemoteError>>,
) -> std::result::Result<T, RemoteError> {
    let superseded = Arc::new(tokio::sync::Notify::new());
    if let Some((old, wake)) = LATEST
        .lock()
        .unwrap()
        .insert(slot.clone(), (cancel.clone(), superseded.clone()))
    {
        old.cancel();
        wake.notify_one();
    }
    let result = tokio::select! {
        r = work => r,
        _ = superseded.notified() => Err(RemoteError::Cancelled),
    };
    let mut latest = LATEST.lock().unwrap();
    if latest.get(&slot).is_some_and(|(c, _)| c.same(cancel)) {
        latest.remove(&slot);
    }
    result
}
