#![no_main]
//! gzip detection + decompression + IDX parsing, as the loader runs them.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(plain) = actlab::data::idx::maybe_gunzip(data.to_vec()) {
        let _ = actlab::data::idx::parse_images(&plain);
        let _ = actlab::data::idx::parse_labels(&plain);
    }
});
