//! Runs the reference server, ElectrumX (`e-x` from PyPI), beside ferrumx on the same
//! daemon, so tests can compare the two answer for answer.
//!
//! ElectrumX lives in a Python virtual environment: `FERRUMX_ELECTRUMX_VENV`, or
//! `$HOME/.cache/ferrumx-tests/ex-venv`. When that has no ElectrumX, `ensure_installed`
//! creates it (`python3 -m venv` and `pip install e-x==2.0.0 plyvel==1.5.1`, the pinned
//! versions the allow-lists of the tests were written against) and panics with the
//! command to run by hand if that fails (no network, no `python3-venv`).
//!
//! The server is started through a small Python wrapper that changes one timing before
//! `electrumx_server`'s `main()` runs, and nothing else:
//! `PaddedRSTransport.WAIT_FOR_BUFFER_GROWTH_SECONDS = 0`. ElectrumX holds replies smaller
//! than 1 KiB for up to 1 s hoping to pad several into one packet (a traffic analysis
//! countermeasure); with 0 every reply leaves at once (still padded).

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use super::{file_tail, free_port};

/// What `ensure_installed` puts in a new virtual environment.
pub const PIP_PACKAGES: [&str; 2] = ["e-x==2.0.0", "plyvel==1.5.1"];
/// Overrides the virtual environment's location.
pub const VENV_VAR: &str = "FERRUMX_ELECTRUMX_VENV";
/// Creating the environment and downloading the packages; pip's own per-request timeout
/// is 30 s.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The wrapper `python -c` runs (see the module documentation).
const WRAPPER: &str = "\
from electrumx.server.transport import PaddedRSTransport
PaddedRSTransport.WAIT_FOR_BUFFER_GROWTH_SECONDS = 0
from electrumx.cli.electrumx_server import main
main()
";

/// The virtual environment the tests use.
pub fn venv_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(VENV_VAR) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    Path::new(&home).join(".cache/ferrumx-tests/ex-venv")
}

/// The shell commands that install ElectrumX where the tests look for it.
pub fn install_command(venv: &Path) -> String {
    format!(
        "python3 -m venv {venv} && {venv}/bin/pip install {}",
        PIP_PACKAGES.join(" "),
        venv = venv.display()
    )
}

/// The virtual environment's python, with ElectrumX importable; installs it first when
/// missing. Panics with the way to install it by hand if that is impossible.
pub fn ensure_installed() -> PathBuf {
    let venv = venv_dir();
    let python = venv.join("bin/python");
    if imports_electrumx(&python) {
        return python;
    }
    eprintln!(
        "ElectrumX is not installed in {}; installing {}",
        venv.display(),
        PIP_PACKAGES.join(" ")
    );
    let steps: [(&str, Vec<String>); 2] = [
        (
            "python3",
            vec!["-m".into(), "venv".into(), venv.display().to_string()],
        ),
        (
            python.to_str().expect("venv path is UTF-8"),
            ["-m", "pip", "install", "--quiet", "--timeout", "30"]
                .iter()
                .map(|s| s.to_string())
                .chain(PIP_PACKAGES.iter().map(|s| s.to_string()))
                .collect(),
        ),
    ];
    for (program, args) in steps {
        if let Err(problem) = run_bounded(program, &args, INSTALL_TIMEOUT) {
            panic!(
                "ElectrumX is needed to compare ferrumx with it and could not be installed \
                 into {}: {problem}\nInstall it by hand (needs network and python3-venv):\n  \
                 {}\nor point {VENV_VAR} at a virtual environment that has it.",
                venv.display(),
                install_command(&venv)
            );
        }
    }
    assert!(
        imports_electrumx(&python),
        "installed {} into {} but `import electrumx, plyvel` still fails",
        PIP_PACKAGES.join(" "),
        venv.display()
    );
    python
}

