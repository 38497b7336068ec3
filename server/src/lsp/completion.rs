//! The latency-sensitive requests: `textDocument/inlineCompletion` (ghost
//! text) and `textDocument/completion` (one menu item, for Helix and other
//! menu-only clients), both from [`suggest`]: the local engine, or the
//! completion server of `remote_completion.rs` when `completion.backend`
//! is not `local`.
//!
//! Every request is answered exactly once: the suggestion (possibly empty:
//! an empty list, `isIncomplete` for the menu, while the model is still
//! loading past `completion.loadWaitMs`, or when the user typed on past a
//! menu request), an error saying why, or `RequestCancelled` (-32800) when
//! superseded or cancelled.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Result};
use tower_lsp_server::ls_types as lsp;

use super::progress;
use super::state::State;
use super::{proto, remote_completion};
use crate::complete::{self, Completion};
use crate::context::Head;
use crate::document::{Document, Snapshot};

pub const CMD_ACCEPTED: &str = "slm-ls.accepted";

fn invalid_params(msg: impl Into<String>) -> Error {
    Error {
        code: ErrorCode::InvalidParams,
        message: msg.into().into(),
        data: None,
    }
}

fn request_failed(msg: impl Into<String>) -> Error {
    Error {
        code: ErrorCode::ServerError(-32803),
        message: msg.into().into(),
        data: None,
    }
}

/// Resolve a document position to (snapshot, cursor char index).
fn locate(state: &State, td: &lsp::TextDocumentPositionParams) -> Result<(Snapshot, usize)> {
    let snap = state
        .docs
        .snapshot(td.text_document.uri.as_str())
        .map_err(|e| invalid_params(e.to_string()))?;
    let cursor = snap
        .doc
        .char_index(proto::position(td.position), state.encoding())
        .map_err(|e| invalid_params(e.to_string()))?;
    Ok((snap, cursor))
}

/// Shared by `textDocument/inlineCompletion` and `textDocument/completion`:
/// the suggestion text at the cursor, streamed through `$/progress` when
/// the client passed a work-done token; `on_partial` sees the cleaned text
/// so far as it grows. `Some("")` is an empty answer.
async fn suggest(
    state: &Arc<State>,
    snap: &Snapshot,
    cursor: usize,
    progress: Option<lsp::ProgressToken>,
    on_partial: &(dyn Fn(&str) + Send + Sync),
) -> Result<Option<String>> {
    let config = state.config();
    if !config.completion.enabled {
        return Ok(None);
    }
    // [remote] issue 5: a team inference server instead of the local engine.
    if config.completion.backend != crate::remote::CompletionBackend::Local {
        return remote_completion::suggest(state, snap, cursor, progress, &config, on_partial)
            .await;
    }
    // Right after `initialize` the model is still loading: wait for it a
    // little rather than fail the editor's first requests.
    let wait = Duration::from_millis(config.completion.load_wait_ms);
    let engine = match state.wait_engine(wait).await {
        Ok(Some(engine)) => engine,
        Ok(None) => {
            tracing::debug!("the model is still loading after {wait:?}: an empty answer");
            return Ok(Some(String::new()));
        }
        Err(msg) => return Err(request_failed(msg)),
    };
    let (path, _) = state.paths(&snap.uri);
    // Keep the prompt head while the user types near the same place.
    let line = snap
        .doc
        .rope
        .char_to_line(cursor.min(snap.doc.rope.len_chars()));
    let kept = state.heads.kept(&snap.uri, line);
    let (others, index);
    let head = match &kept {
        Some(k) => Head::Keep(k),
        None => {
            others = state.other_docs(&snap.uri, &[]);
            index = state.workspace_index(&config);
            search_head(&others, index.as_deref())
        }
    };
    let prep = complete::prepare_with(&snap.doc, cursor, &config, &path, head, &engine.tokenizer);
    if prep.ctx.skip.is_none() {
        state.heads.remember(&snap.uri, line, &prep, kept.is_none());
    }
    if let Some(hit) = state
        .typed_ahead
        .get(prep.key)
        .filter(|_| config.completion.typed_ahead)
    {
        engine
            .stats
            .typed_ahead_hits
            .fetch_add(1, Ordering::Relaxed);
        return Ok(Some(hit));
    }

    // Partial results go through one forwarding task so they reach the
    // client in order, and all of them before the final answer.
    let progress = progress.map(|token| {
        progress::text_task(
            state.client.clone(),
            token,
            "slm-ls completion".into(),
            Duration::ZERO,
        )
    });
    let result = complete::run(&engine, &snap.uri, &prep, |partial| {
        on_partial(partial);
        if let Some((tx, _)) = &progress {
            let _ = tx.send(progress::Progress::Text(partial.to_string()));
        }
    })
    .await;
    if let Some((tx, task)) = progress {
        drop(tx);
        let _ = task.await;
    }
    match result {
        Completion::Text { text, .. } => {
            state.typed_ahead.insert(&prep, &path, &text);
            Ok(Some(text))
        }
        Completion::Cancelled => Err(Error::request_cancelled()),
        Completion::Failed(e) => Err(request_failed(format!("slm-ls: completion failed: {e}"))),
    }
}

