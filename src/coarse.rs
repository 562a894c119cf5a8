//! A worker's coarse clock and deadlines: what the hot path times, without a clock read or a
//! lock per request.
//!
//! Every request waits on two deadlines: the client's next request head (hyper's header-read
//! timeout, which also ends idle keep-alive connections) and the upstream's response. As tokio
//! timers, each is armed and disarmed in the runtime's timer wheel behind a mutex, with clock
//! reads around it; nearly all are disarmed microseconds later. These timeouts are seconds
//! long, so a clock that moves in `TICK` steps is precise enough.
//!
//! A worker thread runs `ticker()`: it installs this thread's wheel, advances the coarse clock
//! every `TICK` and wakes the deadlines that have passed. A deadline lives in a thread-local
//! slot from its first pending poll until it fires or is dropped. Off a worker thread (tests,
//! `ssogate demo`), `now` reads the clock and `Sleep` is a tokio timer, as before.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How far the coarse clock may lag, and how late a deadline may fire.
pub const TICK: Duration = Duration::from_millis(100);

/// A deadline nearer than this is a tokio timer even on a worker: a tick would be a
/// noticeable share of it (a configured `response_timeout = "250ms"` must not become 350).
const COARSE_FROM: Duration = Duration::from_secs(1);

thread_local! {
    static WHEEL: RefCell<Option<Wheel>> = const { RefCell::new(None) };
}

/// Tells wheels apart, so a slot key from one thread is never used on another's.
static NEXT_WHEEL: AtomicU64 = AtomicU64::new(1);

struct Wheel {
    id: u64,
    now: Instant,
    slots: Vec<Slot>,
    free: Vec<u32>,
}

struct Slot {
    deadline: Instant,
    /// `None` when the slot is free.
    waker: Option<Waker>,
    /// Bumped when the slot is freed: a stale key no longer matches.
    generation: u32,
}

#[derive(Clone, Copy, Debug)]
struct Key {
    wheel: u64,
    slot: u32,
    generation: u32,
}

impl Wheel {
    fn insert(&mut self, deadline: Instant, waker: &Waker) -> Key {
        let slot = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    deadline,
                    waker: None,
                    generation: 0,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let s = &mut self.slots[slot as usize];
        s.deadline = deadline;
        s.waker = Some(waker.clone());
        Key {
            wheel: self.id,
            slot,
            generation: s.generation,
        }
    }

    fn slot(&mut self, key: Key) -> Option<&mut Slot> {
        if key.wheel != self.id {
            return None;
        }
        self.slots
            .get_mut(key.slot as usize)
            .filter(|s| s.generation == key.generation && s.waker.is_some())
    }

    fn release(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        s.waker = None;
        s.generation = s.generation.wrapping_add(1);
        self.free.push(slot);
    }

    /// Moves the clock to `now` and wakes (and frees) every slot whose deadline has passed.
    fn advance(&mut self, now: Instant) {
        self.now = now;
        for i in 0..self.slots.len() {
            if self.slots[i].deadline > now {
                continue;
            }
            if let Some(waker) = self.slots[i].waker.take() {
                self.release(i as u32);
                waker.wake();
            }
        }
    }
}

/// The time: the coarse clock on a worker thread, the real clock elsewhere.
pub fn now() -> Instant {
    WHEEL
        .with(|w| w.borrow().as_ref().map(|w| w.now))
        .unwrap_or_else(Instant::now)
}

/// Installs this thread's wheel and keeps it turning; runs until dropped (the worker's end).
/// Also keeps a tokio timer due every `TICK`: tokio wakes a parked driver through its eventfd
/// (a write syscall) whenever a timer is armed earlier than the wake-up it parked with.
pub async fn ticker() {
    let _installed = Installed::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = Instant::now();
        WHEEL.with(|w| {
            if let Some(w) = w.borrow_mut().as_mut() {
                w.advance(now);
            }
        });
    }
}

/// This thread's wheel, removed again when the ticker ends: deadlines of a thread without
/// a ticker would never fire.
struct Installed;

impl Installed {
    fn new() -> Installed {
        WHEEL.with(|w| {
            *w.borrow_mut() = Some(Wheel {
                id: NEXT_WHEEL.fetch_add(1, Ordering::Relaxed),
                now: Instant::now(),
                slots: Vec::new(),
                free: Vec::new(),
            })
        });
        Installed
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        // Wake what still waits, so it falls back to tokio timers when polled again.
        let wheel = WHEEL.with(|w| w.borrow_mut().take());
        for s in wheel.into_iter().flat_map(|w| w.slots) {
            if let Some(waker) = s.waker {
                waker.wake();
            }
        }
    }
}

/// A future that completes at a deadline.
pub struct Sleep {
    inner: Inner,
}

enum Inner {
    Coarse { deadline: Instant, key: Option<Key> },
    Tokio(Pin<Box<tokio::time::Sleep>>),
}

