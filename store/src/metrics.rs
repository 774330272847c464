//! The metrics every runtime exports, in the Prometheus/OpenMetrics text format, and the
//! tiny HTTP listener that serves them (`GET /metrics`) on a thread of its own.
//!
//! The values are atomics (prometheus-client's), written by the runtime's loop through an
//! [`Observer`](crate::observe::Observer) and read by the listener when scraped.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use switchboard_proto::Protocol;
use tracing::{info, warn};

/// Labels: `protocol`, or `from` and `to`, or `reason`.
type Labels = Vec<(&'static str, String)>;

/// How long a scrape may take to send its request before it is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The server's metrics. Cloning shares them.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Open connections by protocol (`outbound` for those the server dials).
    pub connections: Family<Labels, Gauge>,
    /// Logins by protocol.
    pub logins: Family<Labels, Counter>,
    /// Sessions open now by protocol.
    pub sessions: Family<Labels, Gauge>,
    /// Direct messages routed, by the sender's and the recipient's protocols (`mailbox`
    /// for one stored for an offline account).
    pub routed: Family<Labels, Counter>,
    /// Offline messages stored over all accounts.
    pub offline_queue: Gauge,
    /// The most offline messages stored for one account.
    pub offline_queue_max: Gauge,
    /// Changes per committed batch.
    pub batch_size: Histogram,
    /// Seconds from handing a batch to the store to its commit.
    pub commit_seconds: Histogram,
    /// Bytes read from clients by protocol.
    pub bytes_in: Family<Labels, Counter>,
    /// Bytes written to clients by protocol.
    pub bytes_out: Family<Labels, Counter>,
    /// Client connections closed, by reason.
    pub disconnects: Family<Labels, Counter>,
    /// Requests refused by a rate limit.
    pub rate_refusals: Counter,
    registry: Arc<Mutex<Registry>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric, registered with its help text under the prefix `switchboard`.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("switchboard");
        let m = Metrics {
            connections: Family::default(),
            logins: Family::default(),
            sessions: Family::default(),
            routed: Family::default(),
            offline_queue: Gauge::default(),
            offline_queue_max: Gauge::default(),
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            commit_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            bytes_in: Family::default(),
            bytes_out: Family::default(),
            disconnects: Family::default(),
            rate_refusals: Counter::default(),
            registry: Arc::new(Mutex::new(Registry::default())),
        };
        registry.register(
            "connections",
            "Connections open now, by protocol (admin socket connections included; outbound: the links the server dials, such as the jabberd router link)",
            m.connections.clone(),
        );
        registry.register(
            "logins",
            "Logins (sessions started), by protocol",
            m.logins.clone(),
        );
        registry.register(
            "sessions",
            "Sessions (users logged in) open now, by protocol",
            m.sessions.clone(),
        );
        registry.register(
            "messages_routed",
            "Direct messages routed, by the sender's protocol (from) and the recipient's (to; mailbox when stored for an offline account)",
            m.routed.clone(),
        );
        registry.register(
            "offline_queue_messages",
            "Offline messages stored, over all accounts",
            m.offline_queue.clone(),
        );
        registry.register(
            "offline_queue_max_messages",
            "The most offline messages stored for one account",
            m.offline_queue_max.clone(),
        );
        registry.register(
            "commit_batch_changes",
            "Changes per committed batch (group commit)",
            m.batch_size.clone(),
        );
        registry.register(
            "commit_seconds",
            "Time from handing a batch to the store to its commit, fsync included",
            m.commit_seconds.clone(),
        );
        registry.register(
            "received_bytes",
            "Bytes read from connections, by protocol",
            m.bytes_in.clone(),
        );
        registry.register(
            "sent_bytes",
            "Bytes written to connections, by protocol",
            m.bytes_out.clone(),
        );
        registry.register(
            "disconnects",
            "Client connections closed, by reason: timeout, limit, slow_reader, kick, error, quit, done, peer_closed, shutdown",
            m.disconnects.clone(),
        );
        registry.register(
            "rate_refusals",
            "Requests refused by a rate limit",
            m.rate_refusals.clone(),
        );
        // Every label set shows from the start, at 0, so a scrape has each metric with
        // its help text and a rate has a first point.
        let clients = Protocol::ALL.into_iter().filter(|&p| p != Protocol::Admin);
        for protocol in clients.clone() {
            let labels = vec![("protocol", protocol.to_string())];
            let _ = m.connections.get_or_create(&labels);
            let _ = m.logins.get_or_create(&labels);
            let _ = m.sessions.get_or_create(&labels);
            let _ = m.bytes_in.get_or_create(&labels);
            let _ = m.bytes_out.get_or_create(&labels);
            for to in clients.clone() {
                let pair = vec![("from", protocol.to_string()), ("to", to.to_string())];
                let _ = m.routed.get_or_create(&pair);
            }
            let stored = vec![("from", protocol.to_string()), ("to", "mailbox".to_owned())];
            let _ = m.routed.get_or_create(&stored);
        }
        let outbound = crate::observe::outbound_label();
        let _ = m.connections.get_or_create(&outbound);
        let _ = m.bytes_in.get_or_create(&outbound);
        let _ = m.bytes_out.get_or_create(&outbound);
        for reason in crate::observe::REASONS {
            let _ = m
                .disconnects
                .get_or_create(&vec![("reason", reason.to_owned())]);
        }
        Metrics {
            registry: Arc::new(Mutex::new(registry)),
            ..m
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Ok(registry) = self.registry.lock() {
            // Writing to a String cannot fail.
            let _ = encode(&mut text, &registry);
        }
        text
    }

    /// The metrics a runtime keeps when `--metrics` gives an address: new, and served
    /// there; `None` when metrics are off.
    pub fn start(addr: Option<SocketAddr>) -> Result<Option<Metrics>, (SocketAddr, io::Error)> {
        let Some(addr) = addr else {
            return Ok(None);
        };
        let metrics = Metrics::new();
        metrics.serve(addr).map_err(|e| (addr, e))?;
        Ok(Some(metrics))
    }

    /// Binds `addr` and serves `GET /metrics` there on a thread of its own, for the rest
    /// of the process; logs the address bound.
    ///
    /// # Errors
    /// When `addr` cannot be bound.
    pub fn serve(&self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr)?;
        let bound = listener.local_addr()?;
        info!("metrics listening on http://{bound}/metrics");
        let metrics = self.clone();
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    match stream {
                        Ok(stream) => {
                            if let Err(e) = metrics.answer(stream) {
                                warn!(error = %e, "a metrics scrape failed");
                            }
                        }
                        Err(e) => {
                            warn!(error = %e, "accept on the metrics listener failed");
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
            })?;
        Ok(bound)
    }

    /// Answers one HTTP request: the metrics for `GET /metrics`, 404 otherwise.
    fn answer(&self, mut stream: TcpStream) -> io::Result<()> {
        stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
        stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
        let mut head = Vec::new();
        let mut buf = [0_u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
        let (status, content_type, body) = if line.starts_with(b"GET /metrics ") {
            (
                "200 OK",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                self.encode(),
            )
        } else {
            (
                "404 Not Found",
                "text/plain; charset=utf-8",
                "metrics are at /metrics\n".to_owned(),
            )
        };
        write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        stream.flush()
    }
}
