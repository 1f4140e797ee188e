//! HTML building blocks shared by the report's sections and the demo page.

use super::table::Table;

/// Escape text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A table as HTML.
pub fn table_html(t: &Table) -> String {
    // The first `sticky` columns (rank, name) stay in view while the table scrolls.
    let sticky = |c: usize| {
        if c < t.sticky.min(2) {
            format!(" s{c}")
        } else {
            String::new()
        }
    };
    let mut out = format!(
        "<div class=\"wrap\"><table class=\"st{}\"><thead><tr>",
        t.sticky.min(2)
    );
    for (c, h) in t.headers.iter().enumerate() {
        out.push_str(&format!("<th class=\"h{}\">{}</th>", sticky(c), esc(h)));
    }
    out.push_str("</tr></thead><tbody>");
    for r in &t.rows {
        out.push_str("<tr>");
        for (c, (cell, a)) in r.iter().zip(&t.align).enumerate() {
            let side = if *a == super::table::Align::Left {
                "l"
            } else {
                "r"
            };
            out.push_str(&format!(
                "<td class=\"{side}{}\">{}</td>",
                sticky(c),
                esc(cell)
            ));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}

/// A chart with its caption.
pub fn figure(svg: &str, caption: &str) -> String {
    format!(
        "<figure>{svg}<figcaption>{}</figcaption></figure>",
        esc(caption)
    )
}
