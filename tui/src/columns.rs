//! Plain-text tables for the command line (`raftkv kv status`, `raftkv kv
//! member list`): every column padded to its widest cell.

/// `rows` (the header first) as lines of cells two spaces apart, each
/// column as wide as its widest cell, without trailing blanks. Every row
/// has the header's number of cells.
pub fn format_columns(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
