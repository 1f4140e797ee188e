//! Turning arbitrary digit images into MNIST-style 28x28 inputs, the way MNIST itself
//! was made: grayscale, white digit on black, cropped, scaled to fit 20x20, and placed
//! in 28x28 with its centre of mass at the centre.

use std::path::Path;

/// An image or index list that cannot be used, in one line with the fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PredictError(pub String);

type Result<T> = std::result::Result<T, PredictError>;
use image::{imageops::FilterType, GrayImage};

use crate::data::{PIXELS, SIDE};

/// Side of the box the digit is scaled to fit, as in MNIST.
const BOX: u32 = 20;

/// An image prepared for the network, with how it was changed.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// 28x28 pixels, row-major, 0 = background.
    pub pixels: Vec<u8>,
    /// True if the image was inverted (light background).
    pub inverted: bool,
    /// True if the image was already a 28x28 MNIST-style image and used as it is.
    pub as_is: bool,
    /// False if no pixel stands out from the background: any prediction is a guess.
    pub ink: bool,
}

/// Mean of the outermost rows and columns: the background level.
fn border_mean(img: &GrayImage) -> f64 {
    let (w, h) = img.dimensions();
    let mut sum = 0u64;
    let mut n = 0u64;
    for (x, y, p) in img.enumerate_pixels() {
        if x == 0 || y == 0 || x + 1 == w || y + 1 == h {
            sum += p.0[0] as u64;
            n += 1;
        }
    }
    if n == 0 {
        0.0
    } else {
        sum as f64 / n as f64
    }
}

/// Shrink by averaging each output pixel's exact footprint in the source (like
/// OpenCV's INTER_AREA): no blur beyond the footprint, no aliasing.
fn area_resize(src: &GrayImage, nw: u32, nh: u32) -> GrayImage {
    let (w, h) = src.dimensions();
    // Weights of source index i for output index o along an axis of n -> m pixels.
    fn spans(n: u32, m: u32) -> Vec<Vec<(usize, f32)>> {
        let scale = n as f64 / m as f64;
        (0..m)
            .map(|o| {
                let (a, b) = (o as f64 * scale, (o + 1) as f64 * scale);
                let mut v = Vec::new();
                let mut i = a.floor() as usize;
                while (i as f64) < b && i < n as usize {
                    let overlap = (b.min(i as f64 + 1.0) - a.max(i as f64)).max(0.0);
                    if overlap > 0.0 {
                        v.push((i, (overlap / scale) as f32));
                    }
                    i += 1;
                }
                v
            })
            .collect()
    }
    let xs = spans(w, nw);
    let ys = spans(h, nh);
    let raw = src.as_raw();
    let mut rows = vec![0.0f32; h as usize * nw as usize];
    for y in 0..h as usize {
        for (ox, span) in xs.iter().enumerate() {
            rows[y * nw as usize + ox] = span
                .iter()
                .map(|&(i, wgt)| raw[y * w as usize + i] as f32 * wgt)
                .sum();
        }
    }
    GrayImage::from_fn(nw, nh, |x, y| {
        let v: f32 = ys[y as usize]
            .iter()
            .map(|&(i, wgt)| rows[i * nw as usize + x as usize] * wgt)
            .sum();
        image::Luma([v.round().clamp(0.0, 255.0) as u8])
    })
}

/// Prepare a grayscale image (any size) as MNIST input.
pub fn prepare(img: &GrayImage) -> Prepared {
    let inverted = border_mean(img) > 127.0;
    let mut g = img.clone();
    if inverted {
        image::imageops::invert(&mut g);
    }
    let (w, h) = g.dimensions();
    if w as usize == SIDE && h as usize == SIDE {
        // Already MNIST-shaped: changing it would only blur it.
        let ink = g.pixels().any(|p| p.0[0] > 0);
        return Prepared {
            pixels: g.into_raw(),
            inverted,
            as_is: true,
            ink,
        };
    }
    let bbox = ink_box(&g);
    let pixels = match bbox {
        Some((x0, y0, x1, y1)) => {
            let crop = image::imageops::crop_imm(&g, x0, y0, x1 - x0 + 1, y1 - y0 + 1).to_image();
            centre(&fit_box(&crop))
        }
        None => vec![0u8; PIXELS],
    };
    Prepared {
        pixels,
        inverted,
        as_is: false,
        ink: bbox.is_some(),
    }
}

