#![no_main]
//! Parquet tables.
mod common;
use common::file;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = recur_data::Table::read(&file("parquet", data), None);
});
