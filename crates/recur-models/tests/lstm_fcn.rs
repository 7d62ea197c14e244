//! LSTM-FCN against PyTorch on the fixture of
//! scripts/make_lstm_fcn_fixtures.py: the evaluation forward on the stored
//! running statistics, the training forward on batch statistics, every
//! gradient, and the running statistics after one training step, to 1e-4
//! relative; and evaluation uses the running statistics, not the batch's.

use candle_core::{Device, Tensor, Var};
use recur_core::rng::Rng;
use recur_models::lstm_fcn::{LstmFcn, LstmFcnArch, KIND};
use std::collections::HashMap;

fn fixture() -> HashMap<String, Tensor> {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/lstm_fcn.npz");
    Tensor::read_npz(p).unwrap().into_iter().collect()
}

fn flat(t: &Tensor) -> Vec<f64> {
    t.to_dtype(candle_core::DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// max |a - b| / (max |b| + 1e-6).
fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs())) + 1e-6;
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

struct Case {
    arch: LstmFcnArch,
    f: HashMap<String, Tensor>,
    tag: &'static str,
}

impl Case {
    fn get(&self, k: &str) -> &Tensor {
        self.f
            .get(&format!("{}.{k}", self.tag))
            .unwrap_or_else(|| panic!("fixture has no {}.{k}", self.tag))
    }

    fn model(&self) -> LstmFcn {
        let mut tensors = HashMap::new();
        for s in LstmFcn::tensor_specs(&self.arch) {
            tensors.insert(s.name.clone(), self.get(&format!("p.{}", s.name)).clone());
        }
        LstmFcn::from_tensors(self.arch.clone(), tensors).unwrap()
    }
}

fn cases() -> Vec<Case> {
    let f = fixture();
    let arch = |t, fe, h, filters, kernels, shuffle, k| LstmFcnArch {
        kind: KIND.into(),
        input_dim: fe,
        sequence_length: t,
        hidden_size: h,
        dropout: 0.0,
        shuffle,
        filters,
        kernels,
        outputs: k,
    };
    vec![
        Case {
            arch: arch(12, 2, 5, [6, 8, 4], [8, 5, 3], true, 1),
            f: f.clone(),
            tag: "a",
        },
        Case {
            arch: arch(9, 3, 4, [5, 6, 7], [4, 3, 2], false, 3),
            f,
            tag: "b",
        },
    ]
}

#[test]
fn lstm_fcn_matches_pytorch_forward_gradients_and_running_statistics() {
    for c in cases() {
        let m = c.model();
        let x = c.get("x");
        // Evaluation first: the stored running statistics.
        let y = m.forward(x, None).unwrap();
        let e = rel_err(&flat(&y), &flat(c.get("y_eval")));
        assert!(e < 1e-4, "case {}: eval forward off by {e:e}", c.tag);
        // Training: batch statistics, gradients, running statistics moved.
        let xv = Var::from_tensor(x).unwrap();
        let mut rng = Rng::new(1);
        let y = m.forward(xv.as_tensor(), Some(&mut rng)).unwrap();
        let e = rel_err(&flat(&y), &flat(c.get("y_train")));
        assert!(e < 1e-4, "case {}: train forward off by {e:e}", c.tag);
        let gy = c.get("gy");
        let gy = if c.arch.outputs == 1 {
            gy.squeeze(1).unwrap()
        } else {
            gy.clone()
        };
        let grads = (y * gy).unwrap().sum_all().unwrap().backward().unwrap();
        for (name, v) in m.params() {
            let g = grads
                .get(v)
                .unwrap_or_else(|| panic!("no gradient for {name}"));
            let (got, want) = (flat(g), flat(c.get(&format!("grad.{name}"))));
            if name.starts_with("conv") && name.ends_with(".bias") {
                // Batch norm on batch statistics removes any per-channel
                // shift: a convolution's bias has no effect, and both
                // gradients are zero up to rounding (f32 here, f64 there).
                let max = |v: &[f64]| v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
                assert!(
                    max(&got) < 1e-5 && max(&want) < 1e-9,
                    "case {}: gradient of {name} should be 0: {} vs {}",
                    c.tag,
                    max(&got),
                    max(&want)
                );
                continue;
            }
            let e = rel_err(&got, &want);
            assert!(e < 1e-4, "case {}: gradient of {name} off by {e:e}", c.tag);
        }
        let gx = grads.get(&xv).unwrap();
        let e = rel_err(&flat(gx), &flat(c.get("grad_x")));
        assert!(e < 1e-4, "case {}: gradient of x off by {e:e}", c.tag);
        for (name, v) in m.buffers() {
            let e = rel_err(&flat(v.as_tensor()), &flat(c.get(&format!("new.{name}"))));
            assert!(e < 1e-4, "case {}: {name} after a step off by {e:e}", c.tag);
        }
    }
}

