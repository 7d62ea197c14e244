//! The kernels against three oracles: PyTorch (float64 fixtures made by
//! `scripts/make_kernel_fixtures.py`), central finite differences, and
//! themselves across thread counts and with or without saved state.

use candle_core::{DType, Device, Tensor, Var};
use recur_kernels::{gru, lstm, lstm::Dims, op};
use std::collections::HashMap;

/// A small deterministic generator for test data (uniform in [-a, a]).
struct Lcg(u64);
impl Lcg {
    fn vec(&mut self, n: usize, a: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 = self
                    .0
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * a
            })
            .collect()
    }
}

/// Norm-wise relative error `max|a - b| / max|b|`.
fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let den = b.iter().map(|y| y.abs()).fold(0.0, f64::max).max(1e-12);
    num / den
}

fn load_fixture(name: &str) -> HashMap<String, (Vec<usize>, Vec<f64>)> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| {
            let data: Vec<f64> = match v.dtype() {
                safetensors::Dtype::F32 => v
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                    .collect(),
                safetensors::Dtype::F64 => v
                    .data()
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                d => panic!("{n}: unexpected dtype {d:?}"),
            };
            (n, (v.shape().to_vec(), data))
        })
        .collect()
}

fn var(f: &HashMap<String, (Vec<usize>, Vec<f64>)>, name: &str) -> Var {
    let (shape, data) = &f[name];
    let v: Vec<f32> = data.iter().map(|&x| x as f32).collect();
    Var::from_tensor(&Tensor::from_vec(v, shape.as_slice(), &Device::Cpu).unwrap()).unwrap()
}

