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
/// as `interpolate` does: the policy for missing values in series given
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
            _ => {
                // Named by a label column, the file has a header.
                let t = match label_column {
                    None => Table::read_series(path, format)?,
                    Some(_) => Table::read(path, format)?,
                };
                Sequences::from_table(&t, label_column)
            }
        }
    }

    /// A table whose rows are label + values; the label is `label_column`
    /// (default: the first column), the values every other column in order.
    /// Empty or NaN cells at the end of a row are padding (the UCR archive
    /// pads its series of differing lengths with NaN), so that series is
    /// shorter; inside a row they are missing values, filled as a `.ts`
    /// file's `?` are.
    pub fn from_table(t: &Table, label_column: Option<&str>) -> Result<Sequences> {
        // pandas' row numbers (`df.to_csv()` writes its index first, as a
        // column without a name) are neither the label nor a step: the
        // index was read as the label, or as the series' first value. It
        // is one where the label is another column: named by
        // `label_column`, or the file names a column in words (`,label,0,
        // 1,...`) beside its numbered steps; or where it holds exactly the
        // row numbers 0, 1, 2... Else the column without a name is the
        // label (`,0,1,...`: labels as the frame's index).
        // A step's name has a number in it (`0`, `t0`, `dim_0_3`); a
        // label's does not (`label`, `class`).
        let worded = |j: usize| {
            let n = t.names[j].trim();
            !crate::table::is_index_column(n)
                && !n.is_empty()
                && !n.bytes().any(|b| b.is_ascii_digit())
        };
        let label_elsewhere = label_column.is_some() || (0..t.names.len()).any(worded);
        let index = |i: usize| {
            crate::table::is_index_column(&t.names[i])
                && matches!(&t.columns[i], crate::table::Column::Numeric(v)
                    if v.iter().all(|x| x.fract() == 0.0)
                        // Without a label named elsewhere: only row numbers
                        // as pandas writes them, 0, 1, 2... (`df.to_csv()`
                        // of a frame whose columns are numbered).
                        && (label_elsewhere
                            || (v.len() >= 3 && v.iter().enumerate().all(|(k, x)| *x == k as f64))))
        };
        let li = match label_column {
            Some(n) => t.index_of(n)?,
            None => (0..t.names.len()).find(|&i| !index(i)).unwrap_or(0),
        };
        // A missing label (an empty or NaN cell) is "", no class: training
        // refuses it by row, scoring leaves the row unlabelled.
        let labels: Vec<String> = (0..t.n_rows())
            .map(|r| match &t.columns[li] {
                crate::table::Column::Numeric(v) if v[r].is_nan() => String::new(),
                c => c.cell(r).trim().to_string(),
            })
            .collect();
        let value_names: Vec<&String> = t
            .names
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != li && !index(*i))
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
            .map(|n| match t.column(n)? {
                crate::table::Column::Numeric(v) => {
                    if let Some(r) = v.iter().position(|x| x.is_infinite()) {
                        return Err(Error::data(
                            &t.source,
                            format!(
                                "column `{n}`, {}: value is {}; give finite numbers (empty or NaN for a missing one)",
                                t.row_name(r),
                                v[r]
                            ),
                        ));
                    }
                    Ok(v.as_slice())
                }
                // Names the first cell that is not a number.
                crate::table::Column::Text(_) => t.finite(n),
            })
            .collect::<Result<_>>()?;
        let mut filled = 0;
        let values = (0..t.n_rows())
            .map(|r| {
                let mut v: Vec<f64> = cols.iter().map(|c| c[r]).collect();
                let len = v.iter().rposition(|x| !x.is_nan()).map_or(0, |i| i + 1);
                if len == 0 {
                    return Err(Error::data(
                        &t.source,
                        format!(
                            "{}: every value is empty or NaN; a series needs at least one value",
                            t.row_name(r)
                        ),
                    ));
                }
                v.truncate(len);
                filled += fill_missing(&mut v, 1).expect("the last value is known");
                Ok(v)
            })
            .collect::<Result<Vec<_>>>()?;
        let sequence_length = values.iter().map(Vec::len).max().unwrap_or(0);
        Ok(Sequences {
            source: t.source.clone(),
            values,
            labels,
            sequence_length,
            dims: 1,
            filled,
        })
    }

    /// Reads a UCR/UEA `.ts` file.
    pub fn read_ts(path: &Path) -> Result<Sequences> {
        let source = path.display().to_string();
        let text = recur_core::fsx::read_text_bounded(path, recur_core::fsx::MAX_DATA_FILE)?;
        // A BOM hid the first header line (`@classLabel true a b` went
        // unread, and with it the check of the classes).
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let mut in_data = false;
        // `@classLabel false`: no label after the last `:`, which is then
        // a channel like the others (the last channel was read as a label).
        let mut labelled = true;
        let (mut values, mut labels) = (Vec::new(), Vec::new());
        let (mut len, mut dims) = (None::<usize>, None::<usize>);
        let mut filled = 0;
        // What the header declares and the data must keep to: the classes
        // of `@classLabel true ...`, `@equalLength true`, `@seriesLength
        // N`, `@dimensions N` (or `@univariate true`) and `@missing false`.
        let (mut declared, mut equal) = (None::<Vec<String>>, None::<usize>);
        let (mut series_length, mut dimensions) = (None::<usize>, None::<usize>);
        let mut no_missing = false;
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
                // Header values in any case, as aeon reads them (its writer
                // gives `@missing False`).
                let flag = words.get(1).map(|w| w.to_ascii_lowercase());
                let (yes, no) = (
                    flag.as_deref() == Some("true"),
                    flag.as_deref() == Some("false"),
                );
                if lower.starts_with("@classlabel ") && yes {
                    declared = Some(words[2..].iter().map(|w| w.to_string()).collect());
                }
                if lower.starts_with("@classlabel ") && no {
                    labelled = false;
                }
                if lower.starts_with("@targetlabel ") && yes {
                    return Err(at(
                        "@targetLabel true: a regression file (a number to predict per series); \
                         recur classifies series, so give a file with class labels"
                            .into(),
                    ));
                }
                if lower.starts_with("@equallength ") && yes {
                    equal = Some(0);
                }
                let number = |what: &str| -> Result<usize> {
                    words
                        .get(1)
                        .and_then(|w| w.parse::<usize>().ok())
                        .filter(|&n| n > 0)
                        .ok_or_else(|| at(format!("{what} needs a whole number above 0")))
                };
                if lower.starts_with("@serieslength ") {
                    series_length = Some(number("@seriesLength")?);
                }
                if lower.starts_with("@dimensions ") {
                    dimensions = Some(number("@dimensions")?);
                }
                if lower.starts_with("@univariate ") && yes {
                    dimensions = Some(1);
                }
                if lower.starts_with("@missing ") && no {
                    no_missing = true;
                }
                if lower.starts_with("@timestamps ") && yes {
                    return Err(at(
                        "@timeStamps true: series of (time, value) pairs are not supported; \
                         write the values alone, one step after another"
                            .into(),
                    ));
                }
                continue;
            }
            let mut parts: Vec<&str> = line.split(':').collect();
            let label = if labelled {
                if parts.len() < 2 {
                    return Err(at(
                        "expected `values:label` (a class label after the last `:`; \
                         `@classLabel false` in the header for a file without labels)"
                            .into(),
                    ));
                }
                parts.pop().unwrap_or_default().trim().to_string()
            } else {
                // Some writers end an unlabelled series with a `:` all the same.
                if parts.len() > 1 && parts.last().is_some_and(|p| p.trim().is_empty()) {
                    parts.pop();
                }
                String::new()
            };
            if let Some(classes) = declared.as_ref().filter(|_| !label.is_empty()) {
                if !classes.contains(&label) {
                    return Err(at(format!(
                        "class `{}` is not one the header declares (@classLabel true {}); \
                         correct the label or the header",
                        crate::table::clip(&label),
                        crate::table::clip(&classes.join(" "))
                    )));
                }
            }
            let series: Vec<Vec<f64>> = parts
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
                                    "dimension {d}, value {k}: `{}` is not a finite number (`?` marks a missing one)",
                                    crate::table::clip(v)
                                ))),
                            },
                        })
                        .collect::<Result<Vec<Option<f64>>>>()?;
                    if no_missing {
                        if let Some(k) = raw.iter().position(Option::is_none) {
                            return Err(at(format!(
                                "dimension {d}, value {k} is missing, but the header says @missing false; \
                                 correct the value or the header"
                            )));
                        }
                    }
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
            if let Some(n) = dimensions.filter(|&n| n != d) {
                return Err(at(format!(
                    "a series with {d} dimension(s), but the header declares {n} \
                     (@dimensions or @univariate); correct the series or the header"
                )));
            }
            // Only with @equalLength true: writers give the longest length
            // beside @equalLength false.
            if let Some(n) = series_length.filter(|&n| n != l && equal.is_some()) {
                return Err(at(format!(
                    "a series of {l} steps, but the header says @seriesLength {n}; \
                     correct the series or the header"
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

    /// The header as aeon reads it: `@classLabel false` makes every `:`
    /// field a channel (the last was read as a label), values in any case
    /// (`True`, `False`), a BOM before the first line, and a regression
    /// file refused by name.
    #[test]
    fn the_ts_header_is_read_as_aeon_reads_it() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.ts");
        let read = |text: &str| {
            std::fs::write(&p, text).unwrap();
            Sequences::read(&p, None, None)
        };
        let s = read("@classLabel false\n@data\n1,2:3,4\n5,6:7,8:\n").unwrap();
        assert_eq!((s.dims, s.sequence_length), (2, 2));
        assert_eq!(s.values, vec![vec![1., 3., 2., 4.], vec![5., 7., 6., 8.]]);
        assert_eq!(s.labels, vec!["", ""]);
        let s = read("@univariate true\n@classLabel False\n@data\n1,2,3\n").unwrap();
        assert_eq!((s.dims, s.values[0].clone()), (1, vec![1., 2., 3.]));
        for header in ["@classLabel True a b", "\u{feff}@classLabel true a b"] {
            let e = read(&format!("{header}\n@data\n1,2:a\n1,2:c\n"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("class `c` is not one the header declares"),
                "{header}: {e}"
            );
        }
        let e = read("@missing False\n@data\n1,?,3:a\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("@missing false"), "{e}");
        let e = read("@targetLabel true\n@data\n1,2:0.5\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("@targetLabel true: a regression file"), "{e}");
        // A line ending in `:` under labels has none: no class of its own.
        let s = read("@data\n1,2:a\n1,2:\n").unwrap();
        assert_eq!(s.labels, vec!["a", ""]);
    }

    /// A series CSV as pandas writes it (`df.to_csv()`: its row numbers
    /// first, in a column without a name) keeps the label and the steps; a
    /// missing label is "" (no class), and a tab-separated file without
    /// the `.tsv` extension is read by tabs.
    #[test]
    fn a_pandas_index_is_no_step_and_a_missing_label_no_class() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.csv");
        std::fs::write(&p, ",label,0,1,2\n0,a,1,2,3\n1,b,4,5,6\n2,,7,8,9\n").unwrap();
        for label in [None, Some("label")] {
            let s = Sequences::read(&p, None, label).unwrap();
            assert_eq!(
                s.values,
                vec![vec![1., 2., 3.], vec![4., 5., 6.], vec![7., 8., 9.]]
            );
            assert_eq!(s.labels, vec!["a", "b", ""], "{label:?}");
        }
        let e = crate::target::class_labels(
            &s_src(&p),
            &["a".into(), "".into(), "b".into()],
            &Default::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("series 1 (counted from 0) has no label"), "{e}");
        // Shuffled (`df.sample(frac=1).to_csv()`), it is still the index.
        std::fs::write(&p, ",label,0,1\n2,a,1,2\n0,b,4,5\n1,a,7,8\n").unwrap();
        let s = Sequences::read(&p, None, None).unwrap();
        assert_eq!(
            (s.labels.clone(), s.values[0].clone()),
            (vec!["a".into(), "b".into(), "a".into()], vec![1., 2.])
        );
        // Without a worded column name, the column without one is the label
        // (labels as the frame's index), numbers or not, one row or two.
        for text in [
            ",0,1\n0,1,2\n1,3,4\n",
            ",0,1\n1,1,2\n",
            ",t0,t1\n2,1,2\n1,3,4\n2,5,6\n",
        ] {
            std::fs::write(&p, text).unwrap();
            let s = Sequences::read(&p, None, None).unwrap();
            assert_eq!(s.values[0], vec![1., 2.], "{text:?}");
        }
        // Row numbers 0, 1, 2... before numbered steps, the label after
        // them (`pd.DataFrame(np.column_stack([y, X])).to_csv()`).
        std::fs::write(&p, ",0,1,2\n0,a,1,2\n1,b,3,4\n2,a,5,6\n").unwrap();
        let s = Sequences::read(&p, None, None).unwrap();
        assert_eq!(
            (s.labels[1].as_str(), s.values[1].clone()),
            ("b", vec![3., 4.])
        );
        std::fs::write(&p, ",0,1,2\n0,1,1,2\n1,0,3,4\n2,1,5,6\n").unwrap();
        let s = Sequences::read(&p, None, None).unwrap();
        assert_eq!(
            (s.labels[1].as_str(), s.values[1].clone()),
            ("0", vec![3., 4.])
        );
        let t = d.path().join("ucr_TRAIN");
        std::fs::write(&t, "1\t0.5\t0.25\n2\t1.5\tNaN\n").unwrap();
        let s = Sequences::read(&t, Some("tsv"), None).unwrap();
        assert_eq!(s.values, vec![vec![0.5, 0.25], vec![1.5]]);
        let s = Sequences::read(&t, None, None).unwrap();
        assert_eq!(s.labels, vec!["1", "2"]);
    }

    fn s_src(p: &Path) -> String {
        p.display().to_string()
    }

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
        // So are the declared length, channels and absence of gaps, and
        // (time, value) pairs are named as unsupported.
        for (text, want) in [
            (
                "@equalLength true\n@seriesLength 3\n@data\n1,2,3:1\n1,2:2\n",
                "line 5: a series of 2 steps, but the header says @seriesLength 3",
            ),
            (
                "@dimensions 2\n@data\n1,2:1\n",
                "line 3: a series with 1 dimension(s), but the header declares 2",
            ),
            ("@univariate true\n@data\n1,2:3,4:1\n", "header declares 1"),
            (
                "@missing false\n@data\n1,?,3:1\n",
                "line 3: dimension 0, value 1 is missing, but the header says @missing false",
            ),
            (
                "@timeStamps true\n@data\n(0,1.2),(1,3.4):1\n",
                "line 1: @timeStamps true: series of (time, value) pairs are not supported",
            ),
            (
                "@seriesLength many\n@data\n1:1\n",
                "@seriesLength needs a whole number",
            ),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = Sequences::read(&p, None, None).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        // Kept to, they read as before.
        std::fs::write(
            &p,
            "@seriesLength 2\n@dimensions 1\n@missing true\n@data\n1,?:1\n3,4:2\n",
        )
        .unwrap();
        let s = Sequences::read(&p, None, None).unwrap();
        assert_eq!((s.sequence_length, s.dims, s.filled), (2, 1, 1));
        // Beside @equalLength false, @seriesLength is the longest.
        std::fs::write(
            &p,
            "@equalLength false\n@seriesLength 3\n@data\n1,2,3:1\n1,2:2\n",
        )
        .unwrap();
        assert_eq!(
            Sequences::read(&p, None, None).unwrap().lengths(),
            vec![3, 2]
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

    #[test]
    fn a_first_series_with_a_text_label_is_a_series_not_a_header() {
        let d = tempfile::tempdir().unwrap();
        let read = |name: &str, text: &str| {
            let p = d.path().join(name);
            std::fs::write(&p, text).unwrap();
            Sequences::read(&p, None, None)
        };
        // No header, text labels: the first row was taken for the header
        // and its series dropped.
        let s = read("a.csv", "a,0.1,0.2,0.3\nb,0.4,0.5,0.6\na,0.7,0.8,0.9\n").unwrap();
        assert_eq!(s.labels, vec!["a", "b", "a"]);
        assert_eq!(s.values[0], vec![0.1, 0.2, 0.3]);
        let s = read("a.tsv", "up\t1.5\t2\ndown\t3\t4\nup\t5\t6\n").unwrap();
        assert_eq!(s.labels, vec!["up", "down", "up"]);
        // A first series with repeated values, or padded with NaN, too
        // (both read as a header with a name twice, and were refused).
        let s = read(
            "r.csv",
            "up,0.5,0.5,0.7\ndown,0.1,0.2,0.3\nup,0.6,0.6,0.1\n",
        )
        .unwrap();
        assert_eq!(s.labels, vec!["up", "down", "up"]);
        let s = read(
            "n.csv",
            "up,0.5,NaN,NaN\ndown,0.1,0.2,0.3\nup,0.6,0.6,NaN\n",
        )
        .unwrap();
        assert_eq!(s.lengths(), vec![1, 3, 2]);
        // And one whose label is on no other row, when its numbers do not
        // increase as a header's names would.
        let s = read("u.csv", "c,0.9,0.2\na,1,2\nb,3,4\n").unwrap();
        assert_eq!(s.labels, vec!["c", "a", "b"]);
        // An upper-case .TSV is tab-separated too.
        let s = read("U.TSV", "a\t2\t1\nb\t3\t4\n").unwrap();
        assert_eq!(s.labels, vec!["a", "b"]);
        // A real header stays one: names, increasing numbers (time steps
        // as pandas writes them, wavelengths) on a label no row has.
        for text in [
            "label,t0,t1\na,1,2\nb,3,4\n",
            "label,0,1\na,1,2\nb,3,4\n",
            "class,1,2\na,1,2\nb,3,4\n",
            ",0,1\na,1,2\nb,3,4\n",
            "c,5,7\na,1,2\nb,3,4\n",
            "class,400.5,401.0\na,1,2\nb,3,4\n",
        ] {
            let s = read("h.csv", text).unwrap();
            assert_eq!(s.labels, vec!["a", "b"], "{text:?}");
        }
    }

    #[test]
    fn trailing_empty_or_nan_cells_pad_a_shorter_series_and_inner_ones_are_filled() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.tsv");
        // The UCR archive's variable-length files: NaN after the series.
        std::fs::write(&p, "1\t1\t2\t3\t4\n2\t5\tNaN\t7\tNaN\n1\t8\t\t\t\n").unwrap();
        let s = Sequences::read(&p, None, None).unwrap();
        assert_eq!(s.lengths(), vec![4, 3, 1]);
        assert_eq!(s.values[1], vec![5.0, 6.0, 7.0]);
        assert_eq!((s.sequence_length, s.filled), (4, 1));
        // Its first row, padded with empty cells, is still a series.
        std::fs::write(&p, "a\t1\t\t\nb\t2\t3\t4\na\t5\t6\t\n").unwrap();
        let s = Sequences::read(&p, None, None).unwrap();
        assert_eq!(s.lengths(), vec![1, 3, 2]);
        // A row of no value, and an infinity, are named.
        std::fs::write(&p, "1\t1\t2\n2\tNaN\t\n").unwrap();
        let e = Sequences::read(&p, None, None).unwrap_err().to_string();
        assert!(
            e.contains("row 1 (line 2): every value is empty or NaN"),
            "{e}"
        );
        std::fs::write(&p, "1\t1\t2\n2\tinf\t3\n").unwrap();
        let e = Sequences::read(&p, None, None).unwrap_err().to_string();
        assert!(e.contains("row 1 (line 2): value is inf"), "{e}");
    }
}
