//! The admin RPC's text as ElectrumX writes it: `electrumx_rpc`'s tables (sessions,
//! groups, peers), the `query` command's lines, and the small formats they use (Python's
//! `{:,d}` thousands separators, `Decimal`'s `{:,f}`, ElectrumX's "1d 02h 03m" times).
//! Pure functions, shared by the server (which answers) and `ferrumx-rpc` (which prints):
//! operators' scripts parse this output, so it matches ElectrumX 2.0 character for character.

use crate::coins::Coin;
use crate::hashes::{HashX, from_hex};
use crate::python::{formatted_time, py_str, with_commas};
use crate::store::{Snapshot, StoreError};
use serde_json::Value;

/// `{:,f}` of `Decimal(value) / VALUE_PER_COIN`, as the `query` balance line shows it:
/// the shortest exact decimal ("1.5", "50", "0.01234567"), thousands separators in the
/// whole part.
pub fn decimal_value(value: u64, per_coin: u64) -> String {
    let per_coin = per_coin.max(1);
    let whole = with_commas(i128::from(value / per_coin));
    let fraction = value % per_coin;
    if fraction == 0 {
        return whole;
    }
    let digits = per_coin.ilog10() as usize;
    let text = format!("{fraction:0digits$}");
    format!("{whole}.{}", text.trim_end_matches('0'))
}

/// ElectrumX's coin class name (`getinfo`'s "coin"), e.g. "LitecoinRegtest".
pub fn coin_class_name(coin: &Coin) -> String {
    let suffix = match (coin.name, coin.net) {
        ("Bitcoin", "mainnet") => "Mainnet",
        ("Bitcoin", "testnet") => "Testnet3",
        (_, "mainnet") => "",
        (_, "testnet") => "Testnet",
        (_, "testnet4") => "Testnet4",
        (_, "regtest") => "Regtest",
        (_, "signet") => "Signet",
        (_, "mutinynet") => "Mutinynet",
        (_, other) => other,
    };
    format!("{}{suffix}", coin.name)
}

/// The `query` command's lines for `items` (hex scripts or addresses): each item's
/// history (at most `limit` entries), its UTXOs (at most `limit`, all when 0, as
/// ElectrumX) and its balance. Items that are neither are skipped, as ElectrumX does.
pub fn query_lines(
    snapshot: &Snapshot,
    coin: &Coin,
    items: &[String],
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    let mut lines = Vec::new();
    for item in items {
        let script = if let Some(script) = from_hex(item) {
            lines.push(format!("Script: {item}"));
            script
        } else if let Ok(script) = coin.address_to_script(item) {
            lines.push(format!("Address: {item}"));
            script
        } else {
            continue;
        };
        let hashx = HashX::from_script(&script);
        query_script(snapshot, coin, &hashx, limit, &mut lines)?;
    }
    Ok(lines)
}

fn query_script(
    snapshot: &Snapshot,
    coin: &Coin,
    hashx: &HashX,
    limit: usize,
    lines: &mut Vec<String>,
) -> Result<(), StoreError> {
    // With no limit the history is never "too long".
    let tx_nums: Vec<_> = snapshot
        .history_tx_nums(hashx, usize::MAX)?
        .unwrap_or_default();
    if tx_nums.is_empty() || limit == 0 {
        lines.push("No history found".into());
    }
    for (n, tx_num) in tx_nums.into_iter().take(limit).enumerate() {
        let (height, _) = snapshot.height_of(tx_num)?;
        lines.push(format!(
            "History #{}: height {} txid {}",
            with_commas(n as i128),
            with_commas(height.to_u64().into()),
            snapshot.txid(tx_num)?
        ));
    }
    let utxos = snapshot.utxos(hashx)?;
    if utxos.is_empty() {
        lines.push("No UTXOs found".into());
    }
    for (n, utxo) in utxos.iter().enumerate().map(|(i, u)| (i + 1, u)) {
        lines.push(format!(
            "UTXO #{}: txid {} tx_pos {} height {} value {}",
            with_commas(n as i128),
            utxo.txid,
            with_commas(utxo.vout.into()),
            with_commas(utxo.height.to_u64().into()),
            with_commas(utxo.value.into())
        ));
        if n == limit {
            break;
        }
    }
    let balance: u64 = utxos.iter().map(|u| u.value).sum();
    lines.push(format!(
        "Balance: {} {}",
        decimal_value(balance, coin.value_per_coin),
        coin.shortname
    ));
    Ok(())
}

/// A table row that is not what the server sends for it.
#[derive(Debug, thiserror::Error)]
#[error("unexpected {table} row from the server: {row}")]
pub struct TableError {
    table: &'static str,
    row: String,
}

