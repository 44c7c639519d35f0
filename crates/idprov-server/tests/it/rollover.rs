//! A CA rollover interrupted at any step: the next start (or the next
//! `idprov ca` command) completes it when it was committed and discards it
//! when it was not, so the data directory always loads as one of the two
//! states around the step; the same for `finish-rollover`. And the
//! rollover commands refuse, changing nothing, what they do not apply to.

use idprov_server::ServerConfig;
use idprov_server::cakeys::{self, CaKeyError};
use idprov_server::config::CaSource;
use idprov_server::datadir::{DataDir, files};
use idprov_testkit::TestServer;

/// Runs `step` on the stopped server's data directory, then starts it again.
async fn while_stopped<T>(
    server: &mut TestServer,
    step: impl FnOnce(&ServerConfig, &DataDir) -> T,
) -> T {
    server.stop().await;
    let dir = DataDir::open(&server.config.data_dir, true).expect("data directory");
    let out = step(&server.config, &dir);
    drop(dir);
    server.restart().await;
    out
}

fn mv(dir: &DataDir, from: &str, to: &str) {
    std::fs::rename(dir.path(from), dir.path(to)).expect("rename");
}

fn refused(result: Result<impl std::fmt::Debug, CaKeyError>, says: &str) {
    match result {
        Err(CaKeyError::State(m)) => assert!(m.contains(says), "{m}"),
        other => panic!("expected a refusal saying {says:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rollover_or_finish_is_completed_or_discarded_at_the_next_start() {
    let mut server = TestServer::start().await;
    let first = server.ca().fingerprint();
    let staged = [
        files::CA_NEXT_CERT,
        files::CA_NEXT_KEY,
        files::CA_CROSS_NEW_BY_OLD,
        files::CA_CROSS_OLD_BY_NEW,
    ];

    // Interrupted before its commit: the new CA staged, ca-previous.pem not
    // yet written (a finished rollover wound back to that point). The start
    // discards it: the first CA alone, the staged files gone.
    while_stopped(&mut server, |config, dir| {
        cakeys::rollover(config, dir, config_now()).expect("rollover");
        mv(dir, files::CA_CERT, files::CA_NEXT_CERT);
        mv(dir, files::CA_KEY, files::CA_NEXT_KEY);
        mv(dir, files::CA_PREVIOUS_KEY, files::CA_KEY);
        mv(dir, files::CA_PREVIOUS_CERT, files::CA_CERT);
    })
    .await;
    assert_eq!(server.ca().fingerprint(), first);
    assert!(server.ca().previous().is_none());
    for name in staged {
        assert!(!server.data_dir().join(name).exists(), "{name} discarded");
    }

    // Interrupted after its commit, halfway through the renames (the key
    // file already moved aside, the new key and certificate still staged).
    // The start completes it: the new CA issues, the first is the previous.
    let second = while_stopped(&mut server, |config, dir| {
        let r = cakeys::rollover(config, dir, config_now()).expect("rollover");
        mv(dir, files::CA_CERT, files::CA_NEXT_CERT);
        mv(dir, files::CA_KEY, files::CA_NEXT_KEY);
        std::fs::copy(dir.path(files::CA_PREVIOUS_CERT), dir.path(files::CA_CERT)).expect("copy");
        r.new
    })
    .await;
    assert_eq!(server.ca().fingerprint().to_string(), second);
    assert_eq!(
        server.ca().previous().expect("in transition").fingerprint(),
        first
    );
    for name in [files::CA_NEXT_CERT, files::CA_NEXT_KEY] {
        assert!(!server.data_dir().join(name).exists(), "{name} renamed");
    }
    // The previous CA's OCSP responder was issued by the previous CA.
    assert!(server.data_dir().join(files::OCSP_PREVIOUS_CERT).exists());

    // While in transition: no second rollover; refused, nothing changed.
    server.stop().await;
    {
        let dir = DataDir::open(&server.config.data_dir, true).expect("data directory");
        refused(
            cakeys::rollover(&server.config, &dir, config_now()),
            "already in its transition",
        );
        // An operator's own CA is managed with the operator's tools.
        let mut operator = server.config.clone();
        operator.ca = CaSource::Files {
            cert: dir.path("operator.pem"),
            key: dir.path("operator.key"),
            chain: None,
            passphrase: None,
        };
        refused(
            cakeys::rollover(&operator, &dir, config_now()),
            "the CA is the operator's",
        );
        refused(
            cakeys::finish_rollover(&operator, &dir, config_now()),
            "the CA is the operator's",
        );
    }
    server.restart().await;
    assert_eq!(server.ca().fingerprint().to_string(), second);

    // A finish interrupted after its commit (the previous CA already
    // recorded as retired, its key and the transition's files still
    // there): the start completes it.
    while_stopped(&mut server, |_, dir| {
        let previous = std::fs::read_to_string(dir.path(files::CA_PREVIOUS_CERT)).expect("read");
        std::fs::write(dir.path(files::CA_RETIRED), previous).expect("write");
    })
    .await;
    assert_eq!(server.ca().fingerprint().to_string(), second);
    assert!(server.ca().previous().is_none());
    for name in [
        files::CA_PREVIOUS_CERT,
        files::CA_PREVIOUS_KEY,
        files::OCSP_PREVIOUS_CERT,
        files::OCSP_PREVIOUS_KEY,
        files::CA_CROSS_NEW_BY_OLD,
        files::CA_CROSS_OLD_BY_NEW,
    ] {
        assert!(!server.data_dir().join(name).exists(), "{name} removed");
    }
    // Nothing left to finish.
    server.stop().await;
    let dir = DataDir::open(&server.config.data_dir, true).expect("data directory");
    refused(
        cakeys::finish_rollover(&server.config, &dir, config_now()),
        "no rollover is in its transition",
    );
}

fn config_now() -> std::time::SystemTime {
    std::time::SystemTime::now()
}
