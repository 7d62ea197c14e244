#![no_main]
//! UCR/UEA .ts files.
mod common;
use common::file;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = recur_data::ucr::Sequences::read_ts(&file("ts", data));
});
