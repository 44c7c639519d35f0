//! The README's commands, run as a newcomer would type them, and their
//! output checked against what the README shows: a README command that
//! fails, or prints something else, fails the build.
//!
//! How it reads README.md:
//!
//! * A ```` ```console ```` block is a session: `$ ` starts a command (a
//!   line ending in `\` continues it), and the lines up to the next `$ ` are
//!   its output, matched with snapbox (`[..]` is any text within a line,
//!   `...` any number of lines). No lines under a command means it prints
//!   nothing. A command exits 0 unless its trailing comment says
//!   `exit N`. A command ending in `&` runs in the background, and its
//!   output is awaited (up to a minute) until it matches; so is that of a
//!   command that runs until stopped (`idprov serve`, `idprov device run`).
//! * A block whose info string names a file (```` ```csv file=devices.csv ````)
//!   is written to that file in the working directory before the commands
//!   after it run.
//! * An HTML comment `<!-- readme-test stdin: TEXT -->` gives the next
//!   command TEXT on its standard input (a password a person would type).
//! * Every other block that holds commands (```` ```sh ````) is one of
//!   [`NOT_RUN`], each with the reason; a new one fails this test until it
//!   is run or listed.
//!
//! Everything runs in one `bash`, in order, so variables and the working
//! directory carry over, inside a network namespace of its own (its DNS-SD
//! stays on its loopback, and port 43776 is free) and a mount namespace
//! with empty `/var/lib`, `/srv` and `/tmp`, so the README's own paths
//! (`/var/lib/idprov`, `/srv/backups`) are used as written without
//! touching the machine's. `idprov` on the PATH is the binary under test
//! (staged under `/mnt` in the namespace, as are the test's files, so a
//! checkout under `/tmp` works too).
//! Needs root (namespaces), like the other namespace tests.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{have, is_root, skip};

/// Blocks of commands the test does not run, by their first line, and why.
const NOT_RUN: &[(&str, &str)] = &[
    (
        "cargo run --release -p idprov -- serve",
        "the quick start: the test runs its first command as `idprov serve` (the binary cargo builds) and is itself the second",
    ),
    (
        "systemctl stop idprov",
        "moving to PostgreSQL stops a systemd service and needs a configured PostgreSQL server; `idprov db migrate` is tested in tests/it/db.rs",
    ),
    (
        "cargo build --release -p idprov",
        "installs a systemd service as root on the machine; the unit is checked by tests/it/packaging.rs",
    ),
    (
        "SECONDS_PER_TARGET=900 fuzz/run-all.sh",
        "fuzzing, advisories and benchmarks run for minutes to hours and are separate commands, never part of the tests",
    ),
];

/// Commands the README shows that stand for building or installing the
/// binary under test, and what the test runs instead.
const SUBSTITUTES: &[(&str, &str)] = &[
    // `idprov` on the test's PATH is already the binary cargo builds.
    ("cargo install --path crates/idprov", ":"),
];

/// Commands that run until stopped: started in the background.
const RUNS_UNTIL_STOPPED: &[&str] = &["idprov serve", "idprov device run"];

#[derive(Debug)]
enum Step {
    /// Write this file into the working directory.
    File { name: String, text: String },
    /// Run a command and check what it printed.
    Command(Cmd),
}

#[derive(Debug)]
struct Cmd {
    /// README line of the command.
    line: usize,
    text: String,
    expected: String,
    exit: i32,
    background: bool,
    stdin: Option<String>,
}

