//! The server does not outlive its editor.
//!
//! The session ends on `exit` (with or without `shutdown` first), at the
//! end of input (the editor closed the pipe, or died), and on SIGTERM,
//! SIGINT or SIGHUP. Whatever ends it, the engine's work is cancelled and
//! the process exits within a second: it does not wait for requests still
//! running. That wait is what kept slm-ls alive for 30 s after its editor
//! had gone: tower-lsp's `serve` returns only once every running handler
//! has finished, and the inference thread cannot abort a `decode` already
//! running (a chunk of `model.batchSize` tokens), so a long prefill held
//! the process up to its end.

use std::time::Duration;

/// Why the session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// tower-lsp's `serve` returned by itself.
    Served,
    /// The client sent `exit`.
    Exit,
    /// End of input: the client closed our stdin.
    Eof,
    /// A termination signal (its number).
    Signal(i32),
}

/// How long, after the end, tower-lsp may still answer the requests the
/// cancellation ended (a client that is still reading sees them cancelled
/// rather than unanswered). Their `decode` chunk may run longer: then they
/// go unanswered.
pub const GRACE: Duration = Duration::from_millis(200);
/// How long the output may take to reach the client before the exit.
pub const FLUSH: Duration = Duration::from_millis(300);

/// The exit status for `end`: 0 after `shutdown` + `exit` and at the end
/// of input, 1 for `exit` without `shutdown` (as LSP specifies), 128 + the
/// signal number for a signal (as a shell reports a signal's end).
pub fn exit_code(end: End, shutdown_received: bool) -> i32 {
    match end {
        End::Served | End::Exit => {
            if shutdown_received {
                0
            } else {
                1
            }
        }
        End::Eof => 0,
        End::Signal(n) => 128 + n,
    }
}

/// Resolves with the first termination signal (SIGTERM, SIGINT, SIGHUP).
#[cfg(unix)]
pub async fn signal() -> End {
    use tokio::signal::unix::{signal, SignalKind};
    let listen = |kind: SignalKind| signal(kind).ok();
    let (mut term, mut int, mut hup) = (
        listen(SignalKind::terminate()),
        listen(SignalKind::interrupt()),
        listen(SignalKind::hangup()),
    );
    async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
        match s {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
    tokio::select! {
        () = next(&mut term) => End::Signal(libc::SIGTERM),
        () = next(&mut int) => End::Signal(libc::SIGINT),
        () = next(&mut hup) => End::Signal(libc::SIGHUP),
    }
}

#[cfg(not(unix))]
pub async fn signal() -> End {
    let _ = tokio::signal::ctrl_c().await;
    End::Signal(2)
}

/// End the process now, without unwinding, joining threads or running
/// exit handlers.
///
/// Not `std::process::exit`: that runs C and C++ exit handlers (llama.cpp's
/// and the OpenMP runtime's static destructors) while the inference thread
/// may still be inside a `decode` that uses them. Our output has been
/// flushed by then (the output pump flushes after every frame; stderr is
/// unbuffered), so there is nothing left for exit handlers to do.
pub fn exit_now(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    #[cfg(unix)]
    // SAFETY: `_exit` ends the process; it has no preconditions.
    unsafe {
        libc::_exit(code)
    }
    #[cfg(not(unix))]
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_lsp_and_shells() {
        assert_eq!(exit_code(End::Exit, true), 0);
        assert_eq!(exit_code(End::Exit, false), 1);
        assert_eq!(exit_code(End::Eof, false), 0);
        assert_eq!(exit_code(End::Signal(15), true), 143);
    }
}
