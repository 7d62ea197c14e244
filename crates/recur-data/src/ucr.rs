//! The one-sequence-per-row layout: UCR/UEA `.ts` files (`@` header lines,
//! then one sample per line, dimensions separated by `:`, values by `,`,
//! class label last) and CSV files whose rows are a label plus the values.
//! The classifier reads each whole series as one window.
//!
//! Series may differ in length (UEA files such as JapaneseVowels); the
//! channels of one series may not, and every series has the same channels.
//! Missing values (`?`, or `NaN`, in a `.ts` file) are filled by linear
//! interpolation between the nearest known values of the same channel, and
//! held at the first or last known value at the ends; a channel with no
//! known value is an error naming its line. This is aeon's and sktime's
//! usual imputation, and it keeps every series its own length.

use crate::table::Table;
use recur_core::{Error, Result};
use std::path::Path;

/// Whole sequences with their class labels (as text, mapped to 0/1 later).
#[derive(Debug, Clone)]
pub struct Sequences {
    pub source: String,
    /// Per sample, `len * dims` values, time-major (`[t][d]`).
    pub values: Vec<Vec<f64>>,
    pub labels: Vec<String>,
    /// The longest series' length.
    pub sequence_length: usize,
    pub dims: usize,
    /// Missing values filled by interpolation, for the user to be told.
    pub filled: usize,
}

impl Sequences {
    /// Series given in memory: each `len * dims` values, time-major, with
    /// its label (an empty label: unknown, for scoring). Refuses a series
    /// of length 0, values that are not a whole number of steps, and
    /// values that are not finite, naming the series.
    pub fn from_arrays(
        source: &str,
        values: Vec<Vec<f64>>,
        dims: usize,
        labels: Vec<String>,
    ) -> Result<Sequences> {
        if values.is_empty() {
            return Err(Error::data(source, "no series given"));
        }
        if dims == 0 {
            return Err(Error::data(source, "series need at least one channel"));
        }
        if labels.len() != values.len() {
            return Err(Error::data(
                source,
                format!(
                    "{} labels for {} series: give one label a series",
                    labels.len(),
                    values.len()
                ),
            ));
        }
        for (i, v) in values.iter().enumerate() {
            if v.is_empty() || v.len() % dims != 0 {
                return Err(Error::data(
                    source,
                    format!(
                        "series {i} holds {} values: a series is at least one step of {dims} channel(s)",
                        v.len()
                    ),
                ));
            }
            if let Some(k) = v.iter().position(|x| !x.is_finite()) {
                return Err(Error::data(
                    source,
                    format!(
                        "series {i}, step {}, channel {}: {} is not a finite number",
                        k / dims,
                        k % dims,
                        v[k]
                    ),
                ));
            }
        }
        let sequence_length = values.iter().map(|v| v.len() / dims).max().unwrap_or(0);
        Ok(Sequences {
            source: source.into(),
            values,
            labels,
            sequence_length,
            dims,
            filled: 0,
        })
    }

    /// Each series' length.
    pub fn lengths(&self) -> Vec<usize> {
        self.values.iter().map(|v| v.len() / self.dims).collect()
    }

    /// Whether every series has the same length.
    pub fn equal_length(&self) -> bool {
        self.values
            .iter()
            .all(|v| v.len() == self.sequence_length * self.dims)
    }
}

/// Fills the NaNs of one series, row-major `[T, dims]`, channel by channel
/// as [`interpolate`] does: the policy for missing values in series given
/// as arrays (NaN, as aeon and sktime mark them) or sent to the service
/// (`null`). Returns how many were filled, or the first channel whose
/// every value is missing. Infinities are left for the caller to refuse.
pub fn fill_missing(values: &mut [f64], dims: usize) -> std::result::Result<usize, usize> {
    if dims == 0 || !values.iter().any(|x| x.is_nan()) {
        return Ok(0);
    }
    let steps = values.len() / dims;
    let mut filled = 0;
    for j in 0..dims {
        let ch: Vec<Option<f64>> = (0..steps)
            .map(|t| Some(values[t * dims + j]).filter(|x| !x.is_nan()))
            .collect();
        filled += ch.iter().filter(|x| x.is_none()).count();
        let full = interpolate(&ch).ok_or(j)?;
        for (t, x) in full.into_iter().enumerate() {
            values[t * dims + j] = x;
        }
    }
    Ok(filled)
}

