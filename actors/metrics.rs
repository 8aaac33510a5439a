//! The metrics endpoint: the optional `http://` service of SERVICES answers
//! `GET /metrics` in Prometheus' text format and `GET /metrics.json` with the same
//! numbers as JSON, for people. A tiny HTTP/1.1 responder (one request per connection)
//! is all a scraper needs, so no web framework is pulled in.

use crate::admin::{GetStats, Stats};
use actix::prelude::*;
use serde_json::{Map, Value, json};
use std::fmt::Write as _;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request head read; scrapers send a few hundred bytes.
const MAX_HEAD: usize = 8192;
/// A client that has not sent its request by then is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts scrapes until the server stops.
pub async fn serve(listener: TcpListener, admin: Recipient<GetStats>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                actix_rt::spawn(respond(stream, admin.clone()));
            }
            Err(e) => {
                log::warn!("metrics listener: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn respond(mut stream: TcpStream, admin: Recipient<GetStats>) {
    let Ok(Some(path)) = tokio::time::timeout(READ_TIMEOUT, read_path(&mut stream))
        .await
        .unwrap_or(Ok(None))
    else {
        return;
    };
    let (status, content_type, body) = match path.as_deref() {
        Some("/metrics" | "/") => match admin.send(GetStats).await {
            Ok(stats) => (
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                prometheus(&stats),
            ),
            Err(_) => unavailable(),
        },
        Some("/metrics.json") => match admin.send(GetStats).await {
            Ok(stats) => ("200 OK", "application/json", to_json(&stats).to_string()),
            Err(_) => unavailable(),
        },
        Some(_) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: try /metrics or /metrics.json\n".to_string(),
        ),
        None => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET is served\n".to_string(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    if stream.write_all(head.as_bytes()).await.is_ok() {
        let _ = stream.write_all(body.as_bytes()).await;
    }
    let _ = stream.shutdown().await;
}

fn unavailable() -> (&'static str, &'static str, String) {
    (
        "503 Service Unavailable",
        "text/plain; charset=utf-8",
        "the server is stopping\n".to_string(),
    )
}

/// Reads the request head. `Ok(None)`: the connection closed or sent no usable request;
/// `Ok(Some(None))`: not a GET; `Ok(Some(Some(path)))`: a GET of `path` (query dropped).
async fn read_path(stream: &mut TcpStream) -> std::io::Result<Option<Option<String>>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return Ok(None);
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut words = text.lines().next().unwrap_or("").split_whitespace();
    let (Some(method), Some(target)) = (words.next(), words.next()) else {
        return Ok(None);
    };
    if method != "GET" {
        return Ok(Some(None));
    }
    let path = target.split('?').next().unwrap_or(target);
    Ok(Some(Some(path.to_string())))
}

/// One metric: name, type, help, and its samples (labels, value).
struct Metric {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: Vec<(String, f64)>,
}