/// Count a suggestion as shown (for the acceptance ratio in `slm-ls/stats`)
/// and start watching for its acceptance; the id its command carries.
fn shown(state: &State, uri: &str, start: usize, text: &str) -> u64 {
    if let Ok(e) = state.engine() {
        e.stats.shown.fetch_add(1, Ordering::Relaxed);
    }
    state.acceptance.shown(uri, start, text)
}

fn accepted_command(uri: &str, text: &str, id: u64) -> lsp::Command {
    lsp::Command {
        title: "slm-ls: suggestion accepted".into(),
        command: CMD_ACCEPTED.into(),
        arguments: Some(vec![
            json!({ "uri": uri, "chars": text.chars().count(), "id": id }),
        ]),
    }
}

pub async fn inline_completion(
    state: Arc<State>,
    p: lsp::InlineCompletionParams,
) -> Result<Option<lsp::InlineCompletionResponse>> {
    let (snap, cursor) = locate(&state, &p.text_document_position)?;
    let Some(text) = suggest(
        &state,
        &snap,
        cursor,
        p.work_done_progress_params.work_done_token,
        &|_| {},
    )
    .await?
    else {
        return Ok(None);
    };
    if text.is_empty() {
        return Ok(Some(lsp::InlineCompletionResponse::List(
            lsp::InlineCompletionList { items: vec![] },
        )));
    }
    let id = shown(&state, &snap.uri, cursor, &text);
    let pos = p.text_document_position.position;
    let item = lsp::InlineCompletionItem {
        insert_text: text.clone(),
        filter_text: None,
        range: Some(lsp::Range::new(pos, pos)),
        command: Some(accepted_command(&snap.uri, &text, id)),
        insert_text_format: None,
    };
    Ok(Some(lsp::InlineCompletionResponse::List(
        lsp::InlineCompletionList { items: vec![item] },
    )))
}

