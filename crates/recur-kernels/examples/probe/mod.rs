//! What the kernel probes share: the thread count from the first argument
//! (default 1), with the global pool built to it.

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