/// Fills the `None`s of one channel by linear interpolation between the
/// nearest known values, holding the end values; `None` when nothing is
/// known. The policy for the `?` of `.ts` files ([`fill_missing`] applies
/// it to the NaNs of arrays).
fn interpolate(v: &[Option<f64>]) -> Option<Vec<f64>> {
    let known: Vec<usize> = (0..v.len()).filter(|&i| v[i].is_some()).collect();
    let (&first, &last) = (known.first()?, known.last()?);
    let mut out = Vec::with_capacity(v.len());
    let mut next = 0;
    for (i, x) in v.iter().enumerate() {
        out.push(match x {
            Some(x) => *x,
            None if i < first => v[first].unwrap(),
            None if i > last => v[last].unwrap(),
            None => {
                while known[next] < i {
                    next += 1;
                }
                let (a, b) = (known[next - 1], known[next]);
                let (ya, yb) = (v[a].unwrap(), v[b].unwrap());
                ya + (yb - ya) * (i - a) as f64 / (b - a) as f64
            }
        });
    }
    Some(out)
}

impl Sequences {
    /// Reads a file of whole series, one per row: `.ts`, or a table with a label column.
    pub fn read(
        path: &Path,
        format: Option<&str>,
        label_column: Option<&str>,
    ) -> Result<Sequences> {
        let ext = format.map(|s| s.to_ascii_lowercase()).or_else(|| {
            path.extension()
                .and_then(|e| e.to_str())
                .map(|e| e.to_ascii_lowercase())
        });
        match ext.as_deref() {
            Some("ts") => Sequences::read_ts(path),
            _ => Sequences::from_table(&Table::read(path, format)?, label_column),
        }
    }

