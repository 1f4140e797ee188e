//! The barrier the threads of one run meet at (the split first layer's phases in
//! `train::team`, batch norm's sums in `nn::norm::shared`): it spins for a while,
//! since the threads of a step usually arrive close together, then sleeps, so on a
//! busy machine the thread awaited gets the core; and a thread that panics poisons
//! it, so the others stop instead of waiting forever.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

/// How often a sleeping thread looks whether another one panicked.
const POLL: Duration = Duration::from_millis(50);

/// A reusable barrier for a fixed number of threads.
#[derive(Debug)]
pub struct Barrier {
    threads: usize,
    /// Spins before a waiting thread goes to sleep.
    spins: u32,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    /// Threads asleep (or about to sleep) on `wake`.
    sleepers: AtomicUsize,
    sleep: Mutex<()>,
    wake: Condvar,
    /// Set when a thread panicked: the others stop waiting and panic too.
    poisoned: AtomicBool,
    /// Who the threads are, for that panic's message ("batch-norm step", "run").
    what: &'static str,
}

impl Barrier {
    /// A barrier for `threads` threads, each on its own OS thread, spinning `spins`
    /// times before it sleeps.
    pub fn new(threads: usize, spins: u32, what: &'static str) -> Barrier {
        Barrier {
            threads,
            spins,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            sleep: Mutex::new(()),
            wake: Condvar::new(),
            poisoned: AtomicBool::new(false),
            what,
        }
    }

    /// Wait until every thread arrives (what each wrote before is then seen by all).
    /// Panics if another thread panicked holding a [`Barrier::poison_on_panic`] guard.
    pub fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.threads {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::SeqCst);
            // Either a sleeper counted itself before this load, and is woken, or it
            // reads the new generation before it sleeps (both sides SeqCst).
            if self.sleepers.load(Ordering::SeqCst) > 0 {
                drop(self.sleep.lock().unwrap_or_else(PoisonError::into_inner));
                self.wake.notify_all();
            }
            return;
        }
        let passed = || self.generation.load(Ordering::SeqCst) != generation;
        for _ in 0..self.spins {
            if passed() {
                return;
            }
            self.check();
            std::hint::spin_loop();
        }
        let mut guard = self.sleep.lock().unwrap_or_else(PoisonError::into_inner);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        while !passed() {
            if self.poisoned.load(Ordering::Relaxed) {
                self.sleepers.fetch_sub(1, Ordering::SeqCst);
                drop(guard);
                panic!("another thread of this {} panicked", self.what);
            }
            let woken = self.wake.wait_timeout(guard, POLL);
            guard = woken.unwrap_or_else(PoisonError::into_inner).0;
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Panics if another thread panicked.
    fn check(&self) {
        assert!(
            !self.poisoned.load(Ordering::Relaxed),
            "another thread of this {} panicked",
            self.what
        );
    }

    /// A guard that poisons the barrier if its thread unwinds while holding it.
    pub fn poison_on_panic(&self) -> PoisonOnPanic<'_> {
        PoisonOnPanic(self)
    }
}

/// Poisons a [`Barrier`] when dropped during a panic.
#[derive(Debug)]
pub struct PoisonOnPanic<'b>(&'b Barrier);

impl Drop for PoisonOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.poisoned.store(true, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three threads pass many rounds in step, whether they spin or sleep: no round
    /// starts before every thread finished the one before.
    #[test]
    fn threads_pass_in_step_spinning_or_sleeping() {
        for spins in [0, 1 << 12] {
            let b = Barrier::new(3, spins, "test");
            let done = AtomicUsize::new(0);
            std::thread::scope(|s| {
                for _ in 0..3 {
                    s.spawn(|| {
                        for round in 0..200 {
                            done.fetch_add(1, Ordering::SeqCst);
                            b.wait();
                            assert!(done.load(Ordering::SeqCst) >= 3 * (round + 1));
                            b.wait();
                        }
                    });
                }
            });
            assert_eq!(done.load(Ordering::SeqCst), 600);
        }
    }

    /// A thread that panics holding the guard stops the one waiting for it.
    #[test]
    fn a_panic_stops_the_waiting_threads() {
        let b = Barrier::new(2, 16, "test");
        let (dies, waiter) = std::thread::scope(|s| {
            let dies = s.spawn(|| {
                let _poison = b.poison_on_panic();
                panic!("worker fails");
            });
            let waiter = s.spawn(|| b.wait());
            (dies.join().is_err(), waiter.join().is_err())
        });
        assert!(
            dies && waiter,
            "the waiting thread panicked instead of hanging"
        );
    }
}
