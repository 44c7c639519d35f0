//! Writes a sample sheet: `cargo run -p idprov-labels --example sheet -- OUT.png|OUT.svg`.
fn main() {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sheet.png".into());
    let labels: Vec<_> = (0..5)
        .map(|i| idprov_labels::Label {
            device_id: format!("sensor-{i}.Lobby_AA:BB"),
            uri: format!("idprov:1?id=sensor-{i}&s=7K3M2Q&ca=abc"),
        })
        .collect();
    let bytes = if out.ends_with(".svg") {
        idprov_labels::sheet_svg(&labels).map(String::into_bytes)
    } else {
        idprov_labels::sheet_png(&labels)
    };
    match bytes {
        Ok(b) => {
            if let Err(e) = std::fs::write(&out, b) {
                eprintln!("{out}: {e}");
            }
        }
        Err(e) => eprintln!("{e}"),
    }
}
