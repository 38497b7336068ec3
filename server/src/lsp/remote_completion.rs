//! Completions from an inference server (`completion.backend` other than
//! `local`): the same context extraction, typed-ahead cache and
//! post-processing as the local engine, with the text coming from the
//! configured server (`remote/completion.rs`) instead of the engine.
//!
//! The remote counterpart of the local path in `completion.rs`, which calls
//! [`suggest`] when the backend is not local. Nothing leaves the machine
//! for a file matching `remote.neverSend`, and secrets are redacted first.

use std::sync::Arc;
use std::time::Duration;

use tower_lsp_server::jsonrpc::{Error, Result};
use tower_lsp_server::ls_types as lsp;

use super::progress::{self, Progress};
use super::remote_call::{latest_wins, off_runtime, remote_error};
use super::state::State;
use crate::complete;
use crate::config::Config;
use crate::document::Snapshot;
use crate::postprocess;
use crate::remote::{self, Cancel, CancelOnDrop, RemoteError};

/// The suggestion text at `cursor` from the completion server, streamed
/// through `$/progress` on `progress` when the client passed a token.
pub async fn suggest(
    state: &Arc<State>,
    snap: &Snapshot,
    cursor: usize,
    progress: Option<lsp::ProgressToken>,
    config: &Config,
    on_partial: &(dyn Fn(&str) + Send + Sync),
) -> Result<Option<String>> {
    let backend = config.completion.backend;
    let prefix = format!("slm-ls: completion server ({})", backend.name());
    let (path, abs) = state.paths(&snap.uri);
    // Cross-file snippets as for the local engine, but never from a file
    // the user's `remote.neverSend` keeps on this machine.
    let others = state.other_docs(&snap.uri, &config.remote.never_send);
    // A remote model is not constrained to write healed text back first,
    // so its prompt ends exactly at the cursor (the plain prompt, which
    // measured best without constrained decoding: issue 18): no healing.
    let mut unhealed = config.clone();
    unhealed.context.heal = false;
    let prep = complete::prepare_with(
        &snap.doc,
        cursor,
        &unhealed,
        &path,
        crate::context::Head::Search(&others),
        // The server's tokenizer is not ours: budgets stay estimates.
        &crate::context::Estimate,
    );
    if config.completion.typed_ahead {
        if let Some(hit) = state.typed_ahead.get(prep.key) {
            return Ok(Some(hit));
        }
    }
    let server = config.completion.server.clone();
    let never = std::iter::once(path.as_str())
        .chain(abs.as_deref())
        .find_map(|p| remote::glob::never_send(p, &config.remote.never_send));
    if let Some(pattern) = never {
        tracing::debug!("{path} matches neverSend \"{pattern}\": no remote completion");
        return Ok(Some(String::new()));
    }
    let key =
        remote::api_key(server.key_env().as_deref()).map_err(|e| remote_error(&prefix, &e))?;

    // Secrets out of everything that leaves the machine.
    let lang = snap.doc.language_id.clone();
    let mut input = prep.ctx.input.clone();
    input.prefix = remote::redact::redact(&input.prefix, &lang).text;
    input.suffix = remote::redact::redact(&input.suffix, &lang).text;
    for e in &mut input.extras {
        e.text = remote::redact::redact(&e.text, &lang).text;
    }
    // The tail of `input.prefix` (nothing is healed away on this path).
    let line_prefix = remote::redact::redact(&prep.ctx.line_prefix, &lang).text;

    let cancel = Cancel::default();
    let _guard = CancelOnDrop(cancel.clone());
    let progress = progress.map(|t| {
        progress::text_task(
            state.client.clone(),
            t,
            "slm-ls completion".into(),
            Duration::ZERO,
        )
    });
    // Partial text leaves the blocking thread through a channel; the
    // request's own task hands it to `on_partial`.
    let (partial_tx, mut partial_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let run = {
        let tx = progress.as_ref().map(|(tx, _)| tx.clone());
        let ctx = prep.ctx.clone();
        let params = prep.params.clone();
        let cancel = cancel.clone();
        off_runtime(move || {
            let req = remote::completion::Request {
                input: &input,
                line_prefix: &line_prefix,
                max_tokens: params.max_tokens,
                max_time_ms: params.max_time_ms,
                stop: &params.stop,
            };
            let mut on_text = |raw: &str| {
                let text = postprocess::clean(raw, &ctx);
                let _ = partial_tx.send(text.clone());
                if let Some(tx) = &tx {
                    let _ = tx.send(Progress::Text(text));
                }
            };
            remote::completion::complete(
                backend,
                &server,
                &req,
                key.as_deref(),
                &cancel,
                &mut on_text,
            )
        })
    };
    let run = async {
        let mut run = std::pin::pin!(run);
        loop {
            tokio::select! {
                r = &mut run => return r,
                Some(t) = partial_rx.recv() => on_partial(&t),
            }
        }
    };
    // Latest wins per document, as in the local engine.
    let slot = format!("complete:{}", snap.uri);
    let result = latest_wins(slot, &cancel, async { run.await.and_then(|r| r) }).await;
    if let Some((tx, task)) = progress {
        drop(tx);
        let _ = task.await;
    }
    match result {
        Ok(out) => {
            remote::stats::STATS.completion(Ok(out.usage));
            let text = postprocess::clean(&out.text, &prep.ctx);
            state.typed_ahead.insert(&prep, &path, &text);
            Ok(Some(text))
        }
        Err(RemoteError::Cancelled) => Err(Error::request_cancelled()),
        Err(e) => {
            remote::stats::STATS.completion(Err(()));
            Err(remote_error(&prefix, &e))
        }
    }
}