/// `electrumx_rpc sessions`: rows are ElectrumX's 15-element lists (id, flags, peer,
/// client, protocol, cost, extra cost, unanswered requests, txs sent, subscriptions,
/// received count and bytes, sent count and bytes, seconds connected).
pub fn sessions_lines(rows: &[Value]) -> Result<Vec<String>, TableError> {
    let line = |c: [&str; 15]| {
        format!(
            "{:<6} {:<5} {:>17} {:>5} {:>7} {:>7} {:>5} {:>5} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9} {:>21}",
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            c[5],
            c[6],
            c[7],
            c[8],
            c[9],
            c[10],
            c[11],
            c[12],
            c[13],
            c[14]
        )
    };
    let mut lines = vec![line([
        "ID", "Flags", "Client", "Proto", "Cost", "XCost", "Reqs", "Txs", "Subs", "Recv",
        "Recv KB", "Sent", "Sent KB", "Time", "Peer",
    ])];
    for row in rows {
        let cells = cells(row, 15, "sessions")?;
        let n = |i: usize| with_commas(number(&cells[i]));
        let kb = |i: usize| with_commas(number(&cells[i]) / 1024);
        let time = formatted_time(u64::try_from(number(&cells[14])).unwrap_or(0), "");
        let (id, flags, peer, client, proto) = (
            text(&cells[0]),
            text(&cells[1]),
            text(&cells[2]),
            text(&cells[3]),
            text(&cells[4]),
        );
        lines.push(line([
            &id,
            &flags,
            &client,
            &proto,
            &n(5),
            &n(6),
            &n(7),
            &n(8),
            &n(9),
            &n(10),
            &kb(11),
            &n(12),
            &kb(13),
            &time,
            &peer,
        ]));
    }
    Ok(lines)
}

/// `electrumx_rpc groups`: rows are ElectrumX's 11-element lists (name, sessions, cost,
/// retained cost, unanswered requests, txs sent, subscriptions, received count and
/// bytes, sent count and bytes).
pub fn groups_lines(rows: &[Value]) -> Result<Vec<String>, TableError> {
    // (sic) ElectrumX has no space between the Subs and Recv columns.
    let line = |c: [&str; 11]| {
        format!(
            "{:<14} {:>9} {:>8} {:>8} {:>6} {:>6} {:>8}{:>7} {:>9} {:>7} {:>9}",
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10]
        )
    };
    let mut lines = vec![line([
        "Name", "Sessions", "Cost", "Retained", "Reqs", "Txs", "Subs", "Recv", "Recv KB", "Sent",
        "Sent KB",
    ])];
    for row in rows {
        let cells = cells(row, 11, "groups")?;
        let n = |i: usize| with_commas(number(&cells[i]));
        let kb = |i: usize| with_commas(number(&cells[i]) / 1024);
        let name = text(&cells[0]);
        lines.push(line([
            &name,
            &n(1),
            &n(2),
            &n(3),
            &n(4),
            &n(5),
            &n(6),
            &n(7),
            &kb(8),
            &n(9),
            &kb(10),
        ]));
    }
    Ok(lines)
}

/// `electrumx_rpc peers`: rows are ElectrumX's peer dictionaries; `now` is the Unix
/// time the "Last Good" and "Last Try" ages are measured from.
pub fn peers_lines(rows: &[Value], now: f64) -> Result<Vec<String>, TableError> {
    let line = |c: [&str; 13]| {
        format!(
            "{:<62} {:<6} {:>5} {:>5} {:<17} {:>4} {:>4} {:>8} {:>11} {:>11} {:>5} {:>20} {:<15}",
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11], c[12]
        )
    };
    let mut lines = vec![line([
        "Host",
        "Status",
        "TCP",
        "SSL",
        "Server",
        "Min",
        "Max",
        "Pruning",
        "Last Good",
        "Last Try",
        "Tries",
        "Source",
        "IP Address",
    ])];
    let age = |t: &Value| match t.as_f64() {
        Some(t) if t != 0.0 => formatted_time((now - t).max(0.0) as u64, " "),
        _ => "Never".to_string(),
    };
    for row in rows {
        let bad = || TableError {
            table: "peers",
            row: row.to_string(),
        };
        let host_name = row["host"].as_str().ok_or_else(bad)?;
        let features = &row["features"];
        let host = &features["hosts"][host_name];
        let or_empty = |v: &Value| match v {
            Value::Null | Value::Bool(false) => String::new(),
            Value::Number(n) if n.as_f64() == Some(0.0) => String::new(),
            Value::String(s) if s.is_empty() => String::new(),
            other => text(other),
        };
        let server = match &features["server_version"] {
            Value::Null => "unknown".to_string(),
            Value::String(s) if s.is_empty() => "unknown".to_string(),
            other => text(other),
        };
        let name: String = host_name.chars().take(62).collect();
        let source: String = text(&row["source"]).chars().take(20).collect();
        lines.push(line([
            &name,
            &text(&row["status"]),
            &or_empty(&host["tcp_port"]),
            &or_empty(&host["ssl_port"]),
            &server,
            &text(&features["protocol_min"]),
            &text(&features["protocol_max"]),
            &or_empty(&features["pruning"]),
            &age(&row["last_good"]),
            &age(&row["last_try"]),
            &text(&row["try_count"]),
            &source,
            &or_empty(&row["ip_addr"]),
        ]));
    }
    Ok(lines)
}

