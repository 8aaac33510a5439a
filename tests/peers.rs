//! Peer discovery end to end on loopback, on one regtest litecoind: three ferrumx servers
//! told about one another in a ring discover, verify and list each other through their
//! peer lists; a fourth, which announces itself under a public name, meets scripted peers
//! (a proxy in front of a real server that changes only what the test is about): one on
//! another chain (another genesis hash) is marked bad and forgotten, a blacklisted one is
//! refused, a good one is verified and receives our `server.add_peer`; an unreachable
//! peer is retried with backoff and forgotten; a flood of `server.add_peer` calls gets one
//! acceptance and is rate-limited after; an add_peer whose host does not resolve to the
//! caller is refused; an unreachable BLACKLIST_URL is logged and skipped. One of the
//! three serves SSL too (its peers then check it over SSL first), and a fifth server with
//! FORCE_PROXY reaches a server and an onion peer through a scripted SOCKS5 proxy.
//!
//! Every server runs with `FERRUMX_TEST_PEERS=1`: loopback addresses count as public
//! peers and the peer timers run 1,000 times faster (see `actors/peers.rs`). Servers sit
//! on different 127.x.0.1 addresses so that ElectrumX's per-address and per-/16 limits
//! treat them as different machines.

mod support;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use support::electrum::RawClient;
use support::ferrumx::FerrumxProcess;
use support::free_port;
use support::litecoind::Litecoind;
use tempfile::TempDir;

/// Bitcoin regtest's genesis: a peer announcing it is on another chain.
const OTHER_GENESIS: &str = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206";
/// How long fake peers and the blacklist server keep accepting.
const HELPER_LIFETIME: Duration = Duration::from_secs(150);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferrumx"))
}

struct Server {
    process: FerrumxProcess,
    _db: TempDir,
    ip: &'static str,
    tcp: u16,
    rpc: u16,
}

impl Server {
    fn address(&self) -> SocketAddr {
        self.process.tcp_addr()
    }

    /// One admin command as raw JSON-RPC; its result.
    fn admin(&self, method: &str, params: Value) -> Value {
        let stream = TcpStream::connect(("127.0.0.1", self.rpc)).expect("admin port");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let request = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        writeln!(&stream, "{request}").expect("send admin request");
        let mut line = String::new();
        BufReader::new(&stream)
            .read_line(&mut line)
            .expect("admin reply");
        let reply: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(reply["error"].is_null(), "{method}: {reply}");
        reply["result"].clone()
    }

    /// The admin `peers` entry of `host`, if listed.
    fn peer_entry(&self, host: &str) -> Option<Value> {
        self.admin("peers", json!({}))
            .as_array()
            .and_then(|peers| peers.iter().find(|p| p["host"] == host).cloned())
    }

    fn add_peer(&self, real_name: &str) {
        let reply = self.admin("add_peer", json!({"real_name": real_name}));
        assert_eq!(reply, json!(format!("peer '{real_name}' added")));
    }

    fn client(&self) -> RawClient {
        let mut client = RawClient::connect(self.address()).expect("connect");
        client.handshake("1.4").expect("handshake");
        client
    }

    /// The hosts `server.peers.subscribe` lists.
    fn listed_hosts(&self) -> Vec<String> {
        let list = self
            .client()
            .call("server.peers.subscribe", json!([]))
            .expect("server.peers.subscribe");
        list.as_array()
            .expect("a list")
            .iter()
            .map(|entry| entry[1].as_str().expect("host").to_string())
            .collect()
    }

    fn log(&self) -> String {
        self.process.log()
    }
}

/// Polls `done` every 100 ms for at most `limit`; panics with `what` (and the state
/// `describe` gives) if it never holds.
fn wait_for(
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> bool,
    describe: impl Fn() -> String,
) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return;
        }
        thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "timed out after {limit:?} waiting for {what}\n{}",
        describe()
    );
}

