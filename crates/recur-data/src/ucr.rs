//! The one-sequence-per-row layout: UCR/UEA `.ts` files (`@` header lines,
//! then one sample per line, dimensions separated by `:`, values by `,`,
//! class label last) and CSV files whose rows are a label plus the values.
//! Series must all have the same length; the classifier reads each whole
//! series as one window.

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
    pub sequence_length: usize,
    pub dims: usize,
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
        })
    }

    /// Reads a UCR/UEA `.ts` file.
    pub fn read_ts(path: &Path) -> Result<Sequences> {
        let source = path.display().to_string();
        let text = recur_core::fsx::read_text_bounded(path, recur_core::fsx::MAX_DATA_FILE)?;
        let mut in_data = false;
        let (mut values, mut labels) = (Vec::new(), Vec::new());
        let (mut len, mut dims) = (None::<usize>, None::<usize>);
        for (ln, line) in text.lines().enumerate() {
            let line = line.trim();
            let at = |msg: String| Error::data(&source, format!("line {}: {msg}", ln + 1));
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if !in_data {
                if line.to_ascii_lowercase().starts_with("@data") {
                    in_data = true;
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
            let series: Vec<Vec<f64>> = parts[..parts.len() - 1]
                .iter()
                .enumerate()
                .map(|(d, p)| {
                    p.split(',')
                        .enumerate()
                        .map(|(k, v)| match v.trim().parse::<f64>() {
                            Ok(x) if x.is_finite() => Ok(x),
                            _ => Err(at(format!(
                                "dimension {d}, value {k}: `{}` is not a finite number",
                                v.trim()
                            ))),
                        })
                        .collect::<Result<Vec<f64>>>()
                })
                .collect::<Result<_>>()?;
            let (l, d) = (series[0].len(), series.len());
            if series.iter().any(|s| s.len() != l) {
                return Err(at("dimensions have different lengths".into()));
            }
            if len.is_some_and(|x| x != l) || dims.is_some_and(|x| x != d) {
                return Err(at(format!(
                    "series of length {l} with {d} dimension(s); earlier ones have length {} with {}: \
                     recur needs equal-length series",
                    len.unwrap(),
                    dims.unwrap()
                )));
            }
            len = Some(l);
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
        std::fs::write(&p, "@data\n1,2,3:1\n1,2:2\n").unwrap();
        let e = Sequences::read(&p, None, None).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("equal-length"), "{e}");
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
