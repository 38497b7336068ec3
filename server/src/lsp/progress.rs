//! Work-done progress (`$/progress`): streaming text on a token the client
//! passed, and progress the server starts itself
//! (`window/workDoneProgress/create`) for work the client gave no token for
//! (loading the model; an explain from a code-action menu).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tower_lsp_server::ls_types as lsp;
use tower_lsp_server::Client;

use super::state::State;

pub async fn send(client: &Client, token: &lsp::ProgressToken, value: lsp::WorkDoneProgress) {
    client
        .send_notification::<lsp::notification::Progress>(lsp::ProgressParams {
            token: token.clone(),
            value: lsp::ProgressParamsValue::WorkDone(value),
        })
        .await;
}

/// A token of the server's own, created with `window/workDoneProgress/create`
/// when the client declared `window.workDoneProgress`; `None` when it did
/// not or refused. `name` makes the token unique (`slm-ls/<name>`).
pub async fn create(state: &State, name: String) -> Option<lsp::ProgressToken> {
    if !state.client_progress.load(Ordering::Relaxed) {
        return None;
    }
    let token = lsp::ProgressToken::String(format!("slm-ls/{name}"));
    // Bounded: a client that never answers must not hold the work up.
    let created = tokio::time::timeout(
        Duration::from_secs(2),
        state.client.create_work_done_progress(token.clone()),
    )
    .await;
    matches!(created, Ok(Ok(()))).then_some(token)
}

/// What a [`text_task`] is told.
pub enum Progress {
    /// The full text so far (only the newest is sent when several queue up).
    Text(String),
    /// End the progress with this message.
    End(Option<String>),
}

/// Start a task that reports text on a work-done `token`: `begin`, then
/// `report`s whose message is the whole text so far, then `end` (when `End`
/// arrives or the sender is dropped). Reports are coalesced and at least
/// `min_interval` apart, so a long answer is not sent quadratically. Await
/// the handle before answering the request so every report reaches the
/// client first.
pub fn text_task(
    client: Client,
    token: lsp::ProgressToken,
    title: String,
    min_interval: Duration,
) -> (
    tokio::sync::mpsc::UnboundedSender<Progress>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
    let task = tokio::spawn(forward(client, token, title, min_interval, rx));
    (tx, task)
}

/// [`text_task`] on a token the server creates (`slm-ls/<name>`) for a
/// client that passed none. The work does not wait for the client to
/// accept the token: what is sent before that is coalesced like any
/// report. Without client support for progress, a `window/showMessage`
/// with the title says the work has started, and the text is dropped.
pub fn server_text_task(
    state: Arc<State>,
    name: String,
    title: String,
    min_interval: Duration,
) -> (
    tokio::sync::mpsc::UnboundedSender<Progress>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
    let task = tokio::spawn(async move {
        match create(&state, name).await {
            Some(token) => forward(state.client.clone(), token, title, min_interval, rx).await,
            None => {
                state
                    .client
                    .show_message(lsp::MessageType::INFO, format!("slm-ls: {title}…"))
                    .await;
                while rx.recv().await.is_some() {}
            }
        }
    });
    (tx, task)
}

async fn forward(
    client: Client,
    token: lsp::ProgressToken,
    title: String,
    min_interval: Duration,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Progress>,
) {
    let report = |t: String| {
        lsp::WorkDoneProgress::Report(lsp::WorkDoneProgressReport {
            message: Some(t),
            ..Default::default()
        })
    };
    send(
        &client,
        &token,
        lsp::WorkDoneProgress::Begin(lsp::WorkDoneProgressBegin {
            title,
            ..Default::default()
        }),
    )
    .await;
    let mut end_message = None;
    'outer: while let Some(first) = rx.recv().await {
        let mut latest = None;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Progress::Text(t) => latest = Some(t),
                Progress::End(m) => {
                    end_message = m;
                    if let Some(t) = latest {
                        send(&client, &token, report(t)).await;
                    }
                    break 'outer;
                }
            }
            next = rx.try_recv().ok();
        }
        if let Some(t) = latest {
            send(&client, &token, report(t)).await;
            if !min_interval.is_zero() {
                tokio::time::sleep(min_interval).await;
            }
        }
    }
    send(
        &client,
        &token,
        lsp::WorkDoneProgress::End(lsp::WorkDoneProgressEnd {
            message: end_message,
        }),
    )
    .await;
}
