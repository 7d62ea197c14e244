//! What the LVM examples share: the `recur` binary's setup (mimalloc
//! keeping freed memory, candle on one thread, the work on a worker of a
//! pool of THREADS threads) and their arguments `THREADS SECONDS
//! [lstm|gru]`. Each example declares mimalloc as its allocator itself.

use recur_models::lvm::LvmKind;

/// The arguments: threads (required), seconds (default 4) and the kind
/// (default lstm); `usage` names the example in errors.
pub fn args(usage: &str) -> candle_core::Result<(usize, f64, LvmKind)> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let threads: usize = args
        .first()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| candle_core::Error::Msg(usage.into()))?;
    let seconds: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(4.0);
    let kind = match args.get(2).map(String::as_str) {
        None | Some("lstm") => LvmKind::Lstm,
        Some("gru") => LvmKind::Gru,
        Some(k) => candle_core::bail!("unknown kind {k:?}; {usage}"),
    };
    Ok((threads, seconds, kind))
}

/// Runs `f` as the `recur` binary runs a command, on a pool of `threads`.
pub fn run<R: Send>(
    threads: usize,
    f: impl FnOnce() -> candle_core::Result<R> + Send,
) -> candle_core::Result<R> {
    // mimalloc's purge delay (option 15), as recur-cli's main sets it.
    // SAFETY: set before any other thread starts; any value is valid.
    unsafe { libmimalloc_sys::mi_option_set(15, -1) };
    std::env::set_var("CANDLE_NUM_THREADS", "1");
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .stack_size(16 << 20)
        .build()
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?
        .install(f)
}
