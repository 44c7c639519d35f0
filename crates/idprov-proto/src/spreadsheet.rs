//! Cells of the CSV files idprov writes (exports with secrets, generated
//! secret lists), safe to open in a spreadsheet and read back unchanged.
//!
//! A spreadsheet runs a cell that starts with `=`, `+`, `-`, `@`, a tab or
//! a carriage return as a formula (CSV injection). A leading apostrophe is
//! the spreadsheets' own mark for "this is text": they show the cell
//! without it and never evaluate it. So a cell that would start a formula
//! is written with an apostrophe before it, and so is a cell that already
//! starts with an apostrophe followed by one of those characters or by
//! another apostrophe — and reading removes exactly one apostrophe from a
//! cell that starts with one followed by one of them. Then every value
//! reads back as written (`unescape(escape(s)) == s`), and only a
//! hand-written cell beginning with such a pair loses its first apostrophe.

use alloc::borrow::Cow;
use alloc::format;

/// Characters that make a spreadsheet cell a formula.
const FORMULA: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

fn marked(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next() == Some('\'')
        && chars
            .next()
            .is_some_and(|c| c == '\'' || FORMULA.contains(&c))
}

/// The cell to write for `value`.
pub fn escape(value: &str) -> Cow<'_, str> {
    let starts_formula = value.chars().next().is_some_and(|c| FORMULA.contains(&c));
    if starts_formula || marked(value) {
        Cow::Owned(format!("'{value}"))
    } else {
        Cow::Borrowed(value)
    }
}

/// The value a cell read from a CSV file stands for.
pub fn unescape(cell: &str) -> &str {
    if marked(cell) { &cell[1..] } else { cell }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_marked_as_text_and_read_back() {
        for (value, cell) in [
            ("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"),
            ("+1", "'+1"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("'=x", "''=x"),
            ("''", "'''"),
            ("'plain", "'plain"),
            ("plain", "plain"),
            ("", ""),
            ("a=b", "a=b"),
        ] {
            assert_eq!(escape(value), cell, "{value:?}");
            assert_eq!(unescape(cell), value, "{cell:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn every_value_round_trips(s in ".{0,12}") {
            let written = escape(&s);
            proptest::prop_assert_eq!(unescape(&written), s.as_str());
            proptest::prop_assert!(!written.starts_with(['=', '+', '-', '@', '\t', '\r']));
        }
    }
}
