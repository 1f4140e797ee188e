//! How variants look in charts: thirty distinct colour-and-dash styles, the legend
//! drawn beside (never over) the plots, and the SVG annotations the report's script
//! and the browser test use (`class="v<i>"` on a variant's marks, `plot-box` /
//! `legend-box` rectangles).

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::ReportError;

/// Colour-blind-friendly Okabe-Ito order, then three more; with three shades each and
/// a dash per shade, thirty variants get thirty different looks.
const BASE: [RGBColor; 10] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(120, 120, 120),
    RGBColor(40, 40, 40),
    RGBColor(117, 112, 179),
    RGBColor(140, 86, 75),
];

/// How many variants get a look of their own.
pub const STYLES: usize = 30;

/// A line's dash: solid, dashed or dotted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dash {
    /// Unbroken.
    Solid,
    /// Long dashes.
    Dashed,
    /// Short dots.
    Dotted,
}

/// Colour of the i-th variant: the base colour, then darker, then lighter.
pub fn color(i: usize) -> RGBColor {
    let RGBColor(r, g, b) = BASE[i % BASE.len()];
    match (i / BASE.len()) % 3 {
        0 => RGBColor(r, g, b),
        1 => {
            let d = |c: u8| (c as f64 * 0.62).round() as u8;
            RGBColor(d(r), d(g), d(b))
        }
        _ => {
            let l = |c: u8| (c as f64 + (255.0 - c as f64) * 0.45).round() as u8;
            RGBColor(l(r), l(g), l(b))
        }
    }
}

/// Dash of the i-th variant.
pub fn dash(i: usize) -> Dash {
    match (i / BASE.len()) % 3 {
        0 => Dash::Solid,
        1 => Dash::Dashed,
        _ => Dash::Dotted,
    }
}

/// "#0072B2", as plotters writes colours into SVG.
pub fn hex(c: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

/// The legend's height for `n` entries across `width` pixels.
pub fn legend_height(n: usize, width: u32) -> u32 {
    let rows = n.div_ceil(legend_columns(width)).max(1) as u32;
    rows * 18 + 14
}

fn legend_columns(width: u32) -> usize {
    ((width.saturating_sub(20)) / 210).max(1) as usize
}

/// Draw the legend: a swatch in each variant's colour and dash, then its name, in
/// columns across `area`. Returns the area's box.
pub fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(usize, String)],
) -> Result<PixelBox, ReportError>
where
    DB::ErrorType: 'static,
{
    let (w, _) = area.dim_in_pixel();
    let cols = legend_columns(w);
    let col_w = (w.saturating_sub(20) / cols as u32) as i32;
    for (k, (i, name)) in entries.iter().enumerate() {
        let (x, y) = (10 + (k % cols) as i32 * col_w, 10 + (k / cols) as i32 * 18);
        let c = color(*i);
        let pts = vec![(x, y + 6), (x + 26, y + 6)];
        match dash(*i) {
            Dash::Solid => area.draw(&PathElement::new(pts, c.stroke_width(2)))?,
            Dash::Dashed => area.draw(&DashedPathElement::new(pts, 6, 3, c.stroke_width(2)))?,
            Dash::Dotted => area.draw(&DashedPathElement::new(pts, 2, 3, c.stroke_width(2)))?,
        }
        let max_chars = ((col_w - 40) / 7).max(4) as usize;
        area.draw(&Text::new(
            short(name, max_chars),
            (x + 32, y),
            ("sans-serif", 12),
        ))?;
    }
    Ok(PixelBox::of(area, "legend-box"))
}

/// `s` cut to `n` characters with an ellipsis.
pub fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A named rectangle of a chart in pixels, written into the SVG so a browser can
/// check that plots and legends do not overlap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PixelBox {
    /// "plot-box" or "legend-box".
    pub class: &'static str,
    /// Left, top, width, height.
    pub rect: (i32, i32, u32, u32),
}

impl PixelBox {
    /// The box of a drawing area.
    pub fn of<DB: DrawingBackend, CT: plotters::coord::CoordTranslate>(
        area: &DrawingArea<DB, CT>,
        class: &'static str,
    ) -> Self {
        let (x, y) = area.get_base_pixel();
        let (w, h) = area.dim_in_pixel();
        PixelBox {
            class,
            rect: (x, y, w, h),
        }
    }

    /// True when the two boxes share any area.
    pub fn overlaps(&self, o: &PixelBox) -> bool {
        let (ax, ay, aw, ah) = self.rect;
        let (bx, by, bw, bh) = o.rect;
        ax < bx + bw as i32 && bx < ax + aw as i32 && ay < by + bh as i32 && by < ay + ah as i32
    }
}

/// `svg` with the boxes added as invisible rectangles, and each variant's marks (the
/// elements drawn in its colour) given `class="v<i>"` so a script can hide them.
pub fn annotate(svg: &str, boxes: &[PixelBox], variants: &[usize]) -> String {
    let marks: Vec<(usize, String, String)> = variants
        .iter()
        .map(|&i| {
            let c = hex(color(i));
            (i, format!("stroke=\"{c}\""), format!("fill=\"{c}\""))
        })
        .collect();
    let mut out = String::with_capacity(svg.len() + 64 * boxes.len());
    for (k, tag) in svg.split('<').enumerate() {
        if k > 0 {
            out.push('<');
        }
        let mine = marks
            .iter()
            .find(|(_, s, f)| !tag.starts_with('/') && (tag.contains(s) || tag.contains(f)));
        match (mine, tag.find(' ')) {
            (Some((i, _, _)), Some(at)) => {
                out.push_str(&tag[..at]);
                out.push_str(&format!(" class=\"v{i}\""));
                out.push_str(&tag[at..]);
            }
            _ => out.push_str(tag),
        }
    }
    let rects: String = boxes
        .iter()
        .map(|b| {
            format!(
                "<rect class=\"{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"none\"/>",
                b.class, b.rect.0, b.rect.1, b.rect.2, b.rect.3
            )
        })
        .collect();
    if let Some(at) = out.rfind("</svg>") {
        out.insert_str(at, &rects);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_variants_look_different() {
        let looks: std::collections::BTreeSet<String> = (0..STYLES)
            .map(|i| format!("{}{:?}", hex(color(i)), dash(i)))
            .collect();
        assert_eq!(looks.len(), STYLES);
        // Colours alone differ too: the report's script finds a variant by its colour.
        let colours: std::collections::BTreeSet<String> =
            (0..STYLES).map(|i| hex(color(i))).collect();
        assert_eq!(colours.len(), STYLES);
    }

    #[test]
    fn marks_get_their_variant_class_once() {
        let c = hex(color(3));
        let svg = format!(
            "<svg><polyline fill=\"{c}\" stroke=\"{c}\" points=\"1,2\"/><text>x</text></svg>"
        );
        let out = annotate(&svg, &[], &[3]);
        assert_eq!(out.matches("class=\"v3\"").count(), 1, "{out}");
        assert!(
            out.starts_with("<svg><polyline class=\"v3\" fill="),
            "{out}"
        );
    }

    #[test]
    fn boxes_overlap_only_when_they_share_area() {
        let a = PixelBox {
            class: "plot-box",
            rect: (0, 0, 10, 10),
        };
        let b = PixelBox {
            class: "legend-box",
            rect: (0, 10, 10, 5),
        };
        let c = PixelBox {
            class: "legend-box",
            rect: (5, 5, 10, 10),
        };
        assert!(!a.overlaps(&b) && a.overlaps(&c));
    }
}
