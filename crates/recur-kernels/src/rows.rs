//! Row and column passes over row-major `[rows, d]` tensors, side by side
//! when the tensor is large: the small element-wise parts of a training
//! step (LayerNorm, `x * gamma + beta`, a bias's gradient) that would
//! otherwise run on one thread while the others wait for the next product.
//!
//! Each element's arithmetic, and each column sum's order (row by row from
//! the first), is what it would be on one thread: splitting by rows or by
//! columns only changes which thread does it, so the numbers do not depend
//! on the thread count.

use rayon::prelude::*;

/// Tensors of at most this many elements run on the calling thread (a
/// batch-1 forward is a few rows; a fork-join would cost more).
const SERIAL_ELEMS: usize = 1 << 15;
/// Elements per parallel task, about: a few L1-sized rows.
const TASK_ELEMS: usize = 1 << 13;
/// Columns per task of a column pass: whole cache lines of each row.
const TASK_COLS: usize = 64;

/// Runs `f(first_row, rows, scratch)` over chunks of whole rows of `out`
/// (rows of `d` elements), each call with `scratch_len` floats of its own.
pub(crate) fn for_row_chunks(
    out: &mut [f32],
    d: usize,
    scratch_len: usize,
    f: impl Fn(usize, &mut [f32], &mut [f32]) + Sync,
) {
    let d = d.max(1);
    if out.len() <= SERIAL_ELEMS {
        f(0, out, &mut vec![0f32; scratch_len]);
        return;
    }
    let rows = (TASK_ELEMS / d).max(1);
    out.par_chunks_mut(rows * d)
        .enumerate()
        .for_each_init(|| vec![0f32; scratch_len], |t, (i, o)| f(i * rows, o, t));
}

/// Runs `f(first_column, sums)` over chunks of the columns of a `[rows, d]`
/// tensor, `sums` being those columns of `acc`; every call sees its
/// columns of all rows, so it can add them up in row order.
pub(crate) fn for_column_chunks(
    acc: &mut [f32],
    rows: usize,
    f: impl Fn(usize, &mut [f32]) + Sync + Send,
) {
    if rows * acc.len() <= SERIAL_ELEMS {
        f(0, acc);
        return;
    }
    acc.par_chunks_mut(TASK_COLS)
        .enumerate()
        .for_each(|(i, s)| f(i * TASK_COLS, s));
}

/// `acc[c] += m[r, c]` for every row `r` of `m` (rows of `acc.len()`
/// elements), row by row from the first: a bias's gradient.
pub(crate) fn add_column_sums(acc: &mut [f32], m: &[f32]) {
    let width = acc.len();
    if width == 0 {
        return;
    }
    for_column_chunks(acc, m.len() / width, |c0, acc| {
        for row in m.chunks_exact(width) {
            for (s, v) in acc.iter_mut().zip(&row[c0..]) {
                *s += *v;
            }
        }
    });
}

/// As [`for_column_chunks`], with two accumulators of the same columns.
pub(crate) fn for_column_chunks2(
    a: &mut [f32],
    b: &mut [f32],
    rows: usize,
    f: impl Fn(usize, &mut [f32], &mut [f32]) + Sync + Send,
) {
    if rows * a.len() <= SERIAL_ELEMS {
        f(0, a, b);
        return;
    }
    a.par_chunks_mut(TASK_COLS)
        .zip(b.par_chunks_mut(TASK_COLS))
        .enumerate()
        .for_each(|(i, (a, b))| f(i * TASK_COLS, a, b));
}
