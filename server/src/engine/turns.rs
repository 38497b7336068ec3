//! slm-ls servers on one machine take turns to compute.
//!
//! Every editor window starts its own server, and each runs llama.cpp with
//! a thread per core. llama.cpp's threads spin at barriers, so two servers
//! computing at once on the same cores slow each other down many times over
//! (here: a 0.5B decode took seconds per token with two servers on two
//! cores, against ~75 ms alone). Taking turns per `decode` call (one prefill
//! chunk or one generation step) gives each server the whole machine for
//! a few hundred milliseconds at most, so two busy windows each run at
//! about half speed instead of a fraction of it, and an idle window costs
//! the other nothing.
//!
//! Two lock files per user in the temp directory: `compute` is held for a
//! `decode`; a server waiting for it holds `waiting` shared, and the holder,
//! on release, pauses briefly when it sees a waiter so the waiter gets the
//! next turn (flock is not fair: a holder that re-locks at once could keep
//! the turn for a whole generation). A peer that holds the turn too long (a
//! stopped process) is stepped over after [`MAX_WAIT`].

use std::fs::File;
use std::time::{Duration, Instant};

/// Longest wait for a turn; then compute anyway (a peer may be stopped).
pub const MAX_WAIT: Duration = Duration::from_secs(10);
/// How often a waiter tries the lock.
const POLL: Duration = Duration::from_millis(1);
/// How long a releasing holder leaves the turn to a waiter.
const HAND_OVER: Duration = Duration::from_millis(3);

pub struct Turns {
    compute: File,
    waiting: File,
}

/// The turn, held until dropped.
pub struct Turn<'a> {
    turns: &'a Turns,
    held: bool,
}

impl Turns {
    /// `None` where the lock files cannot be opened, or with
    /// `SLM_LS_TAKE_TURNS=0` (then every server computes when it likes).
    pub fn open() -> Option<Turns> {
        if std::env::var("SLM_LS_TAKE_TURNS").is_ok_and(|v| v == "0") {
            return None;
        }
        Turns::open_in(&std::env::temp_dir())
    }

    /// The lock files in `dir` (the temp dir; tests use their own).
    fn open_in(dir: &std::path::Path) -> Option<Turns> {
        #[cfg(unix)]
        {
            // SAFETY: getuid has no preconditions and cannot fail.
            let uid = unsafe { libc::getuid() };
            let open = |name: &str| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(dir.join(format!("slm-ls-{uid}.{name}.lock")))
            };
            match (open("compute"), open("waiting")) {
                (Ok(compute), Ok(waiting)) => Some(Turns { compute, waiting }),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(
                        "cannot open the turn-taking lock files in {}: {e}; computing without them",
                        dir.display()
                    );
                    None
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = dir;
            None
        }
    }

    /// Wait for the turn (at most [`MAX_WAIT`]).
    pub fn take(&self) -> Turn<'_> {
        if flock(&self.compute, LockOp::TryExclusive) {
            return Turn {
                turns: self,
                held: true,
            };
        }
        let started = Instant::now();
        flock(&self.waiting, LockOp::Shared);
        let held = loop {
            std::thread::sleep(POLL);
            if flock(&self.compute, LockOp::TryExclusive) {
                break true;
            }
            if started.elapsed() >= MAX_WAIT {
                tracing::warn!(
                    "another slm-ls has been computing for {MAX_WAIT:?} without a pause; computing anyway"
                );
                break false;
            }
        };
        flock(&self.waiting, LockOp::Unlock);
        let waited = started.elapsed();
        if waited > Duration::from_millis(20) {
            tracing::debug!(?waited, "waited for another slm-ls to finish its turn");
        }
        Turn { turns: self, held }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        flock(&self.turns.compute, LockOp::Unlock);
        // Someone waiting? (They hold `waiting` shared.)
        if flock(&self.turns.waiting, LockOp::TryExclusive) {
            flock(&self.turns.waiting, LockOp::Unlock);
        } else {
            std::thread::sleep(HAND_OVER);
        }
    }
}

enum LockOp {
    TryExclusive,
    Shared,
    Unlock,
}

/// `true` when the operation succeeded.
#[cfg(unix)]
fn flock(file: &File, op: LockOp) -> bool {
    use std::os::fd::AsRawFd;
    let op = match op {
        LockOp::TryExclusive => libc::LOCK_EX | libc::LOCK_NB,
        LockOp::Shared => libc::LOCK_SH,
        LockOp::Unlock => libc::LOCK_UN,
    };
    // SAFETY: the descriptor is open for the file's lifetime.
    unsafe { libc::flock(file.as_raw_fd(), op) == 0 }
}

#[cfg(not(unix))]
fn flock(_: &File, _: LockOp) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two holders in one process stand in for two servers (flock locks
    /// belong to open file descriptions, so each `Turns` is its own party).
    #[test]
    fn a_waiter_gets_the_next_turn_from_a_holder_that_relocks_at_once() {
        // Lock files of its own: independent of SLM_LS_TAKE_TURNS and of
        // servers other tests run at the same time.
        let dir = std::env::temp_dir().join(format!("slm-ls-turns-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = Turns::open_in(&dir).expect("lock files");
        let b = std::sync::Arc::new(Turns::open_in(&dir).expect("lock files"));
        let first = a.take();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let b = b.clone();
            std::thread::spawn(move || {
                let _turn = b.take();
                tx.send(Instant::now()).unwrap();
                std::thread::sleep(Duration::from_millis(50));
            })
        };
        std::thread::sleep(Duration::from_millis(30));
        drop(first);
        // The holder wants the turn back at once, as a generation loop does.
        let relocked = {
            let _again = a.take();
            Instant::now()
        };
        let b_got_it = rx.recv().unwrap();
        waiter.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            b_got_it < relocked,
            "the waiter took the turn before the holder got it back"
        );
    }
}
