//! Whole series as `/v1/classify` takes them for a model of the sequences
//! layout (UCR/UEA-style: one series, one class): the JSON a client sends,
//! checked and turned into the `[T, F]` row-major values the compute thread
//! scores. Kept apart from the windows of rows (`http.rs`) because the
//! shape differs: a series is a list of steps, each a list of one value per
//! channel, and `null` marks a missing value, filled as the `?` of a `.ts`
//! file is (linear interpolation within its channel, end values held).

use crate::api::ApiError;
use crate::engine::ClassifierInfo;
use serde_json::Value;

/// The most steps one series may send: four times the longest training
/// series, and at least 1,000 (series at prediction may be longer than at
/// training when the model takes any length).
pub fn max_steps(c: &ClassifierInfo) -> usize {
    (c.sequence_length * 4).max(1000)
}

/// One series as sent: a list of steps, or `{"id": ..., "steps": [...]}`;
/// its values `[T, F]` row-major and its id.
pub fn parse(
    v: &Value,
    at: &str,
    c: &ClassifierInfo,
) -> Result<(Vec<f64>, Option<Value>), ApiError> {
    let (steps, id) = match v {
        Value::Array(steps) => (steps.as_slice(), None),
        Value::Object(o) => {
            if let Some(k) = o.keys().find(|k| *k != "id" && *k != "steps") {
                return Err(ApiError::invalid(
                    "unknown_field",
                    format!("{at} has {k:?}; a series is a list of steps or {{\"id\", \"steps\"}}"),
                ));
            }
            match o.get("steps") {
                Some(Value::Array(steps)) => (steps.as_slice(), o.get("id").cloned()),
                _ => {
                    return Err(ApiError::invalid(
                        "invalid_field",
                        format!("{at}.steps must be a list of steps, first to last"),
                    ))
                }
            }
        }
        other => {
            return Err(ApiError::invalid(
                "invalid_field",
                format!("{at} is {other}; expected a list of steps or {{\"id\", \"steps\"}}"),
            ))
        }
    };
    let f = c.features.len().max(1);
    if steps.is_empty() {
        return Err(ApiError::invalid(
            "empty_series",
            format!("{at} has no steps; a series needs at least one"),
        ));
    }
    if steps.len() > max_steps(c) {
        return Err(ApiError::invalid(
            "too_many_steps",
            format!("{at} has {} steps; at most {}", steps.len(), max_steps(c)),
        ));
    }
    if let Some(l) = c.fixed_length.filter(|&l| l != steps.len()) {
        return Err(ApiError::invalid(
            "wrong_length",
            format!(
                "{at} has {} steps; the classifier was trained on series of exactly {l} and reads only that length",
                steps.len()
            ),
        ));
    }
    // `null` is NaN until filled, within its channel, as `?` is.
    let mut values = Vec::with_capacity(steps.len() * f);
    for (t, step) in steps.iter().enumerate() {
        let at_t = format!("{at}[{t}]");
        match step {
            Value::Array(xs) if xs.len() == f => {
                for (j, x) in xs.iter().enumerate() {
                    values.push(value(x, &format!("{at_t}[{j}]"))?);
                }
            }
            Value::Array(xs) => {
                return Err(ApiError::invalid(
                    "wrong_dimension",
                    format!(
                        "{at_t} has {} values; the classifier reads {f} channel(s) a step",
                        xs.len()
                    ),
                ))
            }
            x if f == 1 => values.push(value(x, &at_t)?),
            other => {
                return Err(ApiError::invalid(
                    "invalid_field",
                    format!("{at_t} is {other}; a step is a list of {f} values, one a channel"),
                ))
            }
        }
    }
    recur_data::ucr::fill_missing(&mut values, f).map_err(|j| {
        ApiError::invalid(
            "all_missing",
            format!("{at}: every value of channel {j} is null; a channel needs at least one known value"),
        )
    })?;
    if let Some(k) = c.scaler.beyond_f32(&values) {
        return Err(ApiError::invalid(
            "non_finite",
            format!(
                "{at}[{}][{}] is {:e}, beyond float32 (or once scaled)",
                k / f,
                k % f,
                values[k]
            ),
        ));
    }
    Ok((values, id))
}

/// A number, or NaN for `null` (missing, filled later).
fn value(x: &Value, at: &str) -> Result<f64, ApiError> {
    match x {
        Value::Null => Ok(f64::NAN),
        x => x.as_f64().ok_or_else(|| {
            ApiError::invalid(
                "invalid_field",
                format!("{at} is {x}; expected a number (or null for a missing value)"),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info(channels: usize, fixed: Option<usize>) -> ClassifierInfo {
        let features: Vec<String> = (0..channels).map(|j| format!("dim_{j}")).collect();
        ClassifierInfo {
            path: String::new(),
            features: features.clone(),
            sequence_length: 4,
            min_rows: 1,
            deployed: "lstm".into(),
            threshold: 0.5,
            has_trees: false,
            time_column: None,
            scaler: recur_data::Scaler {
                features,
                mean: vec![0.0; channels],
                std: vec![1.0; channels],
            },
            reference: None,
            drift_thresholds: Default::default(),
            drift_monitored: false,
            ewma_span: 1,
            warmup_rows: 0,
            layout: recur_core::config::Layout::Sequences,
            classes: vec!["a".into(), "b".into(), "c".into()],
            fixed_length: fixed,
        }
    }

    #[test]
    fn steps_become_row_major_values_and_nulls_fill_within_their_channel() {
        let c = info(2, None);
        let (v, id) = parse(
            &json!({"id": 7, "steps": [[1, null], [null, 4], [3, 6]]}),
            "sequence",
            &c,
        )
        .unwrap();
        assert_eq!(v, vec![1.0, 4.0, 2.0, 4.0, 3.0, 6.0]);
        assert_eq!(id, Some(json!(7)));
        // One channel: bare numbers are steps.
        let (v, _) = parse(&json!([1.5, 2.5]), "sequence", &info(1, None)).unwrap();
        assert_eq!(v, vec![1.5, 2.5]);
    }

    #[test]
    fn bad_series_are_refused_naming_where() {
        let c = info(2, Some(3));
        let e = |v: Value| parse(&v, "sequences[1]", &c).unwrap_err();
        let cases = [
            (json!([]), "empty_series", "no steps"),
            (json!([[1, 2], [3, 4]]), "wrong_length", "exactly 3"),
            (
                json!([[1, 2], [3], [5, 6]]),
                "wrong_dimension",
                "sequences[1][1] has 1 values",
            ),
            (
                json!([[1, null], [3, null], [5, null]]),
                "all_missing",
                "channel 1",
            ),
            (
                json!([[1, 2], [3, "x"], [5, 6]]),
                "invalid_field",
                "sequences[1][1][1]",
            ),
            (
                json!([[1, 2], [3, 1e300], [5, 6]]),
                "non_finite",
                "beyond float32",
            ),
            (
                json!({"steps": [[1, 2]], "rows": 1}),
                "unknown_field",
                "\"rows\"",
            ),
            (json!("abc"), "invalid_field", "list of steps"),
        ];
        for (v, code, text) in cases {
            let err = e(v.clone());
            assert_eq!(err.code, code, "{v}: {}", err.message);
            assert!(err.message.contains(text), "{v}: {}", err.message);
        }
    }
}