#[test]
fn evaluation_uses_the_running_statistics_not_the_batch() {
    let c = &cases()[0];
    let m = c.model();
    let x = c.get("x");
    let eval = flat(&m.forward(x, None).unwrap());
    // The same rows, one at a time and in another batch: the same output
    // (batch statistics would change with the batch).
    for (i, want) in eval.iter().enumerate() {
        let one = flat(&m.forward(&x.narrow(0, i, 1).unwrap(), None).unwrap());
        assert!(
            (one[0] - want).abs() < 1e-5,
            "row {i}: {} vs {want}",
            one[0]
        );
    }
    // And different from what batch statistics give.
    let train = flat(c.get("y_train"));
    let gap = eval
        .iter()
        .zip(&train)
        .fold(0.0f64, |g, (a, b)| g.max((a - b).abs()));
    assert!(gap > 1e-2, "eval equals the batch-statistics output: {gap}");
    // Evaluation leaves the running statistics alone.
    let before: Vec<Vec<f64>> = m
        .buffers()
        .iter()
        .map(|(_, v)| flat(v.as_tensor()))
        .collect();
    m.forward(x, None).unwrap();
    let after: Vec<Vec<f64>> = m
        .buffers()
        .iter()
        .map(|(_, v)| flat(v.as_tensor()))
        .collect();
    assert_eq!(before, after);
}

#[test]
fn the_papers_model_has_pytorchs_names_sizes_and_a_snapshot_that_restores() {
    let arch = LstmFcnArch::new(1, 150, 8, 1);
    let m = LstmFcn::init(arch.clone(), &mut Rng::new(3), &Device::Cpu).unwrap();
    // nn.LSTM(150, 8): 4*8*(150+8) + 2*4*8 = 5120; conv1 128*1*8+128 = 1152,
    // conv2 256*128*5+256 = 164096, conv3 128*256*3+128 = 98432, batch
    // norms 2*(128+256+128) = 1024, fc (8+128)+1 = 137.
    assert_eq!(m.n_params(), 5120 + 1152 + 164096 + 98432 + 1024 + 137);
    let names: Vec<String> = LstmFcn::tensor_specs(&arch)
        .iter()
        .map(|s| s.name.clone())
        .collect();
    assert!(names.contains(&"bn2.running_var".to_string()));
    assert!(names.contains(&"conv3.weight".to_string()));
    let x = Tensor::randn(0f32, 1.0, (3, 150, 1), &Device::Cpu).unwrap();
    let y0 = flat(&m.forward(&x, None).unwrap());
    let snap = m.snapshot().unwrap();
    // A training forward moves the running statistics; restore puts back
    // weights and statistics alike.
    m.forward(&x, Some(&mut Rng::new(1))).unwrap();
    assert_ne!(flat(&m.forward(&x, None).unwrap()), y0);
    m.restore(&snap).unwrap();
    assert_eq!(flat(&m.forward(&x, None).unwrap()), y0);
    // The wrong series length is an error, not a panic.
    let short = Tensor::zeros((2, 100, 1), candle_core::DType::F32, &Device::Cpu).unwrap();
    let e = m.forward(&short, None).unwrap_err().to_string();
    assert!(e.contains("[B, 150, 1]"), "{e}");
}
