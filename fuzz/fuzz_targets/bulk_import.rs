//! Bulk-registration file readers (CSV, JSON array, NDJSON) on arbitrary bytes.
//!
//! Checks, per format: no panic while opening the file or consuming every
//! row; row indices are 0, 1, 2, … (so strictly increasing); every `Ok` row
//! has a 1-based line number (>= 1) and the lines of `Ok` rows never go
//! backwards; no row line lies past the last physical line of the file.
#![no_main]

use idprov_client::import::{Format, read_rows};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Physical lines: 1 + number of '\n' (a row cannot start after that).
    let max_line = 1 + data.iter().filter(|&&b| b == b'\n').count() as u64;
    for format in [Format::Csv, Format::JsonArray, Format::Ndjson] {
        let Ok(rows) = read_rows(std::io::Cursor::new(data.to_vec()), format) else {
            continue;
        };
        let mut expected_index = 0u64;
        let mut last_ok_line = 0u64;
        for row in rows {
            assert_eq!(row.index, expected_index, "{format:?}: row index");
            expected_index += 1;
            assert!(
                row.line <= max_line,
                "{format:?}: row {} at line {} of a {max_line}-line file",
                row.index,
                row.line
            );
            if let Ok(content) = &row.content {
                assert!(row.line >= 1, "{format:?}: Ok row {} has line 0", row.index);
                assert!(
                    row.line >= last_ok_line,
                    "{format:?}: Ok row {} at line {} after a row at line {last_ok_line}",
                    row.index,
                    row.line
                );
                last_ok_line = row.line;
                if let Some(secret) = &content.secret {
                    assert!(!secret.is_empty(), "{format:?}: Some(\"\") secret");
                }
            }
            // A runaway reader would never end; no input of n bytes can
            // hold more than n + 1 rows.
            assert!(expected_index <= data.len() as u64 + 1, "{format:?}: too many rows");
        }
    }
});