fn flat(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Runs a fixture case through the candle ops (batch-first in and out, as
/// PyTorch's `batch_first=True`) and compares output and every gradient.
fn check_case(
    f: &HashMap<String, (Vec<usize>, Vec<f64>)>,
    case: &str,
    gru_kind: bool,
    fused: bool,
) -> f64 {
    check_case_within(f, case, gru_kind, fused, 1e-4)
}

/// [`check_case`] with every relative error below `tol`.
fn check_case_within(
    f: &HashMap<String, (Vec<usize>, Vec<f64>)>,
    case: &str,
    gru_kind: bool,
    fused: bool,
    tol: f64,
) -> f64 {
    let p = |n: &str| format!("{case}.{n}");
    let x = var(f, &p("x"));
    let w_ih = var(f, &p("weight_ih_l0"));
    let w_hh = var(f, &p("weight_hh_l0"));
    let b_ih = var(f, &p("bias_ih_l0"));
    let b_hh = var(f, &p("bias_hh_l0"));
    let gy = var(f, &p("grad_y"));
    let (b, l, i) = x.dims3().unwrap();
    let xt = x
        .transpose(0, 1)
        .unwrap()
        .contiguous()
        .unwrap()
        .reshape((l * b, i))
        .unwrap();
    let proj = xt.matmul(&w_ih.t().unwrap()).unwrap();
    let y = if gru_kind {
        let xp = proj
            .broadcast_add(&b_ih)
            .unwrap()
            .reshape((l, b, ()))
            .unwrap();
        op::gru(&xp, &w_hh, &b_hh).unwrap()
    } else if fused {
        let bias = (b_ih.as_tensor() + b_hh.as_tensor())
            .unwrap()
            .unsqueeze(1)
            .unwrap();
        let w_all = Tensor::cat(&[w_ih.as_tensor(), w_hh.as_tensor(), &bias], 1).unwrap();
        let xt = x.transpose(0, 1).unwrap().contiguous().unwrap();
        op::lstm_fused(&xt, &w_all).unwrap()
    } else {
        let bias = (b_ih.as_tensor() + b_hh.as_tensor()).unwrap();
        let xp = proj
            .broadcast_add(&bias)
            .unwrap()
            .reshape((l, b, ()))
            .unwrap();
        op::lstm(&xp, &w_hh).unwrap()
    };
    let y = y.transpose(0, 1).unwrap().contiguous().unwrap();
    let loss = (&y * gy.as_tensor()).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let mut worst = 0f64;
    let mut compare = |what: &str, ours: Vec<f64>| {
        let e = rel_err(&ours, &f[&p(what)].1);
        assert!(e < tol, "{case} {what}: relative error {e:.2e}");
        worst = worst.max(e);
    };
    compare("y", flat(&y));
    compare("grad_x", flat(grads.get(&x).unwrap()));
    compare("grad_weight_ih_l0", flat(grads.get(&w_ih).unwrap()));
    compare("grad_weight_hh_l0", flat(grads.get(&w_hh).unwrap()));
    compare("grad_bias_ih_l0", flat(grads.get(&b_ih).unwrap()));
    compare("grad_bias_hh_l0", flat(grads.get(&b_hh).unwrap()));
    worst
}

#[test]
fn lstm_matches_pytorch_outputs_and_gradients() {
    // Unwritten output elements show as NaN (the buffers are not zeroed).
    recur_kernels::poison_outputs(true);
    let f = load_fixture("lstm.safetensors");
    // a and b: few rows (dot products, GEMM); c: the weight packed once per
    // call; d: 200 rows, the general GEMM.
    for case in ["a", "b", "c", "d"] {
        let e = check_case(&f, case, false, false);
        eprintln!("lstm case {case}: worst relative error {e:.2e}");
        // The same layer with the projection inside the time loop.
        let e = check_case(&f, case, false, true);
        eprintln!("lstm (input fused) case {case}: worst relative error {e:.2e}");
    }
}

#[test]
fn gru_matches_pytorch_outputs_and_gradients() {
    recur_kernels::poison_outputs(true);
    let f = load_fixture("gru.safetensors");
    for case in ["a", "b", "c", "d"] {
        let e = check_case(&f, case, true, false);
        eprintln!("gru case {case}: worst relative error {e:.2e}");
    }
}

/// The bf16 path (`precision::scoped(Bf16, ..)`) against PyTorch's f32
/// outputs and gradients: within bf16's rounding (8 significant bits) on
/// every case and path, and measurably off f32 (the products did round).
#[test]
fn bf16_products_stay_within_bf16_rounding_of_pytorch_f32() {
    use recur_kernels::precision::{scoped, Precision};
    for (file, gru_kind) in [("lstm.safetensors", false), ("gru.safetensors", true)] {
        let f = load_fixture(file);
        for case in ["a", "b", "c", "d"] {
            for fused in if gru_kind {
                vec![false]
            } else {
                vec![false, true]
            } {
                let e = scoped(Precision::Bf16, || {
                    check_case_within(&f, case, gru_kind, fused, 2e-2)
                });
                eprintln!("{file} case {case} fused {fused}, bf16: worst relative error {e:.2e}");
                assert!(e > 1e-4, "{file} case {case}: bf16 error {e:.2e} is f32's");
                // The setting ends with its scope: f32 again.
                assert!(check_case(&f, case, gru_kind, fused) < 1e-4);
            }
        }
    }
}

/// The loss `sum(y * gy)` in f64 for the raw kernels.
fn loss(d: Dims, gru_kind: bool, xp: &[f32], w: &[f32], bh: &[f32], gy: &[f32]) -> f64 {
    let mut y = vec![0.0; d.steps * d.batch * d.hidden];
    if gru_kind {
        gru::forward(d, xp, w, bh, &mut y, None);
    } else {
        lstm::forward(d, xp, w, &mut y, None);
    }
    y.iter().zip(gy).map(|(a, b)| *a as f64 * *b as f64).sum()
}

/// Central differences on every input of the raw kernels; `batch` 3 takes
/// the few-rows products, 9 the packed weight.
fn finite_differences(gru_kind: bool, batch: usize) {
    let d = Dims {
        steps: 4,
        batch,
        hidden: 5,
    };
    let g = if gru_kind { 3 } else { 4 };
    let mut rng = Lcg(11);
    let xp = rng.vec(d.steps * d.batch * g * d.hidden, 1.5);
    let w = rng.vec(g * d.hidden * d.hidden, 0.8);
    let bh = rng.vec(g * d.hidden, 0.5);
    let gy = rng.vec(d.steps * d.batch * d.hidden, 1.0);
    let mut y = vec![0.0; d.steps * d.batch * d.hidden];
    let mut dxp = vec![0.0; xp.len()];
    let mut dw = vec![0.0; w.len()];
    let mut db = vec![0.0; bh.len()];
    if gru_kind {
        let mut s = gru::Saved::default();
        gru::forward(d, &xp, &w, &bh, &mut y, Some(&mut s));
        gru::backward(d, &w, &y, &s, &gy, &mut dxp, &mut dw, &mut db);
    } else {
        let mut s = lstm::Saved::default();
        lstm::forward(d, &xp, &w, &mut y, Some(&mut s));
        lstm::backward(d, &w, &y, &s, &gy, &mut dxp, &mut dw);
    }
    let eps = 1e-2f32;
    let fd = |which: usize, k: usize| {
        let (mut a, mut b, mut c) = (xp.clone(), w.clone(), bh.clone());
        let mut run = |delta: f32| {
            match which {
                0 => a[k] = xp[k] + delta,
                1 => b[k] = w[k] + delta,
                _ => c[k] = bh[k] + delta,
            }
            loss(d, gru_kind, &a, &b, &c, &gy)
        };
        (run(eps) - run(-eps)) / (2.0 * eps as f64)
    };
    let mut sets = vec![("xp", 0, dxp), ("w_hh", 1, dw)];
    if gru_kind {
        sets.push(("b_hh", 2, db));
    }
    for (name, which, analytic) in sets {
        let numeric: Vec<f64> = (0..analytic.len()).map(|k| fd(which, k)).collect();
        let an: Vec<f64> = analytic.iter().map(|&v| v as f64).collect();
        let e = rel_err(&an, &numeric);
        // f32 forward passes limit central differences to about 1e-4..1e-3.
        assert!(
            e < 2e-3,
            "{name}: analytic vs finite differences, relative error {e:.2e}"
        );
        assert!(
            an.iter().any(|v| v.abs() > 1e-3),
            "{name}: gradient is all zero"
        );
    }
}

#[test]
fn lstm_gradients_match_finite_differences() {
    finite_differences(false, 3);
    finite_differences(false, 9);
}

#[test]
fn gru_gradients_match_finite_differences() {
    finite_differences(true, 3);
    finite_differences(true, 9);
}

/// Output and gradients under a given number of threads.
fn run_in_pool(threads: usize, gru_kind: bool) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let d = Dims {
            steps: 6,
            batch: 64,
            hidden: 24,
        };
        let g = if gru_kind { 3 } else { 4 };
        let mut rng = Lcg(5);
        let xp = rng.vec(d.steps * d.batch * g * d.hidden, 1.0);
        let w = rng.vec(g * d.hidden * d.hidden, 0.3);
        let bh = rng.vec(g * d.hidden, 0.2);
        let gy = rng.vec(d.steps * d.batch * d.hidden, 1.0);
        let mut y = vec![0.0; d.steps * d.batch * d.hidden];
        let mut y_inf = y.clone();
        let (mut dxp, mut dw, mut db) =
            (vec![0.0; xp.len()], vec![0.0; w.len()], vec![0.0; bh.len()]);
        if gru_kind {
            let mut s = gru::Saved::default();
            gru::forward(d, &xp, &w, &bh, &mut y, Some(&mut s));
            gru::forward(d, &xp, &w, &bh, &mut y_inf, None);
            gru::backward(d, &w, &y, &s, &gy, &mut dxp, &mut dw, &mut db);
        } else {
            let mut s = lstm::Saved::default();
            lstm::forward(d, &xp, &w, &mut y, Some(&mut s));
            lstm::forward(d, &xp, &w, &mut y_inf, None);
            lstm::backward(d, &w, &y, &s, &gy, &mut dxp, &mut dw);
        }
        assert_eq!(y, y_inf, "inference and training forwards differ");
        (y, dxp, dw, db)
    })
}

