//! What the kernel probes share: the thread count from the first argument
//! (default 1), with the global pool built to it, and their inputs.

/// Builds rayon's global pool with the thread count given as the first
/// argument and returns it.
pub fn threads_from_args() -> usize {
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
