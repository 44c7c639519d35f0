#!/usr/bin/env bash
# Runs every test of idprov: formatting, lints, and the whole test suite.
#
# What the tests need from the system is installed here when missing, as
# root, with apt-get; nothing is mocked:
#   golang-go          Go 1.19: the encoder differential test and a Go device
#   openssl            an independent check of issued certificates
#   curl               the README's curl commands, run by the README test
#   mosquitto(-clients) a real MQTT broker that must accept issued certificates
#                      and refuse a revoked one (reloaded by the CRL hook)
#   nginx              a real TLS terminator checking client certificates with
#                      idprov's OCSP responder (ssl_ocsp on)
#   iproute2           network namespaces and veth for real multicast DNS-SD
#   zbar-tools         an independent QR decoder for the label sheets
#   librsvg2-bin       an independent SVG renderer for the label sheets
#   systemd            systemd-analyze, to verify packaging/idprov.service
#   chromium           the admin web page's browser test (headless, driven by
#                      playwright-core from tests/web, installed with npm ci)
#   postgresql         the PostgreSQL backend: the tests start a throw-away
#                      cluster of their own (initdb as postgres, a temp dir,
#                      a free port) and stop it when they exit
# and cargo-deny (from crates.io) for the licence, ban and source checks.
# Under CI=true a missing dependency is an error rather than a skipped test.
# The tests start their own broker and namespaces and remove them afterwards.
#
# Usage: ./test.sh            (from the repository root)
set -euo pipefail
cd "$(dirname "$0")"

started=$(date +%s)
stage_start=$started
stage() {
    local now
    now=$(date +%s)
    if [ -n "${current_stage:-}" ]; then
        printf '== %-28s %4ss\n' "$current_stage" "$((now - stage_start))"
    fi
    current_stage="$1"
    stage_start=$now
    [ -n "$1" ] && echo "== $1"
    return 0
}

# --- system packages -------------------------------------------------------
stage "system packages"
need=()
command -v go >/dev/null 2>&1 || need+=(golang-go)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v mosquitto >/dev/null 2>&1 || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v zbarimg >/dev/null 2>&1 || need+=(zbar-tools)
command -v rsvg-convert >/dev/null 2>&1 || need+=(librsvg2-bin)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if ! command -v node >/dev/null 2>&1; then
    need+=(nodejs)   # npm is added below when this nodejs lacks it
elif ! command -v npm >/dev/null 2>&1; then
    need+=(npm)
fi
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing: ${need[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${need[@]}" >/dev/null
        # npm comes with some nodejs builds (NodeSource) and is a Debian
        # package of its own otherwise: ask for it only when still missing.
        command -v npm >/dev/null 2>&1 || apt-get install -y -qq npm >/dev/null
        # Debian starts mosquitto's own service where it can; the tests run
        # their own brokers on free ports and need none.
        if [[ " ${need[*]} " == *" mosquitto "* ]] && command -v service >/dev/null 2>&1; then
            service mosquitto stop >/dev/null 2>&1 || true
        fi
        # Likewise Debian's own nginx (port 80): the tests run theirs on
        # free loopback ports.
        if [[ " ${need[*]} " == *" nginx "* ]] && command -v service >/dev/null 2>&1; then
            service nginx stop >/dev/null 2>&1 || true
        fi
        # Likewise Debian's own PostgreSQL cluster: the tests start theirs.
        if [[ " ${need[*]} " == *" postgresql "* ]] && command -v service >/dev/null 2>&1; then
            service postgresql stop >/dev/null 2>&1 || true
        fi
    elif [ "${CI:-}" = true ]; then
        echo "missing packages and not root: ${need[*]}" >&2
        exit 1
    else
        echo "warning: missing ${need[*]}; the tests that need them will be skipped" >&2
    fi
fi
# Go builds offline from the standard library only; keep its cache out of $HOME.
export GOCACHE="${GOCACHE:-${TMPDIR:-/tmp}/idprov-gocache}"
export GOFLAGS="${GOFLAGS:--mod=mod}"
export GOTOOLCHAIN=local

# --- static checks ---------------------------------------------------------
stage "cargo fmt --check"
cargo fmt --all -- --check

stage "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

# Licences, banned crates (one crypto provider) and sources: offline. The
# advisory check needs the RustSec database from the network and is a
# separate command (README, "Supply chain").
stage "cargo deny"
if ! cargo deny --version >/dev/null 2>&1; then
    echo "installing cargo-deny"
    cargo install --locked --quiet cargo-deny@0.20.2
fi
# (cargo metadata may download manifests of crates for other platforms;
# nothing here needs the advisory database.)
cargo deny --locked -L error check licenses bans sources

# Architecture: only the server crate knows HTTP. The protocol, CA, store and
# provisioning core must not depend on an HTTP crate, however indirectly.
stage "architecture (no HTTP below the server)"
for crate in idprov-proto idprov-ca idprov-store idprov-core; do
    if cargo tree --locked -p "$crate" -e normal --prefix none \
        | awk '{print $1}' | grep -qxE 'axum|hyper|hyper-util|tower|tower-http|http|http-body|reqwest'; then
        echo "$crate depends on an HTTP crate: $(cargo tree --locked -p "$crate" -e normal -i http 2>/dev/null | head -5)" >&2
        exit 1
    fi
done

# A device-sized client: with only its `device` feature, idprov-client
# builds, and its dependency tree has no mDNS, no CSV (and no admin API:
# that module is behind the `admin` feature).
stage "device-only client"
cargo check --locked --quiet -p idprov-client --no-default-features --features device
if cargo tree --locked -p idprov-client --no-default-features --features device -e normal --prefix none \
    | awk '{print $1}' | grep -qxE 'mdns-sd|csv'; then
    echo "idprov-client with only 'device' depends on mdns-sd or csv" >&2
    exit 1
fi

# --- tests -----------------------------------------------------------------
stage "build tests"
cargo test --workspace --no-run --quiet

stage "cargo test"
cargo test --workspace --quiet

# The end-to-end protocol and admin suites again, with every test server on
# a fresh PostgreSQL database instead of its SQLite file (the storage suite
# runs on both backends in the pass above).
stage "e2e suites on PostgreSQL"
IDPROV_TEST_BACKEND=postgres cargo test --quiet -p idprov-server -p idprov-client
IDPROV_TEST_BACKEND=postgres cargo test --quiet -p idprov --test it -- administration:: admin::

# The admin web page in a real browser against a real server (the debug
# binary the tests built). Screenshots of a CI run go to a temp directory:
# the committed ones under docs/screenshots are updated by hand.
stage "browser test (Chromium)"
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
    echo "the browser test needs Node.js 20 or newer for playwright-core (found $(node --version));" \
         "Debian 12's own nodejs is 18: install Node.js 20 (for example NodeSource's package)" >&2
    exit 1
fi
(cd tests/web && npm ci --no-audit --no-fund --silent)
shots=$(mktemp -d)
IDPROV_BIN=target/debug/idprov IDPROV_WEB_SCREENSHOTS="$shots" node tests/web/run.mjs
rm -rf "$shots"

stage "no_std staticlib linking idprov-proto"
# Outside the workspace: fails with E0152 if anything pulls in std.
cargo build --quiet --release --manifest-path tests/no_std/Cargo.toml --target-dir target/no_std

stage ""
echo "== all tests passed in $(( $(date +%s) - started ))s"
