//! The one matrix-product entry point of the kernels, over the `gemm` crate
//! (the CPU GEMM candle itself uses; it picks AVX2 / AVX-512 / NEON at run
//! time). Matrices are raw pointers with row and column strides so that the
//! kernels can multiply slices of their time-major buffers in place.

use gemm::Parallelism;

/// A read-only strided matrix view.
#[derive(Clone, Copy)]
pub(crate) struct View {
    pub ptr: *const f32,
    /// Stride between rows and between columns, in elements.
    pub rs: isize,
    pub cs: isize,
}

impl View {
    /// Row-major with `cols` columns.
    pub fn rows(ptr: *const f32, cols: usize) -> Self {
        View {
            ptr,
            rs: cols as isize,
            cs: 1,
        }
    }
    /// The transpose of a row-major matrix with `cols` columns.
    pub fn t(ptr: *const f32, cols: usize) -> Self {
        View {
            ptr,
            rs: 1,
            cs: cols as isize,
        }
    }
}

/// `dst[m, n] = (dst if accumulate) + lhs[m, k] @ rhs[k, n]`, `dst`
/// row-major with `n` columns.
///
/// # Safety
/// The views must cover `m x k` and `k x n` valid elements and `dst` must
/// hold `m x n` writable elements that no other thread touches meanwhile.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    lhs: View,
    rhs: View,
    accumulate: bool,
    threads: usize,
) {
    matmul_into(m, n, k, dst, n, lhs, rhs, accumulate, threads)
}

/// [`matmul`] into a destination whose rows are `dst_rs` elements apart.
///
/// # Safety
/// As [`matmul`], with `dst` covering `m` rows of `dst_rs` elements.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn matmul_into(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    lhs: View,
    rhs: View,
    accumulate: bool,
    threads: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                std::slice::from_raw_parts_mut(dst.add(r * dst_rs), n).fill(0.0);
            }
        }
        return;
    }
    let par = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        accumulate,
        lhs.ptr,
        lhs.cs,
        lhs.rs,
        rhs.ptr,
        rhs.cs,
        rhs.rs,
        1.0,
        1.0,
        false,
        false,
        false,
        par,
    );
}

/// A raw pointer that may cross threads: each thread writes only the rows
/// of its own batch chunk.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub *mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

#[derive(Clone, Copy)]
pub(crate) struct SendConst(pub *const f32);
unsafe impl Send for SendConst {}
unsafe impl Sync for SendConst {}

/// Splits `batch` rows into chunks, one per thread, when each chunk keeps
/// enough rows for its GEMMs to stay efficient. With one chunk the GEMMs
/// themselves get the threads (batch-1 inference).
pub(crate) fn plan(batch: usize, threads: usize) -> (Vec<std::ops::Range<usize>>, usize) {
    const MIN_ROWS: usize = 16;
    let n = threads.min(batch / MIN_ROWS).max(1);
    let chunks = (0..n)
        .map(|i| (batch * i / n)..(batch * (i + 1) / n))
        .collect();
    let gemm_threads = if n == 1 { threads } else { 1 };
    (chunks, gemm_threads)
}