fn imports_electrumx(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import electrumx, plyvel"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs a command to completion within `timeout`; the error says what went wrong.
fn run_bounded(program: &str, args: &[String], timeout: Duration) -> Result<(), String> {
    let output_file = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    let output = output_file.reopen().map_err(|e| e.to_string())?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(output.try_clone().map_err(|e| e.to_string())?)
        .stderr(output)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            if status.success() {
                return Ok(());
            }
            return Err(format!(
                "`{program} {}` failed with {status}:\n{}",
                args.join(" "),
                file_tail(output_file.path(), 15)
            ));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "`{program} {}` did not finish within {timeout:?}",
                args.join(" ")
            ));
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// A running ElectrumX with its own LevelDB directory and log. Drop stops it.
pub struct ElectrumxProcess {
    python: PathBuf,
    env: Vec<(String, String)>,
    tcp_addr: SocketAddr,
    dir: TempDir,
    child: Option<Child>,
}

impl ElectrumxProcess {
    /// Starts ElectrumX (installing it if needed) for Litecoin regtest on `daemon_url`,
    /// serving TCP on a free loopback port. `extra_env` is applied last, so it can override
    /// the defaults (but not SERVICES, which `tcp_addr` describes).
    pub fn start(daemon_url: &str, extra_env: &[(&str, &str)]) -> ElectrumxProcess {
        let python = ensure_installed();
        let dir = tempfile::Builder::new()
            .prefix("ferrumx-electrumx-")
            .tempdir()
            .expect("create ElectrumX dir");
        let db_dir = dir.path().join("db");
        fs::create_dir(&db_dir).expect("create ElectrumX DB_DIRECTORY");
        let mut env: Vec<(String, String)> = [
            ("COIN", "Litecoin".to_string()),
            ("NET", "regtest".to_string()),
            ("DB_ENGINE", "leveldb".to_string()),
            ("DAEMON_URL", daemon_url.to_string()),
            ("DB_DIRECTORY", db_dir.display().to_string()),
            ("ALLOW_ROOT", "1".to_string()),
            ("PEER_DISCOVERY", "off".to_string()),
            ("COST_SOFT_LIMIT", "0".to_string()),
            ("COST_HARD_LIMIT", "0".to_string()),
            ("LOG_LEVEL", "info".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (key, value) in extra_env {
            assert_ne!(*key, "SERVICES", "ElectrumxProcess chooses SERVICES itself");
            env.retain(|(k, _)| k != key);
            env.push((key.to_string(), value.to_string()));
        }
        let mut process = ElectrumxProcess {
            python,
            env,
            tcp_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir,
            child: None,
        };
        process.spawn();
        process
    }

    /// Stops the server and starts it again on the same index, listening on a new port
    /// (see `tcp_addr`).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Runs the server on a free port; its output is appended to the log.
    fn spawn(&mut self) {
        self.tcp_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open ElectrumX log");
        let mut command = Command::new(&self.python);
        command.env_clear();
        for key in ["PATH", "HOME"] {
            if let Ok(value) = std::env::var(key) {
                command.env(key, value);
            }
        }
        let child = command
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("SERVICES", format!("tcp://{}", self.tcp_addr))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .args(["-c", WRAPPER])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.python.display()));
        self.child = Some(child);
    }

    /// Waits until the port answers `server.version` (ElectrumX listens only once it has
    /// caught up with the daemon); panics with the log tail if it exits or times out.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if answers_version(self.tcp_addr) {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().expect("try_wait ElectrumX"))
            {
                panic!(
                    "ElectrumX exited with {status} before serving; log tail:\n{}",
                    self.log_tail(40)
                );
            }
            assert!(
                Instant::now() < deadline,
                "ElectrumX did not answer server.version on {} within {timeout:?}; log tail:\n{}",
                self.tcp_addr,
                self.log_tail(40)
            );
            thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// The server's process id while it runs (for its RSS).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("electrumx.log")
    }

    pub fn log_tail(&self, lines: usize) -> String {
        file_tail(&self.log_path(), lines)
    }

    /// SIGTERM (ElectrumX flushes and exits), then SIGKILL if it lingers.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ElectrumxProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

fn answers_version(addr: SocketAddr) -> bool {
    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    if stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .is_err()
    {
        return false;
    }
    let request = json!({"jsonrpc": "2.0", "id": 0, "method": "server.version",
                         "params": ["ferrumx-tests", "1.4"]});
    let mut writer = &stream;
    if writeln!(writer, "{request}").is_err() {
        return false;
    }
    let mut line = String::new();
    if BufReader::new(&stream).read_line(&mut line).is_err() {
        return false;
    }
    serde_json::from_str::<Value>(&line).is_ok_and(|reply| reply.get("result").is_some())
}