/// Completes at `deadline`; on a worker thread, a deadline at least `COARSE_FROM` away
/// completes within a `TICK` of it.
pub fn sleep_until(deadline: Instant) -> Sleep {
    let coarse = WHEEL.with(|w| {
        w.borrow()
            .as_ref()
            .is_some_and(|w| deadline.saturating_duration_since(w.now) >= COARSE_FROM)
    });
    Sleep {
        inner: if coarse {
            Inner::Coarse {
                deadline,
                key: None,
            }
        } else {
            Inner::Tokio(Box::pin(tokio::time::sleep_until(deadline.into())))
        },
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if let Inner::Coarse { deadline, key } = &mut this.inner {
            let deadline = *deadline;
            let polled = WHEEL.with(|w| {
                let mut w = w.borrow_mut();
                let w = w.as_mut()?;
                if w.now >= deadline {
                    if let Some(k) = key.take() {
                        if w.slot(k).is_some() {
                            w.release(k.slot);
                        }
                    }
                    return Some(Poll::Ready(()));
                }
                match key.and_then(|k| w.slot(k)) {
                    Some(slot) => {
                        if !slot
                            .waker
                            .as_ref()
                            .is_some_and(|old| old.will_wake(cx.waker()))
                        {
                            slot.waker = Some(cx.waker().clone());
                        }
                    }
                    None => *key = Some(w.insert(deadline, cx.waker())),
                }
                Some(Poll::Pending)
            });
            match polled {
                Some(p) => return p,
                // No wheel on this thread (any more): a tokio timer from here on.
                None => {
                    this.inner = Inner::Tokio(Box::pin(tokio::time::sleep_until(deadline.into())))
                }
            }
        }
        match &mut this.inner {
            Inner::Tokio(sleep) => sleep.as_mut().poll(cx),
            Inner::Coarse { .. } => unreachable!("replaced above"),
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Inner::Coarse { key: Some(k), .. } = self.inner {
            let _ = WHEEL.try_with(|w| {
                if let Ok(mut w) = w.try_borrow_mut() {
                    if let Some(w) = w.as_mut() {
                        if w.slot(k).is_some() {
                            w.release(k.slot);
                        }
                    }
                }
            });
        }
    }
}

/// `fut`, or `Elapsed` once `after` has passed.
pub fn timeout<F: Future>(after: Duration, fut: F) -> Timeout<F> {
    Timeout {
        fut,
        sleep: sleep_until(now() + after),
    }
}

pin_project_lite::pin_project! {
    /// The future of `timeout`: no bigger than `fut` and a `Sleep` (an `async fn` would keep
    /// `fut` twice, as its argument and pinned).
    pub struct Timeout<F> {
        #[pin]
        fut: F,
        sleep: Sleep,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.fut.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        Pin::new(this.sleep).poll(cx).map(|()| Err(Elapsed))
    }
}

/// The deadline of `timeout` passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// hyper's timer on this clock (for the header-read timeout).
#[derive(Clone, Copy, Debug, Default)]
pub struct Timer;

impl hyper::rt::Timer for Timer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(sleep_until(now() + duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(sleep_until(deadline))
    }

    fn now(&self) -> Instant {
        now()
    }
}

impl hyper::rt::Sleep for Sleep {}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_worker<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let ticker = tokio::spawn(ticker());
                tokio::task::yield_now().await;
                let out = f.await;
                ticker.abort();
                out
            })
    }

    #[test]
    fn a_deadline_fires_within_a_tick_of_its_time() {
        on_worker(async {
            let start = Instant::now();
            let sleep = sleep_until(now() + Duration::from_millis(1200));
            assert!(matches!(sleep.inner, Inner::Coarse { .. }));
            sleep.await;
            let took = start.elapsed();
            assert!(took >= Duration::from_millis(1100), "fired early: {took:?}");
            assert!(
                took < Duration::from_millis(1200) + 3 * TICK,
                "fired late: {took:?}"
            );
        });
    }

    #[test]
    fn a_near_deadline_keeps_tokio_precision() {
        on_worker(async {
            let start = Instant::now();
            let sleep = sleep_until(Instant::now() + Duration::from_millis(30));
            assert!(matches!(sleep.inner, Inner::Tokio(_)));
            sleep.await;
            let took = start.elapsed();
            assert!(took >= Duration::from_millis(30), "fired early: {took:?}");
            assert!(
                took < Duration::from_millis(30) + TICK,
                "fired late: {took:?}"
            );
        });
    }

    #[test]
    fn timeout_passes_a_quick_result_and_cuts_a_slow_one() {
        on_worker(async {
            assert_eq!(timeout(Duration::from_secs(5), async { 7 }).await, Ok(7));
            let slow = timeout(Duration::from_secs(1), std::future::pending::<()>());
            assert_eq!(slow.await, Err(Elapsed));
        });
    }

    #[test]
    fn dropped_deadlines_give_their_slots_back() {
        on_worker(async {
            for _ in 0..1000 {
                let quick = timeout(Duration::from_secs(30), tokio::task::yield_now());
                assert!(quick.await.is_ok());
            }
            let slots = WHEEL.with(|w| w.borrow().as_ref().map(|w| w.slots.len()));
            assert!(slots.is_some_and(|n| n <= 2), "slots: {slots:?}");
        });
    }

    #[tokio::test]
    async fn off_a_worker_it_is_a_tokio_timer() {
        let start = Instant::now();
        assert_eq!(
            timeout(Duration::from_millis(50), std::future::pending::<()>()).await,
            Err(Elapsed)
        );
        assert!(start.elapsed() < Duration::from_secs(2));
    }
}
