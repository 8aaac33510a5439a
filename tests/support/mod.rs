//! The end-to-end test harness: a real regtest litecoind, a builder for a varied chain
//! (with its own signer), the expected index computed independently from the daemon's
//! blocks, a launcher for the ferrumx binary and a raw Electrum client. Each test file uses
//! a subset, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod chain_builder;
pub mod electrum;
pub mod electrumx;
pub mod ferrumx;
pub mod litecoind;
pub mod signer;
pub mod truth;

use std::fs;
use std::net::TcpListener;
use std::path::Path;

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
/// Another process may take it before the caller binds it; callers retry where it matters.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// The last `lines` lines of a text file, or a note saying why it could not be read; used
/// in panic messages so a failed start explains itself.
pub fn file_tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}