/// The bounding box (x0, y0, x1, y1) of the ink: pixels clearly above the background
/// (ignores paper texture and JPEG noise); `None` for an image without ink.
fn ink_box(g: &GrayImage) -> Option<(u32, u32, u32, u32)> {
    let (w, h) = g.dimensions();
    let max = g.pixels().map(|p| p.0[0]).max().unwrap_or(0);
    if max == 0 {
        return None;
    }
    let threshold = (max as f64 * 0.1).max(10.0) as u8;
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for (x, y, p) in g.enumerate_pixels() {
        if p.0[0] > threshold {
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
    }
    (x1 >= x0 && y1 >= y0).then_some((x0, y0, x1, y1))
}

/// Scale a cropped digit to fit the 20x20 box, keeping its aspect ratio
/// (area-averaged when shrinking, as MNIST's digits were).
fn fit_box(crop: &GrayImage) -> GrayImage {
    let (cw, ch) = crop.dimensions();
    let scale = BOX as f64 / cw.max(ch) as f64;
    let nw = ((cw as f64 * scale).round() as u32).clamp(1, BOX);
    let nh = ((ch as f64 * scale).round() as u32).clamp(1, BOX);
    if nw <= cw && nh <= ch {
        area_resize(crop, nw, nh)
    } else {
        image::imageops::resize(crop, nw, nh, FilterType::Triangle)
    }
}

/// Place `small` in a 28x28 image with its centre of mass at MNIST's centre.
fn centre(small: &GrayImage) -> Vec<u8> {
    let (nw, nh) = small.dimensions();
    let (mut sx, mut sy, mut sm) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y, p) in small.enumerate_pixels() {
        let v = p.0[0] as f64;
        sx += v * (x as f64 + 0.5);
        sy += v * (y as f64 + 0.5);
        sm += v;
    }
    let (cx, cy) = if sm > 0.0 {
        (sx / sm, sy / sm)
    } else {
        (nw as f64 / 2.0, nh as f64 / 2.0)
    };
    // MNIST centred on pixel index 14 (continuous 14.5), not on the geometric centre 14.0.
    let half = SIDE as f64 / 2.0 + 0.5;
    let ox = ((half - cx).round() as i64).clamp(0, (SIDE as u32 - nw) as i64) as usize;
    let oy = ((half - cy).round() as i64).clamp(0, (SIDE as u32 - nh) as i64) as usize;
    let mut out = vec![0u8; PIXELS];
    for (x, y, p) in small.enumerate_pixels() {
        out[(oy + y as usize) * SIDE + ox + x as usize] = p.0[0];
    }
    out
}

/// Largest image file `predict` reads, in bytes: a photo of a digit is far smaller,
/// and a device or endless file is not read until memory runs out.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Most pixels an image may decode to (e.g. 6000 x 6000): a small file may claim a
/// huge canvas (a 480 KB PNG of 20000 x 20000), which is refused before decoding.
pub const MAX_PIXELS: u64 = 36_000_000;

/// The bytes of an image file, at most [`MAX_FILE_BYTES`] of them.
fn read_capped(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let cannot = |e: std::io::Error| PredictError(format!("{}: cannot read: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(cannot)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(PredictError(format!(
            "{}: larger than {} MB; pass an image of a digit (a photo of a few MB is plenty)",
            path.display(),
            MAX_FILE_BYTES >> 20
        )));
    }
    Ok(bytes)
}

