//! Fan-out of one generation to every request that is waiting for it.
//!
//! Usually a job has one listener. But when the user types characters the
//! running generation has *already produced*, restarting would throw that
//! work away; instead the new request attaches to the running job and
//! receives the rest of its text (`skip` = the typed characters). The job is
//! cancelled only when its last listener goes away.

use std::sync::Mutex;

use tokio::sync::mpsc::UnboundedSender;

use super::Event;

#[derive(Default)]
pub(crate) struct Listeners {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Everything generated so far.
    text: String,
    subs: Vec<Sub>,
    finished: bool,
}

struct Sub {
    tx: UnboundedSender<Event>,
    /// Bytes of `text` the listener typed before attaching: not sent to it.
    skip: usize,
    /// Bytes of `text` already sent to it.
    sent: usize,
}

impl Listeners {
    pub(crate) fn new(tx: UnboundedSender<Event>) -> Listeners {
        let l = Listeners::default();
        l.inner.lock().unwrap().subs.push(Sub {
            tx,
            skip: 0,
            sent: 0,
        });
        l
    }

    /// Deliver an event: deltas are accumulated and forwarded past each
    /// listener's skip; `Done` carries each listener's own remainder.
    pub(crate) fn send(&self, ev: Event) {
        let mut inner = self.inner.lock().unwrap();
        match ev {
            Event::Delta(d) => {
                inner.text.push_str(&d);
                let Inner { text, subs, .. } = &mut *inner;
                for s in subs.iter_mut() {
                    let from = s.sent.max(s.skip);
                    if text.len() > from {
                        let _ = s.tx.send(Event::Delta(text[from..].to_string()));
                        s.sent = text.len();
                    }
                }
            }
            Event::Done(outcome) => {
                inner.finished = true;
                for s in &inner.subs {
                    let mut o = outcome.clone();
                    o.text = o.text.get(s.skip..).unwrap_or("").to_string();
                    let _ = s.tx.send(Event::Done(o));
                }
            }
            other => {
                inner.finished = true;
                for s in &inner.subs {
                    let _ = s.tx.send(other.clone());
                }
            }
        }
    }

    /// Attach a request whose prefix is the job's prefix plus `typed`, if
    /// the job has already generated `typed`. Sends what is already known
    /// past it at once.
    pub(crate) fn attach(&self, tx: UnboundedSender<Event>, typed: &str) -> bool {
        let mut inner = self.inner.lock().unwrap();
        if inner.finished || !inner.text.starts_with(typed) {
            return false;
        }
        let skip = typed.len();
        let sent = inner.text.len();
        if sent > skip {
            let _ = tx.send(Event::Delta(inner.text[skip..].to_string()));
        }
        inner.subs.push(Sub { tx, skip, sent });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Outcome, StopReason};

    fn outcome(text: &str) -> Outcome {
        Outcome {
            text: text.into(),
            stop: StopReason::StopRule,
            prompt_tokens: 0,
            reused_tokens: 0,
            evaluated_tokens: 0,
            generated_tokens: 0,
            prefill_ms: 0.0,
            total_ms: 0.0,
        }
    }

    fn drain(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Event>) -> (String, Option<String>) {
        let mut deltas = String::new();
        let mut done = None;
        while let Ok(ev) = rx.try_recv() {
            match ev {
                Event::Delta(d) => deltas.push_str(&d),
                Event::Done(o) => done = Some(o.text),
                other => panic!("{other:?}"),
            }
        }
        (deltas, done)
    }

    #[test]
    fn a_request_that_typed_the_generated_text_gets_the_rest() {
        let (tx1, mut rx1) = tokio::sync::mpsc::unbounded_channel();
        let l = Listeners::new(tx1);
        l.send(Event::Delta("foo(".into()));
        let (tx2, mut rx2) = tokio::sync::mpsc::unbounded_channel();
        assert!(l.attach(tx2, "fo"));
        l.send(Event::Delta("bar)".into()));
        l.send(Event::Done(outcome("foo(bar)")));
        assert_eq!(
            drain(&mut rx1),
            ("foo(bar)".into(), Some("foo(bar)".into()))
        );
        assert_eq!(drain(&mut rx2), ("o(bar)".into(), Some("o(bar)".into())));
    }

    #[test]
    fn typing_something_else_does_not_attach() {
        let (tx1, _rx1) = tokio::sync::mpsc::unbounded_channel();
        let l = Listeners::new(tx1);
        l.send(Event::Delta("foo".into()));
        let (tx2, _rx2) = tokio::sync::mpsc::unbounded_channel();
        assert!(!l.attach(tx2.clone(), "fx"));
        assert!(!l.attach(tx2.clone(), "foox"), "not generated yet");
        l.send(Event::Done(outcome("foo")));
        assert!(!l.attach(tx2, "f"), "finished jobs take no listeners");
    }
}
