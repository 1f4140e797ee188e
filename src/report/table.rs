//! A plain table rendered as aligned text (terminal) or Markdown.

/// Column alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text columns.
    Left,
    /// Number columns.
    Right,
}

/// Headers, alignment and rows of strings.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Column headers.
    pub headers: Vec<String>,
    /// Alignment per column.
    pub align: Vec<Align>,
    /// Cells, row by row.
    pub rows: Vec<Vec<String>>,
    /// Leading columns that stay in view when the HTML table scrolls sideways.
    pub sticky: usize,
    /// Columns a narrow terminal may leave out, the first given left out first.
    pub droppable: Vec<usize>,
}

/// The terminal width tables are fitted to unless `COLUMNS` asks for more.
pub const TEXT_WIDTH: usize = 120;

/// The narrowest a wrapped text column becomes.
const MIN_WRAP: usize = 24;

impl Table {
    /// A table with these headers; the first column is left-aligned, the rest right.
    pub fn new(headers: &[&str]) -> Self {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            align: (0..headers.len())
                .map(|i| if i == 0 { Align::Left } else { Align::Right })
                .collect(),
            rows: Vec::new(),
            sticky: 1,
            droppable: Vec::new(),
        }
    }

    /// Mark the columns headed `names` as ones a narrow terminal may leave out, in
    /// that order.
    pub fn droppable(&mut self, names: &[&str]) {
        self.droppable = names
            .iter()
            .filter_map(|n| self.headers.iter().position(|h| h == n))
            .collect();
    }

    /// Add a row (padded or cut to the header count).
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells = cells;
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    fn widths(&self) -> Vec<usize> {
        (0..self.headers.len())
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r[c].chars().count())
                    .chain([self.headers[c].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }

    fn line(&self, cells: &[String], widths: &[usize], sep: &str) -> String {
        let parts: Vec<String> = cells
            .iter()
            .zip(widths)
            .zip(&self.align)
            .map(|((c, &w), a)| match a {
                Align::Left => format!("{c:<w$}"),
                Align::Right => format!("{c:>w$}"),
            })
            .collect();
        parts.join(sep)
    }

    /// Aligned text with a rule under the header.
    pub fn to_text(&self) -> String {
        let w = self.widths();
        let mut out = self.line(&self.headers, &w, "  ").trim_end().to_string();
        out.push('\n');
        out.push_str(&"-".repeat(w.iter().sum::<usize>() + 2 * (w.len().saturating_sub(1))));
        out.push('\n');
        for r in &self.rows {
            out.push_str(self.line(r, &w, "  ").trim_end());
            out.push('\n');
        }
        out
    }

    /// Aligned text at most `max` characters wide where it can be: long text cells
    /// (variant specs) wrap onto continuation lines, then droppable columns are left out,
    /// named in a closing line.
    pub fn to_text_fit(&self, max: usize) -> String {
        let mut t = self.clone();
        let mut dropped = Vec::new();
        // Popped from the end: the first droppable column goes first.
        let mut order: Vec<usize> = self.droppable.iter().rev().copied().collect();
        loop {
            let wrapped = t.wrapped(max);
            if wrapped.width() <= max || order.is_empty() {
                let mut out = wrapped.to_text();
                if !dropped.is_empty() {
                    out.push_str(&format!(
                        "(left out at this width: {}; every column is in summary.md and summary.csv)\n",
                        dropped.join(", ")
                    ));
                }
                return out;
            }
            let Some(c) = order.pop() else { continue };
            dropped.push(self.headers[c].clone());
            t = t.without(&self.headers[c]);
        }
    }

    /// This table without the column headed `name`.
    fn without(&self, name: &str) -> Table {
        let Some(c) = self.headers.iter().position(|h| h == name) else {
            return self.clone();
        };
        let mut t = self.clone();
        t.headers.remove(c);
        t.align.remove(c);
        t.rows.iter_mut().for_each(|r| {
            r.remove(c);
        });
        t.droppable.clear();
        t
    }

    /// Width of the text rendering.
    fn width(&self) -> usize {
        let w = self.widths();
        w.iter().sum::<usize>() + 2 * w.len().saturating_sub(1)
    }

    /// The widest left-aligned column after the first wrapped so the table fits `max`
    /// (never below [`MIN_WRAP`]): its cells become several rows, the first holding the
    /// other columns.
    fn wrapped(&self, max: usize) -> Table {
        let w = self.widths();
        let total = self.width();
        let widest = (0..w.len())
            .filter(|&c| self.align[c] == Align::Left)
            .max_by_key(|&c| w[c]);
        let Some(c) = widest.filter(|_| total > max) else {
            return self.clone();
        };
        let limit = w[c].saturating_sub(total - max).max(MIN_WRAP);
        if limit >= w[c] {
            return self.clone();
        }
        let mut t = self.clone();
        t.rows.clear();
        for r in &self.rows {
            for (k, piece) in wrap(&r[c], limit).into_iter().enumerate() {
                let mut row = if k == 0 {
                    r.clone()
                } else {
                    vec![String::new(); r.len()]
                };
                row[c] = piece;
                t.rows.push(row);
            }
        }
        t
    }

    /// A GitHub-flavoured Markdown table.
    pub fn to_markdown(&self) -> String {
        let esc = |s: &str| s.replace('|', "\\|");
        let mut out = format!(
            "| {} |\n|{}|\n",
            self.headers
                .iter()
                .map(|h| esc(h))
                .collect::<Vec<_>>()
                .join(" | "),
            self.align
                .iter()
                .map(|a| if *a == Align::Left { "---" } else { "---:" })
                .collect::<Vec<_>>()
                .join("|")
        );
        for r in &self.rows {
            out.push_str(&format!(
                "| {} |\n",
                r.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")
            ));
        }
        out
    }
}