/// `textDocument/completion`, shaped for menu-based clients (Helix):
///
/// - the label is the typed word and the suggestion's first line;
/// - the edit replaces the word being typed with that word plus the
///   suggestion, over a range of the document *as it was when the request
///   was made* (Helix restores that state before it applies the edit);
/// - `filterText` is the word plus the suggestion's first line, so the
///   item survives the user typing what it suggests (the client filters
///   by the word before its cursor, which grows as the user types);
/// - the list is incomplete, so the client asks again as the user types;
/// - when the user types on while the request runs, in a way that does not
///   follow the text generated so far, the request is answered at once
///   with an empty incomplete list: Helix does not start another request
///   while one is pending, so a slow stale one would leave it without a
///   menu ([`typed_past`]).
pub async fn completion(
    state: Arc<State>,
    p: lsp::CompletionParams,
) -> Result<Option<lsp::CompletionResponse>> {
    let (snap, cursor) = locate(&state, &p.text_document_position)?;
    tracing::debug!(uri = %snap.uri, cursor, "completion request");
    let list = |items| {
        Ok(Some(lsp::CompletionResponse::List(lsp::CompletionList {
            is_incomplete: true,
            items,
        })))
    };
    let so_far = tokio::sync::watch::Sender::new(String::new());
    let on_partial = |t: &str| {
        so_far.send_replace(t.to_string());
    };
    let work = suggest(
        &state,
        &snap,
        cursor,
        p.work_done_progress_params.work_done_token,
        &on_partial,
    );
    let text = tokio::select! {
        r = work => r?,
        () = typed_past(&state, &snap, cursor, so_far.subscribe()) => {
            tracing::debug!(uri = %snap.uri, "the user typed past the request: an empty answer now");
            return list(vec![]);
        }
    };
    let Some(text) = text else {
        return Ok(None);
    };
    if text.trim().is_empty() {
        return list(vec![]);
    }
    let enc = state.encoding();
    // The identifier characters right before the cursor.
    let rope = &snap.doc.rope;
    let mut word_start = cursor;
    // Bounded: on a multi-megabyte line of identifier characters an
    // unbounded walk costs O(line) per request.
    let floor = cursor.saturating_sub(MAX_WORD_CHARS);
    while word_start > floor {
        let c = rope.char(word_start - 1);
        if c.is_alphanumeric() || c == '_' {
            word_start -= 1;
        } else {
            break;
        }
    }
    let word: String = rope.slice(word_start..cursor).to_string();
    let start = proto::to_position(snap.doc.position(word_start, enc));
    // The cursor as this document has it (a position past the end of its
    // line is clamped), not echoed from the request.
    let end = proto::to_position(snap.doc.position(cursor, enc));
    let label = menu_label(&word, &text);
    let new_text = format!("{word}{text}");
    let id = shown(&state, &snap.uri, word_start, &new_text);
    let item = lsp::CompletionItem {
        label,
        kind: Some(lsp::CompletionItemKind::TEXT),
        detail: Some("slm-ls".into()),
        documentation: Some(lsp::Documentation::MarkupContent(lsp::MarkupContent {
            kind: lsp::MarkupKind::Markdown,
            value: format!("```{}\n{}\n```", snap.doc.language_id, new_text),
        })),
        filter_text: Some(filter_text(&word, &text)),
        sort_text: Some("0".into()),
        preselect: Some(true),
        text_edit: Some(lsp::CompletionTextEdit::Edit(lsp::TextEdit {
            range: lsp::Range::new(start, end),
            new_text,
        })),
        command: Some(accepted_command(&snap.uri, &text, id)),
        ..Default::default()
    };
    list(vec![item])
}

/// What a menu client matches the typed word against: the word and the
/// suggestion's first line, so typing the suggestion keeps the item.
fn filter_text(word: &str, text: &str) -> String {
    format!("{word}{}", text.lines().next().unwrap_or("").trim_end())
}

/// Resolves when the document has changed under a menu request in a way
/// the suggestion cannot follow: text typed at the cursor that disagrees
/// with `so_far` (the suggestion generated so far; neither is a prefix of
/// the other), or any other edit. While the model has not generated as far
/// as the user typed, it waits: a new request would need the same prefill.
async fn typed_past(
    state: &State,
    snap: &Snapshot,
    cursor: usize,
    mut so_far: tokio::sync::watch::Receiver<String>,
) {
    let mut edits = state.edits.subscribe();
    // The text typed at the cursor since the request, once there is some.
    let mut typed: Option<String> = None;
    loop {
        tokio::select! {
            changed = edits.changed() => {
                if changed.is_err() {
                    return std::future::pending().await;
                }
                let Ok(now) = state.docs.snapshot(&snap.uri) else {
                    return; // closed
                };
                if now.doc.version == snap.doc.version {
                    continue;
                }
                match typed_since(&snap.doc, &now.doc, cursor) {
                    Some(t) => typed = Some(t),
                    None => return,
                }
            }
            changed = so_far.changed() => {
                if changed.is_err() {
                    return std::future::pending().await;
                }
            }
        }
        if let Some(t) = &typed {
            let text = so_far.borrow();
            if !(text.starts_with(t.as_str()) || t.starts_with(text.as_str())) {
                return;
            }
        }
    }
}