/// A scripted peer on `ip`: it passes requests on to a real server (`upstream`) except
/// `server.features` (its own host and port, and `genesis` if given), `server.peers.subscribe`
/// (nobody) and `server.add_peer` (recorded, answered `true`).
struct FakePeer {
    port: u16,
    add_peer_calls: Arc<Mutex<Vec<Value>>>,
    methods: Arc<Mutex<Vec<String>>>,
}

impl FakePeer {
    fn start(ip: &'static str, upstream: SocketAddr, genesis: Option<&'static str>) -> FakePeer {
        FakePeer::named(ip, ip, upstream, genesis)
    }

    /// A fake peer listening on `ip` that calls itself `host` (an onion name reached
    /// through a proxy).
    fn named(
        host: &'static str,
        ip: &'static str,
        upstream: SocketAddr,
        genesis: Option<&'static str>,
    ) -> FakePeer {
        let listener = TcpListener::bind((ip, 0)).expect("bind fake peer");
        let port = listener.local_addr().expect("local addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let add_peer_calls = Arc::new(Mutex::new(Vec::new()));
        let methods = Arc::new(Mutex::new(Vec::new()));
        let (calls, seen) = (Arc::clone(&add_peer_calls), Arc::clone(&methods));
        thread::spawn(move || {
            let deadline = Instant::now() + HELPER_LIFETIME;
            while Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (calls, seen) = (Arc::clone(&calls), Arc::clone(&seen));
                        thread::spawn(move || {
                            serve_fake(stream, host, port, upstream, genesis, &calls, &seen)
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        FakePeer {
            port,
            add_peer_calls,
            methods,
        }
    }

    fn methods(&self) -> Vec<String> {
        self.methods.lock().expect("lock").clone()
    }
}

/// One connection to a fake peer: at most 50 requests, 30 s of silence ends it.
fn serve_fake(
    stream: TcpStream,
    host: &str,
    port: u16,
    upstream: SocketAddr,
    genesis: Option<&str>,
    calls: &Mutex<Vec<Value>>,
    seen: &Mutex<Vec<String>>,
) {
    let Ok(()) = stream.set_nonblocking(false) else {
        return;
    };
    let Ok(()) = stream.set_read_timeout(Some(Duration::from_secs(30))) else {
        return;
    };
    let Ok(up) = TcpStream::connect_timeout(&upstream, Duration::from_secs(5)) else {
        return;
    };
    let Ok(()) = up.set_read_timeout(Some(Duration::from_secs(30))) else {
        return;
    };
    let (Ok(reader), Ok(up_reader)) = (stream.try_clone(), up.try_clone()) else {
        return;
    };
    let mut reader = BufReader::new(reader);
    let mut up_reader = BufReader::new(up_reader);
    for _ in 0..50 {
        let mut line = String::new();
        if !matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
            return;
        }
        let Ok(request) = serde_json::from_str::<Value>(&line) else {
            return;
        };
        let method = request["method"].as_str().unwrap_or("").to_string();
        seen.lock().expect("lock").push(method.clone());
        let id = request["id"].clone();
        let result = match method.as_str() {
            "server.peers.subscribe" => json!([]),
            "server.add_peer" => {
                calls.lock().expect("lock").push(request["params"].clone());
                json!(true)
            }
            _ => {
                let Some(mut result) = forward(&up, &mut up_reader, &line, &id) else {
                    return;
                };
                if method == "server.features" {
                    result["hosts"] = json!({host: {"tcp_port": port}});
                    if let Some(genesis) = genesis {
                        result["genesis_hash"] = json!(genesis);
                    }
                }
                result
            }
        };
        let reply = json!({"jsonrpc": "2.0", "id": id, "result": result});
        if writeln!(&stream, "{reply}").is_err() {
            return;
        }
    }
}

/// Sends a request line upstream and returns the result of the reply with `id`
/// (notifications skipped; at most 20 lines read).
fn forward(
    up: &TcpStream,
    up_reader: &mut BufReader<TcpStream>,
    line: &str,
    id: &Value,
) -> Option<Value> {
    let mut writer = up;
    writer.write_all(line.as_bytes()).ok()?;
    for _ in 0..20 {
        let mut reply = String::new();
        if !matches!(up_reader.read_line(&mut reply), Ok(n) if n > 0) {
            return None;
        }
        let reply: Value = serde_json::from_str(&reply).ok()?;
        if &reply["id"] == id {
            return Some(reply["result"].clone());
        }
    }
    None
}

/// A SOCKS5 proxy on loopback (no authentication, CONNECT only) that sends `.onion`
/// names to `onion_target` and other targets where they say; records each target
/// (`host:port`) asked for. At most 100 connections, each relayed for at most 60 s.
fn socks5_proxy(onion_target: SocketAddr) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let targets = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&targets);
    thread::spawn(move || {
        let deadline = Instant::now() + HELPER_LIFETIME;
        let mut served = 0;
        while Instant::now() < deadline && served < 100 {
            let Ok((stream, _)) = listener.accept() else {
                thread::sleep(Duration::from_millis(20));
                continue;
            };
            served += 1;
            let seen = Arc::clone(&seen);
            thread::spawn(move || {
                let _ = socks5_session(stream, onion_target, &seen);
            });
        }
    });
    (port, targets)
}

fn socks5_session(
    mut client: TcpStream,
    onion_target: SocketAddr,
    seen: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    client.set_nonblocking(false)?;
    client.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut head = [0u8; 2];
    client.read_exact(&mut head)?;
    let mut methods = vec![0u8; usize::from(head[1])];
    client.read_exact(&mut methods)?;
    client.write_all(&[5, 0])?;
    // A probe ends here; a CONNECT follows otherwise.
    let mut request = [0u8; 4];
    client.read_exact(&mut request)?;
    let host = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip)?;
            std::net::Ipv4Addr::from(ip).to_string()
        }
        3 => {
            let mut len = [0u8; 1];
            client.read_exact(&mut len)?;
            let mut name = vec![0u8; usize::from(len[0])];
            client.read_exact(&mut name)?;
            String::from_utf8_lossy(&name).into_owned()
        }
        _ => return Ok(()),
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port)?;
    let port = u16::from_be_bytes(port);
    seen.lock().expect("lock").push(format!("{host}:{port}"));
    let target = if host.ends_with(".onion") {
        onion_target
    } else {
        SocketAddr::new(host.parse().map_err(std::io::Error::other)?, port)
    };
    let upstream = TcpStream::connect_timeout(&target, Duration::from_secs(5))?;
    upstream.set_read_timeout(Some(Duration::from_secs(60)))?;
    client.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0])?;
    let (mut up_read, mut client_write) = (upstream.try_clone()?, client.try_clone()?);
    let relay = thread::spawn(move || std::io::copy(&mut up_read, &mut client_write));
    let mut up_write = upstream;
    let _ = std::io::copy(&mut client, &mut up_write);
    let _ = up_write.shutdown(std::net::Shutdown::Write);
    let _ = relay.join();
    Ok(())
}

