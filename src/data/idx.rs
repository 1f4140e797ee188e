//! IDX file parsing (the MNIST container format), gzip or raw, detected by magic bytes.
//!
//! Layout: 2 zero bytes, a type byte (0x08 = u8), a dimension count, then each
//! dimension as a big-endian u32, then the data. Images have 3 dimensions
//! (count, rows, cols), labels 1 (count).

use std::io::Read;

/// What went wrong while reading an IDX file (the file name is added by the caller).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdxError {
    /// The file has no bytes.
    #[error("file is empty")]
    Empty,
    /// The gzip stream is broken.
    #[error("corrupt or truncated gzip stream ({0})")]
    Gzip(String),
    /// Fewer bytes than a header: (found, needed).
    #[error("header is truncated ({0} bytes; an IDX header needs {1})")]
    ShortHeader(usize, usize),
    /// Not an IDX file of unsigned bytes.
    #[error("bad magic number {0:#010x}: not an IDX file of unsigned bytes")]
    BadMagic(u32),
    /// The wrong number of dimensions for the kind of file.
    #[error("expected {expected} dimensions, found {found} ({what} file must have {expected})")]
    WrongDims {
        /// "images" or "labels".
        what: &'static str,
        /// Dimensions such a file has.
        expected: u8,
        /// Dimensions this file has.
        found: u8,
    },
    /// Images that are not 28x28.
    #[error("images are {rows}x{cols}; actlab needs 28x28")]
    WrongImageSize {
        /// Rows per image.
        rows: u32,
        /// Columns per image.
        cols: u32,
    },
    /// Less data than the header promises.
    #[error("data is truncated: header promises {expected} bytes, file has {found}")]
    Truncated {
        /// Bytes promised.
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// A header promising more data than actlab reads.
    #[error("header promises more than {0} bytes of data; not an MNIST-sized file")]
    TooLarge(u64),
    /// More data than the header promises.
    #[error("{0} trailing bytes after the data")]
    Trailing(usize),
    /// A label that is not a class.
    #[error("label {value} at index {index} is outside 0-9")]
    LabelOutOfRange {
        /// Position in the file.
        index: usize,
        /// The label.
        value: u8,
    },
}

/// Image side length every dataset here must have.
pub const SIDE: usize = 28;
/// Pixels per image.
pub const PIXELS: usize = SIDE * SIDE;

/// Largest decompressed file we accept; guards against gzip bombs.
const MAX_DECOMPRESSED: u64 = 512 * 1024 * 1024;

/// Decompress if the bytes start with the gzip magic, otherwise return them as they are.
pub fn maybe_gunzip(bytes: Vec<u8>) -> Result<Vec<u8>, IdxError> {
    if bytes.is_empty() {
        return Err(IdxError::Empty);
    }
    if bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b {
        let mut out = Vec::with_capacity(bytes.len() * 4);
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .take(MAX_DECOMPRESSED)
            .read_to_end(&mut out)
            .map_err(|e| IdxError::Gzip(e.to_string()))?;
        if out.is_empty() {
            return Err(IdxError::Empty);
        }
        Ok(out)
    } else {
        Ok(bytes)
    }
}

/// Read an IDX stream (gzip or raw) without trusting its length: at most the bytes
/// its header promises plus one (so trailing data is still detected), and never more
/// than the decompressed-size limit, whatever the source holds or however long it runs.
pub fn read_bounded(source: impl Read) -> Result<Vec<u8>, IdxError> {
    use std::io::BufRead;
    let mut src = std::io::BufReader::new(source);
    let gz = {
        let head = src.fill_buf().map_err(|e| IdxError::Gzip(e.to_string()))?;
        head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b
    };
    let mut r: Box<dyn Read> = if gz {
        Box::new(flate2::bufread::MultiGzDecoder::new(src))
    } else {
        Box::new(src)
    };
    let io = |e: std::io::Error| IdxError::Gzip(e.to_string());
    let mut out = Vec::new();
    (&mut r).take(4).read_to_end(&mut out).map_err(io)?;
    if out.is_empty() {
        return Err(IdxError::Empty);
    }
    if out.len() < 4 {
        return Ok(out);
    }
    let dims = out[3] as u64;
    (&mut r).take(4 * dims).read_to_end(&mut out).map_err(io)?;
    if (out.len() as u64) < 4 + 4 * dims {
        return Ok(out);
    }
    // An oversized promise reads nothing more: the parser names what is wrong.
    let promised = out[4..]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64)
        .try_fold(1u64, |a, d| a.checked_mul(d))
        .filter(|&n| n <= MAX_DECOMPRESSED);
    if let Some(n) = promised {
        r.take(n + 1).read_to_end(&mut out).map_err(io)?;
    }
    Ok(out)
}

fn header(bytes: &[u8], what: &'static str, ndims: u8) -> Result<Vec<u32>, IdxError> {
    let need = 4 + 4 * ndims as usize;
    if bytes.len() < 4 {
        return Err(IdxError::ShortHeader(bytes.len(), need));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 {
        return Err(IdxError::BadMagic(magic));
    }
    if bytes[3] != ndims {
        return Err(IdxError::WrongDims {
            what,
            expected: ndims,
            found: bytes[3],
        });
    }
    if bytes.len() < need {
        return Err(IdxError::ShortHeader(bytes.len(), need));
    }
    Ok((0..ndims as usize)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]])
        })
        .collect())
}

