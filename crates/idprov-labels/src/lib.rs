//! Printable label sheets: per device a QR code holding its label URI
//! (PROTOCOL.md §9), the device ID in text, and cut marks; as SVG (scalable,
//! for printing) or PNG (300 dpi).
//!
//! A label carries the device's secret: whoever writes a sheet must create
//! the file 0600. This crate only renders; it writes nothing.

mod font;

use qrcode::{Color, EcLevel, QrCode};

/// One label.
#[derive(Clone)]
pub struct Label {
    /// The device ID printed under the code.
    pub device_id: String,
    /// The label URI the QR code holds (it contains the secret).
    pub uri: String,
}

impl std::fmt::Debug for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Label")
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

/// Why a sheet could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    /// The URI does not fit a QR code.
    #[error("the label of {0} does not fit a QR code: {1}")]
    Qr(String, String),
    /// PNG encoding failed.
    #[error("PNG encoding failed: {0}")]
    Png(String),
}

/// Labels per row of a sheet.
const COLUMNS: usize = 3;

fn qr(label: &Label) -> Result<QrCode, LabelError> {
    // Level M: survives some smudging of a printed label.
    QrCode::with_error_correction_level(label.uri.as_bytes(), EcLevel::M)
        .map_err(|e| LabelError::Qr(label.device_id.clone(), e.to_string()))
}

fn xml_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c if c.is_control() => String::new(),
            c => c.to_string(),
        })
        .collect()
}

/// Splits text into lines of at most `width` characters.
fn wrap(text: &str, width: usize) -> Vec<String> {
    text.chars()
        .collect::<Vec<_>>()
        .chunks(width.max(1))
        .map(|c| c.iter().collect())
        .collect()
}

/// An SVG sheet, in millimetres: cells of 60 × 50 mm, three per row.
pub fn sheet_svg(labels: &[Label]) -> Result<String, LabelError> {
    const CELL_W: f64 = 60.0;
    const CELL_H: f64 = 50.0;
    const QR_MM: f64 = 32.0;
    const MARK: f64 = 3.0;
    let rows = labels.len().div_ceil(COLUMNS).max(1);
    let (w, h) = (CELL_W * COLUMNS as f64, CELL_H * rows as f64);
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}mm\" height=\"{h}mm\" viewBox=\"0 0 {w} {h}\">\n<rect width=\"{w}\" height=\"{h}\" fill=\"#fff\"/>\n"
    );
    for (n, label) in labels.iter().enumerate() {
        let code = qr(label)?;
        let (cx, cy) = ((n % COLUMNS) as f64 * CELL_W, (n / COLUMNS) as f64 * CELL_H);
        // Cut marks at the four corners of the cell.
        out.push_str("<g stroke=\"#000\" stroke-width=\"0.2\">");
        for (x, y, dx, dy) in [
            (cx, cy, 1.0, 1.0),
            (cx + CELL_W, cy, -1.0, 1.0),
            (cx, cy + CELL_H, 1.0, -1.0),
            (cx + CELL_W, cy + CELL_H, -1.0, -1.0),
        ] {
            out.push_str(&format!(
                "<line x1=\"{x}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\"/><line x1=\"{x}\" y1=\"{y}\" x2=\"{x}\" y2=\"{}\"/>",
                x + dx * MARK,
                y + dy * MARK
            ));
        }
        out.push_str("</g>\n");
        // The QR code with its quiet zone, as one path of unit squares.
        let width = code.width();
        let module = QR_MM / (width + 8) as f64;
        let (qx, qy) = (cx + (CELL_W - QR_MM) / 2.0, cy + 3.0);
        out.push_str(&format!(
            "<g transform=\"translate({} {}) scale({module})\"><path fill=\"#000\" d=\"",
            qx + 4.0 * module,
            qy + 4.0 * module
        ));
        for (i, color) in code.to_colors().iter().enumerate() {
            if *color == Color::Dark {
                out.push_str(&format!("M{} {}h1v1h-1z", i % width, i / width));
            }
        }
        out.push_str("\"/></g>\n");
        for (k, line) in wrap(&label.device_id, 30).iter().enumerate() {
            out.push_str(&format!(
                "<text x=\"{}\" y=\"{}\" font-family=\"monospace\" font-size=\"3\" text-anchor=\"middle\">{}</text>\n",
                cx + CELL_W / 2.0,
                qy + QR_MM + 4.0 + 3.5 * k as f64,
                xml_escape(line)
            ));
        }
    }
    out.push_str("</svg>\n");
    Ok(out)
}