/// Serves `body` as JSON over HTTP on loopback (what BLACKLIST_URL points at); returns
/// the URL.
fn serve_blacklist(body: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind http");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    thread::spawn(move || {
        let deadline = Instant::now() + HELPER_LIFETIME;
        while Instant::now() < deadline {
            let Ok((mut stream, _)) = listener.accept() else {
                thread::sleep(Duration::from_millis(20));
                continue;
            };
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") && request.len() < 8192 {
                match stream.read(&mut byte) {
                    Ok(1) => request.push(byte[0]),
                    _ => break,
                }
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://127.0.0.1:{port}/blacklist.json")
}

/// A self-signed P-256 certificate and its key, as PEM files.
fn self_signed_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::x509::{X509, X509NameBuilder};
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("curve");
    let key = PKey::from_ec_key(EcKey::generate(&group).expect("key")).expect("pkey");
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_nid(Nid::COMMONNAME, "ferrumx-peer")
        .expect("common name");
    let name = name.build();
    let mut cert = X509::builder().expect("builder");
    cert.set_version(2).expect("version");
    let serial = BigNum::from_u32(1)
        .and_then(|n| n.to_asn1_integer())
        .expect("serial");
    cert.set_serial_number(&serial).expect("serial");
    cert.set_subject_name(&name).expect("subject");
    cert.set_issuer_name(&name).expect("issuer");
    cert.set_pubkey(&key).expect("pubkey");
    cert.set_not_before(&Asn1Time::days_from_now(0).expect("time"))
        .expect("not before");
    cert.set_not_after(&Asn1Time::days_from_now(30).expect("time"))
        .expect("not after");
    cert.sign(&key, MessageDigest::sha256()).expect("sign");
    let cert_path = dir.join("peer.crt");
    let key_path = dir.join("peer.key");
    std::fs::write(&cert_path, cert.build().to_pem().expect("pem")).expect("write cert");
    std::fs::write(&key_path, key.private_key_to_pem_pkcs8().expect("pem")).expect("write key");
    (cert_path, key_path)
}

