//! Dates, times and timestamps of a Parquet file as the text a user wrote.
//!
//! The parquet crate's `Field` Display prints every timestamp in UTC
//! (`2024-01-04 15:00:00.000 +00:00` for Tokyo midnight of 5 January) and
//! nanosecond timestamps, which have no legacy converted type, as bare
//! integers. `recur predict` writes the time column back, so a cell must be
//! the value as written:
//!
//! - a naive timestamp (`isAdjustedToUTC = false`, pandas' tz-naive
//!   `datetime64`) stays naive: `2024-01-05T00:00:00`;
//! - a zoned one (`isAdjustedToUTC = true`) is printed in its zone with the
//!   offset: `2024-01-05T00:00:00+09:00`, and in UTC (`+00:00`, as pandas'
//!   `isoformat` prints it) when the file names no zone;
//! - dates as `2024-01-05`, times of day as `01:02:03`.
//!
//! Sub-second digits (3, 6 or 9) appear only when the fraction is not zero.
//!
//! Parquet itself keeps no zone name, only whether values are UTC-adjusted.
//! Arrow writers (pyarrow, arrow-rs) store the Arrow schema, zone
//! names included, base64-encoded under the `ARROW:schema` key of the file's
//! key-value metadata; pandas also writes a `pandas` key whose JSON lists each
//! column's `metadata.timezone`. The parquet crate's `arrow` feature would
//! decode the first but brings in the whole arrow stack, so `zone_names`
//! decodes the base64 with the `base64` crate and reads the few flatbuffer
//! fields it needs by hand (the Schema message's
//! fields: name, type tag, Timestamp.timezone) and falls back to the pandas
//! JSON for any column that yields no zone there; any malformed metadata just
//! means no zone name (UTC), never an error.
//!
//! Zone names go through `chrono-tz` (the IANA database compiled in, so it
//! works on machines without `/usr/share/zoneinfo`), over the `chrono` the
//! parquet crate already depends on; fixed offsets such as `+05:30` (Arrow
//! allows them as zone names) are parsed here.

use chrono::{DateTime, FixedOffset, NaiveTime, Utc};
use parquet::basic::{ConvertedType, LogicalType, TimeUnit, Type as PhysicalType};
use parquet::file::metadata::FileMetaData;
use parquet::record::Field;
use parquet::schema::types::ColumnDescriptor;
use std::collections::HashMap;

/// Where a timestamp's local time comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Zone {
    Fixed(FixedOffset),
    Named(chrono_tz::Tz),
}

/// How a column's values become text, when the generic Display would not do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum TimeCell {
    /// Not a date or time: the caller formats it.
    Other,
    /// Days since 1970-01-01.
    Date,
    /// `per_sec` units (1e3, 1e6 or 1e9) since midnight.
    Time { per_sec: i64 },
    /// `per_sec` units since the epoch; `zone` None for a naive timestamp.
    Timestamp { per_sec: i64, zone: Option<Zone> },
}

fn per_sec(u: &TimeUnit) -> i64 {
    match u {
        TimeUnit::MILLIS => 1_000,
        TimeUnit::MICROS => 1_000_000,
        TimeUnit::NANOS => 1_000_000_000,
    }
}

/// The cell format of every leaf column of `meta`, in schema order.
pub(crate) fn column_formats(meta: &FileMetaData) -> Vec<TimeCell> {
    let zones = zone_names(meta);
    meta.schema_descr()
        .columns()
        .iter()
        .map(|c| column_format(c, zones.get(c.name()).map(String::as_str)))
        .collect()
}