/// The text inserted at `cursor` between `old` and `new`, when that is all
/// that changed near the cursor; `None` for anything else (a deletion, an
/// edit before the cursor). Bounded: it compares 64 characters on each
/// side, not the documents.
fn typed_since(old: &Document, new: &Document, cursor: usize) -> Option<String> {
    const SIDE: usize = 64;
    let (a, b) = (&old.rope, &new.rope);
    let grown = b.len_chars().checked_sub(a.len_chars())?;
    if grown > MAX_WORD_CHARS || cursor > a.len_chars() {
        return None;
    }
    let before = cursor.saturating_sub(SIDE)..cursor;
    if a.slice(before.clone()) != b.slice(before) {
        return None;
    }
    let after = (a.len_chars() - cursor).min(SIDE);
    if a.slice(cursor..cursor + after) != b.slice(cursor + grown..cursor + grown + after) {
        return None;
    }
    Some(b.slice(cursor..cursor + grown).to_string())
}

/// The menu label of a completion item: the typed word and the suggestion's
/// first line. A suggestion that starts with a line break (a block body after
/// `:` or `{`) would have a blank label; it shows as `word ↵ next line`.
/// At most 80 characters, cut with `…`.
fn menu_label(word: &str, text: &str) -> String {
    let first = format!("{word}{}", text.lines().next().unwrap_or(""));
    let first = first.trim();
    let label = if text.lines().next().unwrap_or("").trim().is_empty() {
        let next = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("");
        if first.is_empty() {
            format!("↵ {next}")
        } else {
            format!("{first} ↵ {next}")
        }
    } else {
        first.to_string()
    };
    if label.chars().count() > 80 {
        let mut cut: String = label.chars().take(79).collect();
        cut.push('…');
        cut
    } else {
        label
    }
}

/// Longest "word being typed" the completion item's edit replaces, and the
/// longest text typed past a menu request that can still follow it.
const MAX_WORD_CHARS: usize = 256;

/// `slm-ls.accepted` (`[{ uri, chars, id? }]`): counted unless the edits
/// already showed this suggestion's acceptance.
pub fn accepted(state: &State, args: &[serde_json::Value]) {
    let id = args
        .first()
        .and_then(|a| a.get("id"))
        .and_then(|v| v.as_u64());
    if state.acceptance.command(id) {
        if let Ok(e) = state.engine() {
            e.stats.accepted.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// After a `didChange` was applied: count the document's last suggestion
/// as accepted if these edits inserted it.
pub fn watch_acceptance(state: &State, doc: &Document, uri: &str, inserted: &[&str]) {
    if state.acceptance.after_edit(uri, doc, inserted) {
        if let Ok(e) = state.engine() {
            e.stats.accepted.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The head to search: the open documents, and the workspace index when
/// there is one (`context.workspace`).
pub fn search_head<'a>(
    others: &'a [crate::context::OtherDoc],
    index: Option<&'a crate::index::IndexHandle>,
) -> Head<'a> {
    match index {
        Some(ix) => Head::Workspace(others, &ix.index),
        None => Head::Search(others),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str, version: i32) -> Document {
        Document::new(text, version, "python")
    }

    #[test]
    fn typed_since_sees_only_text_typed_at_the_cursor() {
        let old = doc("x = \ny = 2\n", 1);
        assert_eq!(
            typed_since(&old, &doc("x = re\ny = 2\n", 2), 4).as_deref(),
            Some("re")
        );
        assert_eq!(
            typed_since(&old, &doc("x = \ny = 2\n", 2), 4).as_deref(),
            Some("")
        );
        // A deletion, an edit before the cursor, or after it: not typing on.
        assert_eq!(typed_since(&old, &doc("x =\ny = 2\n", 2), 4), None);
        assert_eq!(typed_since(&old, &doc("xy = \ny = 2\n", 2), 4), None);
        assert_eq!(typed_since(&old, &doc("x = \ny = 23\n", 2), 4), None);
    }

    #[test]
    fn the_filter_text_keeps_the_item_while_its_suggestion_is_typed() {
        assert_eq!(filter_text("os", ".listdir(path)\n"), "os.listdir(path)");
        assert_eq!(filter_text("", "return x"), "return x");
        // A block body starting on the next line: the word only.
        assert_eq!(filter_text("", "\n    pass"), "");
    }
}
