#![no_main]
//! The IDX parser must never panic, whatever the bytes.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = actlab::data::idx::parse_images(data);
    let _ = actlab::data::idx::parse_labels(data);
});
