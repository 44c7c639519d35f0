//! Printing for people (aligned tables, control characters escaped) and for
//! scripts (`--json`).

use std::io::Write;

/// Makes device-supplied text safe for a terminal: control characters and
/// escape sequences, and the invisible format characters that reorder or
/// hide text (bidirectional embeddings, overrides and isolates, zero-width
/// characters), are shown escaped (`\u{202e}`), never interpreted.
pub fn safe(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() || is_format(c) {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Unicode's format characters (general category Cf) that can make a
/// terminal show text other than what it is.
fn is_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}'                     // soft hyphen
        | '\u{0600}'..='\u{0605}' | '\u{061C}' | '\u{06DD}' | '\u{070F}' | '\u{08E2}'
        | '\u{180E}'                   // Mongolian vowel separator
        | '\u{200B}'..='\u{200F}'      // zero-width space, joiners, LRM, RLM
        | '\u{202A}'..='\u{202E}'      // bidi embeddings and overrides
        | '\u{2060}'..='\u{2064}'      // word joiner, invisible operators
        | '\u{2066}'..='\u{206F}'      // bidi isolates, deprecated format characters
        | '\u{FEFF}'                   // zero-width no-break space
        | '\u{FFF9}'..='\u{FFFB}'      // interlinear annotations
        | '\u{110BD}' | '\u{110CD}'
        | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0001}' | '\u{E0020}'..='\u{E007F}' // tags
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_format_characters_are_shown_escaped() {
        assert_eq!(safe("a\u{1b}[31mb"), "a\\u{1b}[31mb");
        assert_eq!(safe("evil\u{202E}gpj.exe"), "evil\\u{202e}gpj.exe");
        assert_eq!(safe("zero\u{200B}width"), "zero\\u{200b}width");
        assert_eq!(safe("iso\u{2067}late\u{2069}"), "iso\\u{2067}late\\u{2069}");
        assert_eq!(safe("bom\u{FEFF}"), "bom\\u{feff}");
        assert_eq!(safe("tag\u{E0041}"), "tag\\u{e0041}");
        // Ordinary text, including other scripts, is left alone.
        assert_eq!(safe("Grüße, 東京, שלום"), "Grüße, 東京, שלום");
    }
}