/// Decode `bytes` within [`MAX_PIXELS`] and the memory that takes, turned upright as
/// its EXIF orientation says (a phone's sideways-stored JPEG).
fn decode_upright(bytes: &[u8]) -> std::result::Result<image::DynamicImage, String> {
    use image::ImageDecoder;
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 8);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(format!(
            "{w} x {h} pixels is more than the {} million accepted; scale the image down",
            MAX_PIXELS / 1_000_000
        ));
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = image::DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
    img.apply_orientation(orientation);
    Ok(img)
}

/// Read an image file (PNG, JPEG, PGM/PNM) as grayscale, upright.
pub fn load_gray(path: &Path) -> Result<GrayImage> {
    let bytes = read_capped(path)?;
    if bytes.starts_with(&[0xff, 0xd8]) && !bytes.trim_ascii_end().ends_with(&[0xff, 0xd9]) {
        // The decoder would fill the missing part with grey and predict on that.
        return Err(PredictError(format!(
            "{}: the JPEG is truncated (no end-of-image marker); pass the whole file",
            path.display()
        )));
    }
    let img = decode_upright(&bytes).map_err(|e| {
        PredictError(format!(
            "{}: not a readable PNG, JPEG or PGM image ({e}); pass an image of a digit",
            path.display()
        ))
    })?;
    Ok(flatten_alpha(&img.to_luma_alpha8()))
}

/// Composite a grey + alpha image onto its paper: transparent pixels take the colour
/// opposite to the ink (white behind dark ink, black behind light ink), as a drawing
/// canvas's export shows on screen. Without this, a black digit on a transparent
/// background reads as black on black.
pub fn flatten_alpha(img: &image::GrayAlphaImage) -> GrayImage {
    let (mut ink, mut weight) = (0.0f64, 0.0f64);
    for p in img.pixels() {
        let a = p.0[1] as f64 / 255.0;
        ink += a * p.0[0] as f64;
        weight += a;
    }
    let paper = if weight > 0.0 && ink / weight < 128.0 {
        255.0
    } else {
        0.0
    };
    GrayImage::from_fn(img.width(), img.height(), |x, y| {
        let [l, a] = img.get_pixel(x, y).0;
        let a = a as f64 / 255.0;
        image::Luma([(a * l as f64 + (1.0 - a) * paper).round() as u8])
    })
}

