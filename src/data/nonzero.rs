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
        // Two halves of the images on two threads (a one-off of a few tens of
        // milliseconds for MNIST, which every run of the process then shares), each
        // into its own region with room for one word more (see `list_rows`).
        let rows = images.len() / width;
        let half = if rows >= PARALLEL_FROM {
            rows / 2
        } else {
            rows
        };
        let (a, b) = images.split_at(half * width);
        let nnz_a = count_nonzero(a);
        let mut z = NonZero {
            ends: Vec::with_capacity(rows),
            cols: vec![0; nnz + 16],
            bytes: vec![0; nnz + 16],
        };
        let (cols_a, cols_b) = z.cols.split_at_mut(nnz_a + 8);
        let (bytes_a, bytes_b) = z.bytes.split_at_mut(nnz_a + 8);
        let mut ends_b = Vec::with_capacity(rows - half);
        std::thread::scope(|scope| {
            if !b.is_empty() {
                scope.spawn(|| list_rows(b, width, cols_b, bytes_b, &mut ends_b));
            }
            list_rows(a, width, cols_a, bytes_a, &mut z.ends);
        });
        z.cols.copy_within(nnz_a + 8..nnz + 8, nnz_a);
        z.bytes.copy_within(nnz_a + 8..nnz + 8, nnz_a);
        z.ends.extend(ends_b.iter().map(|&e| e + nnz_a as u32));
        z.cols.truncate(nnz);
        z.bytes.truncate(nnz);
        Some(z)
    }

    /// A view of the lists, as the sparse first layer reads them.
    pub fn lists(&self) -> RowLists<'_> {
        RowLists {
            ends: &self.ends,
            cols: &self.cols,
            bytes: &self.bytes,
        }
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

/// A view of every row's non-zero entries: row i's columns are
/// `cols[ends[i - 1]..ends[i]]`, ascending, each with its byte in `bytes`.
#[derive(Debug, Clone, Copy)]
pub struct RowLists<'a> {
    /// Where each row's entries end.
    pub ends: &'a [u32],
    /// Column of each non-zero input.
    pub cols: &'a [u16],
    /// Its byte (a value through the reader's table).
    pub bytes: &'a [u8],
}

impl<'a> RowLists<'a> {
    /// Row i's entries: `begin..end` in `cols` and `bytes`.
    #[inline(always)]
    pub fn range(&self, i: usize) -> std::ops::Range<usize> {
        let begin = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        begin..self.ends[i] as usize
    }

    /// Row i's columns and bytes.
    #[inline]
    pub fn row(&self, i: usize) -> (&'a [u16], &'a [u8]) {
        let r = self.range(i);
        (&self.cols[r.clone()], &self.bytes[r])
    }
}

/// Images from which the lists are made on two threads.
const PARALLEL_FROM: usize = 8192;

/// List the non-zero bytes of `images` (rows of `width`) into `cols` and `bytes` from
/// 0, pushing where each row ends. A word with any non-zero byte writes all eight
/// candidates and advances past the non-zero ones (no branch per pixel to
/// mispredict), so the slices need room for one word beyond the count.
fn list_rows(images: &[u8], width: usize, cols: &mut [u16], bytes: &mut [u8], ends: &mut Vec<u32>) {
    let mut len = 0;
    for row in images.chunks_exact(width) {
        for (i, chunk) in row.chunks(8).enumerate() {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            if u64::from_le_bytes(word) == 0 {
                continue;
            }
            let (c, b) = (&mut cols[len..len + 8], &mut bytes[len..len + 8]);
            let mut k = 0;
            for (j, &v) in word.iter().enumerate() {
                c[k] = (i * 8 + j) as u16;
                b[k] = v;
                k += usize::from(v != 0);
            }
            len += k;
        }
        ends.push(len as u32);
    }
}

/// How many bytes of `x` are not 0.
fn count_nonzero(x: &[u8]) -> usize {
    crate::simd_dispatch!((x: &[u8]) -> usize {
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
        assert_eq!(z.lists().row(0), (&[1u16, 4][..], &[3u8, 7][..]));
        assert_eq!(z.lists().row(1), (&[][..], &[][..]));
        assert_eq!(
            z.lists().row(2),
            (&[0u16, 1, 2, 4][..], &[9u8, 1, 2, 255][..])
        );
        assert_eq!(
            (
                z.lists().row(0).0.len(),
                z.lists().row(1).0.len(),
                z.lists().row(2).0.len()
            ),
            (2, 0, 4)
        );
        // 6 of 15 non-zero: refused above 40%.
        assert!(NonZero::build(&images, width, 0.39).is_none());
        assert!(NonZero::build(&images, width, 0.4).is_some());
    }

    /// Enough images to be listed in two halves on two threads: every image's list is
    /// what a plain scan finds, across the seam too.
    #[test]
    fn two_halves_list_what_a_plain_scan_finds() {
        let (width, n) = (30, PARALLEL_FROM + 3);
        let images: Vec<u8> = (0..n * width)
            .map(|i| {
                if (i * 7 + i / 13) % 5 == 0 {
                    (i % 255 + 1) as u8
                } else {
                    0
                }
            })
            .collect();
        let z = NonZero::build(&images, width, 1.0).expect("built");
        assert_eq!(z.len(), n);
        for (i, row) in images.chunks(width).enumerate() {
            let want: (Vec<u16>, Vec<u8>) = row
                .iter()
                .enumerate()
                .filter(|p| *p.1 != 0)
                .map(|(c, &b)| (c as u16, b))
                .unzip();
            let (cols, bytes) = z.lists().row(i);
            assert_eq!((cols, bytes), (&want.0[..], &want.1[..]), "image {i}");
        }
    }
}