fn metrics(stats: &Stats) -> Vec<Metric> {
    let single = |name, kind, help, value: f64| Metric {
        name,
        kind,
        help,
        samples: vec![(String::new(), value)],
    };
    let per_cache = |name, help, value: fn(&ferrumx::cache::CacheStats) -> f64| Metric {
        name,
        kind: if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        },
        help,
        samples: stats
            .caches
            .iter()
            .map(|(cache, s)| (format!("{{cache=\"{cache}\"}}"), value(s)))
            .collect(),
    };
    let mut out = vec![
        single(
            "ferrumx_uptime_seconds",
            "gauge",
            "Seconds since the server started.",
            stats.uptime.as_secs_f64(),
        ),
        single(
            "ferrumx_caught_up",
            "gauge",
            "1 once the first catch-up with the daemon has finished.",
            f64::from(u8::from(stats.caught_up)),
        ),
        single(
            "ferrumx_mempool_transactions",
            "gauge",
            "Transactions in the server's copy of the daemon's mempool.",
            stats.mempool_txs as f64,
        ),
        single(
            "ferrumx_mempool_vsize_bytes",
            "gauge",
            "Total virtual size of the mempool transactions.",
            stats.mempool_vsize as f64,
        ),
        single(
            "ferrumx_txs_sent_total",
            "counter",
            "Transactions broadcast for clients.",
            stats.txs_sent as f64,
        ),
        per_cache(
            "ferrumx_cache_lookups_total",
            "Cache lookups, by cache.",
            |s| s.lookups as f64,
        ),
        per_cache("ferrumx_cache_hits_total", "Cache hits, by cache.", |s| {
            s.hits as f64
        }),
        per_cache("ferrumx_cache_entries", "Entries held, by cache.", |s| {
            s.entries as f64
        }),
    ];
    let optional = [
        (
            "ferrumx_index_height",
            "Height of the last block in the index.",
            stats.db_height.map(|h| f64::from(h.to_u32())),
        ),
        (
            "ferrumx_daemon_height",
            "The daemon's height at the last chain update.",
            stats.daemon_height.map(|h| f64::from(h.to_u32())),
        ),
        (
            "ferrumx_index_transactions",
            "Transactions in the index.",
            stats.index_txs.map(|n| n as f64),
        ),
        (
            "ferrumx_sync_blocks_per_second",
            "Blocks indexed per second over the last minute.",
            stats.sync_rate.map(|(blocks, _)| blocks),
        ),
        (
            "ferrumx_sync_transactions_per_second",
            "Transactions indexed per second over the last minute.",
            stats.sync_rate.map(|(_, txs)| txs),
        ),
        (
            "ferrumx_resident_memory_bytes",
            "Resident memory of the server process.",
            stats.resident_bytes.map(|b| b as f64),
        ),
        (
            "ferrumx_index_disk_bytes",
            "Bytes the LMDB index occupies on disk.",
            stats.index_bytes.map(|b| b as f64),
        ),
    ];
    for (name, help, value) in optional {
        if let Some(value) = value {
            out.push(single(name, "gauge", help, value));
        }
    }
    if let Some(sessions) = &stats.sessions {
        let gauges = [
            ("ferrumx_sessions", "Client sessions.", sessions.count),
            (
                "ferrumx_sessions_with_subscriptions",
                "Sessions with at least one script-hash subscription.",
                sessions.count_with_subs_sh,
            ),
            (
                "ferrumx_subscriptions",
                "Script-hash subscriptions.",
                sessions.subs_sh,
            ),
            ("ferrumx_groups", "Session groups.", sessions.groups),
            (
                "ferrumx_pending_requests",
                "Requests received and not yet answered.",
                sessions.pending_requests,
            ),
            (
                "ferrumx_sessions_logged",
                "Sessions whose requests are logged.",
                sessions.logged,
            ),
            (
                "ferrumx_sessions_paused",
                "Sessions not read from until their replies drain.",
                sessions.paused,
            ),
        ];
        for (name, help, value) in gauges {
            out.push(single(name, "gauge", help, value as f64));
        }
        out.push(single(
            "ferrumx_session_errors",
            "gauge",
            "Errors of the current sessions.",
            sessions.errors as f64,
        ));
        out.push(single(
            "ferrumx_session_cost",
            "gauge",
            "Sum of the sessions' own costs.",
            sessions.cost_total,
        ));
        out.push(single(
            "ferrumx_session_cost_max",
            "gauge",
            "The largest session cost.",
            sessions.cost_max,
        ));
        out.push(single(
            "ferrumx_sessions_throttled",
            "gauge",
            "Sessions whose concurrency is below INITIAL_CONCURRENT.",
            sessions.throttled as f64,
        ));
        out.push(Metric {
            name: "ferrumx_request_errors_total",
            kind: "counter",
            help: "Errors answered since start-up, by method.",
            samples: sessions
                .error_counts
                .iter()
                .map(|(method, n)| (format!("{{method=\"{}\"}}", escape(method)), *n as f64))
                .collect(),
        });
        out.push(single(
            "ferrumx_listeners_paused",
            "gauge",
            "1 while accepting is paused at MAX_SESSIONS.",
            f64::from(u8::from(sessions.listeners_paused)),
        ));
        out.push(Metric {
            name: "ferrumx_requests_total",
            kind: "counter",
            help: "Requests since start-up, by method.",
            samples: sessions
                .request_counts
                .iter()
                .map(|(method, n)| (format!("{{method=\"{}\"}}", escape(method)), *n as f64))
                .collect(),
        });
    }
    out.push(Metric {
        name: "ferrumx_actor_restarts_total",
        kind: "counter",
        help: "Failed actors restarted by the supervisor, by actor.",
        samples: stats
            .restarts
            .iter()
            .map(|(actor, n)| (format!("{{actor=\"{actor}\"}}"), *n as f64))
            .collect(),
    });
    if let Some(latency) = &stats.latency {
        let mut samples: Vec<(String, f64)> = latency
            .cumulative
            .iter()
            .map(|(bound, n)| {
                let le = if bound.is_infinite() {
                    "+Inf".to_string()
                } else {
                    bound.to_string()
                };
                (format!("_bucket{{le=\"{le}\"}}"), *n as f64)
            })
            .collect();
        samples.push(("_sum".into(), latency.sum_secs));
        samples.push(("_count".into(), latency.count as f64));
        out.push(Metric {
            name: "ferrumx_request_latency_seconds",
            kind: "histogram",
            help: "Time from a client request's receipt to its answer.",
            samples,
        });
    }
    out
}

