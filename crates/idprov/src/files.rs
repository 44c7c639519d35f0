//! Files the tool writes that may hold secrets: always new, always 0600.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::Failure;

/// Creates `path` (which must not exist) with mode 0600 and writes `bytes`.
pub fn write_new_private(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            Failure::usage(match e.kind() {
                std::io::ErrorKind::AlreadyExists => {
                    format!(
                        "{} exists; choose a new file (existing files are never overwritten)",
                        path.display()
                    )
                }
                _ => format!("{}: {e}", path.display()),
            })
        })?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))
}

/// Writes a label sheet for `(device ID, label URI)` pairs; the format
/// follows the extension (`.svg` or `.png`).
pub fn write_labels(path: &Path, labels: Vec<idprov_labels::Label>) -> Result<(), Failure> {
    let bytes = match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("svg") => idprov_labels::sheet_svg(&labels).map(String::into_bytes),
        Some("png") => idprov_labels::sheet_png(&labels),
        _ => {
            return Err(Failure::usage(format!(
                "{}: label sheets are .svg or .png",
                path.display()
            )));
        }
    }
    .map_err(|e| Failure::usage(e.to_string()))?;
    write_new_private(path, &bytes)
}
