//! Reading bulk-registration files: CSV (header
//! `deviceID,secret[,validUntil[,pakeOnly]]`, or `deviceID[,pakeOnly]` for
//! generated secrets), a JSON array, or NDJSON (keys `deviceID`,
//! `oobSecret`, `validUntil`, `pakeOnly`).
//!
//! Every row carries the physical 1-based line of the file where it starts
//! (the CSV header is line 1) and its 0-based index among the rows, so that
//! problems are reported where a person looks for them. Rows are yielded as
//! they are read; a malformed row is an `Err` row, never the end of the file.
//!
//! The command-line tool reads the files it uploads with it, and the server
//! reads a CSV posted to its import endpoint (the web page's upload) with
//! the same code, so a file is read the same way wherever it is imported.
//! This crate only reads: it validates no device ID or secret (the server
//! does, with the protocol crate's rules), and does no network I/O.

use std::io::{BufRead, Read};

/// File formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated with a header line.
    Csv,
    /// A JSON array of objects.
    JsonArray,
    /// One JSON object per line.
    Ndjson,
}

impl Format {
    /// The format a file name suggests (`.csv`, `.json`, `.ndjson`/`.jsonl`).
    pub fn of_path(path: &std::path::Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::JsonArray),
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            _ => None,
        }
    }

    /// Parses `csv`, `json`, `ndjson`.
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::JsonArray),
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            _ => None,
        }
    }
}

/// One row of a file.
#[derive(Clone, PartialEq, Eq)]
pub struct FileRow {
    /// 0-based position among the rows (for a JSON array, the element index).
    pub index: u64,
    /// Physical 1-based line where the row starts.
    pub line: u64,
    /// The row, or why it could not be read.
    pub content: Result<RowContent, String>,
}

impl std::fmt::Debug for FileRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileRow")
            .field("index", &self.index)
            .field("line", &self.line)
            .field("ok", &self.content.is_ok())
            .finish()
    }
}

/// A row's fields as written (validated by the server).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct RowContent {
    /// The device ID.
    pub device_id: String,
    /// The secret; `None` when the row has none (`--generate` fills it in).
    pub secret: Option<String>,
    /// RFC 3339, or empty for the default lifetime.
    pub valid_until: String,
    /// Registered for idprov v2 only (`pakeOnly`: `true`; `false` or empty
    /// for a default registration).
    pub pake_only: bool,
}

impl std::fmt::Debug for RowContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowContent")
            .field("device_id", &self.device_id)
            .field("has_secret", &self.secret.is_some())
            .field("valid_until", &self.valid_until)
            .field("pake_only", &self.pake_only)
            .finish()
    }
}

/// Why a file could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportFileError {
    /// Reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The CSV header is not `deviceID[,secret[,validUntil[,pakeOnly]]]`.
    #[error(
        "line 1: the CSV header must be deviceID,secret[,validUntil[,pakeOnly]] (or deviceID[,pakeOnly], for --generate) (found {0:?})"
    )]
    Header(String),
    /// The JSON array is malformed around this line.
    #[error("line {0}: {1}")]
    Json(u64, String),
}

/// Reads every row of a file.
pub fn read_rows(
    reader: impl Read + Send + 'static,
    format: Format,
) -> Result<Box<dyn Iterator<Item = FileRow> + Send>, ImportFileError> {
    match format {
        Format::Csv => csv_rows(reader),
        Format::Ndjson => Ok(Box::new(ndjson_rows(std::io::BufReader::new(reader)))),
        Format::JsonArray => {
            let mut bytes = Vec::new();
            let mut reader = reader;
            reader.read_to_end(&mut bytes)?;
            Ok(Box::new(json_array_rows(&bytes)?.into_iter()))
        }
    }
}