#[test]
fn same_threads_same_bits_and_threads_agree() {
    for gru_kind in [false, true] {
        let one = run_in_pool(1, gru_kind);
        assert_eq!(
            one,
            run_in_pool(1, gru_kind),
            "1 thread is not deterministic"
        );
        let two = run_in_pool(2, gru_kind);
        assert_eq!(
            two,
            run_in_pool(2, gru_kind),
            "2 threads are not deterministic"
        );
        for (a, b) in [
            (&one.0, &two.0),
            (&one.1, &two.1),
            (&one.2, &two.2),
            (&one.3, &two.3),
        ] {
            let (a, b): (Vec<f64>, Vec<f64>) = (
                a.iter().map(|&v| v as f64).collect(),
                b.iter().map(|&v| v as f64).collect(),
            );
            assert!(rel_err(&a, &b) < 1e-5, "1 and 2 threads disagree");
        }
    }
}

#[test]
fn wrong_shapes_are_errors_not_panics() {
    let dev = Device::Cpu;
    let xp = Tensor::zeros((3, 2, 16), DType::F32, &dev).unwrap();
    let w = Tensor::zeros((16, 5), DType::F32, &dev).unwrap();
    let e = op::lstm(&xp, &w).unwrap_err().to_string();
    assert!(
        e.contains("hidden size 5") && e.contains("[L, B, 20]"),
        "{e}"
    );
    let w = Tensor::zeros((12, 4), DType::F32, &dev).unwrap();
    let b = Tensor::zeros(11, DType::F32, &dev).unwrap();
    let xp = Tensor::zeros((3, 2, 12), DType::F32, &dev).unwrap();
    let e = op::gru(&xp, &w, &b).unwrap_err().to_string();
    assert!(e.contains("bias_hh must be [12]"), "{e}");
    let xp64 = xp.to_dtype(DType::F64).unwrap();
    assert!(op::gru(&xp64, &w, &b)
        .unwrap_err()
        .to_string()
        .contains("f32"));
}

