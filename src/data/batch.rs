//! Batches: gather rows by index into an f32 matrix, u8 images scaled to [0, 1],
//! float features copied as they are.

use super::{Dataset, Rows};

/// What each byte becomes: byte / 255 in f32, the division [`scale`] does.
pub static PIXEL_VALUES: [f32; 256] = {
    let mut t = [0.0f32; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i as f32 / 255.0;
        i += 1;
    }
    t
};

/// The labels of the images at `indices`.
pub fn labels(data: &Dataset, indices: &[u32], y: &mut [super::Label]) {
    for (&i, label) in indices.iter().zip(y.iter_mut()) {
        *label = data.labels[i as usize];
    }
}

/// u8 -> f32 / 255 (the same f32 division PyTorch's `ToTensor` does), vectorised
/// for AVX2 where the CPU has it.
fn scale(src: &[u8], dst: &mut [f32]) {
    crate::simd_dispatch!((src: &[u8], dst: &mut [f32]) {
        for (o, &p) in dst.iter_mut().zip(src) {
            *o = p as f32 / 255.0;
        }
    })
}

/// Fill `x` ([n, width]) with the contiguous rows `start..start + n`.
pub fn images_range(data: &Dataset, start: usize, x: &mut [f32]) {
    let w = data.width();
    let range = start * w..start * w + x.len();
    match data.rows() {
        Rows::Bytes(b) => scale(&b[range], x),
        Rows::Floats(f) => x.copy_from_slice(&f[range]),
    }
}

/// Fill `x` ([indices.len(), width]) with the rows at `indices`.
pub fn images(data: &Dataset, indices: &[u32], x: &mut [f32]) {
    let w = data.width();
    debug_assert_eq!(x.len(), indices.len() * w);
    for (&i, row) in indices.iter().zip(x.chunks_exact_mut(w)) {
        let at = i as usize * w..(i as usize + 1) * w;
        match data.rows() {
            Rows::Bytes(b) => scale(&b[at], row),
            Rows::Floats(f) => row.copy_from_slice(&f[at]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::PIXELS;

    #[test]
    fn gathers_scaled_rows_in_index_order() {
        let mut bytes = vec![0u8; 3 * PIXELS];
        bytes[PIXELS] = 255;
        bytes[2 * PIXELS + 5] = 51;
        let d = Dataset::new(bytes, vec![7, 8, 9]);
        let mut x = vec![-1.0; 2 * PIXELS];
        let mut y = [0; 2];
        images(&d, &[2, 1], &mut x);
        labels(&d, &[2, 1], &mut y);
        assert_eq!(y, [9, 8]);
        assert_eq!(x[5], 51.0 / 255.0);
        assert_eq!(x[PIXELS], 1.0);
        assert_eq!(x.iter().filter(|&&v| v != 0.0).count(), 2);
        let f = Dataset::from_rows(Rows::Floats(vec![0.5, -2.0, 3.0, 1e9]), 2, vec![0, 1]);
        let mut x = [0.0f32; 4];
        images(&f, &[1, 0], &mut x);
        assert_eq!(x, [3.0, 1e9, 0.5, -2.0]);
        images_range(&f, 1, &mut x[..2]);
        assert_eq!(x[..2], [3.0, 1e9]);
        for b in 0..=255u8 {
            let mut one = [0.0f32];
            scale(&[b], &mut one);
            assert_eq!(PIXEL_VALUES[b as usize], one[0]);
        }
    }
}
