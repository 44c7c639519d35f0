//! The canonical JSON encoder: the exact bytes Go 1.19's `encoding/json`
//! `Marshal` writes, because those bytes are what idprov signatures cover
//! (PROTOCOL.md §5).
//!
//! A stock serializer gets this wrong in several places: Go escapes `<`, `>`
//! and `&` as `\u003c`-style sequences, writes U+2028/U+2029 escaped, writes
//! U+0008 and U+000C as `\u0008`/`\u000c` (Go ≥ 1.22 writes `\b`/`\f`), and
//! replaces every byte of invalid UTF-8 with the six characters `\ufffd`.
//! The encoder therefore works on byte strings, not on Rust `str`, so that it
//! can be tested against Go on inputs a Rust `String` could never hold.

use alloc::vec::Vec;

/// Which Go release's string escaping to reproduce.
///
/// Devices built with Go 1.19 (the reference implementation's era) sign the
/// [`Go119`](EscapeStyle::Go119) form; Go ≥ 1.22 writes `\b` and `\f` as short
/// escapes, and a verifier accepts that form too when a message contains them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscapeStyle {
    /// Go 1.19 `encoding/json`: U+0008 → `\u0008`, U+000C → `\u000c`.
    Go119,
    /// Go ≥ 1.22 `encoding/json`: U+0008 → `\b`, U+000C → `\f`.
    Go122,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a JSON string literal (with quotes) in Go's escaping.
pub fn write_string(out: &mut Vec<u8>, s: &[u8], style: EscapeStyle) {
    // Room for the common case up front (a PEM block escapes one newline
    // per 64 characters: one extra byte each), so the copies below do not
    // grow the buffer several times over.
    out.reserve(s.len() + s.len() / 32 + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < s.len() {
        // Runs of bytes that need no escape are copied as a whole: this
        // scan is the encoder's hot loop (certificates on every answer).
        match s[i..].iter().position(|&b| !HTML_SAFE[usize::from(b)]) {
            Some(n) => i += n,
            None => break,
        }
        let b = s[i];
        if b < 0x80 {
            out.extend_from_slice(&s[start..i]);
            match (b, style) {
                (b'\\' | b'"', _) => out.extend_from_slice(&[b'\\', b]),
                (b'\n', _) => out.extend_from_slice(b"\\n"),
                (b'\r', _) => out.extend_from_slice(b"\\r"),
                (b'\t', _) => out.extend_from_slice(b"\\t"),
                (0x08, EscapeStyle::Go122) => out.extend_from_slice(b"\\b"),
                (0x0c, EscapeStyle::Go122) => out.extend_from_slice(b"\\f"),
                // Every other control character and the HTML-sensitive `<`, `>`, `&`.
                _ => out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0x0f)],
                ]),
            }
            i += 1;
            start = i;
            continue;
        }
        match decode_rune(&s[i..]) {
            None => {
                // Go decodes invalid UTF-8 one byte at a time (`utf8.DecodeRune`
                // returns size 1), so each offending byte becomes one `\ufffd`.
                out.extend_from_slice(&s[start..i]);
                out.extend_from_slice(b"\\ufffd");
                i += 1;
                start = i;
            }
            Some((c, size)) if c == '\u{2028}' || c == '\u{2029}' => {
                out.extend_from_slice(&s[start..i]);
                out.extend_from_slice(if c == '\u{2028}' {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += size;
                start = i;
            }
            Some((_, size)) => i += size,
        }
    }
    out.extend_from_slice(&s[start..]);
    out.push(b'"');
}

/// Go's `htmlSafeSet`, as a table indexed by byte: printable ASCII (DEL
/// included) except `"`, `\`, `<`, `>`, `&`. Bytes from 0x80 up are not in
/// it: they start a UTF-8 sequence, which is checked on its own.
const HTML_SAFE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0x20;
    while b < 0x80 {
        table[b] = !matches!(b as u8, b'"' | b'\\' | b'<' | b'>' | b'&');
        b += 1;
    }
    table
};

/// Decodes one UTF-8 scalar value at the start of `s` (which starts with a
/// non-ASCII byte), the way Go's `utf8.DecodeRune` accepts it: shortest form
/// only, no surrogates, nothing above U+10FFFF.
fn decode_rune(s: &[u8]) -> Option<(char, usize)> {
    let width = match s[0] {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    let candidate = s.get(..width)?;
    // `core::str::from_utf8` enforces exactly Go's validity rules; we only ask
    // it about one sequence so that failure maps to a single replaced byte.
    let decoded = core::str::from_utf8(candidate).ok()?;
    decoded.chars().next().map(|c| (c, width))
}

/// A minimal writer for JSON objects in Go's layout: no whitespace, keys in the
/// order they are written.
#[derive(Debug)]
pub struct ObjectWriter<'a> {
    out: &'a mut Vec<u8>,
    style: EscapeStyle,
    first: bool,
}

