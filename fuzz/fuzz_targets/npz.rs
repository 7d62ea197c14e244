#![no_main]
//! Job B vector files (.npz of chunks or of ready windows).
mod common;
use common::file;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let p = file("npz", data);
    let _ = recur_data::npz::read_windows(&p, 5);
    let _ = recur_data::npz::read_chunk_arrays(&p);
    let _ = recur_data::npz::read_windows_min(&p, 5, Some(2));
    let _ = recur_data::npz::read_reversed_windows(&p, 3, Some(1));
});
