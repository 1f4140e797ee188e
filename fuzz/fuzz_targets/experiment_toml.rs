#![no_main]
//! Experiment files: any text gives an experiment or an error, never a panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(exp) = actlab::experiment::Experiment::from_toml(text, "fuzz.toml") {
            let _ = exp.jobs();
        }
    }
});
