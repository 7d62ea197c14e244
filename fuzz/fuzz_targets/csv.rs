#![no_main]
//! CSV and TSV tables, as data and as whole series.
mod common;
use common::file;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let p = file("csv", data);
    let _ = recur_data::Table::read(&p, None);
    let _ = recur_data::Table::read_series(&p, None);
});