/// A reader that turns every CRLF into LF. The csv crate numbers the rows
/// of a CRLF file one line too low (it counts a line when it meets the LF,
/// which is after it has taken the CR as the end of the record), and
/// spreadsheets save CRLF. It also ends the input with an LF when it lacks
/// one, so that every record ends with a line end (see [`start_line`]). No
/// valid value holds a line break, so nothing a row could register changes.
struct CrlfToLf<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    /// A CR taken, not yet known to start a CRLF (it may end a chunk).
    pending_cr: bool,
    /// The last byte given out, if any.
    last: Option<u8>,
}

impl<R: Read> CrlfToLf<R> {
    fn new(inner: R) -> Self {
        CrlfToLf {
            inner,
            buf: vec![0; 64 * 1024].into_boxed_slice(),
            pos: 0,
            len: 0,
            pending_cr: false,
            last: None,
        }
    }
}

impl<R: Read> Read for CrlfToLf<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if self.pos == self.len {
                let n = self.inner.read(&mut self.buf)?;
                if n == 0 {
                    // A CR at the very end is a line end too.
                    self.pending_cr = false;
                    if self.last.is_some_and(|b| b != b'\n') {
                        self.last = Some(b'\n');
                        out[0] = b'\n';
                        return Ok(1);
                    }
                    return Ok(0);
                }
                (self.pos, self.len) = (0, n);
            }
            let mut written = 0;
            while written < out.len() && self.pos < self.len {
                let b = self.buf[self.pos];
                if std::mem::take(&mut self.pending_cr) && b != b'\n' {
                    // A lone CR stays; `b` is looked at again.
                    out[written] = b'\r';
                    written += 1;
                    continue;
                }
                self.pos += 1;
                if b == b'\r' {
                    self.pending_cr = true;
                    continue;
                }
                out[written] = b;
                written += 1;
            }
            if written > 0 {
                self.last = Some(out[written - 1]);
                return Ok(written);
            }
        }
    }
}

fn csv_rows(
    reader: impl Read + Send + 'static,
) -> Result<Box<dyn Iterator<Item = FileRow> + Send>, ImportFileError> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::None)
        .from_reader(CrlfToLf::new(reader));
    let header = r
        .headers()
        .map_err(|e| ImportFileError::Header(e.to_string()))?
        .clone();
    let names: Vec<&str> = header.iter().map(str::trim).collect();
    // The columns a row may have, and where its cells are (secret,
    // validUntil, pakeOnly): a list of device IDs alone is for
    // `--generate`, which makes every secret.
    let (columns, cells): (&[usize], [Option<usize>; 3]) = match names.as_slice() {
        ["deviceID"] => (&[1], [None, None, None]),
        ["deviceID", "pakeOnly"] => (&[2, 1], [None, None, Some(1)]),
        ["deviceID", "secret"] => (&[2], [Some(1), None, None]),
        ["deviceID", "secret", "validUntil"] => (&[3, 2], [Some(1), Some(2), None]),
        ["deviceID", "secret", "validUntil", "pakeOnly"] => {
            (&[4, 3, 2], [Some(1), Some(2), Some(3)])
        }
        _ => return Err(ImportFileError::Header(names.join(","))),
    };
    let mut index = 0u64;
    let mut done = false;
    Ok(Box::new(std::iter::from_fn(move || {
        if done {
            return None;
        }
        let i = index;
        let mut rec = csv::StringRecord::new();
        let read = r.read_record(&mut rec);
        index += 1;
        Some(match read {
            Ok(false) => {
                done = true;
                return None;
            }
            Err(e) => {
                // A broken row (an unclosed quote takes the rest of the
                // file; unreadable input ends it): reported, then the end.
                done = !matches!(e.kind(), csv::ErrorKind::Utf8 { .. });
                FileRow {
                    index: i,
                    line: e.position().map_or(0, |p| p.line()),
                    content: Err(format!("not a CSV row: {e}")),
                }
            }
            Ok(true) => {
                let line = start_line(&r, &rec);
                let content = if !columns.contains(&rec.len()) {
                    Err(format!(
                        "expected {} columns, found {}",
                        columns[0],
                        rec.len()
                    ))
                } else {
                    // Cells marked as text for a spreadsheet (an export's
                    // `'=…`) read back as the value that was written.
                    let cell = |i: Option<usize>| {
                        idprov_proto::spreadsheet::unescape(
                            i.and_then(|i| rec.get(i)).unwrap_or_default(),
                        )
                    };
                    let [secret, valid_until, pake_only] = cells.map(cell);
                    pake_only_cell(pake_only).map(|pake_only| RowContent {
                        device_id: cell(Some(0)).to_owned(),
                        secret: (!secret.is_empty()).then(|| secret.to_owned()),
                        valid_until: valid_until.to_owned(),
                        pake_only,
                    })
                };
                FileRow {
                    index: i,
                    line,
                    content,
                }
            }
        })
    })))
}

