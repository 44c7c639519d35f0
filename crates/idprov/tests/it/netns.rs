//! Discovery on real multicast between two network namespaces joined by a
//! veth pair: the server advertises in one, the device discovers and
//! provisions from the other. Nothing reaches the machine's real network.
//!
//! Needs root and iproute2; skipped otherwise, except under `CI=true`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{is_root, skip, stderr, stdout};

fn can_run() -> bool {
    let ip = Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if is_root() && ip {
        return true;
    }
    skip("the network namespace tests need root and iproute2");
    false
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("command runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces and the veth between them; removed on drop, with every
/// process started in them.
struct Lab {
    a: String,
    b: String,
    children: Vec<Child>,
}

impl Lab {
    fn new(tag: &str, ipv4: bool) -> Lab {
        let n = std::process::id() % 100_000;
        let (a, b) = (format!("idpv{tag}{n}a"), format!("idpv{tag}{n}b"));
        let (va, vb) = (format!("v{tag}{n}a"), format!("v{tag}{n}b"));
        let lab = Lab {
            a: a.clone(),
            b: b.clone(),
            children: Vec::new(),
        };
        sh(&["ip", "netns", "add", &a]);
        sh(&["ip", "netns", "add", &b]);
        sh(&[
            "ip", "link", "add", &va, "netns", &a, "type", "veth", "peer", "name", &vb, "netns", &b,
        ]);
        for (ns, dev, addr) in [(&a, &va, "10.213.7.1/24"), (&b, &vb, "10.213.7.2/24")] {
            // No duplicate address detection: link-local addresses are usable at once.
            sh(&[
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.accept_dad=0",
            ]);
            sh(&[
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.default.accept_dad=0",
            ]);
            if ipv4 {
                sh(&["ip", "-n", ns, "addr", "add", addr, "dev", dev]);
            }
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        lab
    }

    fn exec(&self, ns: &str, args: &[&str]) -> std::process::Output {
        let mut all = vec!["netns", "exec", ns, env!("CARGO_BIN_EXE_idprov")];
        all.extend_from_slice(args);
        Command::new("ip")
            .args(&all)
            .env("HOME", std::env::temp_dir())
            .env("XDG_CONFIG_HOME", "/nonexistent-config-home")
            .output()
            .expect("runs")
    }

    fn spawn_server(&mut self, data: &str) {
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.a,
                env!("CARGO_BIN_EXE_idprov"),
                "serve",
                "--data-dir",
                data,
                "--listen",
                "[::]:43776",
            ])
            .env("HOME", std::env::temp_dir())
            .env("XDG_CONFIG_HOME", "/nonexistent-config-home")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("server starts");
        self.children.push(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.exec(
                &self.a.clone(),
                &[
                    "oob",
                    "list",
                    "--server",
                    "127.0.0.1:43776",
                    "--data-dir",
                    data,
                ],
            );
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "server not ready: {}",
                stderr(&out)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.a]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.b]).status();
    }
}