    /// A table whose rows are label + values; the label is `label_column`
    /// (default: the first column), the values every other column in order.
    pub fn from_table(t: &Table, label_column: Option<&str>) -> Result<Sequences> {
        let li = match label_column {
            Some(n) => t.index_of(n)?,
            None => 0,
        };
        let labels: Vec<String> = (0..t.n_rows()).map(|r| t.columns[li].cell(r)).collect();
        let value_names: Vec<&String> = t
            .names
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != li)
            .map(|(_, n)| n)
            .collect();
        if value_names.is_empty() {
            return Err(Error::data(
                &t.source,
                "a sequence row needs a label and at least one value",
            ));
        }
        let cols: Vec<&[f64]> = value_names
            .iter()
            .map(|n| t.finite(n))
            .collect::<Result<_>>()?;
        let values = (0..t.n_rows())
            .map(|r| cols.iter().map(|c| c[r]).collect())
            .collect();
        Ok(Sequences {
            source: t.source.clone(),
            values,
            labels,
            sequence_length: cols.len(),
            dims: 1,
            filled: 0,
        })
    }

    /// Reads a UCR/UEA `.ts` file.
    pub fn read_ts(path: &Path) -> Result<Sequences> {
        let source = path.display().to_string();
        let text = recur_core::fsx::read_text_bounded(path, recur_core::fsx::MAX_DATA_FILE)?;
        let mut in_data = false;
        let (mut values, mut labels) = (Vec::new(), Vec::new());
        let (mut len, mut dims) = (None::<usize>, None::<usize>);
        let mut filled = 0;
        // What the header declares and the data must keep to: the classes
        // of `@classLabel true ...`, and `@equalLength true`.
        let (mut declared, mut equal) = (None::<Vec<String>>, None::<usize>);
        for (ln, line) in text.lines().enumerate() {
            let line = line.trim();
            let at = |msg: String| Error::data(&source, format!("line {}: {msg}", ln + 1));
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if !in_data {
                let lower = line.to_ascii_lowercase();
                if lower.starts_with("@data") {
                    in_data = true;
                }
                let words: Vec<&str> = line.split_whitespace().collect();
                if lower.starts_with("@classlabel ") && words.get(1) == Some(&"true") {
                    declared = Some(words[2..].iter().map(|w| w.to_string()).collect());
                }
                if lower.starts_with("@equallength ") && words.get(1) == Some(&"true") {
                    equal = Some(0);
                }
                continue;
            }
            let parts: Vec<&str> = line.split(':').collect();
            if parts.len() < 2 {
                return Err(at(
                    "expected `values:label` (a class label after the last `:`)".into(),
                ));
            }
            let label = parts[parts.len() - 1].trim().to_string();
            if let Some(classes) = &declared {
                if !classes.contains(&label) {
                    return Err(at(format!(
                        "class `{label}` is not one the header declares (@classLabel true {}); \
                         correct the label or the header",
                        classes.join(" ")
                    )));
                }
            }
            let series: Vec<Vec<f64>> = parts[..parts.len() - 1]
                .iter()
                .enumerate()
                .map(|(d, p)| {
                    if p.trim().is_empty() {
                        return Err(at(format!(
                            "dimension {d} is empty: a series of length 0; every series needs at least one value"
                        )));
                    }
                    let raw = p
                        .split(',')
                        .enumerate()
                        .map(|(k, v)| match v.trim() {
                            "?" | "NaN" | "nan" => Ok(None),
                            v => match v.parse::<f64>() {
                                Ok(x) if x.is_finite() => Ok(Some(x)),
                                _ => Err(at(format!(
                                    "dimension {d}, value {k}: `{v}` is not a finite number (`?` marks a missing one)"
                                ))),
                            },
                        })
                        .collect::<Result<Vec<Option<f64>>>>()?;
                    filled += raw.iter().filter(|x| x.is_none()).count();
                    interpolate(&raw).ok_or_else(|| {
                        at(format!(
                            "dimension {d}: every value is missing (`?`); a channel needs at least one known value"
                        ))
                    })
                })
                .collect::<Result<_>>()?;
            let (l, d) = (series[0].len(), series.len());
            if series.iter().any(|s| s.len() != l) {
                return Err(at(format!(
                    "dimensions have different lengths ({}): the channels of one series must be equally long",
                    series
                        .iter()
                        .map(|s| s.len().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            if dims.is_some_and(|x| x != d) {
                return Err(at(format!(
                    "a series with {d} dimension(s); earlier ones have {}: every series needs the same channels",
                    dims.unwrap()
                )));
            }
            match equal {
                Some(0) => equal = Some(l),
                Some(e) if e != l => {
                    return Err(at(format!(
                        "a series of {l} steps where earlier ones have {e}, but the header says \
                         @equalLength true; correct the series or the header"
                    )))
                }
                _ => {}
            }
            len = Some(len.map_or(l, |m: usize| m.max(l)));
            dims = Some(d);
            let mut flat = Vec::with_capacity(l * d);
            for t in 0..l {
                for s in &series {
                    flat.push(s[t]);
                }
            }
            values.push(flat);
            labels.push(label);
        }
        if values.is_empty() {
            return Err(Error::data(
                source,
                "no samples: expected `@data` followed by one series per line",
            ));
        }
        Ok(Sequences {
            source,
            values,
            labels,
            sequence_length: len.unwrap(),
            dims: dims.unwrap(),
            filled,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_multivariate_ts_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.ts");
        std::fs::write(
            &p,
            "# c\n@problemName X\n@classLabel true 1 2\n@data\n1,2,3:4,5,6:1\n7,8,9:1,1,1:2\n",
        )
        .unwrap();
        let s = Sequences::read(&p, None, None).unwrap();
        assert_eq!((s.sequence_length, s.dims), (3, 2));
        assert_eq!(s.values[0], vec![1., 4., 2., 5., 3., 6.]);
        assert_eq!(s.labels, vec!["1", "2"]);
        // Unequal lengths are read as they are; the longest sets the length.
        std::fs::write(&p, "@data\n1,2,3:1\n1,2:2\n").unwrap();
        let s = Sequences::read(&p, None, None).unwrap();
        assert_eq!((s.sequence_length, s.lengths()), (3, vec![3, 2]));
        assert!(!s.equal_length());
        std::fs::write(&p, "@data\n1,2,3:1,2:1\n").unwrap();
        let e = Sequences::read(&p, None, None).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("(3, 2)"), "{e}");
        std::fs::write(&p, "@data\n1,2,3:1,2,3:1\n1,2:2\n").unwrap();
        let e = Sequences::read(&p, None, None).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("same channels"), "{e}");
        std::fs::write(&p, "@data\n1,2,3:1\n:2\n").unwrap();
        let e = Sequences::read(&p, None, None).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("length 0"), "{e}");
        // The header is kept to: a class it does not declare (one typed
        // label made a third class), and ragged series under equalLength.
        std::fs::write(&p, "@classLabel true 1 2\n@data\n1,2:1\n1,2:3\n").unwrap();
        let e = Sequences::read(&p, None, None).unwrap_err().to_string();
        assert!(
            e.contains("line 4")
                && e.contains("class `3` is not one the header declares (@classLabel true 1 2)"),
            "{e}"
        );
        std::fs::write(&p, "@equalLength true\n@data\n1,2:1\n1,2,3:2\n").unwrap();
        let e = Sequences::read(&p, None, None).unwrap_err().to_string();
        assert!(
            e.contains("line 4") && e.contains("@equalLength true"),
            "{e}"
        );
    }

    #[test]
    fn nans_of_arrays_fill_as_missing_values_do() {
        let mut v = vec![1.0, f64::NAN, f64::NAN, 4.0, 3.0, 6.0];
        assert_eq!(fill_missing(&mut v, 2), Ok(2));
        assert_eq!(v, vec![1.0, 4.0, 2.0, 4.0, 3.0, 6.0]);
        let mut v = vec![1.0, f64::NAN, 2.0, f64::NAN];
        assert_eq!(fill_missing(&mut v, 2), Err(1));
        let mut v = vec![1.0, f64::INFINITY];
        assert_eq!(fill_missing(&mut v, 2), Ok(0));
    }

    #[test]
    fn missing_values_are_interpolated_within_their_channel() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.ts");
        std::fs::write(&p, "@data\n?,2,?,?,8,?:1,1,1,1,1,1:a\n").unwrap();
        let s = Sequences::read(&p, None, None).unwrap();
        let ch0: Vec<f64> = s.values[0].iter().step_by(2).copied().collect();
        assert_eq!(ch0, vec![2.0, 2.0, 4.0, 6.0, 8.0, 8.0]);
        assert_eq!(s.filled, 4);
        std::fs::write(&p, "@data\n?,?:1,2:a\n").unwrap();
        let e = Sequences::read(&p, None, None).unwrap_err().to_string();
        assert!(
            e.contains("dimension 0") && e.contains("every value is missing"),
            "{e}"
        );
    }

    #[test]
    fn reads_label_plus_values_csv() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.csv");
        std::fs::write(&p, "1,0.1,0.2,0.3\n2,0.4,0.5,0.6\n").unwrap();
        let s = Sequences::read(&p, None, None).unwrap();
        assert_eq!((s.sequence_length, s.dims), (3, 1));
        assert_eq!(s.labels, vec!["1", "2"]);
    }
}
