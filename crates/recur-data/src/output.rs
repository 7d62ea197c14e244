//! Tables recur writes (per-row predictions): typed columns with missing
//! cells, as CSV (an empty cell) or Parquet (a null), picked by the output's
//! extension, written atomically. Parquet goes through the `parquet` crate's
//! column writer, the same crate that reads Parquet input.

use recur_core::fsx::write_atomic;
use recur_core::{Error, Result};
use std::path::Path;
use std::sync::Arc;

/// One named column; `None` is a missing cell.
#[derive(Debug, Clone, PartialEq)]
pub enum OutColumn {
    Int(String, Vec<Option<i64>>),
    Float(String, Vec<Option<f64>>),
    Text(String, Vec<Option<String>>),
}

impl OutColumn {
    /// An integer column; `None` is an empty cell.
    pub fn int(name: &str, v: impl Iterator<Item = Option<i64>>) -> OutColumn {
        OutColumn::Int(name.into(), v.collect())
    }
    /// A float column; `None` is an empty cell.
    pub fn float(name: &str, v: impl Iterator<Item = Option<f64>>) -> OutColumn {
        OutColumn::Float(name.into(), v.collect())
    }
    /// The column's name.
    pub fn name(&self) -> &str {
        match self {
            OutColumn::Int(n, _) | OutColumn::Float(n, _) | OutColumn::Text(n, _) => n,
        }
    }
    fn len(&self) -> usize {
        match self {
            OutColumn::Int(_, v) => v.len(),
            OutColumn::Float(_, v) => v.len(),
            OutColumn::Text(_, v) => v.len(),
        }
    }
    /// The cell as CSV text: floats with 6 decimals, missing as empty.
    fn cell(&self, i: usize) -> String {
        match self {
            OutColumn::Int(_, v) => v[i].map_or(String::new(), |x| x.to_string()),
            OutColumn::Float(_, v) => v[i].map_or(String::new(), |x| format!("{x:.6}")),
            OutColumn::Text(_, v) => v[i].clone().unwrap_or_default(),
        }
    }
}

/// The format [`write_table`] gives `path`: `parquet` (`.parquet`,
/// `.pq`), `tsv` (tab-separated, `.tsv`) or `csv` (anything else).
pub fn table_format(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .as_deref()
    {
        Some("parquet" | "pq") => "parquet",
        Some("tsv") => "tsv",
        _ => "csv",
    }
}

/// The extensions whose files are read back as what [`write_table`]
/// writes to them; any other name gets CSV all the same.
pub const TABLE_EXTENSIONS: &[&str] = &["csv", "txt", "tsv", "parquet", "pq"];

/// Writes `cols` (all of one length) to `path`: Parquet when it ends in
/// `.parquet` or `.pq` (as tables are read), tab-separated for `.tsv`,
/// else CSV.
pub fn write_table(path: &Path, cols: &[OutColumn]) -> Result<()> {
    let n = cols.first().map_or(0, |c| c.len());
    if let Some(c) = cols.iter().find(|c| c.len() != n) {
        return Err(Error::Msg(format!(
            "column `{}` has {} cells, the first {n}",
            c.name(),
            c.len()
        )));
    }
    let bytes = match table_format(path) {
        "parquet" => parquet_bytes(cols)
            .map_err(|e| Error::Msg(format!("cannot write {}: {e}", path.display())))?,
        "tsv" => csv_bytes(cols, n, b'\t')?,
        _ => csv_bytes(cols, n, b',')?,
    };
    write_atomic(path, &bytes)
}

fn csv_bytes(cols: &[OutColumn], n: usize, delimiter: u8) -> Result<Vec<u8>> {
    let mut w = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .from_writer(Vec::new());
    let err = |e: csv::Error| Error::Msg(format!("cannot format the table: {e}"));
    w.write_record(cols.iter().map(|c| c.name())).map_err(err)?;
    for i in 0..n {
        w.write_record(cols.iter().map(|c| c.cell(i)))
            .map_err(err)?;
    }
    w.into_inner().map_err(|e| Error::Msg(e.to_string()))
}