fn discover_and_provision(tag: &str, ipv4: bool) {
    if !can_run() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("server");
    let data = data.to_str().expect("path");
    let mut lab = Lab::new(tag, ipv4);
    lab.spawn_server(data);
    let added = lab.exec(
        &lab.a.clone(),
        &[
            "oob",
            "add",
            "dev-over-veth",
            "--json",
            "--server",
            "127.0.0.1:43776",
            "--data-dir",
            data,
        ],
    );
    assert!(added.status.success(), "{}", stderr(&added));
    let v: serde_json::Value = serde_json::from_str(&stdout(&added)).expect("json");
    let secret_file = tmp.path().join("secret");
    std::fs::write(&secret_file, v["oobSecret"].as_str().expect("secret")).expect("write");

    let found = lab.exec(&lab.b.clone(), &["discover", "--timeout", "8s", "--json"]);
    assert!(found.status.success(), "{}", stderr(&found));
    let servers: Vec<serde_json::Value> = serde_json::from_str(&stdout(&found)).expect("json");
    assert_eq!(servers.len(), 1, "{servers:?}");
    assert_eq!(servers[0]["instance"], "idprov");
    assert_eq!(servers[0]["path"], "/idprov/directory");
    assert_eq!(servers[0]["version"], "1");
    let addresses: Vec<String> = servers[0]["addresses"]
        .as_array()
        .expect("addresses")
        .iter()
        .map(|a| a.as_str().expect("address").to_owned())
        .collect();
    if ipv4 {
        assert_eq!(
            addresses[0], "10.213.7.1:43776",
            "IPv4 first: {addresses:?}"
        );
    } else {
        assert!(
            addresses
                .iter()
                .all(|a| a.starts_with("[fe80::") && a.contains('%')),
            "link-local IPv6 with its scope: {addresses:?}"
        );
    }

    // The device trusts the CA only if it matches the fingerprint it was given.
    let fp = lab.exec(&lab.a.clone(), &["ca-fingerprint", "--data-dir", data]);
    assert!(fp.status.success(), "{}", stderr(&fp));
    let fp = stdout(&fp).trim().to_owned();
    let ca = std::fs::read_to_string(format!("{data}/ca.pem")).expect("ca");
    let der = idprov_ca::pem::parse_certificates(&ca).expect("pem");
    assert_eq!(fp, idprov_proto::Fingerprint::of_der(&der[0]).to_string());
    let dev_dir = tmp.path().join("device");
    let out = lab.exec(
        &lab.b.clone(),
        &[
            "device",
            "provision",
            "--id",
            "dev-over-veth",
            "--secret-file",
            secret_file.to_str().expect("path"),
            "--ca-fingerprint",
            &fp,
            "--dir",
            dev_dir.to_str().expect("path"),
            "--discovery-timeout",
            "15s",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(v["status"], "Approved");
    assert_eq!(v["verifiedWith"], "secret");
    assert!(dev_dir.join("current/cert.pem").exists());
    assert!(
        stderr(&out).contains("discovered an idprov server"),
        "{}",
        stderr(&out)
    );
    if ipv4 {
        // The agent waits for the IPv4 address when IPv6 answers first.
        let line = stderr(&out)
            .lines()
            .find(|l| l.contains("discovered an idprov server"))
            .map(str::to_owned)
            .unwrap_or_default();
        assert!(line.contains("10.213.7.1:43776"), "{line}");
    }
}

#[test]
fn discovery_and_provisioning_across_namespaces_over_ipv4() {
    discover_and_provision("4", true);
}

#[test]
fn discovery_and_provisioning_over_link_local_ipv6_only() {
    discover_and_provision("6", false);
}

/// Online guessing from many IPv6 addresses, inside a network namespace of
/// its own with addresses added to its loopback: the addresses of one /64
/// share one lockout, and the device's budget holds across /64s.
#[test]
fn guessing_from_ipv6_addresses_is_counted_per_64_and_per_device() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let script = format!(
        r#"set -eu
cd '{dir}'
ip link set lo up
# 12 addresses of one /64, and 40 /64s of one address each.
for i in $(seq 1 12); do ip -6 addr add 2001:db8:1:2::$i/128 dev lo nodad; done
for i in $(seq 1 40); do ip -6 addr add 2001:db8:9:$i::1/128 dev lo nodad; done
'{bin}' serve --data-dir data --listen '[::]:43776' --no-dns-sd 2>server.log &
for i in $(seq 1 300); do
  '{bin}' oob list --server 127.0.0.1:43776 --data-dir data >/dev/null 2>&1 && break
  sleep 0.1
done
printf '123456\n' > pin
'{bin}' oob add pin-6 --secret-file pin --server 127.0.0.1:43776 --data-dir data >/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out key.pem 2>/dev/null
pub=$(openssl ec -in key.pem -pubout 2>/dev/null | awk '{{printf "%s\\n", $0}}')
printf '{{"deviceID":"pin-6","ip":"","mac":"","publicKeyPEM":"%s","signature":"d3Jvbmc="}}' "$pub" > guess.json
guess() {{
  curl -6 -s -o /dev/null -w '%{{http_code}}\n' --interface "$1" --cacert data/ca-chain.pem \
       --data-binary @guess.json https://localhost:43776/idprov/provreq
}}
echo one-64
for i in $(seq 1 12); do guess 2001:db8:1:2::$i; done
echo many-64s
for i in $(seq 1 40); do guess 2001:db8:9:$i::1; done
kill %1
"#,
        dir = dir.path().display(),
        bin = env!("CARGO_BIN_EXE_idprov"),
    );
    let out = Command::new("unshare")
        .args(["--net", "bash", "-c", &script])
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", "/nonexistent-config-home")
        .output()
        .expect("unshare runs");
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}\n{}\n{}",
        stderr(&out),
        std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default()
    );
    let (one, many) = text.split_once("many-64s").expect("both rounds");
    let codes = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.len() == 3)
            .map(str::to_owned)
            .collect()
    };
    let (one, many) = (codes(one), codes(many));
    eprintln!("one /64: {one:?}\nforty /64s: {many:?}");
    // One /64 is one source: its fifth wrong secret starts the lock.
    assert_eq!(one.len(), 12);
    assert!(one[..5].iter().all(|c| c == "200"), "{one:?}");
    assert!(one[5..].iter().all(|c| c == "429"), "{one:?}");
    // Every /64 guesses once, none is locked, and the device's budget (30,
    // five already spent) ends the guessing for everyone.
    assert_eq!(many.len(), 40);
    assert!(many[..25].iter().all(|c| c == "200"), "{many:?}");
    assert!(many[25..].iter().all(|c| c == "429"), "{many:?}");
}
