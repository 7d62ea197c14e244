#![no_main]
//! import-torch: a .pt/.bin/.pth zip or a safetensors file (first byte picks the name).
mod common;
use common::file;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let ext = ["pt", "safetensors", "bin", "pth"][usize::from(first % 4)];
    let _ = recur_deploy::import::import(&file(ext, rest), &candle_core::Device::Cpu);
});
