//! `actlab activations`: each function with its formula, derivative, range, where it
//! saturates, and a small plot of f and f' (text for the terminal, SVG for reports).

use crate::nn::activation::NAMES;
use crate::nn::formula::Formulas;
use crate::nn::Activation;

/// x range of the plots.
const X_RANGE: (f32, f32) = (-4.0, 4.0);

/// f and f' sampled at `n` points over the plot range.
pub fn samples(a: &Activation, n: usize) -> Vec<(f32, f32, f32)> {
    (0..n)
        .map(|i| {
            let x = X_RANGE.0 + (X_RANGE.1 - X_RANGE.0) * i as f32 / (n - 1) as f32;
            let y = a.value(x);
            (x, y, a.derivative(x, y))
        })
        .collect()
}

/// A text plot, `w` columns by `h` rows: f as '●', f' as '·', axes as lines.
pub fn text_plot(a: &Activation, w: usize, h: usize) -> String {
    let pts = samples(a, w);
    let (mut lo, mut hi) = (-1.0f32, 1.0f32);
    for &(_, y, d) in &pts {
        lo = lo.min(y).min(d);
        hi = hi.max(y).max(d);
    }
    let hi = hi.min(4.0);
    let lo = lo.max(-2.0);
    let row = |v: f32| -> Option<usize> {
        if v < lo || v > hi {
            return None;
        }
        Some(((hi - v) / (hi - lo) * (h - 1) as f32).round() as usize)
    };
    let mut grid = vec![vec![' '; w]; h];
    if let Some(r0) = row(0.0) {
        for c in grid[r0].iter_mut() {
            *c = '─';
        }
    }
    let c0 = ((0.0 - X_RANGE.0) / (X_RANGE.1 - X_RANGE.0) * (w - 1) as f32).round() as usize;
    for r in grid.iter_mut() {
        r[c0] = if r[c0] == '─' { '┼' } else { '│' };
    }
    for (c, &(_, y, d)) in pts.iter().enumerate() {
        if let Some(r) = row(d) {
            grid[r][c] = '·';
        }
        if let Some(r) = row(y) {
            grid[r][c] = '●';
        }
    }
    let mut out = String::new();
    for (i, r) in grid.iter().enumerate() {
        let label = if i == 0 {
            format!("{hi:>5.1} ")
        } else if i == h - 1 {
            format!("{lo:>5.1} ")
        } else {
            "      ".to_string()
        };
        out.push_str(&label);
        out.extend(r.iter());
        out.push('\n');
    }
    out.push_str(&format!(
        "      x from {} to {}   ● f(x)   · f'(x)\n",
        X_RANGE.0, X_RANGE.1
    ));
    out
}

/// The full description of one activation, as printed by `actlab activations NAME`.
pub fn describe(a: &Activation, plot: bool) -> String {
    let i = a.info();
    let mut s = format!(
        "{}\n  f(x)   = {}\n  f'(x)  = {}\n  range  = {}\n  saturation: {}\n",
        a, i.formula, i.derivative, i.range, i.saturation
    );
    if plot {
        s.push_str(&text_plot(a, 57, 13));
    }
    s
}

/// All built-in activations and those `defined` (one line each, or in full with plots).
pub fn describe_all(full: bool, defined: &Formulas) -> String {
    let mut s = String::new();
    for n in NAMES.iter().copied().chain(defined.names()) {
        let a = Activation::parse_with(n, defined).unwrap_or(Activation::Identity);
        if full {
            s.push_str(&describe(&a, true));
            s.push('\n');
        } else {
            let i = a.info();
            s.push_str(&format!(
                "{:<11} f(x) = {:<45} range {:<13} {}\n",
                n, i.formula, i.range, i.saturation
            ));
        }
    }
    s
}

/// A small SVG of f and f' for the HTML report.
pub fn svg(a: &Activation) -> String {
    let (w, h) = (220.0f32, 150.0f32);
    let pts = samples(a, 81);
    let (lo, hi) = (-1.5f32, 2.0f32);
    let px = |x: f32| (x - X_RANGE.0) / (X_RANGE.1 - X_RANGE.0) * (w - 20.0) + 10.0;
    let py = |y: f32| (hi - y.clamp(lo, hi)) / (hi - lo) * (h - 30.0) + 10.0;
    let path = |f: &dyn Fn(&(f32, f32, f32)) -> f32| -> String {
        pts.iter()
            .enumerate()
            .map(|(i, p)| {
                format!(
                    "{}{:.1},{:.1}",
                    if i == 0 { "M" } else { "L" },
                    px(p.0),
                    py(f(p))
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\
         <line x1=\"10\" y1=\"{y0:.1}\" x2=\"{x2}\" y2=\"{y0:.1}\" stroke=\"#bbb\"/>\
         <line x1=\"{x0:.1}\" y1=\"10\" x2=\"{x0:.1}\" y2=\"{y2}\" stroke=\"#bbb\"/>\
         <path d=\"{f}\" fill=\"none\" stroke=\"#0072b2\" stroke-width=\"2\"/>\
         <path d=\"{d}\" fill=\"none\" stroke=\"#d55e00\" stroke-width=\"1.5\" stroke-dasharray=\"4 3\"/>\
         <text x=\"12\" y=\"{ty}\" font-size=\"11\" font-family=\"sans-serif\">{name}: f (solid), f' (dashed), x in [-4, 4]</text></svg>",
        y0 = py(0.0),
        x0 = px(0.0),
        x2 = w - 10.0,
        y2 = h - 20.0,
        f = path(&|p| p.1),
        d = path(&|p| p.2),
        ty = h - 5.0,
        name = a,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmoid_derivative_peaks_at_a_quarter() {
        let max = samples(&Activation::Sigmoid, 801)
            .iter()
            .map(|p| p.2)
            .fold(0.0f32, f32::max);
        assert!((max - 0.25).abs() < 1e-4);
        let text = describe(&Activation::Sigmoid, true);
        assert!(text.contains("at most 0.25") && text.contains('●') && text.contains('·'));
        let all = describe_all(false, &Formulas::default());
        assert!(all.lines().count() >= NAMES.len(), "{all}");
        for (line, name) in all.lines().zip(NAMES) {
            assert!(line.starts_with(&format!("{name} ")), "{line}");
        }
        assert!(svg(&Activation::Relu).starts_with("<svg"));
    }
}
