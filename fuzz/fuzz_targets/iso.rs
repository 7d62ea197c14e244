#![no_main]
//! ISO 8601 times of the time column.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = recur_data::iso_time::parse(s);
        let _ = recur_data::iso_time::looks_iso(s);
    }
});
