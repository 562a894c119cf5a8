//! Which runtime a thread serves, for clients whose connections are tasks on the runtime
//! that opened them: the provider's hyper pool and Redis's multiplexed connections. A
//! request sent on such a connection from another thread crosses over twice (a wake-up each
//! way), and a worker's runtime ending (the drain) would take the connection from every
//! other thread using it. Those clients keep one of each per runtime (`PerRuntime`), so a
//! worker's call goes out and comes back on its own thread.

use std::cell::Cell;

/// Runtimes with a slot of their own; any beyond share the last.
const SLOTS: usize = 64;

thread_local! {
    /// 0 for the control runtime (and any thread that never said), a worker's index + 1
    /// for each worker.
    static SLOT: Cell<usize> = const { Cell::new(0) };
}

/// Called once by each worker thread before it serves.
pub fn set(slot: usize) {
    SLOT.with(|s| s.set(slot.min(SLOTS - 1)));
}

/// One `T` per runtime (each starts as `T::default()`, an empty cell).
pub struct PerRuntime<T>(Box<[T]>);

impl<T: Default> Default for PerRuntime<T> {
    fn default() -> Self {
        PerRuntime((0..SLOTS).map(|_| T::default()).collect())
    }
}

impl<T> PerRuntime<T> {
    /// This thread's runtime's own.
    pub fn here(&self) -> &T {
        &self.0[SLOT.with(|s| s.get())]
    }

    /// Every runtime's.
    pub fn all(&self) -> impl Iterator<Item = &T> {
        self.0.iter()
    }
}
