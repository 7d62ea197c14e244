//! Spinning partner threads for batch-1 inference.
//!
//! A batch-1 forward of the LVM is a chain of about twenty small products
//! (one `[1, 512] x [512, 1536..2048]` per recurrent step), each split by
//! columns across the threads, with a little serial work between them.
//! Through rayon every product is a fork-join in which one side often
//! sleeps and has to be woken (about 17 context switches per w2 forward at
//! two threads, `perf record -e sched:sched_switch`), and a wake-up costs
//! about as much as a thread's half of the product. rayon has no "spin a
//! while longer" setting, so [`with_partners`] keeps the other workers of
//! the pool spinning for the length of one forward: each takes the column
//! part with its own index whenever a product is published (ONNX Runtime's
//! and MKL's thread pools spin the same way). A fixed part per thread also
//! keeps each thread on the same columns of a weight from step to step.
//!
//! No deadlock: a partner leaves its loop when the owner is done, at once
//! when it runs on a thread that owns a team itself (a nested steal), and
//! after `IDLE` without a job (the owner may be waiting on rayon work
//! that only the partner's thread can finish). The owner never waits for a
//! partner to arrive: it runs every part no one has claimed.
//!
//! Numbers are unchanged: a part computes the same columns in the same
//! order whichever thread runs it.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

/// How long a partner spins without a job before it goes back to rayon.
const IDLE: Duration = Duration::from_micros(300);
/// The most threads a team has (one claim bit each).
const MAX_TEAM: usize = 16;

/// A job: the owner's closure, run once per part.
type Job<'a> = &'a (dyn Fn(usize) + Sync);

/// The shared slot. `state` packs the job's epoch (bits 32..64), its number
/// of parts (bits 16..24) and one claimed bit per part (bits 0..16), so that
/// a claim is one compare-and-swap that also checks the job is current.
struct Team {
    size: usize,
    state: AtomicU64,
    /// Points at the owner's `Job` (a fat reference on its stack) for the
    /// current epoch.
    job: AtomicPtr<()>,
    done: AtomicUsize,
    stop: AtomicBool,
    /// The owner's last epoch (only the owner touches it).
    epoch: Cell<u32>,
}

// SAFETY: `epoch` is touched only by the owner thread; the rest is atomic.
unsafe impl Sync for Team {}

thread_local! {
    /// The team this thread owns while it runs [`with_partners`]' closure.
    static TEAM: Cell<*const Team> = const { Cell::new(std::ptr::null()) };
}

impl Team {
    /// Claims a free part of job `epoch`, part `pref` when it is free.
    fn claim(&self, epoch: u32, pref: usize) -> Option<usize> {
        loop {
            let s = self.state.load(SeqCst);
            if (s >> 32) as u32 != epoch {
                return None;
            }
            let parts = ((s >> 16) & 0xff) as usize;
            let free = !s & ((1u64 << parts) - 1);
            if free == 0 {
                return None;
            }
            let p = if pref < parts && free & (1 << pref) != 0 {
                pref
            } else {
                free.trailing_zeros() as usize
            };
            if self
                .state
                .compare_exchange(s, s | (1 << p), SeqCst, SeqCst)
                .is_ok()
            {
                return Some(p);
            }
        }
    }

    /// A partner's loop, as thread `id` of the team.
    fn serve(&self, id: usize) {
        if TEAM.with(|t| !t.get().is_null()) {
            return; // this thread owns a team of its own (a nested steal)
        }
        let mut last = Instant::now();
        let mut spins = 0u32;
        while !self.stop.load(SeqCst) {
            let s = self.state.load(SeqCst);
            let parts = ((s >> 16) & 0xff) as usize;
            if !s & ((1u64 << parts) - 1) != 0 {
                let epoch = (s >> 32) as u32;
                let job = self.job.load(SeqCst) as *const Job;
                while let Some(p) = self.claim(epoch, id) {
                    // Counts the part done even if it panics (the panic
                    // then reaches the owner through rayon's scope).
                    let _done = Done(&self.done);
                    // SAFETY: the claim succeeded for `epoch`, so that job
                    // is unfinished and the owner still holds `*job` (it
                    // stores the pointer before it publishes the epoch,
                    // and waits for every claimed part, also on unwind).
                    unsafe { (*job)(p) };
                }
                last = Instant::now();
                continue;
            }
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(64) && last.elapsed() > IDLE {
                return;
            }
        }
    }

    /// The owner's side of one job: publish, run what is left, wait.
    fn run(&self, parts: usize, job: Job) {
        let epoch = self.epoch.get().wrapping_add(1);
        self.epoch.set(epoch);
        self.done.store(0, SeqCst);
        self.job.store(&job as *const Job as *mut (), SeqCst);
        self.state
            .store(((epoch as u64) << 32) | ((parts as u64) << 16), SeqCst);
        let mut wait = Wait {
            team: self,
            epoch,
            parts,
            mine: 0,
        };
        while let Some(p) = self.claim(epoch, 0) {
            wait.mine += 1;
            job(p);
        }
    }
}