/// The steps of the README, and the first lines of the blocks not run.
fn parse(readme: &str) -> (Vec<Step>, Vec<(usize, String)>) {
    let mut steps = Vec::new();
    let mut skipped = Vec::new();
    let mut lines = readme.lines().enumerate().peekable();
    let mut stdin: Option<String> = None;
    while let Some((n, line)) = lines.next() {
        if let Some(rest) = line.trim().strip_prefix("<!-- readme-test stdin:") {
            stdin = Some(rest.trim_end_matches("-->").trim().to_owned());
            continue;
        }
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        let info = info.trim().to_owned();
        let mut body = Vec::new();
        for (_, l) in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            body.push(l.to_owned());
        }
        let lang = info.split_whitespace().next().unwrap_or("");
        if let Some(name) = info
            .split_whitespace()
            .find_map(|w| w.strip_prefix("file="))
        {
            steps.push(Step::File {
                name: name.to_owned(),
                text: body.join("\n") + "\n",
            });
        } else if lang == "console" {
            steps.extend(
                session(n + 2, &body, &mut stdin)
                    .into_iter()
                    .map(Step::Command),
            );
        } else if matches!(lang, "sh" | "bash" | "shell") {
            let first = body
                .iter()
                .map(|l| l.trim())
                .find(|l| !l.is_empty() && !l.starts_with('#'))
                .map_or("", |l| strip_comment(l).trim())
                .to_owned();
            skipped.push((n + 1, first));
        }
    }
    (steps, skipped)
}

/// The commands of one console block that starts on README line `first`.
fn session(first: usize, body: &[String], stdin: &mut Option<String>) -> Vec<Cmd> {
    let mut cmds: Vec<Cmd> = Vec::new();
    let mut i = 0;
    while i < body.len() {
        let Some(start) = body[i].strip_prefix("$ ") else {
            let cmd = cmds.last_mut().unwrap_or_else(|| {
                panic!(
                    "README line {}: output before any command in a console block",
                    first + i
                )
            });
            cmd.expected.push_str(&body[i]);
            cmd.expected.push('\n');
            i += 1;
            continue;
        };
        let line = first + i;
        let mut text = start.to_owned();
        while text.ends_with('\\') && i + 1 < body.len() {
            i += 1;
            text.push('\n');
            text.push_str(&body[i]);
        }
        let exit = comment_of(&text)
            .and_then(|c| {
                let at = c.find("exit ")?;
                c[at + 5..]
                    .split(|ch: char| !ch.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or(0);
        let code = strip_comment(&text);
        let background = code.trim_end().ends_with('&')
            || RUNS_UNTIL_STOPPED
                .iter()
                .any(|c| code.trim_start().starts_with(c));
        cmds.push(Cmd {
            line,
            text,
            expected: String::new(),
            exit,
            background,
            stdin: stdin.take(),
        });
        i += 1;
    }
    cmds
}

/// The trailing `# comment` of a command, outside quotes.
fn comment_of(text: &str) -> Option<&str> {
    let at = comment_at(text)?;
    Some(&text[at..])
}

fn strip_comment(text: &str) -> &str {
    comment_at(text).map_or(text, |at| &text[..at])
}

fn comment_at(text: &str) -> Option<usize> {
    let (mut single, mut double) = (false, false);
    let mut prev = ' ';
    for (at, c) in text.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev.is_whitespace() => return Some(at),
            _ => {}
        }
        prev = c;
    }
    None
}

/// One `bash` inside fresh network and mount namespaces.
struct Shell {
    child: Child,
    stdin: ChildStdin,
    /// Where the files the shell writes are, inside its namespace.
    ns_io: PathBuf,
    /// The shell's standard output, line by line (a thread reads it, so a
    /// command that hangs times out instead of hanging the test).
    lines: std::sync::mpsc::Receiver<String>,
    io: PathBuf,
    count: usize,
}

impl Shell {
    fn start(io: &Path, bin_dir: &Path) -> Shell {
        let mut child = Command::new("unshare")
            .args([
                "--net",
                "--mount",
                "--fork",
                "bash",
                "--noprofile",
                "--norc",
            ])
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", "/root")
            .env("LANG", "C.UTF-8")
            .env("TERM", "dumb")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .expect("unshare runs");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut shell = Shell {
            child,
            stdin,
            // The setup's own output goes to the host path (opened before
            // it hides anything); every later command's to the staged one.
            ns_io: io.to_owned(),
            lines,
            io: io.to_owned(),
            count: 0,
        };
        // The README's paths, empty and private to this namespace. The
        // test's own files and the binary under test may live under one of
        // them (a checkout in /tmp): they are staged under /mnt first, by
        // bind mounts that hiding /tmp does not hide.
        let setup = format!(
            "set -o pipefail
ip link set lo up
[ -d /mnt ] || {{ echo 'no /mnt to stage the test files under' >&2; exit 1; }}
mount -t tmpfs readme-stage /mnt
mkdir -p /mnt/io /mnt/bin
mount --bind '{io}' /mnt/io
mount --bind '{bin}' /mnt/bin
for d in /var/lib /srv /tmp; do mkdir -p $d && mount -t tmpfs readme-test $d || exit 1; done
export PATH=/mnt/bin:$PATH
mkdir -p /tmp/readme && cd /tmp/readme",
            io = io.display(),
            bin = bin_dir.display()
        );
        let (code, out) = shell.run(&setup, None);
        assert_eq!(code, 0, "namespace setup: {out}");
        shell.ns_io = PathBuf::from("/mnt/io");
        shell
    }

    /// Runs `code`, returns its exit status and its output file.
    fn run(&mut self, code: &str, stdin: Option<&str>) -> (i32, String) {
        let (status, out) = self.start_command(code, stdin, false);
        (status.unwrap_or(-1), read(&out))
    }

    /// Starts `code`; waits for it unless `background`. Returns the exit
    /// status (when waited for) and the file its output goes to.
    fn start_command(
        &mut self,
        code: &str,
        stdin: Option<&str>,
        background: bool,
    ) -> (Option<i32>, PathBuf) {
        self.count += 1;
        let out = self.io.join(format!("{}.out", self.count));
        let input = self.io.join(format!("{}.in", self.count));
        std::fs::write(&input, stdin.map(|s| format!("{s}\n")).unwrap_or_default())
            .expect("write stdin");
        let (ns_out, ns_input) = (
            self.ns_io.join(format!("{}.out", self.count)),
            self.ns_io.join(format!("{}.in", self.count)),
        );
        // A trailing comment would swallow the `&`.
        let code = if background {
            format!("{} &", strip_comment(code).trim_end().trim_end_matches('&'))
        } else {
            code.to_owned()
        };
        let script = format!(
            "{{ {code}\n}} > '{}' 2>&1 < '{}'\nprintf '\\n__readme_done__ %d\\n' $?\n",
            ns_out.display(),
            ns_input.display()
        );
        self.stdin
            .write_all(script.as_bytes())
            .and_then(|()| self.stdin.flush())
            .expect("the shell takes a command");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "no end within two minutes: {code}\nit printed:\n{}",
                        read(&out)
                    )
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("the shell exited during: {code}")
                }
            };
            if let Some(rc) = line.trim().strip_prefix("__readme_done__ ") {
                let rc = rc.parse().expect("status");
                return (if background { None } else { Some(rc) }, out);
            }
        }
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        // Every process of the session (servers, agents) goes with it.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

