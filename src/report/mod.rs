//! Reports: tables for the terminal, and summary.json / summary.csv / summary.md (and a
//! tuned comparison's grid.csv) on disk.

pub mod activations;
pub mod chart_style;
pub mod charts;
pub mod demo;
pub mod depth;
pub mod exercise;
pub mod forest;
pub mod grade;
pub mod html;
pub mod markup;
pub mod runs_csv;
pub mod summary;
pub mod table;
pub mod tuning;

use std::path::Path;

use crate::experiment::ReportKind;
use crate::store::{write_file, StoreError};
use summary::ExperimentSummary;

/// A report that could not be drawn or written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A report file.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The chart library failed.
    #[error("cannot draw a chart: {0}")]
    Draw(String),
}

impl<E: std::error::Error + Send + Sync> From<plotters::drawing::DrawingAreaErrorKind<E>>
    for ReportError
{
    fn from(e: plotters::drawing::DrawingAreaErrorKind<E>) -> Self {
        ReportError::Draw(e.to_string())
    }
}

/// "97.53%".
pub fn pct(v: f64) -> String {
    format!("{:.2}%", v * 100.0)
}

/// A plain number with `digits` decimals, or in scientific notation ("3.1e-13") when
/// that many decimals would show it as zero, so a vanishing gradient stays visible;
/// never "-0.00".
pub fn num(v: f64, digits: usize) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let tiny = 0.5 * 10f64.powi(-(digits as i32));
    if v != 0.0 && v.abs() < tiny {
        return format!("{v:.1e}");
    }
    let s = format!("{:.*}", digits, v);
    // A value that rounds to zero prints without a minus sign.
    if s.trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        s.trim_start_matches('-').to_string()
    } else {
        s
    }
}

/// The table this summary's report kind prints.
pub fn table(s: &ExperimentSummary) -> table::Table {
    match s.report {
        ReportKind::Exercise => exercise::table(s),
        ReportKind::Compare => s.compare_table(),
    }
}

/// Lines under the table: verdicts (exercise) and notes.
pub fn lines(s: &ExperimentSummary) -> Vec<String> {
    let mut lines = Vec::new();
    if s.report == ReportKind::Exercise {
        lines.extend(exercise::verdicts(s));
    }
    lines.extend(s.notes());
    lines
}

/// The width terminal tables are fitted to: [`table::TEXT_WIDTH`], or `COLUMNS` when
/// the terminal says it is wider.
fn text_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .map_or(table::TEXT_WIDTH, |c| c.max(table::TEXT_WIDTH))
}

/// The summary as terminal text: the table (fitted to the terminal width), then
/// verdicts (exercise) and notes.
pub fn render_text(s: &ExperimentSummary) -> String {
    let mut out = table(s).to_text_fit(text_width());
    let lines = lines(s);
    if !lines.is_empty() {
        out.push('\n');
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
    }
    out
}

/// The same content as Markdown.
pub fn render_markdown(s: &ExperimentSummary, command: &str) -> String {
    let mut out = format!("# {}\n\n", s.name);
    if !command.is_empty() {
        out.push_str(&format!("Produced by `{command}`.\n\n"));
    }
    out.push_str(&table(s).to_markdown());
    let lines = lines(s);
    if !lines.is_empty() {
        out.push('\n');
        for l in lines {
            out.push_str(&format!("- {l}\n"));
        }
    }
    out
}

/// Write summary.json, summary.csv, summary.md and runs.csv (every run's epochs) into
/// `dir`, each atomically.
pub fn write_summary(
    dir: &Path,
    s: &ExperimentSummary,
    records: &[crate::store::records::RunRecord],
    command: &str,
) -> Result<(), ReportError> {
    let json = serde_json::to_string_pretty(s).map_err(|e| ReportError::Draw(e.to_string()))?;
    let mut files = vec![
        ("summary.json", json),
        ("summary.csv", s.to_csv()),
        ("summary.md", render_markdown(s, command)),
        ("runs.csv", runs_csv::runs_csv(records)),
    ];
    if !s.grid.is_empty() {
        files.push(("grid.csv", s.grid_csv()));
    }
    for (i, (name, text)) in files.into_iter().enumerate() {
        write_file(&dir.join(name), text.as_bytes())?;
        crate::faults::at("summary", i + 1, None);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_keep_tiny_values_visible() {
        assert_eq!(super::num(3.1e-13, 4), "3.1e-13");
        assert_eq!(super::num(0.08123, 4), "0.0812");
        assert_eq!(super::num(-0.0, 2), "0.00");
        assert_eq!(super::num(-0.001, 2), "-1.0e-3");
        assert_eq!(super::num(0.0, 4), "0.0000");
        assert_eq!(super::num(-0.004, 2), "-4.0e-3");
    }
}