/// The input-fused layer's last state from a batch-major input
/// (`op::lstm_fused_last`, a one-layer classifier's inference) is the last
/// step of the time-major layer, bit for bit: on the register tiles where
/// the CPU has AVX-512, through the copy elsewhere; single rows and steps
/// too; and a weight of the wrong width is an error naming the sizes.
#[test]
fn fused_last_state_equals_the_last_step_of_the_layer() {
    let dev = Device::Cpu;
    for (l, b, i, h) in [(32, 70, 16, 64), (1, 1, 3, 8), (5, 1, 4, 20), (1, 9, 2, 17)] {
        let x: Vec<f32> = (0..b * l * i)
            .map(|j| ((j * 7919 % 1009) as f32 - 504.0) / 300.0)
            .collect();
        let w: Vec<f32> = (0..4 * h * (i + h + 1))
            .map(|j| ((j * 104_729 % 997) as f32 - 498.0) / 600.0)
            .collect();
        let x = Tensor::from_vec(x, (b, l, i), &dev).unwrap();
        let w = Tensor::from_vec(w, (4 * h, i + h + 1), &dev).unwrap();
        let last = op::lstm_fused_last(&x, &w).unwrap();
        assert_eq!(last.dims(), [b, h]);
        let all = op::lstm_fused(&x.transpose(0, 1).unwrap(), &w).unwrap();
        let want = all.get(l - 1).unwrap().flatten_all().unwrap();
        let (got, want) = (
            last.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            want.to_vec1::<f32>().unwrap(),
        );
        assert!(
            got.iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "L {l}, B {b}, I {i}, H {h}"
        );
    }
    let x = Tensor::zeros((2, 3, 4), DType::F32, &dev).unwrap();
    let w = Tensor::zeros((8, 9), DType::F32, &dev).unwrap();
    let e = op::lstm_fused_last(&x, &w).unwrap_err().to_string();
    assert!(e.contains("[4H, 4 + H + 1]"), "{e}");
}