fn column_format(c: &ColumnDescriptor, zone_name: Option<&str>) -> TimeCell {
    // A zone name the database does not know still means a zoned column:
    // its instants print in UTC, as do those of a UTC-adjusted column that
    // no metadata names a zone for.
    let named = zone_name.map(|n| parse_zone(n).unwrap_or(Zone::Named(chrono_tz::UTC)));
    let zone = || Some(named.unwrap_or(Zone::Named(chrono_tz::UTC)));
    match c.logical_type_ref() {
        Some(LogicalType::Timestamp(t)) => TimeCell::Timestamp {
            per_sec: per_sec(&t.unit),
            zone: if t.is_adjusted_to_u_t_c { zone() } else { None },
        },
        Some(LogicalType::Date) => TimeCell::Date,
        Some(LogicalType::Time(t)) => TimeCell::Time {
            per_sec: per_sec(&t.unit),
        },
        Some(_) => TimeCell::Other,
        // Legacy converted types only: the format spec defines TIMESTAMP_*
        // as UTC-adjusted.
        None => match c.converted_type() {
            ConvertedType::TIMESTAMP_MILLIS => TimeCell::Timestamp {
                per_sec: 1_000,
                zone: zone(),
            },
            ConvertedType::TIMESTAMP_MICROS => TimeCell::Timestamp {
                per_sec: 1_000_000,
                zone: zone(),
            },
            ConvertedType::DATE => TimeCell::Date,
            ConvertedType::TIME_MILLIS => TimeCell::Time { per_sec: 1_000 },
            ConvertedType::TIME_MICROS => TimeCell::Time { per_sec: 1_000_000 },
            // INT96 (Impala, Spark, pyarrow's deprecated option; the row API
            // gives milliseconds) carries no zone flag: naive, as Arrow reads
            // it, unless the Arrow or pandas metadata names a zone. Then the
            // values are the UTC instants pyarrow wrote for a zoned column,
            // printed in that zone (pyarrow itself reads them back naive, as
            // UTC wall-clock times, which is not what the user wrote).
            _ if c.physical_type() == PhysicalType::INT96 => TimeCell::Timestamp {
                per_sec: 1_000,
                zone: named,
            },
            _ => TimeCell::Other,
        },
    }
}

impl TimeCell {
    /// The cell's text, or None to leave the field to the caller (not a
    /// time column, or a value chrono cannot represent).
    pub(crate) fn text(&self, field: &Field) -> Option<String> {
        if *self == TimeCell::Other {
            return None;
        }
        // The row API hands out the stored integer under a variant that
        // depends on the converted type (`Long` for nanoseconds).
        let v: i64 = match *field {
            Field::Long(v)
            | Field::TimestampMillis(v)
            | Field::TimestampMicros(v)
            | Field::TimeMicros(v) => v,
            Field::Int(v) | Field::Date(v) | Field::TimeMillis(v) => i64::from(v),
            _ => return None,
        };
        match *self {
            TimeCell::Other => None,
            TimeCell::Date => {
                let day = DateTime::from_timestamp(v.checked_mul(86_400)?, 0)?;
                Some(day.format("%Y-%m-%d").to_string())
            }
            TimeCell::Time { per_sec } => {
                let (secs, nanos) = split(v, per_sec)?;
                let t = NaiveTime::from_num_seconds_from_midnight_opt(
                    u32::try_from(secs).ok()?,
                    nanos,
                )?;
                Some(t.format("%H:%M:%S%.f").to_string())
            }
            TimeCell::Timestamp { per_sec, zone } => {
                let (secs, nanos) = split(v, per_sec)?;
                let utc: DateTime<Utc> = DateTime::from_timestamp(secs, nanos)?;
                const LOCAL: &str = "%Y-%m-%dT%H:%M:%S%.f";
                const ZONED: &str = "%Y-%m-%dT%H:%M:%S%.f%:z";
                Some(match zone {
                    None => utc.naive_utc().format(LOCAL).to_string(),
                    Some(Zone::Fixed(o)) => utc.with_timezone(&o).format(ZONED).to_string(),
                    Some(Zone::Named(tz)) => utc.with_timezone(&tz).format(ZONED).to_string(),
                })
            }
        }
    }
}

/// `v` units of `1 / per_sec` s as whole seconds and nanoseconds (floored,
/// so times before 1970 keep a non-negative fraction).
fn split(v: i64, per_sec: i64) -> Option<(i64, u32)> {
    let secs = v.div_euclid(per_sec);
    let nanos = v.rem_euclid(per_sec).checked_mul(1_000_000_000 / per_sec)?;
    Some((secs, u32::try_from(nanos).ok()?))
}

/// `Asia/Tokyo`, `UTC`, or a fixed offset `+09:00` / `-0330` / `+09`.
fn parse_zone(name: &str) -> Option<Zone> {
    let n = name.trim();
    let signed = match n.strip_prefix('+') {
        Some(r) => Some((1, r)),
        None => n.strip_prefix('-').map(|r| (-1, r)),
    };
    if let Some((sign, hm)) = signed {
        let digits: String = hm.chars().filter(|c| *c != ':').collect();
        if !digits.bytes().all(|b| b.is_ascii_digit()) || !(digits.len() == 2 || digits.len() == 4)
        {
            return None;
        }
        let h: i32 = digits[..2].parse().ok()?;
        let m: i32 = if digits.len() == 4 {
            digits[2..].parse().ok()?
        } else {
            0
        };
        if m >= 60 {
            return None;
        }
        return FixedOffset::east_opt(sign * (h * 3600 + m * 60)).map(Zone::Fixed);
    }
    if n.eq_ignore_ascii_case("utc") || n == "Z" {
        return Some(Zone::Named(chrono_tz::UTC));
    }
    n.parse::<chrono_tz::Tz>().ok().map(Zone::Named)
}

