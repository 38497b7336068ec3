//! A tracing layer that forwards warn and error events to the client as
//! `window/logMessage`, so users see problems in the editor's log without
//! digging for stderr. Events go through a channel because tracing calls
//! are synchronous and sending to the client is async.
//!
//! Also the stderr verbosity: without `RUST_LOG`, stderr gets warnings and
//! errors only, unless the client asked for a trace in `initialize`
//! (editors such as Helix log each stderr line of a server as an error, so
//! an info line per completion was noise).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use tokio::sync::mpsc::UnboundedSender;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

static SINK: OnceLock<UnboundedSender<(Level, String)>> = OnceLock::new();

/// Install the channel the layer writes to (once, when the LSP session starts).
pub fn set_sink(tx: UnboundedSender<(Level, String)>) {
    let _ = SINK.set(tx);
}

static STDERR_VERBOSE: AtomicBool = AtomicBool::new(false);

/// Let info events through to stderr (when `RUST_LOG` does not decide).
pub fn set_stderr_verbose(on: bool) {
    STDERR_VERBOSE.store(on, Ordering::Relaxed);
}

/// Whether an event of `level` goes to stderr when `RUST_LOG` is unset.
pub fn stderr_enabled(level: &Level) -> bool {
    *level <= Level::WARN || (*level <= Level::INFO && STDERR_VERBOSE.load(Ordering::Relaxed))
}

pub struct ClientLogLayer;

struct MessageVisitor(String);

impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            self.0.push_str(&format!(" {}={:?}", field.name(), value));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            self.0.push_str(&format!(" {}={}", field.name(), value));
        }
    }
}

impl<S: Subscriber> Layer<S> for ClientLogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::WARN {
            return;
        }
        // Only our own crate: llama.cpp's warnings stay on stderr.
        if !event.metadata().target().starts_with("slm_ls") {
            return;
        }
        if let Some(tx) = SINK.get() {
            let mut v = MessageVisitor(String::new());
            event.record(&mut v);
            let _ = tx.send((level, v.0));
        }
    }
}
