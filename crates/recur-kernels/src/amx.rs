//! Intel AMX tiles for the bf16 products ([`crate::bf16`]), on Xeons from
//! Sapphire Rapids on: one `tdpbf16ps` multiplies a 16 x 32 bf16 tile by
//! a 32 x 16 one into 16 x 16 f32 sums, 16 times the work of AVX512-BF16's
//! `vdpbf16ps`, in about 16 cycles.
//!
//! Shaped so because of three facts:
//! - The tile instructions' operand layouts are the bf16 module's already:
//!   a B tile is 16 pair rows of a panel (16 columns of bf16 pairs, 64
//!   bytes a row), an A tile 16 strip rows of 16 pairs. A panel is padded
//!   to a multiple of 16 pair rows with zeros, and a strip block to
//!   multiples of 32 rows and 16 pairs, so every tile is full size and
//!   one tile configuration serves every product.
//! - Rust's AMX intrinsics need a nightly compiler, so the kernel is
//!   written with stable `asm!`, whose assembler knows the mnemonics. The
//!   compiler never uses the tile registers, so nothing else clobbers them.
//! - Linux gives a process the tile registers' state only when asked
//!   (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`); without it
//!   the first tile instruction kills the process. The request, the CPUID
//!   bits and a check of the kernel against an f64 sum on first use decide
//!   whether the tiles are used at all.
//!
//! The hardware sums each tile step's products in its own order, so a
//! bf16 product here agrees with the AVX512-BF16 and f32-unit paths to
//! rounding, not bit for bit; on one machine it repeats itself exactly.

use std::arch::asm;
use std::sync::OnceLock;

use crate::bf16::{high, low, pair, KT};
/// Rows of one block: two A tiles.
pub(crate) const RT: usize = 32;
/// Columns of one block: two B tiles, one per 16-column panel.
pub(crate) const CT: usize = 32;

/// One block's sums, `[RT][CT]` f32.
pub(crate) type Block = [[f32; CT]; RT];

/// Whether the products take the tiles here: AMX-BF16 in CPUID, granted
/// by the kernel ([`granted`]), and [`self_check`] passed. `RECUR_NO_AMX`
/// in the environment leaves them unused (to compare both paths on one
/// machine), and so does `RECUR_NO_BF16_UNITS` (which asks for the f32-unit
/// reference).
pub(crate) fn available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        if switched_off() || !granted() {
            return false;
        }
        match self_check() {
            Ok(()) => true,
            Err(why) => {
                eprintln!(
                    "warning: this CPU's AMX tiles disagree with recur's reference ({why}); \
                     bf16 products do without them"
                );
                false
            }
        }
    })
}

/// Whether the environment turns the tiles off.
fn switched_off() -> bool {
    ["RECUR_NO_AMX", "RECUR_NO_BF16_UNITS"]
        .iter()
        .any(|v| crate::turned_off(v))
}

/// Whether this process may use the tiles: the CPU has them
/// ([`cpu_has_amx`]) and Linux granted the tile state. A kernel before
/// 5.16, a hypervisor that hides the state, or a seccomp filter refuses.
fn granted() -> bool {
    static GRANTED: OnceLock<bool> = OnceLock::new();
    *GRANTED.get_or_init(|| {
        if !cpu_has_amx() {
            return false;
        }
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        // SAFETY: a request for a state component; it changes nothing but
        // the permission.
        let r = unsafe {
            libc::syscall(
                libc::SYS_arch_prctl,
                ARCH_REQ_XCOMP_PERM,
                XFEATURE_XTILEDATA,
            )
        };
        r == 0
    })
}

/// CPUID: AMX-BF16 and AMX-TILE (leaf 7, EDX bits 22 and 24), and a
/// palette 1 of at least 8 tiles of 16 rows by 64 bytes (leaf 0x1D), the
/// configuration [`Tiles::new`] loads.
fn cpu_has_amx() -> bool {
    use std::arch::x86_64::__cpuid_count;
    if __cpuid_count(0, 0).eax < 0x1d {
        return false;
    }
    let edx = __cpuid_count(7, 0).edx;
    if edx & (1 << 22) == 0 || edx & (1 << 24) == 0 {
        return false;
    }
    let palette = __cpuid_count(0x1d, 1);
    let (row_bytes, names) = (palette.ebx & 0xffff, palette.ebx >> 16);
    row_bytes >= 64 && names >= 8 && palette.ecx & 0xffff >= 16
}

/// The tile configuration of this thread while it lives: palette 1, all
/// eight tiles 16 rows of 64 bytes. Dropping it releases the tiles, so the
/// thread's saved state shrinks back when it switches. Neither `Send` nor
/// `Sync`: a configuration belongs to the thread that loaded it.
pub(crate) struct Tiles(std::marker::PhantomData<*mut ()>);

#[repr(C, align(64))]
struct Config([u8; 64]);