/// Parse "0..20" (end exclusive), "5" or "1,4,9" into test-set indices.
pub fn parse_indices(s: &str, n: usize) -> Result<Vec<usize>> {
    let err = || {
        PredictError(format!(
            "--test-index '{s}': expected N, A..B or a comma list, with indices below {n}"
        ))
    };
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once("..") {
            let a: usize = a.trim().parse().map_err(|_| err())?;
            let b: usize = b.trim().parse().map_err(|_| err())?;
            if a > b {
                return Err(PredictError(format!(
                    "--test-index '{s}': the range {a}..{b} is reversed; write it {b}..{a} (end exclusive)"
                )));
            }
            if a == b {
                return Err(PredictError(format!(
                    "--test-index '{s}': the range {a}..{b} is empty (the end is exclusive); e.g. {a}..{}",
                    a + 1
                )));
            }
            // Bounds first: a range is only listed once it is known to fit the set.
            if b > n {
                return Err(err());
            }
            out.extend(a..b);
        } else {
            out.push(part.parse().map_err(|_| err())?);
        }
        // A list of ranges repeated over and over is bounded too.
        if out.len() > 16 * n.max(1) {
            return Err(err());
        }
    }
    if out.is_empty() || out.iter().any(|&i| i >= n) {
        return Err(err());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::ImageEncoder;

    fn digit_on(bg: u8, fg: u8, w: u32, h: u32) -> GrayImage {
        let mut img = GrayImage::from_pixel(w, h, image::Luma([bg]));
        // A thick vertical bar in the left third: a "1".
        for y in h / 4..3 * h / 4 {
            for x in w / 4..w / 4 + w / 10 + 1 {
                img.put_pixel(x, y, image::Luma([fg]));
            }
        }
        img
    }

    #[test]
    fn light_backgrounds_are_inverted_and_digits_centred() {
        let p = prepare(&digit_on(250, 10, 200, 120));
        assert!(p.inverted && !p.as_is);
        // Fits 20 pixels tall, centred near (14, 14).
        let rows: Vec<usize> = (0..SIDE)
            .filter(|&y| (0..SIDE).any(|x| p.pixels[y * SIDE + x] > 0))
            .collect();
        assert!(rows.len() >= 19 && rows.len() <= 21, "{rows:?}");
        let (mut sx, mut sm) = (0.0, 0.0);
        for y in 0..SIDE {
            for x in 0..SIDE {
                let v = p.pixels[y * SIDE + x] as f64;
                sx += v * (x as f64 + 0.5);
                sm += v;
            }
        }
        assert!((sx / sm - 14.0).abs() <= 1.0, "centre x {}", sx / sm);
    }

    #[test]
    fn mnist_shaped_images_pass_unchanged() {
        let img = digit_on(0, 255, 28, 28);
        let p = prepare(&img);
        assert!(p.as_is && !p.inverted);
        assert_eq!(p.pixels, img.into_raw());
        let blank = prepare(&GrayImage::new(50, 50));
        assert!(blank.pixels.iter().all(|&v| v == 0));
    }

    #[test]
    fn index_lists() {
        assert_eq!(parse_indices("0..3", 10).unwrap(), vec![0, 1, 2]);
        assert_eq!(parse_indices("4,7", 10).unwrap(), vec![4, 7]);
        assert!(parse_indices("5..5", 10).is_err());
        let reversed = parse_indices("5..3", 10).unwrap_err().to_string();
        assert!(reversed.contains("reversed; write it 3..5"), "{reversed}");
        assert!(parse_indices("10", 10).is_err());
        assert!(parse_indices("x", 10).is_err());
        assert!(parse_indices("0..18446744073709551615", 10).is_err());
        assert!(parse_indices("0..1000000000", 10).is_err());
        assert!(parse_indices(&"0..10,".repeat(100), 10).is_err());
    }

    /// `img` as a JPEG, with an EXIF orientation tag when given.
    fn jpeg(img: &GrayImage, orientation: Option<u16>) -> Vec<u8> {
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95)
            .encode_image(img)
            .unwrap();
        let Some(o) = orientation else {
            return out;
        };
        // APP1 "Exif": a big-endian TIFF header and one IFD entry, 0x0112 = o.
        let mut exif = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01".to_vec();
        exif.extend_from_slice(&o.to_be_bytes());
        exif.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        let mut app1 = vec![0xff, 0xe1];
        app1.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
        app1.extend_from_slice(&exif);
        out.splice(2..2, app1);
        out
    }

    fn temp_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("actlab-{}-{name}", std::process::id()));
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn exif_orientation_is_applied() {
        let sideways = digit_on(0, 255, 60, 30);
        let plain = temp_file("plain.jpg", &jpeg(&sideways, None));
        let tagged = temp_file("tagged.jpg", &jpeg(&sideways, Some(6)));
        let (a, b) = (load_gray(&plain).unwrap(), load_gray(&tagged).unwrap());
        assert_eq!(a.dimensions(), (60, 30));
        assert_eq!(b, image::imageops::rotate90(&a));
        for p in [plain, tagged] {
            std::fs::remove_file(p).unwrap();
        }
    }

    #[test]
    fn huge_canvases_and_endless_files_are_refused() {
        // A 1x1 PNG whose header claims 20000 x 20000 pixels.
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(&[0u8], 1, 1, image::ExtendedColorType::L8)
            .unwrap();
        png[16..20].copy_from_slice(&20_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&20_000u32.to_be_bytes());
        let crc = crc32fast::hash(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        let p = temp_file("huge.png", &png);
        let e = load_gray(&p).unwrap_err().to_string();
        std::fs::remove_file(p).unwrap();
        assert!(
            e.contains("20000 x 20000") && e.contains("36 million"),
            "{e}"
        );
        let e = load_gray(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(e.contains("larger than 64 MB"), "{e}");
    }
}
