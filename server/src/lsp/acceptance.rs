//! Noticing that a shown suggestion was accepted, from the edits that
//! follow it.
//!
//! Clients report acceptance by running the item's `slm-ls.accepted`
//! command, but not all do: Helix ignores a completion item's `command`. So
//! the server also watches the document: when one content change inserts
//! the end of the last suggestion shown for that document (at least two
//! characters at once; typing runs one character per change) and the
//! document then holds the whole suggestion where it was shown, the
//! suggestion was accepted. Each shown suggestion counts once, whichever
//! way (edit or command) reports it first.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::document::Document;

/// The last suggestion shown for one document.
struct Shown {
    id: u64,
    /// Char index where `text` starts when inserted (the cursor for an
    /// inline item, the start of the typed word for a menu item).
    start: usize,
    /// What the document holds from `start` once it is accepted.
    text: String,
    at: Instant,
}

/// A suggestion older than this is no longer watched.
const WATCH_FOR: Duration = Duration::from_secs(120);
/// Ids counted lately, so the command of an item whose acceptance the
/// edit already showed (or the other way round) is not counted again.
const COUNTED_IDS: usize = 256;

#[derive(Default)]
pub struct Acceptance {
    next_id: AtomicU64,
    /// Per document URI: the last suggestion shown.
    shown: Mutex<HashMap<String, Shown>>,
    counted: Mutex<VecDeque<u64>>,
}

impl Acceptance {
    /// Remember `text`, shown for `uri` to be inserted at char `start`;
    /// returns the id the item's command carries.
    pub fn shown(&self, uri: &str, start: usize, text: &str) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let shown = Shown {
            id,
            start,
            text: text.to_string(),
            at: Instant::now(),
        };
        self.shown.lock().unwrap().insert(uri.to_string(), shown);
        id
    }

    /// After `inserted` (the texts of one `didChange`'s content changes)
    /// were applied to `doc`: whether they accepted the document's last
    /// shown suggestion. True at most once per suggestion.
    pub fn after_edit(&self, uri: &str, doc: &Document, inserted: &[&str]) -> bool {
        let mut shown = self.shown.lock().unwrap();
        let Some(s) = shown.get(uri) else {
            return false;
        };
        if s.at.elapsed() > WATCH_FOR {
            shown.remove(uri);
            return false;
        }
        let len = s.text.chars().count();
        let pasted = inserted
            .iter()
            .any(|t| t.chars().count() >= 2 && s.text.ends_with(t));
        let rope = &doc.rope;
        let holds = pasted
            && s.start + len <= rope.len_chars()
            && rope
                .slice(s.start..s.start + len)
                .chars()
                .eq(s.text.chars());
        if !holds {
            return false;
        }
        let id = s.id;
        shown.remove(uri);
        drop(shown);
        self.count(id)
    }

    /// The `slm-ls.accepted` command for suggestion `id` (`None`: a client
    /// that sends no id): whether it is to be counted.
    pub fn command(&self, id: Option<u64>) -> bool {
        match id {
            Some(id) => self.count(id),
            None => true,
        }
    }

    /// Stop watching a closed document.
    pub fn forget(&self, uri: &str) {
        self.shown.lock().unwrap().remove(uri);
    }

    /// Record `id` as counted; false if it already was.
    fn count(&self, id: u64) -> bool {
        let mut counted = self.counted.lock().unwrap();
        if counted.contains(&id) {
            return false;
        }
        if counted.len() >= COUNTED_IDS {
            counted.pop_front();
        }
        counted.push_back(id);
        // The command may arrive after the edit: stop watching this one.
        let mut shown = self.shown.lock().unwrap();
        shown.retain(|_, s| s.id != id);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Document {
        Document::new(text, 1, "python")
    }

    #[test]
    fn a_pasted_suggestion_counts_once_and_typing_does_not() {
        let a = Acceptance::default();
        // Shown at the end of "x = " (char 4).
        let id = a.shown("u", 4, "foo(1)");
        // Typing the first characters one at a time is not accepting.
        assert!(!a.after_edit("u", &doc("x = f"), &["f"]));
        // The client inserts the rest at once.
        assert!(a.after_edit("u", &doc("x = foo(1)"), &["oo(1)"]));
        // The command for the same item does not count it again.
        assert!(!a.command(Some(id)));
        assert!(!a.after_edit("u", &doc("x = foo(1)"), &["oo(1)"]));
    }

    #[test]
    fn the_command_first_then_the_edit_counts_once() {
        let a = Acceptance::default();
        let id = a.shown("u", 0, "return y");
        assert!(a.command(Some(id)));
        assert!(!a.after_edit("u", &doc("return y"), &["return y"]));
        // A client without ids counts every command.
        assert!(a.command(None));
    }

    #[test]
    fn something_else_inserted_is_not_acceptance() {
        let a = Acceptance::default();
        a.shown("u", 4, "foo(1)");
        assert!(!a.after_edit("u", &doc("x = bar(2)"), &["bar(2)"]));
        // The suggestion text, but somewhere else.
        assert!(!a.after_edit("u", &doc("foo(1)x = "), &["foo(1)"]));
        assert!(!a.after_edit("other", &doc("x = foo(1)"), &["foo(1)"]));
    }
}
