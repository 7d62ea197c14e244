#![no_main]
//! Job B (LVM) configs.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(c) = recur_core::lvm_config::LvmConfig::from_yaml(s, "fuzz") {
            let _ = c.validate("fuzz");
            let _ = c.training.check_counts("fuzz");
        }
    }
});
