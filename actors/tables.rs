//! What the session manager tells the admin interface about sessions and groups (the
//! `sessions` and `groups` rows, the `getinfo` summary) and the one place where a row
//! takes ElectrumX's form: the admin commands answer with these lists, `ferrumx-rpc`
//! and LOG_SESSIONS print them with [`ferrumx::admin::sessions_lines`].

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// One row of the admin `sessions` table (ElectrumX's order).
#[derive(Clone, Debug)]
pub struct SessionRow {
    pub id: u64,
    /// Transport letter, `C` if closing, `L` if logged, then the concurrency limit.
    pub flags: String,
    pub peer: SocketAddr,
    /// At most 17 characters.
    pub client: String,
    pub protocol: String,
    pub cost: f64,
    pub extra_cost: f64,
    pub traffic: Traffic,
    /// How long the session has been connected.
    pub time: Duration,
}

/// One row of the admin `groups` table (ElectrumX's order).
#[derive(Clone, Debug)]
pub struct GroupRow {
    pub name: String,
    pub sessions: usize,
    /// What its members cost now.
    pub cost: f64,
    pub retained: f64,
    pub traffic: Traffic,
}

/// The columns the `sessions` and `groups` tables share: what a session (or a group's
/// sessions together) asked for and exchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Traffic {
    /// Requests received and not yet answered.
    pub reqs: usize,
    pub txs_sent: u64,
    /// Script-hash subscriptions.
    pub subs: usize,
    pub recv_count: u64,
    pub recv_size: u64,
    pub send_count: u64,
    pub send_size: u64,
}

impl std::ops::AddAssign for Traffic {
    fn add_assign(&mut self, other: Traffic) {
        self.reqs += other.reqs;
        self.txs_sent += other.txs_sent;
        self.subs += other.subs;
        self.recv_count += other.recv_count;
        self.recv_size += other.recv_size;
        self.send_count += other.send_count;
        self.send_size += other.send_size;
    }
}

impl Traffic {
    /// In ElectrumX's column order.
    fn columns(&self) -> [Value; 7] {
        [
            json!(self.reqs),
            json!(self.txs_sent),
            json!(self.subs),
            json!(self.recv_count),
            json!(self.recv_size),
            json!(self.send_count),
            json!(self.send_size),
        ]
    }
}

/// The sessions part of `getinfo`, plus the totals `getinfo` shows elsewhere.
#[derive(Clone, Debug, Default)]
pub struct SessionsSummary {
    pub count: usize,
    /// Sessions with at least one script-hash subscription.
    pub count_with_subs_sh: usize,
    /// Sessions with at least one outpoint subscription (protocol 1.7).
    pub count_with_subs_txo: usize,
    pub count_with_subs_any: usize,
    pub errors: u64,
    pub logged: usize,
    pub paused: usize,
    pub pending_requests: usize,
    /// Sessions being closed.
    pub closing: usize,
    pub subs_sh: usize,
    pub subs_txo: usize,
    pub groups: usize,
    /// Requests per method since start-up.
    pub request_counts: BTreeMap<String, u64>,
    pub request_total: u64,
    /// Errors answered per method since start-up.
    pub error_counts: BTreeMap<String, u64>,
    /// The sessions' own costs: their sum and the largest.
    pub cost_total: f64,
    pub cost_max: f64,
    /// Sessions whose concurrency is below INITIAL_CONCURRENT (throttled).
    pub throttled: usize,
    pub txs_sent: u64,
    /// Accepting is paused at MAX_SESSIONS.
    pub listeners_paused: bool,
}

impl SessionsSummary {
    /// `getinfo`'s "sessions" object, with ElectrumX's keys.
    pub fn sessions_json(&self) -> serde_json::Value {
        serde_json::json!({
            "count": self.count,
            "count with subs_sh": self.count_with_subs_sh,
            "count with subs_txo": self.count_with_subs_txo,
            "count with subs_any": self.count_with_subs_any,
            "errors": self.errors,
            "logged": self.logged,
            "paused": self.paused,
            "pending requests": self.pending_requests,
            "subs_sh": self.subs_sh,
            "subs_txo": self.subs_txo,
        })
    }
}

impl SessionRow {
    /// ElectrumX's `sessions` list for this session; `anon` hides the address, as
    /// ANON_LOGS does in the log.
    pub fn electrumx_row(&self, anon: bool) -> Value {
        let peer = if anon {
            "xx.xx.xx.xx:xx".to_string()
        } else {
            self.peer.to_string()
        };
        let mut row = vec![
            json!(self.id),
            json!(self.flags),
            json!(peer),
            json!(self.client),
            json!(self.protocol),
            json!(self.cost),
            json!(self.extra_cost),
        ];
        row.extend(self.traffic.columns());
        row.push(json!(self.time.as_secs_f64()));
        Value::Array(row)
    }
}

impl GroupRow {
    /// ElectrumX's `groups` list for this group.
    pub fn electrumx_row(&self) -> Value {
        let mut row = vec![
            json!(self.name),
            json!(self.sessions),
            json!(self.cost),
            json!(self.retained),
        ];
        row.extend(self.traffic.columns());
        Value::Array(row)
    }
}

/// The sessions table as `ferrumx-rpc sessions` prints it, for LOG_SESSIONS.
pub fn sessions_log(rows: &[SessionRow], anon: bool) -> String {
    let rows: Vec<Value> = rows.iter().map(|row| row.electrumx_row(anon)).collect();
    match ferrumx::admin::sessions_lines(&rows) {
        Ok(lines) => lines.join("\n"),
        // Unreachable: the rows above have the table's shape.
        Err(e) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_prints_the_admin_table_with_addresses_hidden() {
        let row = SessionRow {
            id: 7,
            flags: "T10".into(),
            peer: "127.0.0.1:5000".parse().expect("address"),
            client: "electrum/4.5".into(),
            protocol: "1.4".into(),
            cost: 1234.6,
            extra_cost: 0.0,
            traffic: Traffic {
                subs: 3,
                recv_count: 10,
                recv_size: 4096,
                send_count: 10,
                send_size: 1 << 20,
                ..Traffic::default()
            },
            time: Duration::from_secs(309),
        };
        let log = sessions_log(std::slice::from_ref(&row), true);
        let mut lines = log.lines();
        assert!(
            lines
                .next()
                .is_some_and(|head| head.starts_with("ID     Flags"))
        );
        let line = lines.next().expect("a row");
        assert!(line.starts_with("7      T10"), "{line}");
        assert!(
            line.contains(" 1,234 ") && line.contains(" 1,024 "),
            "{line}"
        );
        assert!(
            line.contains(" 05m09s ") && line.ends_with(" xx.xx.xx.xx:xx"),
            "{line}"
        );
        assert!(sessions_log(&[row], false).ends_with(" 127.0.0.1:5000"));
    }
}
