//! What the kernel probes share: the thread count from the first argument
//! (default 1), with the global pool built to it, and their inputs; and
//! the `recur` binary's allocator. Under glibc's malloc the probes timed
//! page faults the binary never takes: a kernel's per-call scratch of a
//! few hundred kilobytes went back to the system and was faulted in again
//! (the w1 last-state path 3% slower than the whole layer, s54's lead).

/// mimalloc, as recur-cli's `main` declares it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Builds rayon's global pool with the thread count given as the first
/// argument and returns it.
pub fn threads_from_args() -> usize {
    // mimalloc's purge delay (option 15) off, as recur-cli's main sets it.
    // SAFETY: set before any other thread starts; any value is valid.
    unsafe { libmimalloc_sys::mi_option_set(15, -1) };
    let threads: usize = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .expect("the global pool is built once");
    threads
}

/// `n` values in [-s, s], a fixed pattern (the same in every probe run).
/// Each probe compiles this module on its own, and not all draw inputs
/// this way.
#[allow(dead_code)]
pub fn values(n: usize, s: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919 % 101) as f32 - 50.0) / 50.0 * s)
        .collect()
}
