#![no_main]
//! recur's own safetensors checkpoints, header and checked load.
mod common;
use common::file;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let p = file("safetensors", data);
    let _ = recur_core::checkpoint::read_header(&p);
    let spec = [recur_core::checkpoint::TensorSpec::new("w", &[2, 3])];
    let _ = recur_core::checkpoint::load_checked(
        &p,
        &serde_json::Value::Null,
        &spec,
        &candle_core::Device::Cpu,
    );
});
