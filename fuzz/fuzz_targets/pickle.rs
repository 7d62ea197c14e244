#![no_main]
//! The pickle scanner that vets a torch.save file before anything is built.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = recur_core::pickle_guard::scan(data, Default::default());
});
