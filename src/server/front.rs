//! A per-thread memo in front of the decoded-session cache (and of the verified bearer tokens).
//!
//! moka's `get` logs every read in a channel that all workers share, and every few dozen reads
//! it runs its housekeeping inline under a try-lock: about 1k instructions, and cache lines that
//! move between cores, on every signed-in request. A worker sees the same few sessions again and
//! again, so it keeps the last ones it used. It asks moka again when:
//! - the slot holds another session;
//! - the second has changed, so moka's time-to-live and the session checks behind it still run
//!   at least once a second;
//! - anything was inserted into the cache or taken out of it since (the generation moved). So
//!   every worker sees a sign-out or a refresh at once.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::live::LiveSession;

const SLOT_BITS: u32 = 5;
const SLOTS: usize = 1 << SLOT_BITS;

/// Tells one `Auth`'s memo apart from another's on the same thread (tests build several).
static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static MEMO: RefCell<Vec<Option<Slot>>> = const { RefCell::new(Vec::new()) };
}

struct Slot {
    at: Stamp,
    key: Box<str>,
    live: Arc<LiveSession>,
}

/// Whose memo, which generation of the cache, which second.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Stamp {
    owner: u64,
    generation: u64,
    second: u64,
}

pub(super) struct Front {
    owner: u64,
    generation: AtomicU64,
}

impl Front {
    pub(super) fn new() -> Front {
        Front {
            owner: NEXT_OWNER.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
        }
    }

    /// The cache behind changed: every thread's memo of this `Auth` is void from now on.
    pub(super) fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The memo's answer for `key`, or else what the cache behind answers (`behind`), kept in
    /// the memo.
    pub(super) fn get_or_else(
        &self,
        now: u64,
        key: &str,
        behind: impl FnOnce() -> Option<Arc<LiveSession>>,
    ) -> Option<Arc<LiveSession>> {
        let at = self.stamp(now);
        if let Some(live) = self.get(at, key) {
            return Some(live);
        }
        let live = behind()?;
        self.put(at, key, live.clone());
        Some(live)
    }

    /// Take this before asking the cache behind, and `put` what it answered with it: a change
    /// in between then voids the memo of that answer.
    fn stamp(&self, now: u64) -> Stamp {
        Stamp {
            owner: self.owner,
            generation: self.generation.load(Ordering::Acquire),
            second: now,
        }
    }

    fn get(&self, at: Stamp, key: &str) -> Option<Arc<LiveSession>> {
        MEMO.with(|memo| {
            let memo = memo.borrow();
            let slot = memo.get(index(key))?.as_ref()?;
            (slot.at == at && *slot.key == *key).then(|| slot.live.clone())
        })
    }

    fn put(&self, at: Stamp, key: &str, live: Arc<LiveSession>) {
        MEMO.with(|memo| {
            let mut memo = memo.borrow_mut();
            if memo.is_empty() {
                memo.resize_with(SLOTS, || None);
            }
            match &mut memo[index(key)] {
                // The same session again after a second or a change: no new copy of the key.
                Some(slot) if *slot.key == *key => {
                    slot.at = at;
                    slot.live = live;
                }
                other => {
                    *other = Some(Slot {
                        at,
                        key: key.into(),
                        live,
                    })
                }
            }
        });
    }
}

/// The slot for a cookie value or a token: its last 8 bytes (the end of the AES-GCM tag, of a
/// session id, or of a JWT's signature) and its length, mixed.
fn index(key: &str) -> usize {
    let b = key.as_bytes();
    let mut tail = [0u8; 8];
    let n = b.len().min(8);
    tail[..n].copy_from_slice(&b[b.len() - n..]);
    let h = (u64::from_le_bytes(tail) ^ b.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> (64 - SLOT_BITS)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(user: &str) -> Arc<LiveSession> {
        Arc::new(LiveSession::for_test(user))
    }

    #[test]
    fn a_memo_answers_within_its_second_and_generation_only() {
        let front = Front::new();
        let at = front.stamp(100);
        assert!(front.get(at, "cookie-a").is_none());
        front.put(at, "cookie-a", live("alice"));
        let hit = front.get(front.stamp(100), "cookie-a").expect("memo");
        assert_eq!(hit.session.principal.user, "alice");
        assert!(
            front.get(front.stamp(100), "cookie-b").is_none(),
            "another key"
        );
        assert!(
            front.get(front.stamp(101), "cookie-a").is_none(),
            "the next second"
        );

        // A change in the cache (a sign-out) voids it, also for a put stamped before it.
        let before = front.stamp(100);
        front.changed();
        assert!(front.get(front.stamp(100), "cookie-a").is_none());
        front.put(before, "cookie-a", live("alice"));
        assert!(front.get(front.stamp(100), "cookie-a").is_none());
        // Asked again after the change, the memo answers again.
        front.put(front.stamp(100), "cookie-a", live("alice2"));
        let hit = front.get(front.stamp(100), "cookie-a").expect("memo");
        assert_eq!(hit.session.principal.user, "alice2");
    }

    #[test]
    fn the_cache_behind_is_asked_only_when_the_memo_has_no_answer() {
        let front = Front::new();
        let asked = std::cell::Cell::new(0);
        let behind = || {
            asked.set(asked.get() + 1);
            Some(live("alice"))
        };
        for _ in 0..3 {
            let hit = front.get_or_else(7, "cookie-a", behind).expect("an answer");
            assert_eq!(hit.session.principal.user, "alice");
        }
        assert_eq!(asked.get(), 1, "asked once, then memoised");
        front.get_or_else(8, "cookie-a", behind);
        assert_eq!(asked.get(), 2, "asked again in the next second");
        // Nothing behind: no answer, and nothing memoised.
        assert!(front.get_or_else(8, "cookie-b", || None).is_none());
        assert!(front.get_or_else(8, "cookie-b", || None).is_none());
    }

    #[test]
    fn two_gateways_on_one_thread_do_not_share_a_memo() {
        let (one, two) = (Front::new(), Front::new());
        one.put(one.stamp(5), "same-cookie", live("alice"));
        assert!(two.get(two.stamp(5), "same-cookie").is_none());
        assert!(one.get(one.stamp(5), "same-cookie").is_some());
    }
}
