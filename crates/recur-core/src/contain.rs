//! Third-party parsers run where a panic of theirs is an error of recur's.
//!
//! recur reads files with maintained crates (Parquet above all), which
//! hold `assert!`s on what a well-formed file guarantees: a crafted file
//! made `recur predict` panic inside the `parquet` crate (a column chunk
//! at a negative offset). [`contain`] runs such a reader and turns a panic
//! into the reason, for the caller to put in an error that names the
//! file. The panic's own report is kept off standard error while it runs
//! (a process-wide hook, installed once, is silent on a thread inside
//! `contain` and hands every other panic to the hook before it), so the
//! user sees one error, not a crash.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    /// Whether this thread is inside [`contain`].
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

static HOOK: std::sync::Once = std::sync::Once::new();

/// Runs `f`; a panic inside it comes back as `Err` with its message. What
/// `f` was building is dropped, so nothing half-made is used afterwards.
pub fn contain<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    HOOK.call_once(|| {
        let before = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                before(info);
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let out = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    out.map_err(|p| panic_message(p.as_ref()))
}

/// The message a panic was raised with (`panic!("...")` or a formatted
/// one), or "a panic" for any other payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_is_its_message_and_the_thread_goes_on() {
        assert_eq!(contain(|| 7), Ok(7));
        let e = contain(|| -> u8 { panic!("column start {} is negative", -3) });
        assert_eq!(e, Err("column start -3 is negative".to_string()));
        assert_eq!(
            contain(|| -> u8 { std::panic::panic_any(5u8) }),
            Err("a panic".into())
        );
        // Nested: the outer stays quiet after the inner returns.
        let nested = contain(|| {
            let _ = contain(|| -> u8 { panic!("inner") });
            panic!("outer")
        });
        assert_eq!(nested, Err::<(), _>("outer".to_string()));
        assert!(!QUIET.with(Cell::get));
    }
}