fn check_len(bytes: &[u8], start: usize, expected: usize) -> Result<(), IdxError> {
    let found = bytes.len() - start;
    if found < expected {
        return Err(IdxError::Truncated { expected, found });
    }
    if found > expected {
        return Err(IdxError::Trailing(found - expected));
    }
    Ok(())
}

/// Parse an (already decompressed) IDX image file into `count` images of 28x28 u8.
pub fn parse_images(bytes: &[u8]) -> Result<Vec<u8>, IdxError> {
    let dims = header(bytes, "an image", 3)?;
    let (n, rows, cols) = (dims[0] as usize, dims[1], dims[2]);
    if rows as usize != SIDE || cols as usize != SIDE {
        return Err(IdxError::WrongImageSize { rows, cols });
    }
    let expected = n
        .checked_mul(PIXELS)
        .filter(|&e| e as u64 <= MAX_DECOMPRESSED)
        .ok_or(IdxError::TooLarge(MAX_DECOMPRESSED))?;
    check_len(bytes, 16, expected)?;
    Ok(bytes[16..].to_vec())
}

/// Parse an (already decompressed) IDX label file; every label must be 0-9.
pub fn parse_labels(bytes: &[u8]) -> Result<Vec<u8>, IdxError> {
    let dims = header(bytes, "a label", 1)?;
    if dims[0] as u64 > MAX_DECOMPRESSED {
        return Err(IdxError::TooLarge(MAX_DECOMPRESSED));
    }
    check_len(bytes, 8, dims[0] as usize)?;
    let labels = bytes[8..].to_vec();
    if let Some((index, &value)) = labels.iter().enumerate().find(|(_, &v)| v > 9) {
        return Err(IdxError::LabelOutOfRange { index, value });
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_stream_that_never_ends_is_read_only_as_far_as_promised() {
        // Two labels promised, then zeros for ever: the read stops one byte past.
        let head: &[u8] = &[0, 0, 8, 1, 0, 0, 0, 2];
        let endless = head.chain(std::io::repeat(0));
        let bytes = read_bounded(endless).unwrap();
        assert_eq!(bytes.len(), 8 + 2 + 1);
        assert_eq!(parse_labels(&bytes), Err(IdxError::Trailing(1)));
        // The same through gzip.
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut e, head).unwrap();
        std::io::Write::write_all(&mut e, &vec![0u8; 1 << 20]).unwrap();
        let gz = e.finish().unwrap();
        assert_eq!(read_bounded(&gz[..]).unwrap().len(), 11);
    }

    fn images(n: u32) -> Vec<u8> {
        let mut b = vec![0, 0, 8, 3];
        for d in [n, 28, 28] {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend((0..n as usize * PIXELS).map(|i| i as u8));
        b
    }

    fn labels(v: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 8, 1];
        b.extend_from_slice(&(v.len() as u32).to_be_bytes());
        b.extend_from_slice(v);
        b
    }

    #[test]
    fn parses_valid_files() {
        assert_eq!(parse_images(&images(2)).unwrap().len(), 2 * PIXELS);
        assert_eq!(parse_labels(&labels(&[0, 9, 3])).unwrap(), vec![0, 9, 3]);
    }

    #[test]
    fn rejects_each_kind_of_damage() {
        assert_eq!(maybe_gunzip(vec![]), Err(IdxError::Empty));
        let mut bad = images(1);
        bad[2] = 0x09;
        assert!(matches!(parse_images(&bad), Err(IdxError::BadMagic(_))));
        assert!(matches!(
            parse_images(&labels(&[1])),
            Err(IdxError::WrongDims { .. })
        ));
        let mut wrong = images(1);
        wrong[15] = 27;
        assert!(matches!(
            parse_images(&wrong),
            Err(IdxError::WrongImageSize { rows: 28, cols: 27 })
        ));
        let full = images(2);
        assert!(matches!(
            parse_images(&full[..full.len() - 1]),
            Err(IdxError::Truncated { .. })
        ));
        let mut long = labels(&[1]);
        long.push(0);
        assert_eq!(parse_labels(&long), Err(IdxError::Trailing(1)));
        assert_eq!(
            parse_labels(&labels(&[1, 10])),
            Err(IdxError::LabelOutOfRange {
                index: 1,
                value: 10
            })
        );
        for cut in 0..16 {
            assert!(parse_images(&full[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn gzip_detected_by_magic_not_name() {
        use std::io::Write;
        let raw = labels(&[4, 2]);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&raw).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(maybe_gunzip(gz.clone()).unwrap(), raw);
        assert_eq!(maybe_gunzip(raw.clone()).unwrap(), raw);
        assert!(matches!(
            maybe_gunzip(gz[..gz.len() / 2].to_vec()),
            Err(IdxError::Gzip(_))
        ));
    }

    proptest! {
        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_images(&bytes);
            let _ = parse_labels(&bytes);
            let _ = maybe_gunzip(bytes);
        }

        #[test]
        fn never_panics_on_truncated_or_mutated_files(cut in 0usize..(16 + 2 * PIXELS), pos in 0usize..64, val in any::<u8>()) {
            let mut f = images(2);
            f.truncate(cut);
            if pos < f.len() { f[pos] = val; }
            let _ = parse_images(&f);
            let mut l = labels(&[1, 2, 3]);
            if pos < l.len() { l[pos] = val; }
            l.truncate(cut.min(l.len()));
            let _ = parse_labels(&l);
        }
    }
}
