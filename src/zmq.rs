//! The daemon's ZMQ notifications, as bitcoind and its forks publish them
//! (`-zmqpubhashblock`, `-zmqpubhashtx`): which endpoints ferrumx accepts
//! (DAEMON_ZMQ_HASHBLOCK, DAEMON_ZMQ_HASHTX) and what one message says. A message only
//! wakes the block processor or the mempool, which then ask the daemon as on a poll: a
//! dropped or out-of-order message costs nothing but the time until the next one (or the
//! poll), so the sequence number is read but not relied on. The txids of `hashtx` are
//! kept in [`Announcements`] until the mempool takes them: it adds just those
//! transactions instead of listing the whole mempool again.

use bitcoin::Txid;
use bitcoin::hashes::Hash;
use std::fmt;
use std::sync::{Mutex, PoisonError};

/// A topic ferrumx subscribes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// A block became the tip (body: its hash).
    HashBlock,
    /// A transaction entered the mempool or a block (body: its txid).
    HashTx,
}

impl Topic {
    /// The topic's name on the wire, the subscription prefix.
    pub fn name(self) -> &'static str {
        match self {
            Topic::HashBlock => "hashblock",
            Topic::HashTx => "hashtx",
        }
    }

    /// The variable that configures its endpoint.
    pub fn variable(self) -> &'static str {
        match self {
            Topic::HashBlock => "DAEMON_ZMQ_HASHBLOCK",
            Topic::HashTx => "DAEMON_ZMQ_HASHTX",
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An endpoint to connect to: `tcp://HOST:PORT` or `ipc://PATH`, as in bitcoind's
/// `-zmqpub*` options (but a host to reach, not `*` or `0.0.0.0` to bind).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint(String);

impl Endpoint {
    /// Checks a configured value; the error says what is accepted.
    pub fn parse(value: &str) -> Result<Endpoint, String> {
        let value = value.trim();
        if let Some(path) = value.strip_prefix("ipc://") {
            if path.is_empty() {
                return Err("ipc:// needs the path of the daemon's socket".into());
            }
            return Ok(Endpoint(value.to_owned()));
        }
        let Some(address) = value.strip_prefix("tcp://") else {
            return Err(
                "accepted: tcp://HOST:PORT or ipc://PATH, as the daemon's -zmqpubhashblock / \
                 -zmqpubhashtx (e.g. tcp://127.0.0.1:28332)"
                    .into(),
            );
        };
        let (host, port) = address
            .rsplit_once(':')
            .ok_or("tcp:// needs HOST:PORT, e.g. tcp://127.0.0.1:28332")?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host == "*" || host == "0.0.0.0" || host == "::" {
            return Err(format!(
                "{host:?} is where the daemon binds, not an address to connect to: give the \
                 daemon's host, e.g. tcp://127.0.0.1:{port}"
            ));
        }
        match port.parse::<u16>() {
            Ok(port) if port > 0 => Ok(Endpoint(value.to_owned())),
            _ => Err(format!("{port:?} is not a port (1-65535)")),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One notification: the topic, the hash in the daemon's display order (as RPC prints
/// it), and the publisher's sequence number for that topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub topic: Topic,
    pub hash: [u8; 32],
    pub sequence: Option<u32>,
}

impl Notice {
    /// The hash as the daemon's RPC prints it.
    pub fn hash_hex(&self) -> String {
        crate::hashes::to_hex(&self.hash)
    }

    /// The hash as a transaction id (the body is in display order, the reverse of the
    /// internal one).
    pub fn txid(&self) -> Txid {
        let mut internal = self.hash;
        internal.reverse();
        Txid::from_byte_array(internal)
    }
}

/// At most this many announced transactions wait for the mempool; past it the rest are
/// covered by one full refresh (a daemon accepting transactions faster than the mempool
/// takes them cannot grow this queue without bound).
pub const ANNOUNCED_MAX: usize = 10_000;

/// Transactions announced by `hashtx` that the mempool has not taken yet, shared by the
/// ZMQ thread (which pushes) and the mempool (which takes them all at once).
#[derive(Default)]
pub struct Announcements(Mutex<Announced>);

/// What the mempool takes from [`Announcements`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Announced {
    /// In the order announced, without repeats of the last one.
    pub txids: Vec<Txid>,
    /// Some announcements did not fit: only a full refresh covers them.
    pub overflowed: bool,
}

impl Announcements {
    /// Keeps `txid`; true when nothing was waiting before, so the caller wakes the mempool
    /// (one wake-up covers everything pushed until the mempool takes it).
    pub fn push(&self, txid: Txid) -> bool {
        let mut waiting = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let was_empty = waiting.txids.is_empty() && !waiting.overflowed;
        if waiting.txids.last() == Some(&txid) {
            return was_empty;
        }
        if waiting.txids.len() < ANNOUNCED_MAX {
            waiting.txids.push(txid);
        } else {
            waiting.overflowed = true;
        }
        was_empty
    }

    /// Everything waiting; the next push wakes the mempool again.
    pub fn take(&self) -> Announced {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Why a message is not a notification ferrumx reads (logged, then ignored).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("a ZMQ message of {0} frame(s); the daemon sends topic, body and sequence")]
    Frames(usize),
    #[error("a ZMQ message on topic {0:?}, not hashblock or hashtx")]
    Topic(String),
    #[error("a {topic} message with a body of {len} bytes, not a 32-byte hash")]
    Body { topic: Topic, len: usize },
}

/// Reads one multipart message: `[topic, 32-byte hash, 4-byte little-endian sequence]`
/// (the sequence frame is absent from some old daemons).
pub fn parse_message(frames: &[&[u8]]) -> Result<Notice, MessageError> {
    let (topic, body, rest) = match frames {
        [topic, body, rest @ ..] if rest.len() <= 1 => (*topic, *body, rest),
        _ => return Err(MessageError::Frames(frames.len())),
    };
    let topic = match topic {
        b"hashblock" => Topic::HashBlock,
        b"hashtx" => Topic::HashTx,
        other => return Err(MessageError::Topic(String::from_utf8_lossy(other).into())),
    };
    let hash: [u8; 32] = body.try_into().map_err(|_| MessageError::Body {
        topic,
        len: body.len(),
    })?;
    let sequence = rest
        .first()
        .and_then(|frame| <[u8; 4]>::try_from(*frame).ok())
        .map(u32::from_le_bytes);
    Ok(Notice {
        topic,
        hash,
        sequence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_tcp_or_ipc_to_connect_to() {
        for good in [
            "tcp://127.0.0.1:28332",
            " tcp://node.lan:28333 ",
            "tcp://[::1]:28332",
            "ipc:///var/run/bitcoind/zmq.sock",
        ] {
            assert!(Endpoint::parse(good).is_ok(), "{good}");
        }
        assert_eq!(
            Endpoint::parse(" tcp://node.lan:28333 ").unwrap().as_str(),
            "tcp://node.lan:28333"
        );
        let error = |value| Endpoint::parse(value).unwrap_err();
        assert!(error("127.0.0.1:28332").starts_with("accepted: tcp://HOST:PORT"));
        assert!(error("tcp://*:28332").contains("where the daemon binds"));
        assert!(error("tcp://0.0.0.0:28332").contains("where the daemon binds"));
        assert!(error("tcp://127.0.0.1").contains("HOST:PORT"));
        assert!(error("tcp://127.0.0.1:0").contains("not a port"));
        assert!(error("tcp://127.0.0.1:99999").contains("not a port"));
        assert!(error("ipc://").contains("path"));
    }

    fn txid(n: u8) -> Txid {
        Txid::from_byte_array([n; 32])
    }

    #[test]
    fn a_hashtx_body_is_the_txid_in_display_order() {
        let shown = "00000000000000000000000000000000000000000000000000000000000000ff";
        let mut hash = [0u8; 32];
        hash[31] = 0xff;
        let notice = parse_message(&[b"hashtx", &hash]).unwrap();
        assert_eq!(notice.txid().to_string(), shown);
    }

    #[test]
    fn announcements_wake_once_until_taken() {
        let queue = Announcements::default();
        assert!(queue.push(txid(1)), "nothing waiting: wake the mempool");
        assert!(!queue.push(txid(2)), "one wake-up covers the rest");
        assert!(!queue.push(txid(2)), "a repeat is kept once");
        assert_eq!(
            queue.take(),
            Announced {
                txids: vec![txid(1), txid(2)],
                overflowed: false
            }
        );
        assert_eq!(queue.take(), Announced::default(), "taken: empty");
        assert!(queue.push(txid(3)), "taken: the next push wakes again");
    }

    #[test]
    fn announcements_are_bounded() {
        let queue = Announcements::default();
        for n in 0..ANNOUNCED_MAX + 5 {
            let mut bytes = [0u8; 32];
            bytes[..8].copy_from_slice(&(n as u64).to_le_bytes());
            queue.push(Txid::from_byte_array(bytes));
        }
        let taken = queue.take();
        assert_eq!(taken.txids.len(), ANNOUNCED_MAX);
        assert!(taken.overflowed, "the rest left to a full refresh");
        assert!(queue.push(txid(9)), "the overflow is taken with the rest");
    }

    #[test]
    fn reads_bitcoind_messages() {
        let hash: Vec<u8> = (0u8..32).collect();
        let notice = parse_message(&[b"hashblock", &hash, &7u32.to_le_bytes()]).unwrap();
        assert_eq!(notice.topic, Topic::HashBlock);
        assert_eq!(notice.hash.to_vec(), hash);
        assert_eq!(notice.sequence, Some(7));
        assert!(notice.hash_hex().starts_with("000102"));
        let notice = parse_message(&[b"hashtx", &hash]).unwrap();
        assert_eq!((notice.topic, notice.sequence), (Topic::HashTx, None));
    }

    #[test]
    fn refuses_other_messages() {
        let hash = [0u8; 32];
        assert_eq!(parse_message(&[b"hashblock"]), Err(MessageError::Frames(1)));
        assert_eq!(
            parse_message(&[b"rawblock", &hash, b"\0\0\0\0"]),
            Err(MessageError::Topic("rawblock".into()))
        );
        assert_eq!(
            parse_message(&[b"hashtx", &hash[..31], b"\0\0\0\0"]),
            Err(MessageError::Body {
                topic: Topic::HashTx,
                len: 31
            })
        );
        assert_eq!(
            parse_message(&[b"hashtx", &hash, b"\0\0\0\0", b"extra"]),
            Err(MessageError::Frames(4))
        );
    }
}
