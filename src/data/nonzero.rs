//! Each image's non-zero pixels, listed once per dataset.
//!
//! The sparse first layer needs every batch as lists of (pixel, value) pairs. Finding
//! them by scanning each image's 784 bytes costs a branch per non-zero pixel that the
//! CPU cannot predict, every time the image is drawn (once per epoch and evaluation);
//! listing them once, when the dataset is first used, turns a batch into copies.
//!
//! Shapes: image i's pixels are `cols[ends[i - 1]..ends[i]]` (ascending, < 784) with
//! their bytes in `bytes[...]` (never 0); 3 bytes per non-zero pixel, about 31 MB for
//! MNIST's 70,000 images (19% non-zero), built only for mostly-zero datasets.

/// The non-zero pixels of every image of a dataset, in pixel order.
#[derive(Debug, Clone, Default)]
pub struct NonZero {
    /// Where each image's pixels end in `cols` and `bytes`.
    ends: Vec<u32>,
    /// Pixel (column) of each non-zero value.
    cols: Vec<u16>,
    /// The byte at that pixel.
    bytes: Vec<u8>,
}

impl NonZero {
    /// The lists for `images` (rows of `width` bytes, `width` at most 65,536), or None
    /// when more than `max_share` of the bytes are non-zero (dense data gains nothing,
    /// and the lists would outgrow the images) or the count overflows the index.
    pub fn build(images: &[u8], width: usize, max_share: f32) -> Option<NonZero> {
        if width == 0 || width > usize::from(u16::MAX) + 1 {
            return None;
        }
        let nnz = count_nonzero(images);
        if nnz as f64 > max_share as f64 * images.len() as f64 || u32::try_from(nnz).is_err() {
            return None;
        }
        // Every non-zero word writes all eight candidates and advances past the
        // non-zero ones (no branch per pixel to mispredict): room for one word more.
        let mut z = NonZero {
            ends: Vec::with_capacity(images.len() / width),
            cols: vec![0; nnz + 8],
            bytes: vec![0; nnz + 8],
        };
        let mut len = 0;
        for row in images.chunks_exact(width) {
            len = z.push_row(row, len);
            z.ends.push(len as u32);
        }
        z.cols.truncate(len);
        z.bytes.truncate(len);
        Some(z)
    }

    /// List one row's non-zero bytes from `len` on, eight at a time (most MNIST words
    /// are all 0); returns the new length.
    fn push_row(&mut self, row: &[u8], mut len: usize) -> usize {
        for (i, chunk) in row.chunks(8).enumerate() {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            if u64::from_le_bytes(word) == 0 {
                continue;
            }
            let (cols, bytes) = (&mut self.cols[len..len + 8], &mut self.bytes[len..len + 8]);
            let mut k = 0;
            for (j, &b) in word.iter().enumerate() {
                cols[k] = (i * 8 + j) as u16;
                bytes[k] = b;
                k += usize::from(b != 0);
            }
            len += k;
        }
        len
    }

    /// Image `i`'s non-zero pixels and their bytes.
    #[inline]
    pub fn image(&self, i: usize) -> (&[u16], &[u8]) {
        let begin = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        let end = self.ends[i] as usize;
        (&self.cols[begin..end], &self.bytes[begin..end])
    }

    /// How many of image `i`'s pixels are non-zero.
    #[inline]
    pub fn count(&self, i: usize) -> usize {
        let begin = if i == 0 { 0 } else { self.ends[i - 1] };
        (self.ends[i] - begin) as usize
    }

    /// The lists as three arrays: where each image's entries end, their pixels and
    /// their bytes.
    pub fn parts(&self) -> (&[u32], &[u16], &[u8]) {
        (&self.ends, &self.cols, &self.bytes)
    }

    /// Number of images listed.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when no image is listed.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// How many bytes of `x` are not 0.
fn count_nonzero(x: &[u8]) -> usize {
    crate::avx2_or_portable!((x: &[u8]) -> usize {
        x.chunks(1 << 16)
            .map(|c| c.iter().map(|&b| u32::from(b != 0)).sum::<u32>() as usize)
            .sum()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_every_nonzero_pixel_in_order() {
        let width = 5;
        let images = [0, 3, 0, 0, 7, 0, 0, 0, 0, 0, 9, 1, 2, 0, 255];
        let z = NonZero::build(&images, width, 1.0).expect("built");
        assert_eq!(z.len(), 3);
        assert_eq!(z.image(0), (&[1u16, 4][..], &[3u8, 7][..]));
        assert_eq!(z.image(1), (&[][..], &[][..]));
        assert_eq!(z.image(2), (&[0u16, 1, 2, 4][..], &[9u8, 1, 2, 255][..]));
        assert_eq!((z.count(0), z.count(1), z.count(2)), (2, 0, 4));
        // 6 of 15 non-zero: refused above 40%.
        assert!(NonZero::build(&images, width, 0.39).is_none());
        assert!(NonZero::build(&images, width, 0.4).is_some());
    }
}