fn cells<'a>(row: &'a Value, len: usize, table: &'static str) -> Result<&'a [Value], TableError> {
    match row.as_array() {
        Some(cells) if cells.len() == len => Ok(cells),
        _ => Err(TableError {
            table,
            row: row.to_string(),
        }),
    }
}

/// Python's `int()` of a JSON number (floats truncate; anything else counts as 0).
fn number(value: &Value) -> i128 {
    value
        .as_i64()
        .map(i128::from)
        .or_else(|| value.as_u64().map(i128::from))
        .or_else(|| value.as_f64().map(|f| f.trunc() as i128))
        .unwrap_or(0)
}

/// Python's `str()` of a JSON value as it appears in a table cell.
fn text(value: &Value) -> String {
    py_str(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decimal_values_as_python_decimal() {
        assert_eq!(decimal_value(0, 100_000_000), "0");
        assert_eq!(decimal_value(150_000_000, 100_000_000), "1.5");
        assert_eq!(decimal_value(100_000_000, 100_000_000), "1");
        assert_eq!(decimal_value(5_000_000_000, 100_000_000), "50");
        assert_eq!(decimal_value(1_234_567, 100_000_000), "0.01234567");
        assert_eq!(
            decimal_value(123_456_789_012_345, 100_000_000),
            "1,234,567.89012345"
        );
    }

    #[test]
    fn coin_class_names() {
        let coin = |name, net| crate::coins::lookup(name, net).unwrap();
        assert_eq!(
            coin_class_name(coin("Litecoin", "regtest")),
            "LitecoinRegtest"
        );
        assert_eq!(coin_class_name(coin("Litecoin", "mainnet")), "Litecoin");
        assert_eq!(
            coin_class_name(coin("Bitcoin", "mainnet")),
            "BitcoinMainnet"
        );
        assert_eq!(
            coin_class_name(coin("Bitcoin", "testnet")),
            "BitcoinTestnet3"
        );
    }

    #[test]
    fn sessions_table_as_electrumx() {
        let rows = [json!([
            4,
            "S1",
            "1.2.3.4:35287",
            "2.6.4",
            "1.4",
            1234.9,
            0.5,
            0,
            0,
            2048,
            2104,
            220_000,
            2108,
            125_000,
            2967.4
        ])];
        let lines = sessions_lines(&rows).unwrap();
        let header = "ID     Flags            Client Proto    Cost   XCost  Reqs   Txs    Subs    Recv Recv KB    Sent Sent KB      Time                  Peer";
        assert_eq!(lines[0], header);
        let row = "4      S1                2.6.4   1.4   1,234       0     0     0   2,048   2,104     214   2,108     122    49m27s         1.2.3.4:35287";
        assert_eq!(lines[1], row);
        assert!(sessions_lines(&[json!([1, 2])]).is_err());
    }

    #[test]
    fn groups_table_as_electrumx() {
        let rows = [json!([
            "1.2.3.0/24",
            2,
            10.7,
            3.2,
            0,
            1,
            5,
            20,
            4096,
            22,
            10_240
        ])];
        let lines = groups_lines(&rows).unwrap();
        let header = "Name            Sessions     Cost Retained   Reqs    Txs     Subs   Recv   Recv KB    Sent   Sent KB";
        assert_eq!(lines[0], header);
        let row = "1.2.3.0/24             2       10        3      0      1        5     20         4      22        10";
        assert_eq!(lines[1], row);
    }

    #[test]
    fn peers_table_as_electrumx() {
        let rows = [json!({
            "host": "electrum.example.org",
            "features": {"hosts": {"electrum.example.org": {"tcp_port": 50001, "ssl_port": null}},
                         "server_version": "ElectrumX 1.16.0", "protocol_min": "1.4",
                         "protocol_max": "1.4.2", "pruning": null},
            "source": "RPC", "ip_addr": null, "last_good": 0, "last_try": 1000.0,
            "try_count": 3, "status": "never"
        })];
        let lines = peers_lines(&rows, 1309.0).unwrap();
        assert!(lines[0].starts_with("Host "));
        let row = "electrum.example.org                                           never  50001       ElectrumX 1.16.0   1.4 1.4.2                Never     05m 09s     3                  RPC                ";
        assert_eq!(lines[1], row);
    }
}