/// Column name -> zone name, from the Arrow schema, else pandas' metadata.
fn zone_names(meta: &FileMetaData) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let Some(kv) = meta.key_value_metadata() else {
        return out;
    };
    let value = |key: &str| {
        kv.iter()
            .find(|e| e.key == key)
            .and_then(|e| e.value.as_deref())
    };
    if let Some(zones) = value("ARROW:schema").and_then(arrow_zones) {
        out.extend(zones);
    }
    if let Some(json) = value("pandas") {
        for (name, zone) in pandas_zones(json) {
            out.entry(name).or_insert(zone);
        }
    }
    out
}

/// The `metadata.timezone` of each column listed in pandas' JSON, keyed by
/// the Parquet column name (`field_name`; index columns included).
fn pandas_zones(json: &str) -> Vec<(String, String)> {
    use serde_json::Value;
    let Ok(doc) = serde_json::from_str::<Value>(json) else {
        return Vec::new();
    };
    let Some(cols) = doc.get("columns").and_then(Value::as_array) else {
        return Vec::new();
    };
    cols.iter()
        .filter_map(|c| {
            let name = c
                .get("field_name")
                .and_then(Value::as_str)
                .or_else(|| c.get("name").and_then(Value::as_str))?;
            let zone = c.get("metadata")?.get("timezone")?.as_str()?;
            Some((name.to_string(), zone.to_string()))
        })
        .collect()
}

/// Zone names of the top-level timestamp fields of a base64 Arrow IPC
/// Schema message (the `ARROW:schema` value); None when it does not parse.
fn arrow_zones(b64: &str) -> Option<Vec<(String, String)>> {
    let bytes = base64_decode(b64)?;
    // IPC framing: [0xFFFFFFFF continuation,] i32 length, flatbuffer.
    let fb = if bytes.starts_with(&[0xff; 4]) {
        bytes.get(8..)?
    } else {
        bytes.get(4..)?
    };
    let message = Fb::root(fb)?;
    // Message { version: 0, header_type: 1, header: 2, .. }; Schema = 1.
    if message.u8(1)? != 1 {
        return None;
    }
    // Schema { endianness: 0, fields: 1, .. }
    let schema = message.table(2)?;
    let mut out = Vec::new();
    for field in schema.tables(1)? {
        // Field { name: 0, nullable: 1, type_type: 2, type: 3, .. };
        // Type::Timestamp = 10, Timestamp { unit: 0, timezone: 1 }.
        if field.u8(2) != Some(10) {
            continue;
        }
        let (Some(name), Some(zone)) = (field.string(0), field.table(3).and_then(|t| t.string(1)))
        else {
            continue;
        };
        out.push((name.to_string(), zone.to_string()));
    }
    Some(out)
}

/// Standard or URL-safe base64, padding optional, white space ignored.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
    use base64::engine::DecodePaddingMode;
    use base64::{alphabet, Engine};
    let clean: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let cfg = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    GeneralPurpose::new(&alphabet::STANDARD, cfg)
        .decode(&clean)
        .or_else(|_| GeneralPurpose::new(&alphabet::URL_SAFE, cfg).decode(&clean))
        .ok()
}

/// A flatbuffer table: the buffer, the table's position and its vtable's.
/// Every read is bounds-checked; a bad offset gives None, never a panic.
#[derive(Clone, Copy)]
struct Fb<'a> {
    buf: &'a [u8],
    pos: usize,
    vtable: usize,
    vtable_len: usize,
}

