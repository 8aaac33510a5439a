//! Runs the ferrumx binary the way an operator does (ElectrumX environment variables), with
//! its output captured to a log file whose tail explains any failure.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use super::{file_tail, free_port};

/// How long `stop` waits after SIGTERM before it kills and panics.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running (or exited) ferrumx server. Drop terminates it.
pub struct FerrumxProcess {
    binary: PathBuf,
    env: Vec<(String, String)>,
    tcp_addr: SocketAddr,
    log_dir: TempDir,
    child: Option<Child>,
}

impl FerrumxProcess {
    /// Launches `binary` indexing the daemon at `daemon_url` into `db_dir`, serving TCP on a
    /// free loopback port. `extra_env` is applied last, so it can override any default
    /// (a SERVICES override must keep one `tcp://` entry for `tcp_addr`).
    pub fn start(
        binary: &Path,
        daemon_url: &str,
        db_dir: &Path,
        extra_env: &[(&str, &str)],
    ) -> FerrumxProcess {
        let port = free_port();
        let mut env: Vec<(String, String)> = [
            ("COIN", "Litecoin".to_string()),
            ("NET", "regtest".to_string()),
            ("DAEMON_URL", daemon_url.to_string()),
            ("DB_DIRECTORY", db_dir.display().to_string()),
            ("SERVICES", format!("tcp://127.0.0.1:{port}")),
            ("ALLOW_ROOT", "1".to_string()),
            ("LOG_LEVEL", "info".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (key, value) in extra_env {
            env.retain(|(k, _)| k != key);
            env.push((key.to_string(), value.to_string()));
        }
        let services = &env
            .iter()
            .find(|(k, _)| k == "SERVICES")
            .expect("SERVICES is set")
            .1;
        let tcp_addr = tcp_service(services)
            .unwrap_or_else(|| panic!("SERVICES {services:?} has no tcp://host:port entry"));
        let log_dir = tempfile::Builder::new()
            .prefix("ferrumx-log-")
            .tempdir()
            .expect("create ferrumx log dir");
        let mut process = FerrumxProcess {
            binary: binary.to_path_buf(),
            env,
            tcp_addr,
            log_dir,
            child: None,
        };
        let log = fs::File::create(process.log_path()).expect("create ferrumx.log");
        let child = process
            .command()
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log file handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        process.child = Some(child);
        process
    }

    /// Waits until the TCP port accepts and `server.version` answers; panics (with the log
    /// tail) if the process exits or the time runs out.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.answers_version() {
                return;
            }
            if let Some(status) = self.exit_status() {
                panic!(
                    "ferrumx exited with {status} before serving; log tail:\n{}",
                    self.log_tail(40)
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "ferrumx did not answer server.version on {} within {timeout:?}; log tail:\n{}",
                    self.tcp_addr,
                    self.log_tail(40)
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// stdout and stderr of the server.
    pub fn log_path(&self) -> PathBuf {
        self.log_dir.path().join("ferrumx.log")
    }

    pub fn log_tail(&self, lines: usize) -> String {
        file_tail(&self.log_path(), lines)
    }

    /// The whole log so far (to look for a message).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&fs::read(self.log_path()).unwrap_or_default()).into_owned()
    }

    /// Polls the log until it contains `needle`, and returns it; panics after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log within {timeout:?}:\n{}",
                self.log_tail(30)
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// The exit status if the process has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().expect("try_wait ferrumx"))
    }

    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.exit_status().is_none()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no chance to flush or close anything.
    pub fn kill9(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the exit and returns its status; panics (after killing) if
    /// the server takes longer than 30 s.
    pub fn stop(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("ferrumx was started");
        if let Some(status) = child.try_wait().expect("try_wait ferrumx") {
            return status;
        }
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().expect("try_wait ferrumx") {
                return status;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "ferrumx did not exit within {STOP_TIMEOUT:?} of SIGTERM; killed it. log tail:\n{}",
            self.log_tail(40)
        );
    }

    /// Runs `<binary> dump-index` with the same environment and returns its stdout; panics
    /// with its stderr if it fails.
    pub fn dump_index(&self) -> String {
        let output = self
            .command()
            .arg("dump-index")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {} dump-index: {e}", self.binary.display()));
        assert!(
            output.status.success(),
            "ferrumx dump-index failed with {}; stderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("dump-index prints UTF-8")
    }

    /// The binary with this server's environment (and nothing inherited that could
    /// configure it differently).
    fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command.env_clear();
        for key in ["PATH", "HOME", "RUST_BACKTRACE"] {
            if let Ok(value) = std::env::var(key) {
                command.env(key, value);
            }
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    fn answers_version(&self) -> bool {
        let Ok(stream) = TcpStream::connect_timeout(&self.tcp_addr, Duration::from_secs(1)) else {
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
}

impl Drop for FerrumxProcess {
    fn drop(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
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

/// The address of the first `tcp://host:port` entry of an ElectrumX SERVICES list.
fn tcp_service(services: &str) -> Option<SocketAddr> {
    services
        .split(',')
        .filter_map(|s| s.trim().strip_prefix("tcp://"))
        .find_map(|addr| addr.parse().ok())
}