/// `s` cut into pieces of at most `width` characters, after a '/', ',', '+' or space where
/// there is one (a continuation starts with "  ").
pub fn wrap(s: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest: Vec<char> = s.chars().collect();
    let mut first = true;
    while !rest.is_empty() {
        let room = if first {
            width
        } else {
            width.saturating_sub(2).max(1)
        };
        if rest.len() <= room {
            out.push(piece(&rest, first));
            break;
        }
        let cut = rest[..room]
            .iter()
            .rposition(|ch| matches!(ch, '/' | ',' | ' ' | '+'))
            .filter(|&i| i > 0)
            .map_or(room, |i| i + 1);
        out.push(piece(&rest[..cut], first));
        rest = rest[cut..]
            .iter()
            .copied()
            .skip_while(|c| *c == ' ')
            .collect();
        first = false;
    }
    out
}

fn piece(chars: &[char], first: bool) -> String {
    let s: String = chars.iter().collect();
    if first {
        s.trim_end().to_string()
    } else {
        format!("  {}", s.trim_end())
    }
}

/// Quote a CSV field when it needs it.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_text_and_markdown() {
        let mut t = Table::new(&["name", "acc"]);
        t.row(vec!["relu".into(), "97.6".into()]);
        t.row(vec!["sigmoid|x".into(), "96.8".into()]);
        assert_eq!(
            t.to_text(),
            "name        acc\n---------------\nrelu       97.6\nsigmoid|x  96.8\n"
        );
        assert!(t.to_markdown().contains("| sigmoid\\|x | 96.8 |"));
        assert_eq!(csv_field("a,b"), "\"a,b\"");
    }

    #[test]
    fn wide_tables_wrap_then_drop_columns() {
        let mut t = Table::new(&["rank", "variant", "acc", "loss", "seconds"]);
        t.align[1] = Align::Left;
        t.droppable(&["seconds", "loss"]);
        let spec = "tanh/log_softmax/nll,lr=0.001,dropout=0.2,init=xavier";
        t.row(vec![
            "1".into(),
            spec.into(),
            "97.61% ± 0.05%".into(),
            "0.0812 ± 0.0010".into(),
            "12.34 ± 0.10".into(),
        ]);
        let wide = t.to_text_fit(200);
        assert_eq!(wide, t.to_text());
        let fit = t.to_text_fit(64);
        let table_lines = fit.lines().filter(|l| !l.starts_with('('));
        assert!(table_lines.clone().count() >= 4, "{fit}");
        assert!(
            table_lines.into_iter().all(|l| l.chars().count() <= 64),
            "{fit}"
        );
        assert!(
            fit.contains("97.61% ± 0.05%") && fit.contains("left out at this width: seconds"),
            "{fit}"
        );
        // Every character of the spec is still there, across the continuation lines.
        for piece in [
            "tanh/log_softmax/nll,",
            "lr=0.001,",
            "dropout=0.2,",
            "init=xavier",
        ] {
            assert!(fit.contains(piece), "{fit}");
        }
        assert_eq!(wrap("abc/def", 4), vec!["abc/", "  de", "  f"]);
    }
}