impl Tiles {
    /// # Safety
    /// [`available`] must have returned `true`, and no other `Tiles` may
    /// live on this thread.
    pub(crate) unsafe fn new() -> Tiles {
        let mut c = [0u8; 64];
        c[0] = 1;
        for t in 0..8 {
            c[16 + 2 * t] = 64; // bytes per row (u16, little-endian)
            c[48 + t] = 16; // rows
        }
        let c = Config(c);
        asm!("ldtilecfg [{}]", in(reg) c.0.as_ptr(), options(nostack, readonly));
        Tiles(std::marker::PhantomData)
    }

    /// `c = a @ [b0 b1]` over `pairs` pair rows (a multiple of [`KT`]):
    /// `a` is [`RT`] rows of `stride` words (a row's pairs contiguous),
    /// `b0` and `b1` panel slices of `pairs x 16` words; `c` columns 0..16
    /// from `b0`, 16..32 from `b1`.
    ///
    /// # Safety
    /// `a` must cover `RT` rows of `stride` words with `pairs` readable
    /// from each row start, `b0` and `b1` `pairs * 16` words each.
    #[inline]
    pub(crate) unsafe fn block(
        &self,
        a: *const u32,
        stride: usize,
        b0: *const u32,
        b1: *const u32,
        pairs: usize,
        c: &mut Block,
    ) {
        debug_assert!(pairs > 0 && pairs.is_multiple_of(KT));
        // Each A tile feeds two products and each B tile two: four loads
        // of 1 KiB per four products.
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            "2:",
            "tileloadd tmm4, [{a0} + {sa}]",
            "tileloadd tmm6, [{b0} + {sb}]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tileloadd tmm7, [{b1} + {sb}]",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tileloadd tmm5, [{a1} + {sa}]",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "add {a0}, 64",
            "add {a1}, 64",
            "add {b0}, 1024",
            "add {b1}, 1024",
            "dec {n}",
            "jnz 2b",
            "tilestored [{c} + {sc}], tmm0",
            "add {c}, 64",
            "tilestored [{c} + {sc}], tmm1",
            "add {c}, 1984",
            "tilestored [{c} + {sc}], tmm2",
            "add {c}, 64",
            "tilestored [{c} + {sc}], tmm3",
            a0 = inout(reg) a => _,
            a1 = inout(reg) a.add(16 * stride) => _,
            b0 = inout(reg) b0 => _,
            b1 = inout(reg) b1 => _,
            n = inout(reg) pairs / KT => _,
            c = inout(reg) c.as_mut_ptr() => _,
            sa = in(reg) stride * 4,
            sb = in(reg) 64usize,
            sc = in(reg) CT * 4,
            options(nostack),
        );
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: the tiles were configured by `new`.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}

/// A block of pseudo-random pairs against its f64 sums, within 2e-5 of
/// the sum of |products| (as [`crate::bf16`]'s check of its own kernel).
fn self_check() -> Result<(), String> {
    let pairs = 3 * KT;
    let val = |i: usize| {
        let h = (i as u32).wrapping_mul(2_654_435_761) >> 8;
        (h % 2001) as f32 / 1000.0 - 1.0 + 1e-3
    };
    let word = |i: usize| pair(val(2 * i), val(2 * i + 1));
    let a: Vec<u32> = (0..RT * pairs).map(word).collect();
    let b: Vec<u32> = (0..2 * pairs * 16).map(|i| word(i + 7919)).collect();
    let mut c = [[0f32; CT]; RT];
    // SAFETY: `available` got the permission on a CPU with AMX-BF16; the
    // buffers have the sizes `block` reads.
    unsafe {
        let tiles = Tiles::new();
        tiles.block(
            a.as_ptr(),
            pairs,
            b.as_ptr(),
            b[pairs * 16..].as_ptr(),
            pairs,
            &mut c,
        );
    }
    for (i, row) in c.iter().enumerate() {
        for (j, &got) in row.iter().enumerate() {
            let (panel, col) = (j / 16, j % 16);
            let (mut want, mut abs) = (0f64, 0f64);
            for t in 0..pairs {
                let (x, y) = (a[i * pairs + t], b[(panel * pairs + t) * 16 + col]);
                for p in [
                    low(x) as f64 * low(y) as f64,
                    high(x) as f64 * high(y) as f64,
                ] {
                    want += p;
                    abs += p.abs();
                }
            }
            if (got as f64 - want).abs() > 2e-5 * abs || !got.is_finite() {
                return Err(format!("{got} against {want} at row {i}, column {j}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Where the tiles are granted, the check passes and they are used;
    /// where they are not (CI's CPUs may lack them, or the kernel refuse
    /// them), they are left unused.
    #[test]
    fn the_tiles_pass_their_check_where_the_cpu_has_them() {
        if super::granted() && !super::switched_off() {
            assert_eq!(super::self_check(), Ok(()));
            assert!(super::available());
        } else {
            assert!(!super::available());
        }
    }
}