impl<'a> ObjectWriter<'a> {
    /// Opens an object (`{`) on `out`.
    pub fn new(out: &'a mut Vec<u8>, style: EscapeStyle) -> Self {
        out.push(b'{');
        ObjectWriter {
            out,
            style,
            first: true,
        }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        write_string(self.out, key.as_bytes(), self.style);
        self.out.push(b':');
    }

    /// Writes `"key":"value"`.
    pub fn string(&mut self, key: &str, value: &[u8]) -> &mut Self {
        self.key(key);
        write_string(self.out, value, self.style);
        self
    }

    /// Writes `"key":N` in plain decimal, as Go writes an `int`.
    pub fn int(&mut self, key: &str, value: i64) -> &mut Self {
        self.key(key);
        let mut buf = [0u8; 20];
        let mut n = value.unsigned_abs();
        let mut pos = buf.len();
        loop {
            pos -= 1;
            // n % 10 < 10, so the cast cannot truncate.
            buf[pos] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        if value < 0 {
            self.out.push(b'-');
        }
        self.out.extend_from_slice(&buf[pos..]);
        self
    }

    /// Writes `"key":true` or `"key":false`.
    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
        self
    }

    /// Writes `"key":null`.
    pub fn null(&mut self, key: &str) -> &mut Self {
        self.key(key);
        self.out.extend_from_slice(b"null");
        self
    }

    /// Writes `"key":` followed by a nested object built by `f`.
    pub fn object(&mut self, key: &str, f: impl FnOnce(&mut ObjectWriter<'_>)) -> &mut Self {
        self.key(key);
        let style = self.style;
        let mut inner = ObjectWriter::new(self.out, style);
        f(&mut inner);
        inner.finish();
        self
    }

    /// Closes the object (`}`).
    pub fn finish(self) {
        self.out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    fn enc(s: &[u8]) -> String {
        let mut out = Vec::new();
        write_string(&mut out, s, EscapeStyle::Go119);
        String::from_utf8(out).expect("encoder output is UTF-8")
    }

    #[test]
    fn escapes_like_go_1_19() {
        let cases: &[(&[u8], &str)] = &[
            (b"plain", r#""plain""#),
            (b"a\"b\\c", r#""a\"b\\c""#),
            (b"\n\r\t", r#""\n\r\t""#),
            (b"\x08\x0c\x00\x1f", r#""\u0008\u000c\u0000\u001f""#),
            (b"<>&", r#""\u003c\u003e\u0026""#),
            (b"/\x7f", "\"/\x7f\""),
            ("\u{2028}\u{2029}".as_bytes(), r#""\u2028\u2029""#),
            ("é😀\u{fffd}".as_bytes(), "\"é😀\u{fffd}\""),
            (b"\xff", r#""\ufffd""#),
            // A truncated 3-byte sequence is two invalid bytes, not one.
            (b"\xe2\x82a", r#""\ufffd\ufffda""#),
            // Overlong and surrogate encodings are invalid byte by byte.
            (b"\xc0\x80", r#""\ufffd\ufffd""#),
            (b"\xed\xa0\x80", r#""\ufffd\ufffd\ufffd""#),
            (b"\xf4\x90\x80\x80", r#""\ufffd\ufffd\ufffd\ufffd""#),
        ];
        for (input, want) in cases {
            assert_eq!(enc(input), *want, "input {input:?}");
        }
    }

    #[test]
    fn go_1_22_short_escapes() {
        let mut out = Vec::new();
        write_string(&mut out, b"\x08\x0c\x01", EscapeStyle::Go122);
        assert_eq!(out, br#""\b\f\u0001""#);
    }

    #[test]
    fn integers_in_plain_decimal() {
        for (n, want) in [
            (0i64, "0"),
            (7, "7"),
            (1_296_000, "1296000"),
            (-5, "-5"),
            (i64::MIN, "-9223372036854775808"),
            (i64::MAX, "9223372036854775807"),
        ] {
            let mut out = Vec::new();
            let mut w = ObjectWriter::new(&mut out, EscapeStyle::Go119);
            w.int("n", n);
            w.finish();
            assert_eq!(out, alloc::format!("{{\"n\":{want}}}").into_bytes());
        }
    }
}
