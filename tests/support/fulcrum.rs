//! Runs Fulcrum 2.1.1 (the C++ Electrum server) against a regtest litecoind, for the
//! differential test of Fulcrum's extras. Fulcrum is not part of the project: it is built
//! outside the checkout by `shared/tools/build-fulcrum.sh`, and found through the
//! FERRUMX_FULCRUM variable or at /work/fulcrum/Fulcrum. Without it the test says so and
//! skips.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use tempfile::TempDir;

use super::electrum::RawClient;
use super::litecoind::Litecoind;
use super::{file_tail, free_port};

/// Where the build script puts Fulcrum on the development machines.
const DEFAULT_BINARY: &str = "/work/fulcrum/Fulcrum";

/// The Fulcrum binary to compare with, or why there is none.
pub fn binary() -> Result<PathBuf, String> {
    let path = std::env::var("FERRUMX_FULCRUM").unwrap_or_else(|_| DEFAULT_BINARY.to_string());
    let path = PathBuf::from(path);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "no Fulcrum binary at {} (set FERRUMX_FULCRUM, or build Fulcrum 2.1.1 with \
             shared/tools/build-fulcrum.sh)",
            path.display()
        ))
    }
}

/// A running Fulcrum. Drop kills it and deletes its directory.
pub struct FulcrumProcess {
    dir: TempDir,
    tcp_addr: SocketAddr,
    child: Child,
}

impl FulcrumProcess {
    /// Starts `binary` on `node`, which must run with `txindex=1` (Fulcrum checks), with
    /// daemon.passthrough open to 127.0.0.1 and a 0.5 s poll.
    pub fn start(binary: &Path, node: &Litecoind) -> FulcrumProcess {
        let dir = tempfile::Builder::new()
            .prefix("ferrumx-fulcrum-")
            .tempdir()
            .expect("create Fulcrum temp dir");
        let port = free_port();
        let (user, password) = node.rpc_credentials();
        let conf = format!(
            "datadir = {}\nbitcoind = 127.0.0.1:{}\nrpcuser = {user}\nrpcpassword = {password}\n\
             tcp = 127.0.0.1:{port}\npeering = false\nannounce = false\npolltime = 0.5\n\
             daemon_passthrough_subnets = 127.0.0.1/32\n",
            dir.path().join("db").display(),
            node.rpc_port(),
        );
        let conf_path = dir.path().join("fulcrum.conf");
        fs::write(&conf_path, conf).expect("write fulcrum.conf");
        let log = fs::File::create(dir.path().join("fulcrum.log")).expect("create fulcrum.log");
        let child = Command::new(binary)
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        FulcrumProcess {
            dir,
            tcp_addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
        }
    }

    /// Waits until Fulcrum answers `server.version` (it serves once synced and once the
    /// daemon is out of initial block download); panics with its log tail otherwise.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let answered = TcpStream::connect_timeout(&self.tcp_addr, Duration::from_secs(1))
                .ok()
                .and_then(|stream| RawClient::from_stream(stream).ok())
                .is_some_and(|mut client| {
                    client
                        .try_call("server.version", json!(["ferrumx-tests", "1.4"]))
                        .is_ok_and(|reply| reply.is_ok())
                });
            if answered {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "Fulcrum exited with {status}; log tail:\n{}",
                    self.log_tail(30)
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "Fulcrum did not serve within {timeout:?}; log tail:\n{}",
                    self.log_tail(30)
                );
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    pub fn log_tail(&self, lines: usize) -> String {
        file_tail(&self.dir.path().join("fulcrum.log"), lines)
    }
}

impl Drop for FulcrumProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