fn matches(actual: &str, expected: &str) -> Result<(), String> {
    snapbox::Assert::new()
        .normalize_paths(false)
        .try_eq(
            Some(&"the command's output"),
            actual.into(),
            expected.into(),
        )
        .map_err(|e| e.to_string())
}

#[test]
fn every_readme_command_runs_and_prints_what_the_readme_shows() {
    let needs = ["unshare", "ip", "curl", "zbarimg", "openssl"];
    if !is_root() || needs.iter().any(|c| !have(c)) {
        skip(&format!(
            "the README test needs root and {needs:?} (./test.sh installs them)"
        ));
        return;
    }
    let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&readme_path).expect("README.md");
    let (steps, skipped) = parse(&readme);

    // Every block of commands is run, or listed with its reason.
    for (line, first) in &skipped {
        assert!(
            NOT_RUN.iter().any(|(f, _)| f == first),
            "README line {line}: a block of commands ({first:?}) that no test runs: make it a \
             `console` block, or list it in NOT_RUN with the reason"
        );
    }
    for (first, _) in NOT_RUN {
        assert!(
            skipped.iter().any(|(_, f)| f == first),
            "NOT_RUN names {first:?}, which the README no longer has"
        );
    }
    let commands = steps
        .iter()
        .filter(|s| matches!(s, Step::Command(_)))
        .count();
    assert!(
        commands > 50,
        "only {commands} commands found in the README"
    );

    // Staged into the namespace under /mnt (see `Shell::start`).
    let io = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("io dir");
    let bin = Path::new(env!("CARGO_BIN_EXE_idprov"))
        .parent()
        .expect("bin dir");
    let mut shell = Shell::start(io.path(), bin);

    // The quick start's first command: the server with embedded defaults.
    let (_, log) = shell.start_command("idprov serve", None, true);
    wait_for(
        &log,
        "...\n[..]idprov server ready[..]\n...\n",
        "idprov serve (README line 4)",
    );

    let mut run_count = 0;
    for step in &steps {
        match step {
            Step::File { name, text } => {
                std::fs::write(io.path().join(format!("file-{name}")), text).expect("stage file");
                let staged = shell.ns_io.join(format!("file-{name}"));
                let (code, out) = shell.run(&format!("cp '{}' '{name}'", staged.display()), None);
                assert_eq!(code, 0, "writing {name}: {out}");
            }
            Step::Command(cmd) => {
                run_count += 1;
                let code = SUBSTITUTES
                    .iter()
                    .find(|(shown, _)| strip_comment(&cmd.text).trim() == *shown)
                    .map_or(cmd.text.as_str(), |(_, instead)| instead);
                let what = format!("README line {}: $ {}", cmd.line, cmd.text);
                eprintln!("{what}");
                let (status, out) = shell.start_command(code, cmd.stdin.as_deref(), cmd.background);
                if cmd.background {
                    wait_for(&out, &cmd.expected, &what);
                    continue;
                }
                let text = read(&out);
                assert_eq!(
                    status,
                    Some(cmd.exit),
                    "{what}\nexited {status:?}, the README says {}; it printed:\n{text}",
                    cmd.exit
                );
                if let Err(diff) = matches(&text, &cmd.expected) {
                    panic!("{what}\nprinted something else than the README shows:\n{diff}");
                }
            }
        }
    }
    eprintln!("{run_count} README commands ran and printed what the README shows");
}