fn read_u16(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        buf.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        buf.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

impl<'a> Fb<'a> {
    fn root(buf: &'a [u8]) -> Option<Fb<'a>> {
        Fb::at(buf, read_u32(buf, 0)? as usize)
    }

    fn at(buf: &'a [u8], pos: usize) -> Option<Fb<'a>> {
        // The table starts with a signed offset back to its vtable.
        let back = read_u32(buf, pos)? as i32;
        let vtable = usize::try_from(pos as i64 - i64::from(back)).ok()?;
        let vtable_len = usize::from(read_u16(buf, vtable)?);
        Some(Fb {
            buf,
            pos,
            vtable,
            vtable_len,
        })
    }

    /// The position of field `slot`, None when the field is absent.
    fn field(&self, slot: usize) -> Option<usize> {
        let entry = 4 + 2 * slot;
        if entry + 2 > self.vtable_len {
            return None;
        }
        match read_u16(self.buf, self.vtable + entry)? {
            0 => None,
            off => self.pos.checked_add(usize::from(off)),
        }
    }

    /// A scalar u8 field (absent reads as the default 0).
    fn u8(&self, slot: usize) -> Option<u8> {
        match self.field(slot) {
            None => Some(0),
            Some(p) => self.buf.get(p).copied(),
        }
    }

    /// Where an offset field (table, string, vector) points.
    fn target(&self, slot: usize) -> Option<usize> {
        let p = self.field(slot)?;
        p.checked_add(read_u32(self.buf, p)? as usize)
    }

    fn table(&self, slot: usize) -> Option<Fb<'a>> {
        Fb::at(self.buf, self.target(slot)?)
    }

    fn string(&self, slot: usize) -> Option<&'a str> {
        let p = self.target(slot)?;
        let len = read_u32(self.buf, p)? as usize;
        let start = p.checked_add(4)?;
        std::str::from_utf8(self.buf.get(start..start.checked_add(len)?)?).ok()
    }

    /// A vector of tables.
    fn tables(&self, slot: usize) -> Option<Vec<Fb<'a>>> {
        let p = self.target(slot)?;
        let n = read_u32(self.buf, p)? as usize;
        (0..n)
            .map(|i| {
                let e = p.checked_add(4)?.checked_add(i.checked_mul(4)?)?;
                Fb::at(self.buf, e.checked_add(read_u32(self.buf, e)? as usize)?)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_known_text() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64_decode("AAEC/w==").unwrap(), [0, 1, 2, 255]);
        assert!(base64_decode("a*b").is_none());
    }

    #[test]
    fn zones_parse_names_and_offsets() {
        let fixed = |s: i32| Some(Zone::Fixed(FixedOffset::east_opt(s).unwrap()));
        assert_eq!(parse_zone("+09:00"), fixed(9 * 3600));
        assert_eq!(parse_zone("-0330"), fixed(-(3 * 3600 + 1800)));
        assert_eq!(parse_zone("+05"), fixed(5 * 3600));
        assert_eq!(
            parse_zone("Asia/Tokyo"),
            Some(Zone::Named(chrono_tz::Asia::Tokyo))
        );
        assert_eq!(parse_zone("UTC"), Some(Zone::Named(chrono_tz::UTC)));
        assert_eq!(parse_zone("Mars/Olympus"), None);
        assert_eq!(parse_zone("+9:0"), None);
    }

    #[test]
    fn pandas_json_names_zones_by_field_name() {
        let json = r#"{"columns": [
            {"name": "t", "field_name": "t", "pandas_type": "datetimetz",
             "metadata": {"timezone": "Asia/Tokyo"}},
            {"name": "x", "field_name": "x", "metadata": null},
            {"name": null, "field_name": "__index_level_0__",
             "metadata": {"timezone": "UTC"}}]}"#;
        assert_eq!(
            pandas_zones(json),
            vec![
                ("t".to_string(), "Asia/Tokyo".to_string()),
                ("__index_level_0__".to_string(), "UTC".to_string())
            ]
        );
        assert!(pandas_zones("not json").is_empty());
    }

    #[test]
    fn cells_keep_their_zone_and_precision() {
        let tokyo = TimeCell::Timestamp {
            per_sec: 1_000,
            zone: parse_zone("Asia/Tokyo"),
        };
        // 2024-01-05T00:00:00+09:00 is 2024-01-04T15:00:00Z.
        let ms = 1_704_380_400_000;
        assert_eq!(
            tokyo.text(&Field::TimestampMillis(ms)).unwrap(),
            "2024-01-05T00:00:00+09:00"
        );
        let naive = TimeCell::Timestamp {
            per_sec: 1_000_000_000,
            zone: None,
        };
        assert_eq!(
            naive.text(&Field::Long(-1)).unwrap(),
            "1969-12-31T23:59:59.999999999"
        );
        assert_eq!(
            TimeCell::Time { per_sec: 1_000 }
                .text(&Field::TimeMillis(3_723_500))
                .unwrap(),
            "01:02:03.500"
        );
        assert_eq!(TimeCell::Date.text(&Field::Date(-1)).unwrap(), "1969-12-31");
        assert_eq!(TimeCell::Other.text(&Field::Long(3)), None);
    }
}
