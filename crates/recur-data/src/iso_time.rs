//! ISO 8601 times written as text (`2020-04-10`, `2020-04-10 06:00`,
//! `2020-04-10T06:00:00.5+09:00`, `...Z`), read into values that compare as
//! times, for the order check of `data.time_column`.
//!
//! Comparing the text itself was right only while every row had the same
//! spelling and the same UTC offset: `...T06:00:00+09:00` sorts after
//! `...T00:00:00+00:00` as text but is three hours earlier, `Z` and
//! `+00:00` spell one instant twice, and an hourly series in a zone with
//! daylight saving (recur's own text of a zoned Parquet timestamp) goes
//! "backwards" at the autumn change. chrono, already built for Parquet's
//! timestamps, does the calendar.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime};

/// A time read from an ISO text cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum IsoTime {
    /// No UTC offset: a date, or a date and a local time.
    Local(NaiveDateTime),
    /// With an offset (`Z`, `+09:00`, `+0900`): the instant, as UTC.
    Instant(NaiveDateTime),
}

/// What is wrong with a cell that starts like an ISO date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IsoError {
    /// The date or the time is not one of the calendar (`2020-02-30`,
    /// `25:99`).
    Invalid(&'static str),
    /// Something after the date that is not a time recur reads: the cell
    /// is then compared as text, as before.
    Unknown,
}

/// `t` without a trailing ` UTC` or ` GMT` (any case), where it has one.
fn utc_named(t: &str) -> Option<&str> {
    let n = t.len().checked_sub(4)?;
    let (head, tail) = (t.get(..n)?, t.get(n..)?);
    (tail.eq_ignore_ascii_case(" UTC") || tail.eq_ignore_ascii_case(" GMT")).then_some(head)
}

/// Whether a cell begins as an ISO date does (`YYYY-MM-DD`).
pub fn looks_iso(s: &str) -> bool {
    let b = s.trim().as_bytes();
    b.len() >= 10 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[7] == b'-'
}

/// Reads a cell that [`looks_iso`].
pub fn parse(s: &str) -> Result<IsoTime, IsoError> {
    let s = s.trim();
    let (date, rest) = s.split_at_checked(10).ok_or(IsoError::Unknown)?;
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .map_err(|_| IsoError::Invalid("not a date of the calendar"))?;
    if rest.is_empty() {
        return Ok(IsoTime::Local(date.and_time(NaiveTime::MIN)));
    }
    let Some(time) = rest.strip_prefix(['T', 't', ' ']) else {
        return Err(IsoError::Unknown);
    };
    // A time must at least be `HH:MM`; past that, a time recur cannot read
    // is left to the text comparison, but `25:99` is refused.
    let hm = time.as_bytes();
    if !(hm.len() >= 5 && hm[2] == b':' && hm[..2].iter().chain(&hm[3..5]).all(u8::is_ascii_digit))
    {
        return Err(IsoError::Unknown);
    }
    // ISO's end of the day, `24:00`, is the next day's start.
    if let Some(after) = time.strip_prefix("24:00") {
        let after = after.trim_start_matches([':', '.', '0']);
        if after.is_empty() || after.starts_with(['Z', 'z', '+', '-', ' ']) {
            let next = date
                .succ_opt()
                .ok_or(IsoError::Invalid("not a date of the calendar"))?;
            return parse(&format!("{next}T00:00{after}"));
        }
    }
    let zoned = time
        .strip_suffix(['Z', 'z'])
        .or_else(|| utc_named(time))
        .map(|t| format!("{t}+00:00"))
        .unwrap_or_else(|| time.to_string());
    for f in ["%H:%M:%S%.f%#z", "%H:%M%#z"] {
        if let Ok(t) = DateTime::<FixedOffset>::parse_from_str(
            &format!("{date} {zoned}"),
            &format!("%Y-%m-%d {f}"),
        ) {
            return Ok(IsoTime::Instant(t.naive_utc()));
        }
    }
    for f in ["%H:%M:%S%.f", "%H:%M"] {
        if let Ok(t) = NaiveTime::parse_from_str(time, f) {
            return Ok(IsoTime::Local(date.and_time(t)));
        }
    }
    let (h, m) = (&time[..2], &time[3..5]);
    if h > "23" || m > "59" {
        return Err(IsoError::Invalid("not a time of the day"));
    }
    Err(IsoError::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> IsoTime {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }

    #[test]
    fn offsets_compare_as_instants_and_spellings_as_one_time() {
        // Three hours earlier as an instant, later as text.
        assert!(at("2020-04-10T06:00:00+09:00") < at("2020-04-10T00:00:00+00:00"));
        assert_eq!(at("2020-04-10T00:00:00Z"), at("2020-04-10T00:00:00+00:00"));
        assert_eq!(
            at("2020-04-10 00:00:00 UTC"),
            at("2020-04-10T01:00:00+0100")
        );
        assert!(at("2020-04-10 12:00:00+00:00") > at("2020-04-10T06:00:00+00:00"));
        // The autumn change in Berlin: 02:00+02:00 comes before 02:00+01:00.
        assert!(at("2020-10-25T02:00:00+02:00") < at("2020-10-25T02:00:00+01:00"));
        // Local times: date, minutes, seconds, fractions; either separator.
        assert!(at("2020-04-10") < at("2020-04-10 00:00:01"));
        assert_eq!(at("2020-04-10T06:30"), at("2020-04-10 06:30:00.000"));
        assert!(at("2020-04-10 06:30:00.25") < at("2020-04-10 06:30:00.5"));
        assert!(matches!(at("1900-01-01"), IsoTime::Local(_)));
        assert!(matches!(
            at("2020-01-01T00:00:00-05:30"),
            IsoTime::Instant(_)
        ));
    }

    #[test]
    fn impossible_dates_and_times_are_told_apart_from_other_spellings() {
        for bad in ["2020-02-30", "2021-02-29 10:00", "2020-13-01"] {
            assert_eq!(
                parse(bad),
                Err(IsoError::Invalid("not a date of the calendar")),
                "{bad}"
            );
        }
        assert_eq!(
            parse("2020-05-30T24:00").unwrap(),
            parse("2020-05-31").unwrap()
        );
        assert_eq!(
            parse("2020-12-31 24:00:00Z").unwrap(),
            parse("2021-01-01T00:00Z").unwrap()
        );
        assert_eq!(
            parse("2020-05-30 10:00 GMT").unwrap(),
            parse("2020-05-30T10:00Z").unwrap()
        );
        assert_eq!(
            parse("2020-05-30 10:00 utc").unwrap(),
            parse("2020-05-30T10:00Z").unwrap()
        );
        for bad in ["2020-05-30T25:99", "2020-05-30 24:30"] {
            assert_eq!(
                parse(bad),
                Err(IsoError::Invalid("not a time of the day")),
                "{bad}"
            );
        }
        for other in ["2020-05-30/x", "2020-05-30 noon", "2020-05-30T10:00 CET"] {
            assert_eq!(parse(other), Err(IsoError::Unknown), "{other}");
        }
        assert!(looks_iso(" 2020-05-30") && !looks_iso("20-05-2020") && !looks_iso("2020-5-3"));
    }
}