#[test]
fn peers_discover_verify_and_police_each_other() {
    let started = Instant::now();
    let node = Litecoind::start();
    node.mine(101);

    let closed = free_port();
    let unreachable_blacklist = format!("http://127.0.0.1:{closed}/blacklist.json");
    // The third also serves SSL (a self-signed certificate, as most servers have): its
    // peers learn the port from its features and try SSL first.
    let cert_dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed_certificate(cert_dir.path());
    let ssl_port = free_port();
    let start_ring = |ip: &'static str, ssl: bool| {
        let port = free_port();
        let mut report = format!("tcp://{ip}:{port}");
        let mut extra = String::new();
        if ssl {
            report.push_str(&format!(",ssl://{ip}:{ssl_port}"));
            extra = format!(",ssl://{ip}:{ssl_port}");
        }
        let env = [
            ("REPORT_SERVICES", report.as_str()),
            // A loopback address cannot be announced (as ElectrumX, REPORT_SERVICES
            // refuses private addresses while PEER_ANNOUNCE is on): these servers find
            // each other through their peer lists.
            ("PEER_ANNOUNCE", ""),
            ("BLACKLIST_URL", unreachable_blacklist.as_str()),
            ("SSL_CERTFILE", cert.to_str().expect("UTF-8 path")),
            ("SSL_KEYFILE", key.to_str().expect("UTF-8 path")),
        ];
        start_on_port(&node, ip, port, &extra, &env)
    };
    let a = start_ring("127.0.0.1", false);
    let b = start_ring("127.1.0.1", false);
    let c = start_ring("127.2.0.1", true);

    let blacklist_url = serve_blacklist(r#"["127.8.0.1"]"#);
    let d = {
        let port = free_port();
        let report = format!("tcp://d.ferrumx.test:{port}");
        start_on_port(
            &node,
            "127.6.0.1",
            port,
            "",
            &[
                ("REPORT_SERVICES", report.as_str()),
                ("BLACKLIST_URL", blacklist_url.as_str()),
                // The flood below measures the peer rate limit, not session costs.
                ("COST_SOFT_LIMIT", "0"),
                ("COST_HARD_LIMIT", "0"),
            ],
        )
    };
    let mut servers = [a, b, c, d];
    for server in &mut servers {
        server.process.wait_ready(Duration::from_secs(60));
    }
    let [a, b, c, d] = &servers;

    // --- Three servers in a ring discover the third through the second's peer list. ---
    a.add_peer(&format!("{} t{}", b.ip, b.tcp));
    b.add_peer(&format!("{} t{}", c.ip, c.tcp));
    c.add_peer(&format!("{} t{}", a.ip, a.tcp));
    let ring = [a, b, c];
    let everyone: Vec<&str> = ring.iter().map(|s| s.ip).collect();
    wait_for(
        "each of the three servers to list all three",
        Duration::from_secs(45),
        || {
            ring.iter().all(|s| {
                let hosts = s.listed_hosts();
                everyone.iter().all(|ip| hosts.iter().any(|h| h == ip))
            })
        },
        || {
            ring.iter()
                .map(|s| {
                    format!(
                        "{}: {:?}\n{}",
                        s.ip,
                        s.listed_hosts(),
                        s.admin("peers", json!({}))
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        },
    );
    // C was verified over SSL, its announced port tried first.
    assert!(
        a.log()
            .contains(&format!("[{}:{ssl_port} SSL] verified in", c.ip)),
        "{}",
        a.process.log_tail(30)
    );
    let list = a
        .client()
        .call("server.peers.subscribe", json!([]))
        .expect("list");
    let entry_c = list
        .as_array()
        .and_then(|l| l.iter().find(|e| e[1] == c.ip))
        .cloned()
        .expect("c listed");
    assert_eq!(
        entry_c,
        json!([
            c.ip,
            c.ip,
            ["v1.7.0", format!("s{ssl_port}"), format!("t{}", c.tcp)]
        ])
    );
    // ElectrumX's format: [ip, host, ["v<max protocol>", "t<port>"]].
    let list = a
        .client()
        .call("server.peers.subscribe", json!([]))
        .expect("list");
    let entry_b = list
        .as_array()
        .and_then(|l| l.iter().find(|e| e[1] == b.ip))
        .cloned()
        .expect("b listed");
    assert_eq!(
        entry_b,
        json!([b.ip, b.ip, ["v1.7.0", format!("t{}", b.tcp)]])
    );
    // The admin view: good, verified, with the peer's software.
    let entry = a.peer_entry(c.ip).expect("c known to a");
    assert_eq!(entry["status"], "good", "{entry}");
    assert_eq!(entry["ip_addr"], c.ip);
    assert_eq!(entry["try_count"], 0);
    assert!(
        entry["features"]["server_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("ferrumx ")),
        "{entry}"
    );
    let info = a.admin("getinfo", json!({}));
    assert!(info["peers"]["good"].as_u64() >= Some(3), "{info}");
    assert_eq!(info["peers"]["bad"], 0, "{info}");
    let table = Command::new(env!("CARGO_BIN_EXE_ferrumx-rpc"))
        .args(["-p", &a.rpc.to_string(), "peers"])
        .env_remove("RPC_PORT")
        .output()
        .expect("ferrumx-rpc peers");
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.starts_with("Host "), "{table}");
    let row_c = table
        .lines()
        .find(|l| l.starts_with(c.ip))
        .expect("row for c");
    assert!(
        row_c.contains(" good ") && row_c.contains(&c.tcp.to_string()),
        "{row_c}"
    );
    assert!(
        a.log().contains(&format!(
            "could not retrieve blacklist from {unreachable_blacklist}"
        )),
        "an unreachable BLACKLIST_URL is logged and skipped"
    );

    // --- A peer on another chain is marked bad, never listed, then forgotten. ---
    let other_chain = FakePeer::start("127.3.0.1", a.address(), Some(OTHER_GENESIS));
    d.add_peer(&format!("127.3.0.1 t{}", other_chain.port));
    wait_for(
        "the other-chain peer to be marked bad",
        Duration::from_secs(20),
        || d.log().contains("marking bad: (incorrect genesis hash)"),
        || d.process.log_tail(30),
    );
    assert!(
        other_chain
            .methods()
            .contains(&"blockchain.block.header".to_string()),
        "its headers were checked first (and matched): {:?}",
        other_chain.methods()
    );
    wait_for(
        "the bad peer to be forgotten",
        Duration::from_secs(20),
        || d.peer_entry("127.3.0.1").is_none(),
        || d.admin("peers", json!({})).to_string(),
    );
    assert!(d.log().contains("forgetting bad peer: 127.3.0.1"));

    // --- A blacklisted peer (from BLACKLIST_URL) is refused. ---
    assert!(
        d.log()
            .contains(&format!("blacklist from {blacklist_url} has 1 entries"))
    );
    let blacklisted = FakePeer::start("127.8.0.1", a.address(), None);
    d.add_peer(&format!("127.8.0.1 t{}", blacklisted.port));
    wait_for(
        "the blacklisted peer to be refused",
        Duration::from_secs(20),
        || d.log().contains("marking bad: (blacklisted)"),
        || d.process.log_tail(30),
    );
    assert!(
        blacklisted.methods().is_empty(),
        "not even server.version: {:?}",
        blacklisted.methods()
    );

    // --- A good peer is verified and hears our server.add_peer (PEER_ANNOUNCE). ---
    let good = FakePeer::start("127.4.0.1", a.address(), None);
    d.add_peer(&format!("127.4.0.1 t{}", good.port));
    wait_for(
        "the good peer to receive server.add_peer",
        Duration::from_secs(20),
        || !good.add_peer_calls.lock().expect("lock").is_empty(),
        || d.process.log_tail(30),
    );
    let announced = good.add_peer_calls.lock().expect("lock")[0].clone();
    let features = &announced[0];
    assert_eq!(
        features["hosts"],
        json!({"d.ferrumx.test": {"tcp_port": d.tcp}})
    );
    assert_eq!(
        features["genesis_hash"],
        "530827f38f93b43ed12af0b3ad25a288dc02ed74d6d7857862df51fc56c416f9"
    );
    // Announcing is the last step of the check; the peer is good once its answer is in.
    wait_for(
        "the good peer to be good",
        Duration::from_secs(10),
        || {
            d.peer_entry("127.4.0.1")
                .is_some_and(|e| e["status"] == "good")
        },
        || d.admin("peers", json!({})).to_string(),
    );
    assert!(d.listed_hosts().contains(&"127.4.0.1".to_string()));

    // --- An unreachable peer is retried with backoff, then forgotten. ---
    let nobody = free_port();
    d.add_peer(&format!("127.5.0.1 t{nobody}"));
    let mut most_tries = 0;
    wait_for(
        "the unreachable peer to be forgotten",
        Duration::from_secs(20),
        || match d.peer_entry("127.5.0.1") {
            Some(entry) => {
                most_tries = most_tries.max(entry["try_count"].as_u64().unwrap_or(0));
                assert_ne!(entry["status"], "good");
                false
            }
            None => true,
        },
        || d.process.log_tail(30),
    );
    let refused = format!("[127.5.0.1:{nobody} TCP]");
    let attempts = d.log().lines().filter(|l| l.contains(&refused)).count();
    assert_eq!(
        attempts,
        3,
        "three tries, then forgotten:\n{}",
        d.process.log_tail(30)
    );
    assert!(most_tries >= 2, "seen retried (try_count {most_tries})");
    assert!(d.log().contains("forgetting unreachable peer: 127.5.0.1"));

    // --- A flood of server.add_peer: the first is accepted, the rest rate-limited. ---
    // The first names the address the server sees the client at (loopback routing picks
    // it), so that it passes the source check; the others name other loopback addresses,
    // all in ElectrumX's single bucket for IP hosts.
    let source = TcpStream::connect(d.address())
        .and_then(|probe| probe.local_addr())
        .expect("probe connection")
        .ip()
        .to_string();
    let mut flooder = d.client();
    let answers: Vec<Value> = (0..30)
        .map(|i| {
            let host = if i % 2 == 0 {
                source.clone()
            } else {
                format!("127.7.0.{i}")
            };
            let features = json!({"hosts": {host: {"tcp_port": a.tcp}}});
            flooder
                .call("server.add_peer", json!([features]))
                .expect("add_peer answers")
        })
        .collect();
    assert_eq!(answers[0], json!(true), "{}", d.process.log_tail(20));
    assert!(
        answers[1..].iter().all(|a| a == &json!(false)),
        "{answers:?}"
    );
    let peers = d.admin("peers", json!({}));
    let peers = peers.as_array().expect("a list");
    assert_eq!(
        peers
            .iter()
            .filter(|p| p["host"] == source.as_str())
            .count(),
        1,
        "the accepted peer, once: {peers:?}"
    );
    assert!(
        peers
            .iter()
            .all(|p| !p["host"].as_str().unwrap_or("").starts_with("127.7.")),
        "none of the rate-limited ones: {peers:?}"
    );
    assert!(d.log().contains(&format!(
        "accepted add_peer request from {source} for {source}"
    )));

    // --- The source check: a host that does not resolve to the caller is refused. ---
    let answer = c
        .client()
        .call(
            "server.add_peer",
            json!([{"hosts": {"127.9.0.1": {"tcp_port": 1}}}]),
        )
        .expect("add_peer answers");
    assert_eq!(answer, json!(false));
    assert!(
        c.log()
            .contains("for 127.9.0.1 (source-destination mismatch)"),
        "{}",
        c.process.log_tail(20)
    );
    // --- Through a SOCKS5 proxy: FORCE_PROXY sends every peer through it, and onion
    // peers are reached by name. ---
    let onion = FakePeer::named("ferrumxtestpeer.onion", "127.11.0.1", a.address(), None);
    let onion_address = SocketAddr::new("127.11.0.1".parse().expect("ip"), onion.port);
    let (proxy_port, targets) = socks5_proxy(onion_address);
    let proxy_port = proxy_port.to_string();
    let e = {
        let port = free_port();
        let mut e = start_on_port(
            &node,
            "127.10.0.1",
            port,
            "",
            &[
                ("PEER_ANNOUNCE", ""),
                ("FORCE_PROXY", "1"),
                ("TOR_PROXY_HOST", "127.0.0.1"),
                ("TOR_PROXY_PORT", proxy_port.as_str()),
            ],
        );
        e.process.wait_ready(Duration::from_secs(60));
        e
    };
    wait_for(
        "the proxy to be detected",
        Duration::from_secs(20),
        || e.log().contains("detected SOCKS5 proxy at 127.0.0.1:"),
        || e.process.log_tail(20),
    );
    e.add_peer(&format!("{} t{}", b.ip, b.tcp));
    e.add_peer(&format!("ferrumxtestpeer.onion t{}", onion.port));
    wait_for(
        "both peers to be verified through the proxy",
        Duration::from_secs(20),
        || {
            [b.ip, "ferrumxtestpeer.onion"]
                .iter()
                .all(|host| e.peer_entry(host).is_some_and(|p| p["status"] == "good"))
        },
        || {
            format!(
                "{}\n{}",
                e.admin("peers", json!({})),
                e.process.log_tail(20)
            )
        },
    );
    let asked = targets.lock().expect("lock").clone();
    assert!(asked.contains(&format!("{}:{}", b.ip, b.tcp)), "{asked:?}");
    assert!(
        asked.contains(&format!("ferrumxtestpeer.onion:{}", onion.port)),
        "{asked:?}"
    );
    let onion_entry = e.peer_entry("ferrumxtestpeer.onion").expect("onion known");
    assert_eq!(
        onion_entry["ip_addr"],
        Value::Null,
        "an onion peer has no address"
    );
    let list = e
        .client()
        .call("server.peers.subscribe", json!([]))
        .expect("list");
    assert!(
        list.as_array().is_some_and(|l| l.contains(&json!([
            "ferrumxtestpeer.onion",
            "ferrumxtestpeer.onion",
            ["v1.7.0", format!("t{}", onion.port)]
        ]))),
        "{list}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "took {:?}",
        started.elapsed()
    );
}

/// Starts a server whose SERVICES TCP port is `port` (REPORT_SERVICES must name it),
/// with more services if given (`,ssl://…`).
fn start_on_port(
    node: &Litecoind,
    ip: &'static str,
    port: u16,
    extra_services: &str,
    env: &[(&str, &str)],
) -> Server {
    let db = tempfile::tempdir().expect("tempdir");
    let rpc = free_port();
    let services = format!("tcp://{ip}:{port},rpc://127.0.0.1:{rpc}{extra_services}");
    let mut all: Vec<(&str, &str)> = vec![
        ("FERRUMX_TEST_PEERS", "1"),
        ("PEER_DISCOVERY", "on"),
        ("DAEMON_POLL_INTERVAL_BLOCKS", "200"),
        ("DAEMON_POLL_INTERVAL_MEMPOOL", "200"),
    ];
    all.extend(env.iter().filter(|(k, _)| *k != "SERVICES"));
    all.push(("SERVICES", services.as_str()));
    let process = FerrumxProcess::start(binary(), &node.daemon_url(), db.path(), &all);
    Server {
        process,
        _db: db,
        ip,
        tcp: port,
        rpc,
    }
}
