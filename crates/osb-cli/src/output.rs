//! Writing results to stdout: aligned tables for people, JSON for scripts.
//! A closed pipe (`osb instances | head -1`) ends the command quietly.

use std::io::Write;

use clap::ValueEnum;
use serde::Serialize;

use crate::error::{CliError, CliResult, ErrorKind};

/// The `--output` format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns.
    Table,
    /// Pretty-printed JSON.
    Json,
}

/// Rows of text under a header, printed with aligned columns.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|title| title.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// Renders the table; the last column is not padded.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self
            .header
            .iter()
            .map(|title| title.chars().count())
            .collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut text = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let last = row.len().saturating_sub(1);
            for (index, cell) in row.iter().enumerate() {
                text.push_str(cell);
                if index < last {
                    let padding = widths[index] - cell.chars().count() + 2;
                    text.extend(std::iter::repeat_n(' ', padding));
                }
            }
            text.push('\n');
        }
        text
    }
}

/// Key and value lines, for `show` and `fetch` in table form.
pub fn render_fields(fields: &[(&str, String)]) -> String {
    let width = fields.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    fields
        .iter()
        .map(|(key, value)| format!("{key:width$}  {value}\n"))
        .collect()
}

/// Writes text to stdout.
pub fn print(text: &str) -> CliResult<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|error| {
            if error.kind() == std::io::ErrorKind::BrokenPipe {
                CliError {
                    kind: ErrorKind::BrokenPipe,
                    message: String::new(),
                    hint: None,
                }
            } else {
                CliError::usage(format!("could not write to stdout: {error}"))
            }
        })
}

/// Writes a value as pretty JSON with a final newline.
pub fn print_json(value: &impl Serialize) -> CliResult<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|error| CliError::usage(format!("could not encode JSON: {error}")))?;
    print(&format!("{text}\n"))
}

/// Returns the text of a cell, or `-` for a missing or empty value.
pub fn or_dash(value: Option<&str>) -> String {
    value
        .filter(|text| !text.is_empty())
        .unwrap_or("-")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_aligned() {
        let mut table = Table::new(&["name", "plan"]);
        table.push(vec!["orders-db".into(), "small".into()]);
        table.push(vec!["x".into(), "large".into()]);
        assert_eq!(
            table.render(),
            "name       plan\norders-db  small\nx          large\n"
        );
    }

    #[test]
    fn fields_aligned() {
        let text = render_fields(&[("name", "a".into()), ("plan_id", "b".into())]);
        assert_eq!(text, "name     a\nplan_id  b\n");
    }
}
