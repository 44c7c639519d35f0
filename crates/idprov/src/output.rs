//! Printing for people (aligned tables, control characters escaped) and for
//! scripts (`--json`).

use std::io::Write;

/// Makes device-supplied text safe for a terminal: control characters and
/// escape sequences are shown escaped, never interpreted.
pub fn safe(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Prints rows under a header with aligned columns. A row has exactly as
/// many cells as the header has names: a column without a header does not
/// compile.
pub fn table<const N: usize>(header: [&str; N], rows: impl IntoIterator<Item = [String; N]>) {
    let mut widths: [usize; N] = header.map(|h| h.chars().count());
    let rows: Vec<[String; N]> = rows.into_iter().map(|r| r.map(|c| safe(&c))).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; N]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == N {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.trim_end().to_owned()
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line(header));
    for row in &rows {
        let _ = writeln!(out, "{}", line(row.each_ref().map(String::as_str)));
    }
}

/// Prints `key: value` pairs aligned.
pub fn fields(pairs: &[(&str, String)]) {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut out = std::io::stdout().lock();
    for (k, v) in pairs {
        let _ = writeln!(out, "{:<width$} {}", format!("{k}:"), safe(v));
    }
}

/// Prints a value as JSON on one line.
pub fn json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string(value) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: encoding JSON output: {e}"),
    }
}
