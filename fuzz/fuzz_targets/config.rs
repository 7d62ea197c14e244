#![no_main]
//! Job A configs: parsed, then every check a command makes.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(c) = recur_core::config::Config::from_yaml(s, "fuzz") {
            let _ = c.validate("fuzz");
            let _ = c.validate_model("fuzz");
            let _ = c.validate_training("fuzz");
        }
        let _ = recur_core::config::Config::from_saved_yaml(s, "fuzz");
    }
});