/// The line where the record just read starts. The csv crate's own
/// record position is where it began looking for the record, before the
/// blank lines it skips, so it is counted back from where the record ends:
/// the reader stands on the line after the record's line end,
/// which [`CrlfToLf`] makes sure every record has.
fn start_line<R: Read>(r: &csv::Reader<R>, rec: &csv::StringRecord) -> u64 {
    let end = r.position().line().saturating_sub(1);
    let inner: usize = rec.iter().map(|f| f.matches('\n').count()).sum();
    end.saturating_sub(inner as u64).max(1)
}

/// A CSV `pakeOnly` cell: `true`, or `false` or empty.
fn pake_only_cell(text: &str) -> Result<bool, String> {
    match text.trim() {
        "true" => Ok(true),
        "false" | "" => Ok(false),
        _ => Err("field \"pakeOnly\": true, false or empty".into()),
    }
}

/// Reads one JSON object row: `deviceID` (required), `oobSecret` and
/// `validUntil` (optional strings), `pakeOnly` (optional boolean); unknown
/// keys are ignored.
fn object_row(value: serde_json::Value) -> Result<RowContent, String> {
    let serde_json::Value::Object(map) = value else {
        return Err("expected a JSON object".into());
    };
    let string = |key: &str| -> Result<Option<String>, String> {
        match map.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("field {key:?} must be a string")),
        }
    };
    let pake_only = match map.get("pakeOnly") {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Bool(b)) => *b,
        Some(_) => return Err("field \"pakeOnly\" must be true or false".into()),
    };
    Ok(RowContent {
        device_id: string("deviceID")?.ok_or("missing field \"deviceID\"")?,
        secret: string("oobSecret")?.filter(|s| !s.is_empty()),
        valid_until: string("validUntil")?.unwrap_or_default(),
        pake_only,
    })
}

fn ndjson_rows(reader: impl BufRead + Send + 'static) -> impl Iterator<Item = FileRow> + Send {
    let mut index = 0u64;
    reader
        .split(b'\n')
        .enumerate()
        .filter_map(move |(n, line)| {
            let line_no = n as u64 + 1;
            let content = match line {
                Err(e) => Err(format!("unreadable: {e}")),
                Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => return None,
                Ok(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes)
                    .map_err(|e| format!("not JSON: {e}"))
                    .and_then(object_row),
            };
            let i = index;
            index += 1;
            Some(FileRow {
                index: i,
                line: line_no,
                content,
            })
        })
}

