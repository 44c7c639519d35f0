//! The benchmark itself runs: a small `idprov-bench run` against the real
//! server (release figures come from `bench/provision.sh`, never from here).

use std::path::PathBuf;
use std::process::Command;

#[test]
fn a_small_run_completes_without_errors_and_writes_its_report() {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_idprov-bench"));
    let server = bench.with_file_name("idprov");
    if !server.is_file() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the idprov binary is built by `cargo test --workspace`"
        );
        eprintln!("skipping: {} is not built", server.display());
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let json = tmp.path().join("report.json");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/bench.toml");
    let out = Command::new(&bench)
        .args([
            "run",
            "--devices",
            "40",
            "--waiting",
            "20",
            "--concurrency",
            "8",
            "--renew-concurrency",
            "20",
            "--ceiling-seconds",
            "1",
            "--no-cfssl",
            "--config",
            config,
            "--server-bin",
        ])
        .arg(&server)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("idprov-bench runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("tls_session_resumption\": false"), "{text}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("report")).expect("JSON");
    let phases = report["phases"].as_array().expect("phases");
    let names: Vec<&str> = phases.iter().filter_map(|p| p["name"].as_str()).collect();
    for want in [
        "noop (no client cert)",
        "idprov oob provision",
        "noop (mutual TLS)",
        "idprov renewal storm",
        "idprov waiting polls",
    ] {
        assert!(names.contains(&want), "{names:?}");
    }
    for p in phases {
        assert_eq!(p["ok"], p["requests"], "{p}");
        assert!(p["errors"].as_object().is_some_and(|e| e.is_empty()), "{p}");
        assert!(p["p99_ms"].as_f64().is_some_and(|v| v > 0.0), "{p}");
    }
    assert!(
        report["signatures_per_second"][0]
            .as_f64()
            .is_some_and(|v| v > 0.0)
    );
    assert!(
        report["durable_commits_per_second"]
            .as_f64()
            .is_some_and(|v| v > 0.0)
    );
}
