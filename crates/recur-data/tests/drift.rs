//! Drift on the bundled rainfall series, a known drift set: its later years
//! drift from the earlier ones, while two halves of the earlier years
//! (random blocks of 30 days, so each keeps its day-to-day structure) do not
//! drift from each other.

use recur_core::config::{Config, DriftThresholds};
use recur_data::drift::{compare, Reference};
use recur_data::prepare::feature_values;
use std::path::Path;

const FEATURES: [&str; 9] = [
    "temperature",
    "dew point",
    "sea-level pressure",
    "visibility",
    "average wind speed",
    "max sustained wind-speed",
    "minimum temperature",
    "maximum temperature",
    "rain",
];

fn rainfall() -> (Vec<String>, Vec<f64>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/rainfall.csv");
    let features: Vec<String> = FEATURES.iter().map(|s| s.to_string()).collect();
    let values = feature_values(&path, &Config::default(), &features).unwrap();
    (features, values)
}

fn rows(values: &[f64], f: usize, idx: &[usize]) -> Vec<f64> {
    idx.iter()
        .flat_map(|&r| values[r * f..(r + 1) * f].iter().copied())
        .collect()
}

#[test]
fn the_later_years_drift_and_two_halves_of_the_earlier_ones_do_not() {
    let (features, values) = rainfall();
    let f = features.len();
    let n = values.len() / f;
    let cut = n * 7 / 10;
    let th = DriftThresholds::default();
    // Later years against the earlier ones.
    let earlier = Reference::of(&features, &values, 0..cut);
    let later: Vec<usize> = (cut..n).collect();
    let d = compare(&earlier, &rows(&values, f, &later), &th).unwrap();
    let drifted: Vec<&str> = d
        .iter()
        .filter(|x| x.drift)
        .map(|x| x.feature.as_str())
        .collect();
    assert!(drifted.len() >= 3, "later years: {d:#?}");
    assert!(drifted.contains(&"dew point"), "{drifted:?}");
    // Two halves of the earlier years, by random 30-day blocks.
    let mut g = recur_core::rng::Rng::new(11);
    let blocks: Vec<Vec<usize>> = (0..cut)
        .collect::<Vec<_>>()
        .chunks(30)
        .map(<[usize]>::to_vec)
        .collect();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for blk in blocks {
        if g.unit() < 0.5 {
            a.extend(blk)
        } else {
            b.extend(blk)
        }
    }
    let ra = rows(&values, f, &a);
    let half_ref = Reference::of(&features, &ra, 0..a.len());
    let d = compare(&half_ref, &rows(&values, f, &b), &th).unwrap();
    assert!(
        d.iter().all(|x| !x.drift),
        "halves of the same years: {d:#?}"
    );
    // And the earlier years against themselves are zero everywhere.
    let d = compare(
        &earlier,
        &rows(&values, f, &(0..cut).collect::<Vec<_>>()),
        &th,
    )
    .unwrap();
    assert!(
        d.iter()
            .all(|x| x.psi.abs() < 1e-12 && x.mean_shift < 1e-12 && x.ks < 0.01),
        "{d:#?}"
    );
}
