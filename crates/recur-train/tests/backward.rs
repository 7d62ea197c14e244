//! candle's backward as patched in `vendor/candle-core` (its README): the
//! first gradient to reach a node is stored as it is, later ones are added,
//! and subtractions negate. The model tests check whole models against
//! finite differences; these pin down the gradient store's own rules on a
//! graph small enough to write the answer by hand.

use candle_core::{Device, Result, Tensor, Var};

#[test]
fn fan_in_sums_subtraction_negates_and_a_first_gradient_is_stored_exactly() -> Result<()> {
    let dev = Device::Cpu;
    let w = Var::new(&[1.0f32, -2.0, 3.0, 0.5], &dev)?;
    let v = Var::new(&[4.0f32, -1.0, 0.25, 2.0], &dev)?;
    let u = Var::new(&[0.3f32, 0.7, -0.1, 0.9], &dev)?;
    let a = Tensor::new(&[0.5f32, 0.25, -1.0, 3.0], &dev)?;
    let wt = w.as_tensor();
    // w reaches the loss four ways: d/dw = 2 * (a + 1 - 1 + 1) = 2a + 2.
    let z = ((((wt * &a)? + wt)? - wt)? - wt.neg()?)?;
    // v only through the right of a subtraction (its first gradient is a
    // negation): d/dv = -3. u only through an add, beside z: d/du = 2.
    let loss = ((z + u.as_tensor())? * 2.0)?.sum_all()?;
    let loss = (loss - (v.as_tensor() * 3.0)?.sum_all()?)?;
    let grads = loss.backward()?;
    let got = |x: &Var| -> Result<Vec<f32>> {
        let g = grads.get(x).expect("every var gets a gradient");
        assert!(g.is_contiguous(), "a stored gradient is contiguous");
        g.to_vec1()
    };
    let want_w: Vec<f32> = [0.5f32, 0.25, -1.0, 3.0]
        .iter()
        .map(|a| 2.0 * a + 2.0)
        .collect();
    assert_eq!(got(&w)?, want_w);
    assert_eq!(got(&v)?, vec![-3.0f32; 4]);
    assert_eq!(got(&u)?, vec![2.0f32; 4]);
    // A second backward over the same graph gives the same gradients: the
    // stored tensors were not changed in place by the first one's sums.
    let again = loss.backward()?;
    assert_eq!(again.get(&w).expect("w").to_vec1::<f32>()?, want_w);
    Ok(())
}