/// Waits until a background command's output matches (a server is ready,
/// an agent installed its certificate).
fn wait_for(out: &Path, expected: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = read(out);
        match matches(&text, expected) {
            Ok(()) => return,
            Err(diff) if Instant::now() > deadline => {
                panic!("{what}\ndid not print what the README shows within a minute:\n{diff}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

#[test]
fn the_readme_parser_reads_sessions_files_and_exits() {
    let text = "intro\n\
<!-- readme-test stdin: hunter2 hunter2 -->\n\
```console\n\
$ idprov admin create alice --p12 a.p12\n\
Administrator alice: [..]\n\
$ idprov oob import bad.csv   # exit 1: a row is refused\n\
...\n\
$ idprov serve --listen 127.0.0.1:1 &\n\
$ echo \"# not a comment\" \\\n\
\x20 more\n\
```\n\
```csv file=bad.csv\n\
deviceID,secret\n\
```\n\
```sh\n\
# a comment\n\
systemctl stop idprov\n\
```\n";
    let (steps, skipped) = parse(text);
    assert_eq!(skipped, [(15, "systemctl stop idprov".to_owned())]);
    let cmds: Vec<&Cmd> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Command(c) => Some(c),
            Step::File { .. } => None,
        })
        .collect();
    assert_eq!(cmds.len(), 4);
    assert_eq!(cmds[0].stdin.as_deref(), Some("hunter2 hunter2"));
    assert_eq!(cmds[0].expected, "Administrator alice: [..]\n");
    assert_eq!(cmds[0].line, 4);
    assert_eq!((cmds[1].exit, cmds[1].stdin.is_none()), (1, true));
    assert!(cmds[2].background && !cmds[1].background);
    assert_eq!(cmds[3].text, "echo \"# not a comment\" \\\n  more");
    assert_eq!(cmds[3].exit, 0);
    assert!(matches!(&steps[4], Step::File { name, .. } if name == "bad.csv"));
    assert!(matches("a b c\nd\n", "a [..] c\n...\n").is_ok());
    assert!(matches("a b c\n", "a x c\n").is_err());
}
