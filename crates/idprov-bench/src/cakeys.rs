//! `idprov-bench ca-keys`: certificate issuance with the CA key in each of
//! its three homes — in memory from a key file, in memory from an
//! encrypted key file (the passphrase costs only at load), and inside a
//! PKCS#11 token — one beside the other in the same run, with the time to
//! load each key and to sign a CRL.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use idprov_ca::pkcs11::{TokenKey, TokenSettings};
use idprov_ca::{Ca, CaKey, CrlEntry, IssueParams, KeyAlgorithm, PublicKey, Usage, keyfile};

/// Options of `ca-keys`.
#[derive(Debug, clap::Args)]
pub struct CaKeysArgs {
    /// Certificates issued per key storage.
    #[arg(long, default_value_t = 2000)]
    pub count: usize,
    /// The PKCS#11 module (SoftHSM2's by default).
    #[arg(long, default_value = "/usr/lib/softhsm/libsofthsm2.so")]
    pub module: PathBuf,
    /// The token's label; without it the token row is left out.
    #[arg(long)]
    pub token_label: Option<String>,
    /// The token's user PIN, read from this file.
    #[arg(long)]
    pub pin_file: Option<PathBuf>,
}

struct Row {
    storage: &'static str,
    load: Duration,
    per_cert: Duration,
    crl: Duration,
}

fn issue_many(ca: &Ca, keys: &[PublicKey]) -> anyhow::Result<Duration> {
    let start = Instant::now();
    for (i, key) in keys.iter().enumerate() {
        let cn = format!("bench-{i}");
        ca.issue(
            key,
            &IssueParams {
                common_name: &cn,
                organizational_unit: "iotdevice",
                organization: "idprov",
                usage: Usage::Client,
                now: SystemTime::now(),
                validity: Duration::from_secs(30 * 86_400),
                crl_url: Some("https://localhost:43776/idprov/crl"),
                ocsp_url: None,
            },
        )?;
    }
    Ok(start.elapsed() / u32::try_from(keys.len().max(1))?)
}

fn crl_time(ca: &Ca) -> anyhow::Result<Duration> {
    let entries: Vec<CrlEntry> = Vec::new();
    let now = SystemTime::now();
    let start = Instant::now();
    ca.sign_crl(&entries, 1, now, now + Duration::from_secs(86_400))?;
    Ok(start.elapsed())
}

fn measure(
    storage: &'static str,
    load: Duration,
    ca: &Ca,
    keys: &[PublicKey],
) -> anyhow::Result<Row> {
    // One issuance first, so a lazily opened session is not counted.
    issue_many(ca, &keys[..1])?;
    Ok(Row {
        storage,
        load,
        per_cert: issue_many(ca, keys)?,
        crl: crl_time(ca)?,
    })
}

/// Runs the comparison and prints a table.
pub fn ca_keys(args: CaKeysArgs) -> anyhow::Result<()> {
    let keys = (0..args.count.max(1))
        .map(|_| {
            let k = KeyAlgorithm::EcdsaP256.generate()?;
            Ok(PublicKey::from_pem(&k.public_key_pem())?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let now = SystemTime::now();
    let validity = Duration::from_secs(3650 * 86_400);
    let mut rows = Vec::new();

    let generated = Ca::generate("idprov", KeyAlgorithm::EcdsaP256, now, validity)?;
    let start = Instant::now();
    let key = keyfile::read_key(&generated.key_pem, None)?;
    let ca = Ca::load_with_key(&generated.cert_pem, key, None, now)?;
    rows.push(measure("key file", start.elapsed(), &ca, &keys)?);

    let encrypted = keyfile::encrypt_key(&generated.key_pem, b"a passphrase for the benchmark")?;
    let start = Instant::now();
    let key = keyfile::read_key(&encrypted, Some(b"a passphrase for the benchmark"))?;
    let ca = Ca::load_with_key(&generated.cert_pem, key, None, now)?;
    rows.push(measure("encrypted key file", start.elapsed(), &ca, &keys)?);

    if let (Some(label), Some(pin_file)) = (&args.token_label, &args.pin_file) {
        let settings = TokenSettings {
            module: args.module.clone(),
            token_label: label.clone(),
            key_label: "idprov-bench-ca".into(),
            pin: zeroize::Zeroizing::new(std::fs::read_to_string(pin_file)?.trim_end().to_owned()),
        };
        let key: CaKey = TokenKey::generate(&settings, KeyAlgorithm::EcdsaP256)?;
        let (ca, cert_pem) = Ca::self_signed("idprov", key.clone(), now, validity)?;
        let start = Instant::now();
        let again = TokenKey::find(&settings, &key.spki_der())?;
        let ca_loaded = Ca::load_with_key(&cert_pem, again, None, now)?;
        let load = start.elapsed();
        drop(ca);
        rows.push(measure(
            "PKCS#11 token (SoftHSM2)",
            load,
            &ca_loaded,
            &keys,
        )?);
        ca_loaded.key().destroy()?;
    } else {
        println!("(no --token-label/--pin-file: the token row is left out)");
    }

    println!(
        "certificate issuance (ECDSA P-256 CA, P-256 device keys), {} certificates per row, one thread:",
        keys.len()
    );
    println!("| CA key | load at start | per certificate | certificates/s | CRL signature |");
    println!("|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {:.1} ms | {:.1} µs | {:.0} | {:.1} ms |",
            r.storage,
            r.load.as_secs_f64() * 1e3,
            r.per_cert.as_secs_f64() * 1e6,
            1.0 / r.per_cert.as_secs_f64(),
            r.crl.as_secs_f64() * 1e3,
        );
    }
    Ok(())
}