/// A label value as Prometheus' text format needs it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus' text exposition format (version 0.0.4).
pub fn prometheus(stats: &Stats) -> String {
    let mut text = String::new();
    for metric in metrics(stats) {
        if metric.samples.is_empty() {
            continue;
        }
        let _ = writeln!(text, "# HELP {} {}", metric.name, metric.help);
        let _ = writeln!(text, "# TYPE {} {}", metric.name, metric.kind);
        for (labels, value) in &metric.samples {
            let _ = writeln!(text, "{}{labels} {value}", metric.name);
        }
    }
    text
}

/// The same numbers for people: `{name: value}` or `{name: {label: value}}`.
pub fn to_json(stats: &Stats) -> Value {
    let mut out = Map::new();
    for metric in metrics(stats) {
        let value = match metric.samples.as_slice() {
            [(labels, value)] if labels.is_empty() => json!(value),
            samples => Value::Object(
                samples
                    .iter()
                    .map(|(labels, value)| (label_value(labels), json!(value)))
                    .collect(),
            ),
        };
        out.insert(metric.name.to_string(), value);
    }
    Value::Object(out)
}

/// `{cache="txids"}` -> `txids`.
fn label_value(labels: &str) -> String {
    labels
        .split_once('"')
        .and_then(|(_, rest)| rest.rsplit_once('"'))
        .map_or_else(|| labels.to_string(), |(value, _)| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::SessionsSummary;
    use ferrumx::cache::CacheStats;

    fn stats() -> Stats {
        Stats {
            db_height: Some(ferrumx::hashes::Height::new(120)),
            daemon_height: None,
            caught_up: true,
            mempool_txs: 3,
            mempool_vsize: 450,
            caches: vec![(
                "txids",
                CacheStats {
                    lookups: 10,
                    hits: 4,
                    entries: 6,
                },
            )],
            txs_sent: 2,
            uptime: Duration::from_secs(5),
            resident_bytes: None,
            index_bytes: Some(4096),
            latency: Some({
                let histogram = ferrumx::latency::LatencyHistogram::default();
                histogram.observe(Duration::from_millis(3));
                histogram.snapshot()
            }),
            index_txs: Some(130),
            sync_rate: Some((2.0, 40.5)),
            restarts: [("mempool", 1)].into(),
            sessions: Some(SessionsSummary {
                count: 2,
                request_counts: [("blockchain.headers.subscribe".to_string(), 5)].into(),
                error_counts: [("invalid method".to_string(), 2)].into(),
                ..SessionsSummary::default()
            }),
        }
    }

    #[test]
    fn prometheus_text() {
        let text = prometheus(&stats());
        assert!(text.contains("# TYPE ferrumx_index_height gauge\nferrumx_index_height 120\n"));
        assert!(text.contains("ferrumx_cache_hits_total{cache=\"txids\"} 4\n"));
        assert!(
            !text.contains("ferrumx_daemon_height"),
            "unknown values are left out"
        );
        assert!(
            text.contains("ferrumx_requests_total{method=\"blockchain.headers.subscribe\"} 5\n")
        );
        assert!(text.contains("\nferrumx_sessions 2\n"));
        assert!(text.contains("# TYPE ferrumx_request_latency_seconds histogram\n"));
        assert!(text.contains("ferrumx_request_latency_seconds_bucket{le=\"0.0025\"} 0\n"));
        assert!(text.contains("ferrumx_request_latency_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("ferrumx_request_latency_seconds_bucket{le=\"+Inf\"} 1\n"));
        assert!(text.contains("ferrumx_request_latency_seconds_count 1\n"));
        assert!(text.contains("ferrumx_request_errors_total{method=\"invalid method\"} 2\n"));
        assert!(text.contains("ferrumx_sync_transactions_per_second 40.5\n"));
        assert!(text.contains("ferrumx_actor_restarts_total{actor=\"mempool\"} 1\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            value.parse::<f64>().unwrap();
        }
    }

    #[test]
    fn json_has_the_same_numbers() {
        let value = to_json(&stats());
        assert_eq!(value["ferrumx_index_height"], json!(120.0));
        assert_eq!(value["ferrumx_cache_entries"]["txids"], json!(6.0));
    }
}
