//! SIGHUP reloads SSL_CERTFILE and SSL_KEYFILE, end to end over real TLS: after the files
//! change and the signal, a new connection is served the new certificate while a session
//! opened before it stays up on the old one; a broken or mismatched file keeps the
//! certificate in use and the log says why.

mod support;

use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslConnector, SslMethod, SslStream, SslVerifyMode};
use openssl::x509::X509;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;
use support::certs::self_signed;
use support::ferrumx::FerrumxProcess;
use support::litecoind::Litecoind;
use support::{free_port, wait_until};

const READY: Duration = Duration::from_secs(120);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferrumx"))
}

fn write_pair(dir: &Path, cert: &X509, key: &PKey<Private>) {
    std::fs::write(dir.join("server.crt"), cert.to_pem().unwrap()).unwrap();
    std::fs::write(
        dir.join("server.key"),
        key.private_key_to_pem_pkcs8().unwrap(),
    )
    .unwrap();
}

/// A TLS session with the server (no verification: the certificates are self-signed).
struct TlsClient {
    reader: BufReader<SslStream<TcpStream>>,
    next_id: u64,
}

impl TlsClient {
    fn connect(port: u16) -> TlsClient {
        let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect to ssl://");
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut connector = SslConnector::builder(SslMethod::tls_client()).unwrap();
        connector.set_verify(SslVerifyMode::NONE);
        let tls = connector
            .build()
            .connect("localhost", tcp)
            .expect("TLS handshake");
        TlsClient {
            reader: BufReader::new(tls),
            next_id: 0,
        }
    }

    /// The certificate the server presented, as DER.
    fn server_certificate(&self) -> Vec<u8> {
        self.reader
            .get_ref()
            .ssl()
            .peer_certificate()
            .expect("a server certificate")
            .to_der()
            .unwrap()
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let request = json!({"jsonrpc": "2.0", "id": self.next_id, "method": method,
                             "params": params});
        let stream = self.reader.get_mut();
        writeln!(stream, "{request}").expect("send over TLS");
        stream.flush().unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read over TLS");
        let reply: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert_eq!(reply["id"], json!(self.next_id), "{reply}");
        reply["result"].clone()
    }
}

fn hangup(server: &FerrumxProcess) {
    let pid = libc::pid_t::try_from(server.pid().expect("running")).unwrap();
    // SAFETY: kill(2) on the test's own child process, which has not been reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
}

/// Sends SIGHUP and waits for the `count`-th log line containing `text`.
fn hangup_and_wait(server: &FerrumxProcess, text: &str) {
    let before = server.log().matches(text).count();
    hangup(server);
    wait_until(
        &format!("{text:?} in the log"),
        Duration::from_secs(20),
        || server.log().matches(text).count() > before,
    );
}

#[test]
fn sighup_reloads_the_certificate_without_dropping_sessions() {
    let node = Litecoind::start();
    node.mine(3);
    let certs = tempfile::tempdir().unwrap();
    let (cert_a, key_a) = self_signed("first.example");
    write_pair(certs.path(), &cert_a, &key_a);
    let cert_path = certs.path().join("server.crt").display().to_string();
    let key_path = certs.path().join("server.key").display().to_string();
    let (tcp_port, ssl_port) = (free_port(), free_port());
    let services = format!("tcp://127.0.0.1:{tcp_port},ssl://127.0.0.1:{ssl_port}");
    let db = tempfile::tempdir().unwrap();
    let mut server = FerrumxProcess::start(
        binary(),
        &node.daemon_url(),
        db.path(),
        &[
            ("SERVICES", &services),
            ("SSL_CERTFILE", &cert_path),
            ("SSL_KEYFILE", &key_path),
        ],
    );
    server.wait_ready(READY);
    wait_until("the SSL listener", READY, || {
        server
            .log()
            .contains(&format!("SSL server listening on 127.0.0.1:{ssl_port}"))
    });

    let mut old = TlsClient::connect(ssl_port);
    assert_eq!(old.server_certificate(), cert_a.to_der().unwrap());
    old.call("server.version", json!(["tls-reload", "1.4"]));
    let tip = old.call("blockchain.headers.subscribe", json!([]));
    assert_eq!(tip["height"], json!(3));

    // New files, then SIGHUP: new connections get the new certificate.
    let (cert_b, key_b) = self_signed("second.example");
    write_pair(certs.path(), &cert_b, &key_b);
    hangup_and_wait(&server, "TLS certificate reloaded");
    assert!(server.log().contains("second.example"), "{}", server.log());
    let mut new = TlsClient::connect(ssl_port);
    assert_eq!(new.server_certificate(), cert_b.to_der().unwrap());
    new.call("server.version", json!(["tls-reload", "1.4"]));
    assert_eq!(new.call("server.ping", json!([])), Value::Null);

    // The session opened before is still up, on its certificate, and still notified.
    assert_eq!(old.server_certificate(), cert_a.to_der().unwrap());
    assert_eq!(old.call("server.ping", json!([])), Value::Null);
    node.mine(1);
    let mut line = String::new();
    old.reader
        .read_line(&mut line)
        .expect("a header notification");
    let notification: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(notification["method"], "blockchain.headers.subscribe");
    assert_eq!(notification["params"][0]["height"], json!(4));

    // A broken certificate file: not loaded, the log says why, B stays in use.
    std::fs::write(&cert_path, b"-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    hangup_and_wait(&server, "TLS certificate NOT reloaded");
    assert!(
        server.log().contains(&format!(
            "the previous one stays in use: SSL_CERTFILE file {cert_path}"
        )),
        "{}",
        server.log()
    );
    assert_eq!(
        TlsClient::connect(ssl_port).server_certificate(),
        cert_b.to_der().unwrap()
    );
    // A certificate with someone else's key: refused too.
    let (cert_c, _) = self_signed("third.example");
    std::fs::write(&cert_path, cert_c.to_pem().unwrap()).unwrap();
    hangup_and_wait(&server, "does not match the certificate");
    let mut after = TlsClient::connect(ssl_port);
    assert_eq!(after.server_certificate(), cert_b.to_der().unwrap());
    after.call("server.version", json!(["tls-reload", "1.4"]));
    // Both earlier sessions are still served.
    assert_eq!(old.call("server.ping", json!([])), Value::Null);
    assert_eq!(new.call("server.ping", json!([])), Value::Null);
    assert!(server.is_running(), "SIGHUP must not stop the server");
}
