#![no_main]
//! safetensors model files: parse, build the model, run one forward pass.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("/nonexistent/fuzz.safetensors");
    if let Ok(file) = actlab::model_io::parse_tensors(data, path) {
        if let Ok((model, _)) = actlab::model_io::model_from_file(&file, path, None) {
            if model.arch.sizes[0] <= 4096 && model.params.len() <= 1 << 22 {
                let mut ws = actlab::nn::Workspace::new(&model.arch, 1, false);
                let x = vec![0.5f32; model.arch.sizes[0]];
                model.forward(&mut ws, &x, 1, false);
            }
        }
    }
});
