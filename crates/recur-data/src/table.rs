//! A column table read from CSV or Parquet. Columns are numeric (f64, NaN
//! for an empty cell) or text; checks that need the column's role (feature,
//! target, time) happen where the role is known, in `prepare`, and their
//! errors point at the row through [`Table::row_name`].
//!
//! Parquet dates, times and timestamps become text as written: naive
//! timestamps stay naive, zoned ones keep their zone and offset (see
//! `parquet_time.rs`), so `recur predict` writes back the times it read.

use recur_core::{Error, Result};
use std::path::Path;

#[derive(Debug, Clone)]
pub enum Column {
    Numeric(Vec<f64>),
    Text(Vec<String>),
}

impl Column {
    /// The number of rows.
    pub fn len(&self) -> usize {
        match self {
            Column::Numeric(v) => v.len(),
            Column::Text(v) => v.len(),
        }
    }
    /// Whether the column holds no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The cell as text (numbers in Rust's shortest round-trip form).
    pub fn cell(&self, i: usize) -> String {
        match self {
            Column::Numeric(v) => v[i].to_string(),
            Column::Text(v) => v[i].clone(),
        }
    }
    /// The cell as an output copies it back: [`Self::cell`], with an empty
    /// numeric cell empty (not `NaN`).
    pub fn written(&self, i: usize) -> String {
        match self {
            Column::Numeric(v) if v[i].is_nan() => String::new(),
            _ => self.cell(i),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Table {
    /// The file it came from, for error messages.
    pub source: String,
    pub names: Vec<String>,
    pub columns: Vec<Column>,
    /// For CSV: the file line of data row 0 (2 with a header, 1 without).
    pub first_line: Option<usize>,
    /// For CSV: the file line of each data row, which blank lines (skipped
    /// by the reader) and quoted line breaks move past `first_line + row`.
    pub lines: Option<Vec<u64>>,
}

/// The byte offsets of a file's line breaks: a LF, or a CR not followed by
/// one (old Mac line ends, which the csv crate reads as line ends too:
/// counting LFs alone put every row of such a file on line 1).
fn newlines_of(bytes: &[u8]) -> Vec<usize> {
    bytes
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')))
        .map(|(i, _)| i)
        .collect()
}

/// Whether the record that starts at byte `from` runs to the end of the
/// file inside a quoted field: a quote opened and never closed, which the
/// csv crate takes as a field holding every line after it (a last column
/// of text made the file's later rows one cell, and they were gone with no
/// word). Read as the crate reads: a quote opens a field only at its start,
/// `""` inside is one quote, text after a closing quote joins the field.
fn quote_open_at_end(bytes: &[u8], from: usize, delim: u8) -> bool {
    #[derive(PartialEq)]
    enum S {
        Start,
        Field,
        Quoted,
        QuoteInQuoted,
    }
    let ends = |b: u8| b == delim || b == b'\n' || b == b'\r';
    let mut s = S::Start;
    for &b in bytes.get(from..).unwrap_or(&[]) {
        s = match s {
            S::Start if b == b'"' => S::Quoted,
            S::Start | S::Field | S::QuoteInQuoted if ends(b) => S::Start,
            S::Quoted if b == b'"' => S::QuoteInQuoted,
            S::Quoted => S::Quoted,
            S::QuoteInQuoted if b == b'"' => S::Quoted,
            S::Start | S::Field | S::QuoteInQuoted => S::Field,
        };
    }
    s == S::Quoted
}

/// The 1-based line of a record's position, blank lines counted.
fn line_of(bytes: &[u8], newlines: &[usize], p: Option<&csv::Position>) -> u64 {
    p.map_or(0, |p| record_start(bytes, newlines, p.byte() as usize).1)
}

/// Where a record the csv crate places at byte `at` starts (its position
/// may be the line break before it), and that byte's 1-based line.
fn record_start(bytes: &[u8], newlines: &[usize], mut at: usize) -> (usize, u64) {
    while at < bytes.len() && (bytes[at] == b'\n' || bytes[at] == b'\r') {
        at += 1;
    }
    (at, newlines.partition_point(|&i| i < at) as u64 + 1)
}

/// Whether the first row of a file of series (label first) is a series
/// rather than a header, when it is not all numbers (a text label): every
/// cell after the label is a number or empty (padding), and either its
/// label is some other row's too, or its numbers do not increase (a
/// header's numeric names do: time steps as pandas writes `0, 1, 2...`,
/// wavelengths). Without this the first series of a headerless file with
/// text labels was taken for the header and dropped.
fn first_row_is_a_series(first: &csv::StringRecord, seen_later: impl FnOnce(&str) -> bool) -> bool {
    let Some(label) = first.get(0).map(str::trim) else {
        return false;
    };
    let mut nums = Vec::new();
    for f in first.iter().skip(1) {
        let f = f.trim();
        if f.is_empty() {
            nums.push(f64::NAN);
        } else {
            match f.parse::<f64>() {
                Ok(x) => nums.push(x),
                Err(_) => return false,
            }
        }
    }
    if nums.is_empty() || nums.iter().all(|x| x.is_nan()) || label.is_empty() {
        return false;
    }
    let seen = seen_later(label);
    let increasing = nums.windows(2).all(|w| w[0] < w[1]);
    seen || !increasing
}

/// Parses a number the way a user expects: surrounding spaces ignored, an
/// empty cell is missing (NaN), `nan`/`inf` accepted so they can be refused
/// later with a clear message.
fn parse_num(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty() {
        return Some(f64::NAN);
    }
    t.parse::<f64>().ok()
}

/// One cell of `True`/`False` (as pandas writes a bool column; `true` and
/// `TRUE` too) as 1 or 0, as the Python package and Parquet's booleans
/// give it: without this a frame's bool feature trained from Python was
/// refused by `recur predict` on its CSV, and left out of the features by
/// `recur train`.
fn bool_cell(s: &str) -> Option<f64> {
    match s {
        "True" | "true" | "TRUE" => Some(1.0),
        "False" | "false" | "FALSE" => Some(0.0),
        _ => None,
    }
}

/// A column as it is read, cell by cell, typed as a whole column of text
/// is (numbers if every cell parses, else `True`/`False` as 1 and 0 where
/// `bools`, else text), but holding numbers as numbers: a file of a
/// million rows of a hundred features took 66 bytes a cell as text, eight
/// as f64. A column that turns out to be text after rows of numbers keeps
/// the row it turned at; the text of the rows before it is read again from
/// the file ([`Cells::recover`]).
enum Cells {
    /// Every cell so far blank: missing, for numbers and booleans alike.
    Blank(usize),
    Numbers(Vec<f64>),
    /// `True`/`False` cells (and blanks), as 1 and 0.
    Bools(Vec<f64>),
    /// Text from row `from` on; rows before it still to be read again.
    Text {
        from: usize,
        cells: Vec<String>,
    },
}

/// Text cells from elsewhere (a request's times) typed as a file's column
/// is: numbers if every cell that is not blank reads as one, else text.
pub fn column_of(cells: &[String]) -> Column {
    let mut c = Cells::Blank(0);
    for s in cells {
        c.push(s, false);
    }
    let head = cells[..c.to_recover()].to_vec();
    c.recover(head);
    c.finish()
}

impl Cells {
    fn len(&self) -> usize {
        match self {
            Cells::Blank(n) => *n,
            Cells::Numbers(v) | Cells::Bools(v) => v.len(),
            Cells::Text { from, cells } => from + cells.len(),
        }
    }

    fn push(&mut self, cell: &str, bools: bool) {
        let t = cell.trim();
        let text = |from: usize| Cells::Text {
            from,
            cells: vec![cell.to_string()],
        };
        match self {
            Cells::Blank(n) if t.is_empty() => *n += 1,
            Cells::Blank(n) => {
                let mut before = vec![f64::NAN; *n];
                *self = if let Some(x) = parse_num(t) {
                    before.push(x);
                    Cells::Numbers(before)
                } else if let Some(b) = bool_cell(t).filter(|_| bools) {
                    before.push(b);
                    Cells::Bools(before)
                } else {
                    text(*n)
                };
            }
            Cells::Numbers(v) => match parse_num(t) {
                Some(x) => v.push(x),
                None => *self = text(v.len()),
            },
            Cells::Bools(v) => match if t.is_empty() {
                Some(f64::NAN)
            } else {
                bool_cell(t)
            } {
                Some(b) => v.push(b),
                None => *self = text(v.len()),
            },
            Cells::Text { cells, .. } => cells.push(cell.to_string()),
        }
    }

    /// A number read as one (a Parquet float or integer): held as it is,
    /// or as its text in a column that is text.
    fn push_number(&mut self, x: f64, bools: bool) {
        match self {
            Cells::Blank(n) => {
                let mut v = vec![f64::NAN; *n];
                v.push(x);
                *self = Cells::Numbers(v);
            }
            Cells::Numbers(v) => v.push(x),
            _ => self.push(&x.to_string(), bools),
        }
    }

    /// The rows of text still to be read again: those before the row the
    /// column turned to text at.
    fn to_recover(&self) -> usize {
        match self {
            Cells::Text { from, .. } => *from,
            _ => 0,
        }
    }

    /// Puts back the text of the first rows, read again (`head`, one cell
    /// a row up to [`Cells::to_recover`]).
    fn recover(&mut self, head: Vec<String>) {
        if let Cells::Text { from, cells } = self {
            let mut all = head;
            all.append(cells);
            *cells = all;
            *from = 0;
        }
    }

    fn finish(self) -> Column {
        match self {
            Cells::Blank(n) => Column::Numeric(vec![f64::NAN; n]),
            Cells::Numbers(v) | Cells::Bools(v) => Column::Numeric(v),
            Cells::Text { cells, .. } => Column::Text(cells),
        }
    }
}

/// Puts back the text of the first rows of the columns that turned to
/// text after rows of numbers, read again from `rows` (the file's data
/// rows from the first; `text(row, column)` a cell's text as it was read
/// the first time). Nothing is read when no column needs it.
fn recover_texts<R>(
    cols: &mut [Cells],
    rows: impl Iterator<Item = Result<R>>,
    mut text: impl FnMut(&R, usize) -> Result<String>,
) -> Result<()> {
    let again = cols.iter().map(Cells::to_recover).max().unwrap_or(0);
    if again == 0 {
        return Ok(());
    }
    let mut heads: Vec<Vec<String>> = cols.iter().map(|_| Vec::new()).collect();
    for row in rows.take(again) {
        let row = row?;
        for (c, head) in heads.iter_mut().enumerate() {
            if head.len() < cols[c].to_recover() {
                head.push(text(&row, c)?);
            }
        }
    }
    for (c, head) in cols.iter_mut().zip(heads) {
        c.recover(head);
    }
    Ok(())
}

impl Table {
    /// A table from columns in memory (from numpy, pandas or a program):
    /// every column as long as the first, names unique. `source` names it
    /// in error messages.
    pub fn from_columns(source: &str, names: Vec<String>, columns: Vec<Column>) -> Result<Table> {
        if names.len() != columns.len() {
            return Err(Error::data(
                source,
                format!("{} names for {} columns", names.len(), columns.len()),
            ));
        }
        let n = columns.first().map_or(0, Column::len);
        for (name, c) in names.iter().zip(&columns) {
            if c.len() != n {
                return Err(Error::data(
                    source,
                    format!("column `{name}` has {} rows, the first has {n}", c.len()),
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(d) = names.iter().find(|n| !seen.insert(n.as_str())) {
            return Err(Error::data(source, format!("two columns are named `{d}`")));
        }
        Ok(Table {
            source: source.to_string(),
            names,
            columns,
            first_line: None,
            lines: None,
        })
    }

    /// Reads a table; `format` is `csv` or `parquet`, else taken from the extension.
    pub fn read(path: &Path, format: Option<&str>) -> Result<Table> {
        let fmt = match format {
            Some(f) => f.to_ascii_lowercase(),
            None => path
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("")
                .to_ascii_lowercase(),
        };
        // A folder or a device is named as such, not as a format without
        // an extension.
        recur_core::fsx::refuse_non_file(path)?;
        match fmt.as_str() {
            "csv" | "txt" | "tsv" => Table::read_csv_rows(path, false, tab_for(format)),
            "parquet" | "pq" => Table::read_parquet(path),
            other => {
                // A missing file is said missing before its name is judged.
                if let Err(e) = std::fs::metadata(path) {
                    return Err(Error::io(path, e));
                }
                Err(Error::data(
                    path.display().to_string(),
                    format!(
                        "{}: give a .csv, .tsv or .parquet file (a training config may instead \
                         set data.format: csv, tsv or parquet, ts for series files)",
                        if other.is_empty() && format.is_none() {
                            "has no extension to tell its table format".to_string()
                        } else {
                            format!("unknown table format `{other}`")
                        }
                    ),
                ))
            }
        }
    }

    /// A table of the columns read from `source`, refused when its header
    /// names a column twice.
    fn from_columns_named(
        source: String,
        names: Vec<String>,
        columns: Vec<Column>,
        first_line: Option<usize>,
    ) -> Result<Table> {
        let mut seen = std::collections::HashSet::new();
        for n in &names {
            if !seen.insert(n) {
                return Err(Error::data(
                    source,
                    format!("column `{n}` appears twice in the header"),
                ));
            }
        }
        Ok(Table {
            source,
            names,
            columns,
            first_line,
            lines: None,
        })
    }

    /// Reads a CSV (or `.tsv`) file with a header row; columns of numbers
    /// become numeric (and columns of `True`/`False`, as 1 and 0), the
    /// others text.
    pub fn read_csv(path: &Path) -> Result<Table> {
        Table::read_csv_rows(path, false, None)
    }

    /// [`Table::read`] of a file of whole series, one per row, a label
    /// first: a first row that is a label and numbers is a series, not a
    /// header, unless its label is on no other row and its numbers are
    /// whole and increasing (time steps, as pandas names them).
    pub fn read_series(path: &Path, format: Option<&str>) -> Result<Table> {
        let csv = match format {
            Some(f) => ["csv", "txt", "tsv"].contains(&f.to_ascii_lowercase().as_str()),
            None => !matches!(
                path.extension()
                    .and_then(|e| e.to_str())
                    .map(|e| e.to_ascii_lowercase())
                    .as_deref(),
                Some("parquet" | "pq")
            ),
        };
        if csv {
            recur_core::fsx::refuse_non_file(path)?;
            Table::read_csv_rows(path, true, tab_for(format))
        } else {
            Table::read(path, format)
        }
    }

    /// `tab`: whether fields are separated by tabs (`data.format: tsv`)
    /// or commas (`csv`); `None`: by the extension (`.tsv`), else by the
    /// first line (a tab and no comma): `data.format: tsv` on a `.txt` or
    /// extensionless UCR file was read with commas.
    fn read_csv_rows(path: &Path, series: bool, tab: Option<bool>) -> Result<Table> {
        let source = path.display().to_string();
        let bytes = recur_core::fsx::read_bounded(path, recur_core::fsx::MAX_DATA_FILE)?;
        // Text never holds a NUL: a binary file (or a sparse one never
        // written) is named as such instead of parsed as one huge field.
        // Without a byte-order mark, UTF-16 of ASCII text is every other
        // byte zero and the others not (a file of zeros, sparse and never
        // written, is no text at all: it is named by its NUL bytes below).
        let utf16 = bytes.starts_with(&[0xFF, 0xFE])
            || bytes.starts_with(&[0xFE, 0xFF])
            || (bytes.len() >= 4
                && ((bytes[1] == 0 && bytes[3] == 0 && bytes[0] != 0 && bytes[2] != 0)
                    || (bytes[0] == 0 && bytes[2] == 0 && bytes[1] != 0 && bytes[3] != 0)));
        if utf16 {
            return Err(Error::data(
                source,
                "is UTF-16 text (as Excel's \"Unicode Text\" saves it): save it as UTF-8",
            ));
        }
        if let Some(at) = bytes.iter().position(|&b| b == 0) {
            let line = newlines_of(&bytes[..at]).len() + 1;
            return Err(Error::data(
                source,
                format!(
                    "holds a NUL byte at line {line} (byte {at}): it is not a text CSV; \
                     give a CSV, .tsv or Parquet file"
                ),
            ));
        }
        let tsv = tab.unwrap_or_else(|| {
            let ext = path.extension().and_then(|e| e.to_str());
            let first = bytes
                .split(|&b| b == b'\n')
                .find(|l| !l.iter().all(u8::is_ascii_whitespace))
                .unwrap_or(&[]);
            ext.is_some_and(|e| e.eq_ignore_ascii_case("tsv"))
                || (!ext.is_some_and(|e| e.eq_ignore_ascii_case("csv"))
                    && first.contains(&b'\t')
                    && !first.contains(&b','))
        });
        let delim = if tsv { b'\t' } else { b',' };
        let read_error = |e: csv::Error| {
            // The line counted from the bytes, as for the rows read (the
            // csv crate's own count was one short).
            let line = line_of(&bytes, &newlines_of(&bytes), e.position());
            let what = match e.kind() {
                csv::ErrorKind::UnequalLengths {
                    len, expected_len, ..
                } => {
                    // The likely cause: another separator in the header
                    // (semicolons and decimal commas), or a quote.
                    let head = bytes
                        .split(|&b| b == b'\n' || b == b'\r')
                        .next()
                        .unwrap_or(&[]);
                    let other = [(b';', "semicolons"), (b'|', "pipes")]
                        .into_iter()
                        .find(|(c, _)| head.contains(c) && !head.contains(&delim));
                    let why = match other {
                        Some((_, what)) => format!(
                            "; the first row holds {what}: recur reads CSV separated by commas \
                             (tabs in a .tsv), with `.` for decimals"
                        ),
                        None if bytes.contains(&b'"') => {
                            "; a quote left open joins the lines after it".to_string()
                        }
                        None => String::new(),
                    };
                    format!(
                        "line {line} has {len} field(s): every row needs {expected_len}, as the \
                         first row has{why}"
                    )
                }
                csv::ErrorKind::Utf8 { .. } => {
                    format!("line {line} is not UTF-8 text: save the file as UTF-8")
                }
                _ => format!("{e} (check the file is a CSV)"),
            };
            Error::data(&source, format!("cannot read CSV: {what}"))
        };
        let reader = || {
            csv::ReaderBuilder::new()
                .has_headers(false)
                .delimiter(delim)
                .flexible(false)
                .from_reader(bytes.as_slice())
        };
        let mut rdr = reader();
        let mut records = rdr.records();
        let first = match records.next() {
            None => {
                return Err(Error::data(
                    source,
                    "the file is empty: expected a header row and data rows",
                ))
            }
            Some(r) => r.map_err(|e| Error::data(&source, format!("cannot read CSV: {e}")))?,
        };
        // A first row made only of numbers is data, not a header (UCR-style CSV).
        let mut headerless = first
            .iter()
            .all(|f| !f.trim().is_empty() && f.trim().parse::<f64>().is_ok());
        if series && !headerless {
            // Whether a file of series has a header depends on the labels
            // of the other rows: read through once for them.
            headerless = first_row_is_a_series(&first, |label| {
                reader()
                    .records()
                    .skip(1)
                    .map_while(std::result::Result::ok)
                    .any(|r| r.get(0).map(str::trim) == Some(label))
            });
        }
        let width = first.len();
        let names: Vec<String> = if headerless {
            (0..width).map(|i| format!("column_{i}")).collect()
        } else {
            first
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let n = n.trim();
                    if n.is_empty() {
                        format!("Unnamed: {i}")
                    } else {
                        n.to_string()
                    }
                })
                .collect()
        };
        // The csv crate's line count skips blank lines; its byte offset
        // does not, so the line is counted from the bytes.
        let newlines = newlines_of(&bytes);
        let line_at = |p: Option<&csv::Position>| line_of(&bytes, &newlines, p);
        // Each record typed into its columns as it is read: the file's
        // records are never all held at once.
        let mut cols: Vec<Cells> = (0..width).map(|_| Cells::Blank(0)).collect();
        let mut lines = Vec::new();
        // The last record's start: the header's until a data row is read
        // (a header that opens a quote never closed is one record).
        let mut last_at = first.position().map(|p| p.byte() as usize);
        let mut add = |rec: &csv::StringRecord| {
            for (c, f) in rec.iter().enumerate() {
                cols[c].push(f, !series);
            }
            lines.push(line_at(rec.position()));
            last_at = rec.position().map(|p| p.byte() as usize);
        };
        if headerless {
            add(&first);
        }
        for rec in records {
            add(&rec.map_err(read_error)?);
        }
        if let Some(at) = last_at.filter(|&at| quote_open_at_end(&bytes, at, delim)) {
            // The record's own line, and the lines after that one to the end.
            let (start, line) = record_start(&bytes, &newlines, at);
            let rest = bytes[start..]
                .iter()
                .rposition(|&b| b != b'\n' && b != b'\r')
                .map_or(&[][..], |end| &bytes[start..=start + end]);
            let after = newlines_of(rest).len();
            let what = if after == 0 {
                "the file ends inside it".to_string()
            } else {
                format!("so the {after} line(s) after it would be read as one cell")
            };
            return Err(Error::data(
                source,
                format!(
                    "cannot read CSV: a quote opened on line {line} is never closed, {what}: \
                     close it (\"...\"), or remove it"
                ),
            ));
        }
        if lines.is_empty() {
            return Err(Error::data(
                source,
                "the file has a header but no data rows",
            ));
        }
        // Columns that turned to text after rows of numbers: those rows'
        // text, read again.
        let data = reader().into_records().skip(usize::from(!headerless));
        recover_texts(&mut cols, data.map(|r| r.map_err(read_error)), |rec, c| {
            Ok(rec[c].to_string())
        })?;
        debug_assert!(cols.iter().all(|c| c.len() == lines.len()));
        let mut t = Table::from_columns_named(
            source,
            names,
            cols.into_iter().map(Cells::finish).collect(),
            Some(if headerless { 1 } else { 2 }),
        )?;
        t.lines = Some(lines);
        Ok(t)
    }

    /// Reads a Parquet file; times come back as text in their own zone.
    /// A panic of the `parquet` crate on a damaged or crafted file (its
    /// asserts on offsets, found by fuzzing) is an error naming the file.
    pub fn read_parquet(path: &Path) -> Result<Table> {
        recur_core::contain::contain(|| Table::read_parquet_unguarded(path)).unwrap_or_else(|why| {
            Err(Error::data(
                path.display().to_string(),
                format!("not a readable Parquet file (the Parquet reader stopped on it: {why})"),
            ))
        })
    }

    fn read_parquet_unguarded(path: &Path) -> Result<Table> {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        use parquet::record::Field;
        let source = path.display().to_string();
        let file = recur_core::fsx::open_regular(path, recur_core::fsx::MAX_DATA_FILE)?;
        let reader = SerializedFileReader::new(file)
            .map_err(|e| Error::data(&source, format!("not a readable Parquet file: {e}")))?;
        let meta = reader.metadata().file_metadata();
        let names: Vec<String> = meta
            .schema_descr()
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        // Checked on the schema, before any row: a struct or map has one
        // value per row but a name per leaf, so one that was null shifted
        // every later column under the wrong name (the target read as a
        // feature), with no word.
        for f in meta.schema_descr().root_schema().get_fields() {
            if f.is_group() {
                return Err(Error::data(
                    &source,
                    format!(
                        "column `{}` is nested (a struct, list or map); recur reads flat columns \
                         of numbers, text and times: drop or flatten it",
                        clip(f.name())
                    ),
                ));
            }
        }
        for c in meta.schema_descr().columns() {
            if c.converted_type() == parquet::basic::ConvertedType::DECIMAL {
                return Err(Error::data(
                    &source,
                    format!(
                        "column `{}` is a decimal; recur reads floats and integers: cast it to \
                         float64",
                        clip(c.name())
                    ),
                ));
            }
        }
        let formats = crate::parquet_time::column_formats(meta);
        // Each cell as a number or as text, as a CSV cell of the same
        // value reads; numbers are never written out as text and parsed
        // back (the cost of a table; exact either way).
        let cell = |r: usize, c: usize, field: &Field| -> Result<Cell> {
            Ok(match field {
                Field::Null => Cell::Text(String::new()),
                Field::Bool(b) => Cell::Number(if *b { 1.0 } else { 0.0 }),
                Field::Str(s) => Cell::Text(s.clone()),
                // Dates and times as written, not Display's UTC.
                other => match formats[c].text(other) {
                    Some(t) => Cell::Text(t),
                    None => match number(other) {
                        Some(x) => Cell::Number(x),
                        None => Cell::Text(plain(other).ok_or_else(|| {
                            Error::data(
                                &source,
                                format!(
                                    "row {r}, column `{}`: a value recur cannot read (nested, or out of range)",
                                    names[c]
                                ),
                            )
                        })?),
                    },
                },
            })
        };
        let rows = || {
            reader
                .get_row_iter(None)
                .map_err(|e| Error::data(&source, format!("cannot read rows: {e}")))
        };
        let mut cols: Vec<Cells> = (0..names.len()).map(|_| Cells::Blank(0)).collect();
        let mut n = 0;
        for (r, row) in rows()?.enumerate() {
            let row = row.map_err(|e| Error::data(&source, format!("row {r}: {e}")))?;
            for (c, (_, field)) in row.get_column_iter().enumerate() {
                if c >= cols.len() {
                    return Err(Error::data(
                        &source,
                        "nested columns are not supported: use a flat table",
                    ));
                }
                match cell(r, c, field)? {
                    Cell::Number(x) => cols[c].push_number(x, true),
                    Cell::Text(t) => cols[c].push(&t, true),
                }
            }
            n += 1;
        }
        if n == 0 {
            return Err(Error::data(source, "the file has no rows"));
        }
        // A text column whose first cells were numbers (strings such as
        // "1", then "n/a"): those cells' text, read again.
        let data = rows()?.enumerate().map(|(r, row)| {
            row.map(|row| (r, row))
                .map_err(|e| Error::data(&source, format!("row {r}: {e}")))
        });
        recover_texts(&mut cols, data, |(r, row), c| {
            let (_, field) = row.get_column_iter().nth(c).ok_or_else(|| {
                Error::data(
                    &source,
                    format!("row {r} has no column {c} on a second read"),
                )
            })?;
            Ok(match cell(*r, c, field)? {
                Cell::Number(x) => x.to_string(),
                Cell::Text(t) => t,
            })
        })?;
        Table::from_columns_named(
            source,
            names,
            cols.into_iter().map(Cells::finish).collect(),
            None,
        )
    }

    /// The number of rows.
    pub fn n_rows(&self) -> usize {
        self.columns.first().map_or(0, |c| c.len())
    }

    /// "row 7 (line 9)" for CSV, "row 7" otherwise; rows count from 0.
    pub fn row_name(&self, i: usize) -> String {
        if let Some(l) = self.lines.as_ref().and_then(|l| l.get(i)) {
            return format!("row {i} (line {l})");
        }
        match self.first_line {
            Some(l) => format!("row {i} (line {})", i + l),
            None => format!("row {i}"),
        }
    }

    /// The position of column `name`, or an error listing the columns there are.
    pub fn index_of(&self, name: &str) -> Result<usize> {
        self.names.iter().position(|n| n == name).ok_or_else(|| {
            // A header read as one column that holds another separator:
            // the file is not separated as it was read (a European Excel
            // CSV of semicolons), which "no column" alone did not say.
            // Only where the wanted name is one of its parts: a real
            // column named `price; USD` is not a file of semicolons.
            let other = match &self.names[..] {
                [one] => [(';', "semicolons"), ('|', "pipes"), ('\t', "tabs")]
                    .into_iter()
                    .find(|(c, _)| one.split(*c).any(|part| part.trim() == name)),
                _ => None,
            };
            let hint = match other {
                Some((_, what)) => format!(
                    " (the header was read as one column, holding {what}: recur reads CSV \
                     separated by commas, and tabs in a .tsv; save the file so, with `.` \
                     for decimals)"
                ),
                None => String::new(),
            };
            Error::data(
                &self.source,
                format!(
                    "no column `{}`; the columns are: {}{hint}",
                    clip(name),
                    list_names(&self.names)
                ),
            )
        })
    }

    /// Column `name`, or an error listing the columns there are.
    pub fn column(&self, name: &str) -> Result<&Column> {
        Ok(&self.columns[self.index_of(name)?])
    }

    /// A numeric column, with every value finite; errors name the row.
    pub fn finite(&self, name: &str) -> Result<&[f64]> {
        match self.column(name)? {
            Column::Numeric(v) => {
                if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                    let what = if v[i].is_nan() {
                        "is empty or NaN".to_string()
                    } else {
                        format!("is {}", v[i])
                    };
                    return Err(Error::data(
                        &self.source,
                        format!(
                            "column `{name}`, {}: value {what}; fill or drop such rows first",
                            self.row_name(i)
                        ),
                    ));
                }
                Ok(v)
            }
            Column::Text(v) => {
                let i = v.iter().position(|s| parse_num(s).is_none()).unwrap_or(0);
                Err(Error::data(
                    &self.source,
                    format!(
                        "column `{name}` is not numeric: {} holds `{}`",
                        self.row_name(i),
                        clip(&v[i])
                    ),
                ))
            }
        }
    }

    /// Columns a user would call features by default: all but the excluded
    /// ones and unnamed index columns (`Unnamed: 0`, `__index_level_0__`:
    /// pandas' row numbers),
    /// numeric or *mostly* numeric. A numeric column with a few bad cells
    /// stays in, so its first bad cell is reported instead of the column
    /// silently vanishing; a truly textual column (most cells not numbers)
    /// is left out.
    pub fn default_features(&self, exclude: &[&str]) -> Vec<String> {
        self.names
            .iter()
            .zip(&self.columns)
            .filter(|(n, c)| {
                let numeric = match c {
                    Column::Numeric(_) => true,
                    Column::Text(v) => {
                        let filled: Vec<&String> =
                            v.iter().filter(|s| !s.trim().is_empty()).collect();
                        let nums = filled.iter().filter(|s| parse_num(s).is_some()).count();
                        nums * 2 > filled.len()
                    }
                };
                numeric && !exclude.contains(&n.as_str()) && !is_index_column(n)
            })
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Columns that [`Self::default_features`] leaves out by their index
    /// name (`Unnamed: 5`, a column with no name in the header) although
    /// they hold numbers that are not a row index (fractions: pandas'
    /// index is whole numbers, in any order): real data, which went with
    /// no word.
    pub fn unnamed_data_columns(&self, exclude: &[&str]) -> Vec<String> {
        self.names
            .iter()
            .zip(&self.columns)
            .filter(|(n, c)| {
                is_index_column(n)
                    && !exclude.contains(&n.as_str())
                    && match c {
                        // pandas' index is whole numbers, not always in
                        // order (a concatenation, a sorted frame).
                        Column::Numeric(v) => v.iter().any(|x| x.fract() != 0.0),
                        Column::Text(_) => false,
                    }
            })
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Text columns that [`Self::default_features`] leaves out.
    pub fn text_columns(&self, exclude: &[&str]) -> Vec<String> {
        let keep = self.default_features(exclude);
        self.names
            .iter()
            .filter(|n| !keep.contains(n) && !exclude.contains(&n.as_str()) && !is_index_column(n))
            .cloned()
            .collect()
    }
}

/// The separator `data.format` names: tabs for `tsv`, commas for `csv`,
/// else the file decides.
fn tab_for(format: Option<&str>) -> Option<bool> {
    match format.map(str::to_ascii_lowercase).as_deref() {
        Some("tsv") => Some(true),
        Some("csv") => Some(false),
        _ => None,
    }
}

/// pandas' row numbers written as a column: `Unnamed: 0` in a CSV saved
/// with its index, `__index_level_0__` in a Parquet file saved from a frame
/// whose index is not a plain range (after a filter). A row number is a
/// pure trend, never a feature by default.
pub(crate) fn is_index_column(name: &str) -> bool {
    name.starts_with("Unnamed: ")
        || (name.starts_with("__index_level_") && name.ends_with("__") && name.len() > 16)
}

/// A Parquet cell as read: a number, or text.
enum Cell {
    Number(f64),
    Text(String),
}

/// A Parquet number as f64: integers rounded as the text of the integer
/// parses, floats widened exactly, as numpy and the Python package widen
/// them (a float32's own shortest text, `0.0672`, reads back as another
/// double, which moved a tree's split and the probability by 0.05).
/// Time-like values outside their format's range count as their raw
/// number.
fn number(f: &parquet::record::Field) -> Option<f64> {
    use parquet::record::Field;
    Some(match f {
        Field::Byte(v) => f64::from(*v),
        Field::Short(v) => f64::from(*v),
        Field::Int(v) | Field::Date(v) | Field::TimeMillis(v) => f64::from(*v),
        Field::Long(v)
        | Field::TimestampMillis(v)
        | Field::TimestampMicros(v)
        | Field::TimeMicros(v) => *v as f64,
        Field::UByte(v) => f64::from(*v),
        Field::UShort(v) => f64::from(*v),
        Field::UInt(v) => f64::from(*v),
        Field::ULong(v) => *v as f64,
        Field::Float16(v) => f64::from(f32::from(*v)),
        Field::Float(v) => f64::from(*v),
        Field::Double(v) => *v,
        _ => return None,
    })
}

/// A Parquet cell that is neither a number nor a time as text (bytes
/// read as UTF-8, lossily), without the parquet crate's `Display`, which
/// panics on a timestamp or date out of chrono's range (a crafted file).
fn plain(f: &parquet::record::Field) -> Option<String> {
    match f {
        parquet::record::Field::Bytes(b) => Some(String::from_utf8_lossy(b.data()).to_string()),
        _ => None,
    }
}

/// At most this many column names are listed in an error.
const LISTED: usize = 30;

/// `names` for an error message: the first `LISTED`, each clipped, and
/// how many more there are (a file of millions of columns, or a header of
/// millions of characters, gave a message as large).
pub fn list_names(names: &[String]) -> String {
    let mut out: Vec<String> = names.iter().take(LISTED).map(|n| clip(n)).collect();
    if names.len() > LISTED {
        out.push(format!("and {} more", names.len() - LISTED));
    }
    out.join(", ")
}

/// A name clipped to 80 characters, control characters escaped, for a message.
pub fn clip(name: &str) -> String {
    let shown = match name.char_indices().nth(80) {
        Some((at, _)) => format!("{}... ({} characters)", &name[..at], name.chars().count()),
        None => name.to_string(),
    };
    recur_core::terminal::inline(&shown).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `-` (standard input elsewhere) and a file without an extension are
    /// each said as what they are, not as a format named ``.
    #[test]
    fn standard_input_and_a_name_without_extension_are_said_so() {
        let e = Table::read(Path::new("-"), None).unwrap_err().to_string();
        assert!(
            e.contains("standard input is not read") && e.contains("give its path"),
            "{e}"
        );
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("rows");
        std::fs::write(&f, "a,b\n1,2\n").unwrap();
        let e = Table::read(&f, None).unwrap_err().to_string();
        assert!(
            e.contains("has no extension to tell its table format") && !e.contains("``"),
            "{e}"
        );
        assert_eq!(Table::read(&f, Some("csv")).unwrap().names, ["a", "b"]);
        // A format given empty is a format, and a missing file is missing.
        let e = Table::read(&f, Some("")).unwrap_err().to_string();
        assert!(e.contains("unknown table format ``"), "{e}");
        let e = Table::read(&d.path().join("nothing"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("No such file"), "{e}");
    }

    #[test]
    fn cells_from_elsewhere_are_typed_as_a_files_column() {
        let cells = |v: &[&str]| column_of(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        match cells(&["5", "", " 3"]) {
            Column::Numeric(v) => assert!(v[0] == 5.0 && v[1].is_nan() && v[2] == 3.0),
            other => panic!("{other:?}"),
        }
        match cells(&["1", "2", "2024-01-03"]) {
            Column::Text(v) => assert_eq!(v, ["1", "2", "2024-01-03"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_table_from_columns_in_memory_is_checked_like_a_file() {
        let t = Table::from_columns(
            "mem",
            vec!["a".into(), "b".into()],
            vec![
                Column::Numeric(vec![1.0, 2.0]),
                Column::Text(vec!["x".into(), "y".into()]),
            ],
        )
        .unwrap();
        assert_eq!((t.n_rows(), t.index_of("b").unwrap()), (2, 1));
        let e = Table::from_columns(
            "mem",
            vec!["a".into(), "b".into()],
            vec![Column::Numeric(vec![1.0, 2.0]), Column::Numeric(vec![1.0])],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("mem") && e.contains("column `b` has 1 rows"),
            "{e}"
        );
        let e = Table::from_columns(
            "mem",
            vec!["a".into(), "a".into()],
            vec![Column::Numeric(vec![1.0]), Column::Numeric(vec![2.0])],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("two columns are named `a`"), "{e}");
        assert!(Table::from_columns("mem", vec!["a".into()], vec![]).is_err());
    }

    fn csv(dir: &Path, text: &str) -> std::path::PathBuf {
        let p = dir.join("t.csv");
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Columns are typed as they are read; one that turns to text after
    /// rows of numbers gets those rows' text as written, read again.
    #[test]
    fn a_column_turning_to_text_keeps_its_first_cells_as_written() {
        let d = tempfile::tempdir().unwrap();
        let text = "id,flag,n,late\n007, ,1,1e3\n08,,2, 2\n,True,,x\n9,false,4,\n";
        let t = Table::read(&csv(d.path(), text), None).unwrap();
        let texts = |name: &str| match t.column(name).unwrap() {
            Column::Text(v) => v.clone(),
            Column::Numeric(v) => panic!("{name} read as numbers {v:?}"),
        };
        let nums = |name: &str| match t.column(name).unwrap() {
            Column::Numeric(v) => v.clone(),
            Column::Text(v) => panic!("{name} read as text {v:?}"),
        };
        // Numbers throughout (a blank is missing): numbers, `007` as 7.
        let id = nums("id");
        assert_eq!((id[0], id[1], id[3]), (7.0, 8.0, 9.0));
        assert!(id[2].is_nan());
        // Blanks, then booleans: 1 and 0 with blanks missing.
        let flag = nums("flag");
        assert!(flag[0].is_nan() && flag[1].is_nan() && flag[2] == 1.0 && flag[3] == 0.0);
        assert_eq!(nums("n")[3], 4.0);
        // Two numbers, then text: every cell as written.
        assert_eq!(texts("late"), vec!["1e3", " 2", "x", ""]);
        assert_eq!(t.lines, Some(vec![2, 3, 4, 5]));
    }

    #[test]
    fn reads_header_types_and_unnamed_index() {
        let d = tempfile::tempdir().unwrap();
        let t = Table::read(
            &csv(
                d.path(),
                ",a,b,day,c\n0,1.5,x,mon,1\n1,2,y,tue,oops\n2,3,z,wed,3\n",
            ),
            None,
        )
        .unwrap();
        assert_eq!(t.names, vec!["Unnamed: 0", "a", "b", "day", "c"]);
        assert!(matches!(t.column("a").unwrap(), Column::Numeric(v) if v == &vec![1.5, 2.0, 3.0]));
        // `c` is numeric with one bad cell: kept, so using it reports the cell.
        assert_eq!(t.default_features(&[]), vec!["a", "c"]);
        assert_eq!(t.text_columns(&[]), vec!["b", "day"]);
        // A row index is left out without a word; data under no name is
        // said (it went silently).
        assert!(t.unnamed_data_columns(&[]).is_empty());
        let t = Table::read(&csv(d.path(), "a,,b\n1,0.5,2\n2,0.25,3\n3,0.75,4\n"), None).unwrap();
        assert_eq!(t.default_features(&[]), vec!["a", "b"]);
        assert_eq!(t.unnamed_data_columns(&[]), vec!["Unnamed: 1"]);
        // A shuffled or repeated index (a sorted or concatenated frame) is
        // still one.
        let t = Table::read(&csv(d.path(), ",a\n2,1\n0,2\n2,3\n"), None).unwrap();
        assert!(t.unnamed_data_columns(&[]).is_empty());
        // pandas' index in a Parquet file (a filtered frame's row numbers).
        let t = Table::from_columns(
            "mem",
            vec!["__index_level_0__".into(), "a".into()],
            vec![
                Column::Numeric(vec![3.0, 7.0]),
                Column::Numeric(vec![1.0, 2.0]),
            ],
        )
        .unwrap();
        assert_eq!(t.default_features(&[]), vec!["a"]);
        assert!(t.text_columns(&[]).is_empty());
        assert!(t.unnamed_data_columns(&[]).is_empty());
    }

    #[test]
    fn errors_name_the_file_column_and_row() {
        let d = tempfile::tempdir().unwrap();
        // A short row is named by its line in the file, blank lines counted.
        let e = Table::read(&csv(d.path(), "a,b\n1,2\n\n3\n"), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 4 has 1 field(s): every row needs 2"),
            "{e}"
        );
        // A cell past 80 characters is clipped where a message shows it.
        let long = "x".repeat(10_000);
        let t = Table::read(&csv(d.path(), &format!("a,b\n1,2\n3,{long}\n")), None).unwrap();
        let e = t.finite("b").unwrap_err().to_string();
        assert!(e.len() < 400 && e.contains("(10000 characters)"), "{e}");
        let t = Table::read(&csv(d.path(), "a,b\n1,2\n3,oops\n"), None).unwrap();
        let e = t.finite("b").unwrap_err().to_string();
        assert!(
            e.contains("t.csv")
                && e.contains("`b`")
                && e.contains("row 1 (line 3)")
                && e.contains("oops"),
            "{e}"
        );
        let t = Table::read(&csv(d.path(), "a,b\n1,2\n3,\n4,inf\n"), None).unwrap();
        let e = t.finite("b").unwrap_err().to_string();
        assert!(e.contains("row 1 (line 3)") && e.contains("NaN"), "{e}");
        // Blank lines are skipped by the reader but still count as lines.
        let t = Table::read(&csv(d.path(), "a,b\n\n1,2\n\n\n3,oops\n"), None).unwrap();
        let e = t.finite("b").unwrap_err().to_string();
        assert!(e.contains("row 1 (line 6)"), "{e}");
        let e = t.finite("zz").unwrap_err().to_string();
        assert!(e.contains("no column `zz`") && e.contains("a, b"), "{e}");
        assert!(!e.contains("read as one column"), "{e}");
        // Semicolons (European Excel): said, not just "no column".
        let t = Table::read(&csv(d.path(), "a;b\n1.5;2\n3.5;4\n"), None).unwrap();
        let e = t.finite("a").unwrap_err().to_string();
        assert!(
            e.contains("holding semicolons") && e.contains("commas"),
            "{e}"
        );
        // Not for a real column whose name holds one.
        let t = Table::read(&csv(d.path(), "price; USD\n1.5\n3.5\n"), None).unwrap();
        let e = t.finite("a").unwrap_err().to_string();
        assert!(!e.contains("semicolons"), "{e}");
        // With decimal commas too, the rows have more fields than the
        // header: the separator is said, not a quote the file lacks.
        let e = Table::read(&csv(d.path(), "a;b\n1,5;2\n3,5;4\n"), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 2 has 2 field(s)") && e.contains("semicolons") && !e.contains("quote"),
            "{e}"
        );
        let e = Table::read(&csv(d.path(), ""), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty"), "{e}");
        let e = Table::read(&csv(d.path(), "a,b\n"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no data rows"), "{e}");
        // Bytes that are not UTF-8, and a quote left open: each its hint.
        let p = d.path().join("bytes.csv");
        std::fs::write(&p, b"a,b\n1,2\n3,\xff\xfe\n").unwrap();
        let e = Table::read(&p, None).unwrap_err().to_string();
        assert!(e.contains("not UTF-8 text") && !e.contains("fields"), "{e}");
        let e = Table::read(&csv(d.path(), "a,b,c\n1,2,3\n4,\"5,6\n7,8,9\n"), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 3 has 2 field(s): every row needs 3") && e.contains("quote"),
            "{e}"
        );
        // One left open in the last column swallowed the rest of the file
        // (the field count still matched): named where it opens. Closed
        // later, or a quote inside a field, it is the crate's reading.
        let e = Table::read(&csv(d.path(), "a,b\n1,x\n2,\"oops\n3,y\n4,z\n"), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a quote opened on line 3 is never closed") && e.contains("2 line(s)"),
            "{e}"
        );
        // The same with CRLF ends, without a last line end, in the last
        // row, and in the header.
        for (text, want) in [
            (
                "a,b\r\n1,x\r\n2,\"oops\r\n3,y\r\n4,z\r\n",
                "on line 3 is never closed, so the 2 line(s)",
            ),
            (
                "a,b\n1,x\n2,\"oops\n3,y\n4,z",
                "on line 3 is never closed, so the 2 line(s)",
            ),
            (
                "a,b\n1,x\n2,\"oops\n",
                "on line 3 is never closed, the file ends inside it",
            ),
            (
                "a,\"b\n1,x\n2,y\n",
                "on line 1 is never closed, so the 2 line(s)",
            ),
        ] {
            let e = Table::read(&csv(d.path(), text), None)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let t = Table::read(
            &csv(d.path(), "a,b\n1,\"x\n2\"\n3,y\"z\n4,\"a\"\"b\"\n"),
            None,
        )
        .unwrap();
        assert_eq!(t.n_rows(), 3);
        // Old Mac line ends count as lines in messages (all were line 1).
        let e = Table::read(&csv(d.path(), "a,b\r1,2\r3,x\r"), None)
            .unwrap()
            .finite("b")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3"), "{e}");
        // A folder is named as one, not as a format.
        let e = Table::read(d.path(), None).unwrap_err().to_string();
        assert!(e.contains("is a folder"), "{e}");
        // A binary file (here a sparse one never written) is named as
        // such, with where its first NUL is.
        let e = Table::read(&csv(d.path(), "a,b\n1,2\n\0\0\0"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("NUL byte at line 3 (byte 8)"), "{e}");
        // A file of zeros alone (sparse, never written) is not UTF-16 text.
        let zeros = d.path().join("zeros.csv");
        std::fs::File::create(&zeros).unwrap().set_len(64).unwrap();
        let e = Table::read(&zeros, None).unwrap_err().to_string();
        assert!(e.contains("NUL byte at line 1 (byte 0)"), "{e}");
        // UTF-16 text is named as such, with or without its byte-order mark.
        let wide: Vec<u8> = "a,b\n1,2\n"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        for bytes in [[vec![0xFF, 0xFE], wide.clone()].concat(), wide] {
            let p = d.path().join("wide.csv");
            std::fs::write(&p, bytes).unwrap();
            let e = Table::read(&p, None).unwrap_err().to_string();
            assert!(
                e.contains("is UTF-16 text") && e.contains("save it as UTF-8"),
                "{e}"
            );
        }
        // The columns listed in an error are bounded, and so is each name.
        let header: Vec<String> = (0..500).map(|i| format!("c{i}")).collect();
        let wide = format!("{}\n{}\n", header.join(","), vec!["1"; 500].join(","));
        let e = Table::read(&csv(d.path(), &wide), None)
            .unwrap()
            .finite("zz")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("c29, and 470 more") && !e.contains("c30,"),
            "{e}"
        );
        let long = format!("{}\n1\n", "a".repeat(100_000));
        let e = Table::read(&csv(d.path(), &long), None)
            .unwrap()
            .finite("zz")
            .unwrap_err()
            .to_string();
        assert!(e.len() < 400 && e.contains("(100000 characters)"), "{e}");
    }

    #[test]
    fn headerless_numeric_csv_is_data() {
        let d = tempfile::tempdir().unwrap();
        let t = Table::read(&csv(d.path(), "1,0.5,0.25\n2,0.1,0.2\n"), None).unwrap();
        assert_eq!(t.n_rows(), 2);
        assert_eq!(t.names[0], "column_0");
    }

    /// A Parquet file at `p` of one row group: `schema` (the parquet
    /// crate's message text), its columns written in order by `fill`.
    fn parquet_file(
        p: &Path,
        schema: &str,
        fill: impl FnOnce(&mut parquet::file::writer::SerializedRowGroupWriter<'_, std::fs::File>),
    ) {
        use parquet::file::writer::SerializedFileWriter;
        let schema =
            std::sync::Arc::new(parquet::schema::parser::parse_message_type(schema).unwrap());
        let mut w = SerializedFileWriter::new(
            std::fs::File::create(p).unwrap(),
            schema,
            Default::default(),
        )
        .unwrap();
        let mut rg = w.next_row_group().unwrap();
        fill(&mut rg);
        rg.close().unwrap();
        w.close().unwrap();
    }

    /// Writes the row group's next column, of type `T`.
    fn column<T: parquet::data_type::DataType>(
        rg: &mut parquet::file::writer::SerializedRowGroupWriter<'_, std::fs::File>,
        values: &[T::T],
    ) {
        let mut c = rg.next_column().unwrap().unwrap();
        c.typed::<T>().write_batch(values, None, None).unwrap();
        c.close().unwrap();
    }

    /// A nested column is refused by its own name before any row: a null
    /// struct (one value a row, a name a leaf) shifted every later column
    /// under the wrong name. A decimal is refused as one.
    #[test]
    fn nested_and_decimal_parquet_columns_are_refused_by_name() {
        use parquet::data_type::{DoubleType, Int32Type, Int64Type};
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("n.parquet");
        parquet_file(
            &p,
            "message m { optional group s { optional double a; optional double b; } \
             required double x; required int64 rain; }",
            |rg| {
                for _ in 0..2 {
                    let mut c = rg.next_column().unwrap().unwrap();
                    c.typed::<DoubleType>()
                        .write_batch(&[], Some(&[0, 0]), None)
                        .unwrap();
                    c.close().unwrap();
                }
                column::<DoubleType>(rg, &[1.5, 2.5]);
                column::<Int64Type>(rg, &[0, 1]);
            },
        );
        let e = Table::read(&p, None).unwrap_err().to_string();
        assert!(e.contains("column `s` is nested"), "{e}");
        parquet_file(
            &p,
            "message m { required int32 x (DECIMAL(9,2)); required int64 rain; }",
            |rg| {
                column::<Int32Type>(rg, &[150, 250]);
                column::<Int64Type>(rg, &[0, 1]);
            },
        );
        let e = Table::read(&p, None).unwrap_err().to_string();
        assert!(e.contains("column `x` is a decimal"), "{e}");
    }

    #[test]
    fn reads_parquet_written_by_the_parquet_crate() {
        use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.parquet");
        parquet_file(
            &p,
            "message m { required binary day (UTF8); required double x; required int64 rain; }",
            |rg| {
                let days: Vec<ByteArray> = ["d1", "d2", "d3"]
                    .iter()
                    .map(|s| ByteArray::from(*s))
                    .collect();
                column::<ByteArrayType>(rg, &days);
                column::<DoubleType>(rg, &[0.5, 1.5, -2.0]);
                column::<Int64Type>(rg, &[0, 1, 1]);
            },
        );
        let t = Table::read(&p, None).unwrap();
        assert_eq!(t.names, vec!["day", "x", "rain"]);
        assert_eq!(t.finite("x").unwrap(), &[0.5, 1.5, -2.0]);
        assert_eq!(t.finite("rain").unwrap(), &[0.0, 1.0, 1.0]);
        assert_eq!(t.column("day").unwrap().cell(1), "d2");
        // Strings that are numbers read as numbers, as in a CSV; a string
        // column that turns to text keeps its first cells as written.
        parquet_file(
            &p,
            "message m { required binary n (UTF8); required binary late (UTF8); }",
            |rg| {
                let b = |v: &[&str]| v.iter().map(|s| ByteArray::from(*s)).collect::<Vec<_>>();
                column::<ByteArrayType>(rg, &b(&["1", "2.5", "True"]));
                column::<ByteArrayType>(rg, &b(&["01", "2", "n/a"]));
            },
        );
        let t = Table::read(&p, None).unwrap();
        assert!(matches!(t.column("n").unwrap(), Column::Text(v) if v == &["1", "2.5", "True"]));
        assert!(matches!(t.column("late").unwrap(), Column::Text(v) if v == &["01", "2", "n/a"]));
    }

    #[test]
    fn parquet_float32_is_widened_exactly() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.parquet");
        let xs = [0.0672f32, 1.1, -3.3e-7];
        parquet_file(&p, "message m { required float x; }", |rg| {
            column::<parquet::data_type::FloatType>(rg, &xs)
        });
        let t = Table::read(&p, None).unwrap();
        let want: Vec<f64> = xs.iter().map(|&x| f64::from(x)).collect();
        assert_eq!(t.finite("x").unwrap(), want.as_slice());
    }

    #[test]
    fn bool_columns_read_as_one_and_zero_except_in_series_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.csv");
        std::fs::write(
            &p,
            "x,windy,rain,odd\n1,True,true,True\n2,False,FALSE,maybe\n3,,True,False\n",
        )
        .unwrap();
        let t = Table::read(&p, None).unwrap();
        let windy = t.finite("rain").unwrap();
        assert_eq!(windy, &[1.0, 0.0, 1.0]);
        match t.column("windy").unwrap() {
            Column::Numeric(v) => {
                assert_eq!(&v[..2], &[1.0, 0.0]);
                assert!(v[2].is_nan(), "an empty cell is missing");
            }
            Column::Text(_) => panic!("a bool column is numeric"),
        }
        assert!(matches!(t.column("odd").unwrap(), Column::Text(_)));
        assert_eq!(t.default_features(&[]), vec!["x", "windy", "rain"]);
        // In a file of series the label stays as written: its class names.
        let s = d.path().join("s.csv");
        std::fs::write(&s, "True,1,2,3\nFalse,2,1,0\nTrue,0,1,1\n").unwrap();
        let t = Table::read_series(&s, None).unwrap();
        assert_eq!(texts(&t, "column_0"), vec!["True", "False", "True"]);
    }

    fn texts(t: &Table, name: &str) -> Vec<String> {
        let c = t.column(name).unwrap();
        (0..c.len()).map(|i| c.cell(i)).collect()
    }

    #[test]
    fn parquet_times_read_back_as_written() {
        use parquet::data_type::{DoubleType, Int32Type, Int64Type};
        use parquet::file::metadata::KeyValue;
        use parquet::file::writer::{SerializedFileWriter, SerializedRowGroupWriter};
        use parquet::schema::parser::parse_message_type;
        use std::sync::Arc;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.parquet");
        let schema = Arc::new(
            parse_message_type(
                "message m {
                   required int64 naive (TIMESTAMP(MILLIS,false));
                   required int64 utc (TIMESTAMP(MICROS,true));
                   required int64 tokyo (TIMESTAMP(NANOS,true));
                   required int32 day (DATE);
                   required double x;
                 }",
            )
            .unwrap(),
        );
        let mut w = SerializedFileWriter::new(
            std::fs::File::create(&p).unwrap(),
            schema,
            Default::default(),
        )
        .unwrap();
        let mut rg = w.next_row_group().unwrap();
        // 2024-01-05T00:00:00Z is 1_704_412_800 s; Tokyo midnight of that
        // day is 9 h earlier.
        fn int64(rg: &mut SerializedRowGroupWriter<'_, std::fs::File>, v: &[i64]) {
            let mut c = rg.next_column().unwrap().unwrap();
            c.typed::<Int64Type>().write_batch(v, None, None).unwrap();
            c.close().unwrap();
        }
        int64(&mut rg, &[1_704_412_800_000, 1_704_544_200_250]);
        int64(&mut rg, &[1_704_412_800_000_000, 1_704_412_800_000_001]);
        int64(
            &mut rg,
            &[1_704_380_400_000_000_000, 1_704_466_800_000_000_000],
        );
        let mut c = rg.next_column().unwrap().unwrap();
        c.typed::<Int32Type>()
            .write_batch(&[19_727, -1], None, None)
            .unwrap();
        c.close().unwrap();
        let mut c = rg.next_column().unwrap().unwrap();
        c.typed::<DoubleType>()
            .write_batch(&[1.5, 2.5], None, None)
            .unwrap();
        c.close().unwrap();
        rg.close().unwrap();
        // What pandas writes for a `datetime64[ns, Asia/Tokyo]` column.
        w.append_key_value_metadata(KeyValue::new(
            "pandas".to_string(),
            r#"{"index_columns": [], "columns": [
                {"name": "naive", "field_name": "naive", "pandas_type": "datetime",
                 "numpy_type": "datetime64[ns]", "metadata": null},
                {"name": "tokyo", "field_name": "tokyo", "pandas_type": "datetimetz",
                 "numpy_type": "datetime64[ns]", "metadata": {"timezone": "Asia/Tokyo"}}
             ], "creator": {"library": "pyarrow", "version": "26.0.1"}}"#
                .to_string(),
        ));
        w.close().unwrap();
        let t = Table::read(&p, None).unwrap();
        assert_eq!(
            texts(&t, "naive"),
            ["2024-01-05T00:00:00", "2024-01-06T12:30:00.250"]
        );
        // UTC-adjusted with no zone name: UTC, with its offset.
        assert_eq!(
            texts(&t, "utc"),
            [
                "2024-01-05T00:00:00+00:00",
                "2024-01-05T00:00:00.000001+00:00"
            ]
        );
        // Not 2024-01-04T15:00:00 UTC, the day before.
        assert_eq!(
            texts(&t, "tokyo"),
            ["2024-01-05T00:00:00+09:00", "2024-01-06T00:00:00+09:00"]
        );
        assert_eq!(texts(&t, "day"), ["2024-01-05", "1969-12-31"]);
        assert_eq!(t.finite("x").unwrap(), &[1.5, 2.5]);
        assert_eq!(t.default_features(&[]), vec!["x"]);
    }

    /// A file pyarrow wrote (scripts/make_parquet_time_fixture.py): no pandas
    /// metadata, so the zone names come from its `ARROW:schema`.
    #[test]
    fn reads_zones_from_the_arrow_schema() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/times_pyarrow.parquet");
        let t = Table::read(&p, None).unwrap();
        assert_eq!(
            t.names,
            vec!["tokyo", "kolkata", "utc", "naive", "day", "at", "x"]
        );
        assert_eq!(
            texts(&t, "tokyo"),
            ["2024-01-05T00:00:00+09:00", "2024-01-06T00:00:00+09:00"]
        );
        assert_eq!(
            texts(&t, "kolkata"),
            ["2024-01-05T00:00:00+05:30", "2024-01-06T00:00:00.250+05:30"]
        );
        assert_eq!(texts(&t, "utc"), ["2024-01-05T00:00:00+00:00", ""]);
        assert_eq!(
            texts(&t, "naive"),
            ["1970-01-01T00:00:00", "2024-01-06T12:30:00.000000250"]
        );
        assert_eq!(texts(&t, "day"), ["2024-01-05", "1969-12-31"]);
        assert_eq!(texts(&t, "at"), ["01:02:03", "23:59:59.500"]);
        assert_eq!(t.finite("x").unwrap(), &[1.5, -2.0]);
    }

    /// INT96 timestamps (same script): no zone flag, so naive unless the
    /// Arrow schema names a zone; the row API keeps milliseconds only.
    #[test]
    fn reads_int96_timestamps() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/times_int96.parquet");
        let t = Table::read(&p, None).unwrap();
        assert_eq!(
            texts(&t, "tokyo"),
            ["2024-01-05T00:00:00+09:00", "2024-01-06T00:00:00+09:00"]
        );
        assert_eq!(
            texts(&t, "naive"),
            ["1970-01-01T00:00:00", "2024-01-06T12:30:00"]
        );
    }

    /// A file the fuzzer made from the one above: a column chunk at a
    /// negative offset, on which the parquet crate asserts. An error
    /// naming the file, not a panic.
    #[test]
    fn a_crafted_parquet_file_the_reader_panics_on_is_an_error() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/crafted_negative_offset.parquet");
        let e = Table::read(&p, None).unwrap_err().to_string();
        assert!(
            e.contains("crafted_negative_offset.parquet")
                && e.contains("not a readable Parquet file")
                && e.contains("should not be negative"),
            "{e}"
        );
    }
}