/// Splits a top-level JSON array into its elements, remembering where each
/// starts, then parses each element on its own (so one bad element does not
/// hide the others, and each is reported at its own line).
fn json_array_rows(bytes: &[u8]) -> Result<Vec<FileRow>, ImportFileError> {
    let mut line = 1u64;
    let mut i = 0usize;
    let skip_ws = |i: &mut usize, line: &mut u64| {
        while *i < bytes.len() && bytes[*i].is_ascii_whitespace() {
            if bytes[*i] == b'\n' {
                *line += 1;
            }
            *i += 1;
        }
    };
    skip_ws(&mut i, &mut line);
    if bytes.get(i) != Some(&b'[') {
        return Err(ImportFileError::Json(line, "expected a JSON array".into()));
    }
    i += 1;
    let mut rows = Vec::new();
    loop {
        skip_ws(&mut i, &mut line);
        match bytes.get(i) {
            None => {
                return Err(ImportFileError::Json(
                    line,
                    "the array is not closed".into(),
                ));
            }
            Some(b']') if rows.is_empty() => break,
            _ => {}
        }
        let (start, start_line) = (i, line);
        let (mut depth, mut in_string, mut escaped) = (0i32, false, false);
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'\n' {
                line += 1;
            }
            if in_string {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
            } else {
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' if depth > 0 => depth -= 1,
                    b',' | b']' if depth == 0 => break,
                    _ => {}
                }
            }
            i += 1;
        }
        let element = &bytes[start..i];
        let index = rows.len() as u64;
        let content = serde_json::from_slice::<serde_json::Value>(element)
            .map_err(|e| format!("element {index}: not JSON: {e}"))
            .and_then(object_row);
        rows.push(FileRow {
            index,
            line: start_line,
            content,
        });
        match bytes.get(i) {
            Some(b',') => i += 1,
            Some(b']') => break,
            _ => {
                return Err(ImportFileError::Json(
                    line,
                    "the array is not closed".into(),
                ));
            }
        }
    }
    i += 1;
    skip_ws(&mut i, &mut line);
    if i < bytes.len() {
        return Err(ImportFileError::Json(line, "text after the array".into()));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &'static str, f: Format) -> Vec<FileRow> {
        read_rows(text.as_bytes(), f).expect("readable").collect()
    }

    #[test]
    fn csv_lines_count_the_header() {
        let r = rows(
            "deviceID,secret,validUntil\nd1,s1,\n\"d2\nx\",s2,2030-01-01T00:00:00Z\nd3\n",
            Format::Csv,
        );
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].line, r[1].line, r[2].line), (2, 3, 5));
        assert_eq!(
            r[0].content.as_ref().expect("ok").secret.as_deref(),
            Some("s1")
        );
        assert!(r[2].content.is_err(), "one column");
        assert!(matches!(
            read_rows("id,secret\n".as_bytes(), Format::Csv),
            Err(ImportFileError::Header(_))
        ));
        let no_secret = rows("deviceID,secret\nd1,\n", Format::Csv);
        assert_eq!(no_secret[0].content.as_ref().expect("ok").secret, None);
        // A list of device IDs alone, for --generate.
        let ids = rows("deviceID\nd1\nd2,extra\n", Format::Csv);
        let only = ids[0].content.as_ref().expect("ok");
        assert_eq!(
            (only.device_id.as_str(), only.secret.as_deref()),
            ("d1", None)
        );
        assert_eq!(
            ids[1].content.as_ref().unwrap_err(),
            "expected 1 columns, found 2"
        );
    }

    #[test]
    fn a_pake_only_column_marks_v2_only_rows() {
        let r = rows(
            "deviceID,secret,validUntil,pakeOnly\na,s1,,true\nb,s2,,false\nc,s3\nd,s4,,yes\n",
            Format::Csv,
        );
        let pake = |i: usize| r[i].content.as_ref().map(|c| c.pake_only);
        assert_eq!(
            (pake(0), pake(1), pake(2)),
            (Ok(true), Ok(false), Ok(false))
        );
        assert_eq!(
            pake(3).unwrap_err(),
            "field \"pakeOnly\": true, false or empty"
        );
        // A list of device IDs for --generate, some for v2 only.
        let ids = rows("deviceID,pakeOnly\nd1,true\nd2\n", Format::Csv);
        let c = ids[0].content.as_ref().expect("ok");
        assert_eq!((c.device_id.as_str(), c.secret.as_deref()), ("d1", None));
        assert!(c.pake_only);
        assert!(!ids[1].content.as_ref().expect("ok").pake_only);
        // JSON and NDJSON: a boolean.
        let r = rows(
            "{\"deviceID\":\"a\",\"oobSecret\":\"s\",\"pakeOnly\":true}\n{\"deviceID\":\"b\",\"pakeOnly\":\"true\"}\n",
            Format::Ndjson,
        );
        assert!(r[0].content.as_ref().expect("ok").pake_only);
        assert!(r[1].content.is_err());
    }

    #[test]
    fn crlf_files_count_lines_as_lf_files_do() {
        // As a spreadsheet saves it: a byte-order mark, CRLF, a quoted
        // comma, a blank line.
        let text = "\u{feff}deviceID,secret\r\na,b\r\n\"c\",\"d, e\"\r\n\r\nf,g\r\n";
        // Blank lines are skipped but counted; the last row may lack its
        // line end.
        for (text, lines) in [
            ("deviceID,secret\na,b\n\n\nc,d\ne,f\n", vec![2, 5, 6]),
            ("deviceID,secret\na,b\n\nc,\"x\ny\"\ne,f", vec![2, 4, 6]),
            ("deviceID,secret\r\n\r\na,b\r\nc,d", vec![3, 4]),
        ] {
            let r = rows(text, Format::Csv);
            assert_eq!(
                r.iter().map(|r| r.line).collect::<Vec<_>>(),
                lines,
                "{text:?}"
            );
        }
        let r = rows(text, Format::Csv);
        assert_eq!(
            r.iter().map(|r| r.line).collect::<Vec<_>>(),
            vec![2, 3, 5],
            "{r:?}"
        );
        let c = r[1].content.as_ref().expect("ok");
        assert_eq!(
            (c.device_id.as_str(), c.secret.as_deref()),
            ("c", Some("d, e"))
        );
        assert_eq!(r[0].content.as_ref().expect("ok").device_id, "a");
        // A CRLF split across reads is still one line end; a lone CR
        // stays; the end gets a line end.
        for (first, second, normalized) in [
            (&b"x\r"[..], &b"\ny\rz\r"[..], &b"x\ny\rz\n"[..]),
            (b"a\r\n", b"b", b"a\nb\n"),
            (b"", b"", b""),
        ] {
            let mut reader = CrlfToLf::new(std::io::Read::chain(first, second));
            let mut all = Vec::new();
            std::io::Read::read_to_end(&mut reader, &mut all).expect("read");
            assert_eq!(all, normalized);
        }
    }

    #[test]
    fn json_array_elements_keep_their_index_and_line() {
        let text = "[\n  {\"deviceID\": \"a\", \"oobSecret\": \"s\"},\n  {\"deviceID\": 5},\n  {\n    \"deviceID\": \"c\"\n  }\n]\n";
        let r = rows(text, Format::JsonArray);
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].index, r[0].line), (0, 2));
        assert_eq!((r[1].index, r[1].line), (1, 3));
        assert!(r[1].content.is_err());
        assert_eq!((r[2].index, r[2].line), (2, 4));
        assert_eq!(rows("[]", Format::JsonArray).len(), 0);
        assert!(read_rows("[{}".as_bytes(), Format::JsonArray).is_err());
        assert!(read_rows("{}".as_bytes(), Format::JsonArray).is_err());
        // Strings with brackets and escaped quotes do not confuse the splitter.
        let tricky = rows(
            r#"[{"deviceID":"a","oobSecret":"],\"{"},{"deviceID":"b"}]"#,
            Format::JsonArray,
        );
        assert_eq!(tricky.len(), 2);
        assert_eq!(
            tricky[0].content.as_ref().expect("ok").secret.as_deref(),
            Some("],\"{")
        );
    }

    #[test]
    fn ndjson_skips_blank_lines_but_counts_them() {
        let r = rows(
            "{\"deviceID\":\"a\"}\n\n{bad\n{\"deviceID\":\"c\",\"validUntil\":\"x\"}\n",
            Format::Ndjson,
        );
        assert_eq!(
            r.iter().map(|r| (r.index, r.line)).collect::<Vec<_>>(),
            vec![(0, 1), (1, 3), (2, 4)]
        );
        assert!(r[1].content.is_err());
        assert_eq!(r[2].content.as_ref().expect("ok").valid_until, "x");
    }
}