/// Adds one to a done count when dropped.
struct Done<'a>(&'a AtomicUsize);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// The end of an owner's job, also when one of its parts panics: claim
/// what is left (so no partner starts it), then wait for the parts the
/// partners claimed, which read the owner's closure.
struct Wait<'a> {
    team: &'a Team,
    epoch: u32,
    parts: usize,
    /// Parts this thread claimed.
    mine: usize,
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        while self.team.claim(self.epoch, 0).is_some() {
            self.mine += 1;
        }
        while self.team.done.load(SeqCst) + self.mine < self.parts {
            std::hint::spin_loop();
        }
    }
}

/// Runs `f` on this thread with the other threads of the current rayon pool
/// spinning as partners for the column-split products inside it. Outside a
/// pool of two or more threads, or inside `with_partners` already, it just
/// runs `f`. For short latency-bound work (a batch-1 forward): the
/// partners keep their cores busy until `f` returns. `RECUR_NO_PARTNERS`
/// set in the environment turns it off, for A/B timing.
pub fn with_partners<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let n = rayon::current_num_threads();
    if !(2..=MAX_TEAM).contains(&n)
        || rayon::current_thread_index().is_none()
        || TEAM.with(|t| !t.get().is_null())
        || disabled()
    {
        return f();
    }
    let team = Team {
        size: n,
        state: AtomicU64::new(0),
        job: AtomicPtr::new(std::ptr::null_mut()),
        done: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        epoch: Cell::new(0),
    };
    let team = &team;
    rayon::scope(|s| {
        for id in 1..n {
            s.spawn(move |_| team.serve(id));
        }
        /// Clears the thread's team and stops the partners, also when `f`
        /// panics.
        struct Release<'a>(&'a Team);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                TEAM.with(|t| t.set(std::ptr::null()));
                self.0.stop.store(true, SeqCst);
            }
        }
        TEAM.with(|t| t.set(team));
        let _release = Release(team);
        f()
    })
}

fn disabled() -> bool {
    use std::sync::OnceLock;
    static OFF: OnceLock<bool> = OnceLock::new();
    *OFF.get_or_init(|| crate::turned_off("RECUR_NO_PARTNERS"))
}

/// Runs `job(p)` for every part `p < parts` on this thread's team (part
/// `p` on team thread `p` when it is there) and returns true; returns
/// false when this thread has no team or `parts` is not its size.
pub(crate) fn split(parts: usize, job: Job) -> bool {
    let team = TEAM.with(|t| t.get());
    if team.is_null() {
        return false;
    }
    // SAFETY: set only while the team lives, and only on this thread.
    let team = unsafe { &*team };
    if parts != team.size {
        return false;
    }
    team.run(parts, job);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    }

    /// Every part of every job runs exactly once, on a pool of 2 and of 3
    /// threads.
    #[test]
    fn every_part_runs_once_per_job() {
        for n in [2, 3] {
            pool(n).install(|| {
                with_partners(|| {
                    for j in 0..2000usize {
                        let runs: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
                        assert!(split(n, &|p| {
                            runs[p].fetch_add(1, SeqCst);
                        }));
                        assert!(runs.iter().all(|r| r.load(SeqCst) == 1), "job {j}");
                    }
                })
            });
        }
    }

    /// Outside a team (no pool, a one-thread pool, or a part count that is
    /// not the team's size) `split` declines and the caller splits itself;
    /// a nested `with_partners` just runs its closure.
    #[test]
    fn split_declines_without_a_team_of_its_size() {
        assert!(!split(2, &|_| {}));
        assert_eq!(with_partners(|| 7), 7);
        pool(1).install(|| assert!(!with_partners(|| split(1, &|_| {}))));
        pool(2).install(|| {
            with_partners(|| {
                assert!(!split(3, &|_| {}));
                assert!(with_partners(|| split(2, &|_| {})));
            })
        });
    }

    /// With the other worker held busy, the owner runs every part itself
    /// and does not wait for a partner that never comes.
    #[test]
    fn the_owner_does_not_wait_for_a_busy_worker() {
        let p = pool(2);
        let release = AtomicBool::new(false);
        p.scope(|s| {
            s.spawn(|_| {
                while !release.load(SeqCst) {
                    std::hint::spin_loop();
                }
            });
            s.spawn(|_| {
                let count = AtomicUsize::new(0);
                with_partners(|| {
                    for _ in 0..100 {
                        split(2, &|_| {
                            count.fetch_add(1, SeqCst);
                        });
                    }
                });
                assert_eq!(count.load(SeqCst), 200);
                release.store(true, SeqCst);
            });
        });
    }

    /// A part that panics, on either thread, reaches the caller as a panic
    /// instead of a hang, and the pool works afterwards.
    #[test]
    fn a_panicking_part_panics_the_caller() {
        let p = pool(2);
        for bad in [0, 1] {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                p.install(|| {
                    with_partners(|| {
                        for _ in 0..50 {
                            split(2, &|part| {
                                if part == bad {
                                    panic!("part {part}");
                                }
                            });
                        }
                    })
                })
            }));
            assert!(r.is_err(), "part {bad}");
        }
        assert_eq!(p.install(|| with_partners(|| 3)), 3);
    }
}