/// A PNG sheet at 300 dpi (cells of 640 × 560 pixels), grayscale.
pub fn sheet_png(labels: &[Label]) -> Result<Vec<u8>, LabelError> {
    const CELL_W: usize = 640;
    const CELL_H: usize = 560;
    const QR_PX: usize = 360;
    const MARK: usize = 30;
    const SCALE: usize = 4;
    let rows = labels.len().div_ceil(COLUMNS).max(1);
    let (w, h) = (CELL_W * COLUMNS, CELL_H * rows);
    let mut img = vec![255u8; w * h];
    let mut fill = |x0: usize, y0: usize, x1: usize, y1: usize| {
        for y in y0.min(h)..y1.min(h) {
            img[y * w + x0.min(w)..y * w + x1.min(w)].fill(0);
        }
    };
    for (n, label) in labels.iter().enumerate() {
        let code = qr(label)?;
        let (cx, cy) = ((n % COLUMNS) * CELL_W, (n / COLUMNS) * CELL_H);
        // Cut marks.
        fill(cx, cy, cx + MARK, cy + 2);
        fill(cx, cy, cx + 2, cy + MARK);
        fill(cx + CELL_W - MARK, cy, cx + CELL_W, cy + 2);
        fill(cx + CELL_W - 2, cy, cx + CELL_W, cy + MARK);
        fill(cx, cy + CELL_H - 2, cx + MARK, cy + CELL_H);
        fill(cx, cy + CELL_H - MARK, cx + 2, cy + CELL_H);
        fill(
            cx + CELL_W - MARK,
            cy + CELL_H - 2,
            cx + CELL_W,
            cy + CELL_H,
        );
        fill(
            cx + CELL_W - 2,
            cy + CELL_H - MARK,
            cx + CELL_W,
            cy + CELL_H,
        );
        // The QR code: whole pixels per module, centred, quiet zone included.
        let width = code.width();
        let module = (QR_PX / (width + 8)).max(1);
        let size = module * (width + 8);
        let (qx, qy) = (cx + (CELL_W - size) / 2 + 4 * module, cy + 20 + 4 * module);
        for (i, color) in code.to_colors().iter().enumerate() {
            if *color == Color::Dark {
                let (x, y) = (qx + (i % width) * module, qy + (i / width) * module);
                fill(x, y, x + module, y + module);
            }
        }
        // The device ID under it, wrapped, in the bitmap font.
        let per_line = (CELL_W - 40) / (6 * SCALE);
        for (k, line) in wrap(&label.device_id, per_line).iter().enumerate() {
            let chars = line.chars().count();
            let tx = cx + (CELL_W - chars * 6 * SCALE) / 2;
            let ty = cy + 20 + size + 10 + k * 9 * SCALE;
            for (j, c) in line.chars().enumerate() {
                for (row, bits) in font::glyph(c).iter().enumerate() {
                    for col in 0..5 {
                        if bits & (0b10000 >> col) != 0 {
                            let x = tx + (j * 6 + col) * SCALE;
                            let y = ty + row * SCALE;
                            fill(x, y, x + SCALE, y + SCALE);
                        }
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_pixel_dims(Some(png::PixelDimensions {
            xppu: 11_811, // 300 dpi in pixels per metre
            yppu: 11_811,
            unit: png::Unit::Meter,
        }));
        let mut writer = enc
            .write_header()
            .map_err(|e| LabelError::Png(e.to_string()))?;
        writer
            .write_image_data(&img)
            .map_err(|e| LabelError::Png(e.to_string()))?;
        writer
            .finish()
            .map_err(|e| LabelError::Png(e.to_string()))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<Label> {
        (0..4)
            .map(|i| Label {
                device_id: format!("dev-{i}<&>"),
                uri: format!("idprov:1?id=dev-{i}&s=SECRET{i}"),
            })
            .collect()
    }

    #[test]
    fn svg_escapes_text_and_has_one_code_per_label() {
        let svg = sheet_svg(&labels()).expect("svg");
        assert_eq!(svg.matches("<path").count(), 4);
        assert!(svg.contains("dev-0&lt;&amp;&gt;"));
        assert!(!svg.contains("dev-0<&>"));
    }

    #[test]
    fn png_is_a_png_of_the_expected_size() {
        let png = sheet_png(&labels()).expect("png");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let reader = decoder.read_info().expect("decodes");
        let info = reader.info();
        assert_eq!((info.width, info.height), (640 * 3, 560 * 2));
    }
}