/// The fused Linear against candle's matmul + broadcast_add, forward and
/// backward, and no input gradient for data.
#[test]
fn linear_matches_candle_and_skips_the_data_gradient() {
    let dev = Device::Cpu;
    let mut rng = Lcg(9);
    let mk = |v: Vec<f32>, s: &[usize]| {
        Var::from_tensor(&Tensor::from_vec(v, s, &dev).unwrap()).unwrap()
    };
    let x = mk(rng.vec(4 * 3 * 7, 1.0), &[4, 3, 7]);
    let w = mk(rng.vec(5 * 7, 0.5), &[5, 7]);
    let b = mk(rng.vec(5, 0.5), &[5]);
    let gy = Tensor::from_vec(rng.vec(4 * 3 * 5, 1.0), (4, 3, 5), &dev).unwrap();
    let y = recur_kernels::linear(&x, &w, &b).unwrap();
    let y_ref = x
        .broadcast_matmul(&w.t().unwrap())
        .unwrap()
        .broadcast_add(&b)
        .unwrap();
    assert!(rel_err(&flat(&y), &flat(&y_ref)) < 1e-6);
    let g = (&y * &gy).unwrap().sum_all().unwrap().backward().unwrap();
    let g_ref = (&y_ref * &gy)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for v in [&x, &w, &b] {
        let e = rel_err(&flat(g.get(v).unwrap()), &flat(g_ref.get(v).unwrap()));
        assert!(e < 1e-6, "gradient relative error {e:.2e}");
    }
    // Data (not a variable): no gradient is computed for it.
    let data = x.as_tensor().detach();
    let y = recur_kernels::linear(&data, &w, &b).unwrap();
    let g = y.sum_all().unwrap().backward().unwrap();
    assert!(g.get(&data).is_none() && g.get(&w).is_some());
    let e = recur_kernels::linear(&data, &b.as_tensor().unsqueeze(0).unwrap(), &b)
        .unwrap_err()
        .to_string();
    assert!(e.contains("weight [1, 5]"), "{e}");
}

/// The recurrence against a weight packed once (`forward_packed`, a model
/// loaded to serve) gives, for a batch of 9, the bits of the training
/// forward (which packs the same panels per call for 7 to 96 rows), and a
/// row the same bits alone or in a batch of 1 to 6 as in the batch of 9;
/// the unpacked inference forward of 1 to 6 rows (dot products over the
/// weight as it is) agrees to 1e-5. LSTM and GRU, on one and two threads.
#[test]
fn packed_recurrence_gives_the_training_bits_for_any_batch() {
    use recur_kernels::packed::PackedLinear;
    for gru_kind in [false, true] {
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let (l, h, g) = (5, 24, if gru_kind { 3 } else { 4 });
                let d = |b| Dims {
                    steps: l,
                    batch: b,
                    hidden: h,
                };
                let mut rng = Lcg(17);
                let xp9 = rng.vec(l * 9 * g * h, 1.0);
                let w = rng.vec(g * h * h, 0.3);
                let bh = rng.vec(g * h, 0.2);
                let packed = PackedLinear::new(&w, h, None);
                let run = |b: usize, xp: &[f32], pack: bool| {
                    let mut y = vec![0f32; l * b * h];
                    match (gru_kind, pack) {
                        (true, true) => gru::forward_packed(d(b), xp, &packed, &bh, &mut y),
                        (true, false) => gru::forward(d(b), xp, &w, &bh, &mut y, None),
                        (false, true) => lstm::forward_packed(d(b), xp, &packed, &mut y),
                        (false, false) => lstm::forward(d(b), xp, &w, &mut y, None),
                    }
                    y
                };
                let mut train = vec![0f32; l * 9 * h];
                if gru_kind {
                    let mut s = gru::Saved::default();
                    gru::forward(d(9), &xp9, &w, &bh, &mut train, Some(&mut s));
                } else {
                    let mut s = lstm::Saved::default();
                    lstm::forward(d(9), &xp9, &w, &mut train, Some(&mut s));
                }
                let all = run(9, &xp9, true);
                assert_eq!(
                    all, train,
                    "gru {gru_kind}: packed and training forwards differ"
                );
                for b in 1..=6 {
                    // Rows 2..2 + b of every step, time-major.
                    let xp: Vec<f32> = (0..l)
                        .flat_map(|t| xp9[(t * 9 + 2) * g * h..(t * 9 + 2 + b) * g * h].to_vec())
                        .collect();
                    let few = run(b, &xp, true);
                    let want: Vec<f32> = (0..l)
                        .flat_map(|t| all[(t * 9 + 2) * h..(t * 9 + 2 + b) * h].to_vec())
                        .collect();
                    assert_eq!(
                        few, want,
                        "gru {gru_kind}, batch {b}: rows differ from the batch of 9"
                    );
                    let dots = run(b, &xp, false);
                    let (a, o): (Vec<f64>, Vec<f64>) = (
                        few.iter().map(|&v| v as f64).collect(),
                        dots.iter().map(|&v| v as f64).collect(),
                    );
                    assert!(
                        rel_err(&a, &o) < 1e-5,
                        "gru {gru_kind}, batch {b}: packed and dot products disagree"
                    );
                }
            });
        }
    }
}