fn parquet_bytes(cols: &[OutColumn]) -> parquet::errors::Result<Vec<u8>> {
    use parquet::basic::{LogicalType, Repetition, Type as Physical};
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::types::Type;
    let fields = cols
        .iter()
        .map(|c| {
            let b = match c {
                OutColumn::Int(n, _) => Type::primitive_type_builder(n, Physical::INT64),
                OutColumn::Float(n, _) => Type::primitive_type_builder(n, Physical::DOUBLE),
                OutColumn::Text(n, _) => Type::primitive_type_builder(n, Physical::BYTE_ARRAY)
                    .with_logical_type(Some(LogicalType::String)),
            };
            b.with_repetition(Repetition::OPTIONAL)
                .build()
                .map(Arc::new)
        })
        .collect::<parquet::errors::Result<Vec<_>>>()?;
    let schema = Type::group_type_builder("predictions")
        .with_fields(fields)
        .build()?;
    let mut out = Vec::new();
    let mut w = SerializedFileWriter::new(&mut out, Arc::new(schema), Default::default())?;
    let mut rg = w.next_row_group()?;
    for c in cols {
        let Some(mut cw) = rg.next_column()? else {
            break;
        };
        fn split<T: Clone>(v: &[Option<T>]) -> (Vec<T>, Vec<i16>) {
            let vals = v.iter().flatten().cloned().collect();
            let defs = v.iter().map(|x| i16::from(x.is_some())).collect();
            (vals, defs)
        }
        match c {
            OutColumn::Int(_, v) => {
                let (vals, defs) = split(v);
                cw.typed::<Int64Type>()
                    .write_batch(&vals, Some(&defs), None)?;
            }
            OutColumn::Float(_, v) => {
                let (vals, defs) = split(v);
                cw.typed::<DoubleType>()
                    .write_batch(&vals, Some(&defs), None)?;
            }
            OutColumn::Text(_, v) => {
                let (vals, defs) = split(v);
                let vals: Vec<ByteArray> = vals
                    .into_iter()
                    .map(|s| ByteArray::from(s.into_bytes()))
                    .collect();
                cw.typed::<ByteArrayType>()
                    .write_batch(&vals, Some(&defs), None)?;
            }
        }
        cw.close()?;
    }
    rg.close()?;
    w.close()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Table;

    fn cols() -> Vec<OutColumn> {
        vec![
            OutColumn::int("row", [Some(3), Some(4), Some(5)].into_iter()),
            OutColumn::Text(
                "day".into(),
                vec![Some("d3".into()), Some("d4".into()), Some("d5".into())],
            ),
            OutColumn::float("p", [None, Some(0.25), Some(0.5)].into_iter()),
            OutColumn::int("decision", [None, Some(0), Some(1)].into_iter()),
        ]
    }

    #[test]
    fn csv_and_parquet_read_back_the_same_with_missing_cells() {
        let d = tempfile::tempdir().unwrap();
        for name in ["p.csv", "p.parquet", "p.tsv", "p.pq"] {
            let path = d.path().join(name);
            write_table(&path, &cols()).unwrap();
            let t = Table::read(&path, None).unwrap();
            assert_eq!(t.names, vec!["row", "day", "p", "decision"], "{name}");
            assert_eq!(t.n_rows(), 3);
            assert_eq!(t.column("day").unwrap().cell(1), "d4", "{name}");
            assert_eq!(t.finite("row").unwrap(), &[3.0, 4.0, 5.0], "{name}");
            // The missing first cell reads back as missing, not as 0.
            let e = t.finite("p").unwrap_err().to_string();
            assert!(e.contains("row 0"), "{name}: {e}");
            assert_eq!(t.column("decision").unwrap().cell(2), "1", "{name}");
        }
        let csv = std::fs::read_to_string(d.path().join("p.csv")).unwrap();
        assert_eq!(csv.lines().nth(1), Some("3,d3,,"));
        assert_eq!(csv.lines().nth(2), Some("4,d4,0.250000,0"));
        let tsv = std::fs::read_to_string(d.path().join("p.tsv")).unwrap();
        assert_eq!(tsv.lines().nth(2), Some("4\td4\t0.250000\t0"));
    }

    #[test]
    fn columns_of_different_lengths_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let mut c = cols();
        c.push(OutColumn::float("short", [Some(1.0)].into_iter()));
        let e = write_table(&d.path().join("x.csv"), &c)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`short` has 1 cells"), "{e}");
    }
}
