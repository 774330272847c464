//! The config file of `switchboard serve --config FILE` (TOML; `switchboard.example.toml`
//! at the repository root documents every key with its default).
//!
//! The file is read into plain structs of `Option`s: a key left out keeps the flag's
//! default, a flag given on the command line overrides the key. Each key is validated as
//! its flag is, and an error names the key. A key the structs do not know (a misspelling,
//! a key in the wrong section) is an error naming it, with the closest known key when one
//! is close.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::ValueEnum;
use serde::Deserialize;

use crate::cli::{listen_addr, LogFormat, Rate, RuntimeKind, Secs, ServeArgs};

/// The whole file. Every field is optional: what is left out keeps its default.
#[derive(Debug, Default, Deserialize)]
pub struct File {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--runtime`: `smol` or `mio`.
    pub runtime: Option<String>,
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--outbound-limit`: unwritten bytes of one connection.
    pub outbound_limit_bytes: Option<u64>,
    /// Offline messages kept per account (no flag).
    pub offline_cap: Option<u64>,
    /// `--offline-share-percent`.
    pub offline_share_percent: Option<u64>,
    /// The listeners.
    pub listen: Option<Listen>,
    /// `switchboard_proto::Limits`.
    pub limits: Option<LimitsSection>,
    /// ws2017 settings.
    pub ws2017: Option<Ws2017Section>,
    /// arsc settings.
    pub arsc: Option<ArscSection>,
    /// ims settings.
    pub ims: Option<ImsSection>,
    /// opcode settings.
    pub opcode: Option<OpcodeSection>,
    /// Logging.
    pub log: Option<LogSection>,
    /// The metrics endpoint.
    pub metrics: Option<MetricsSection>,
    /// The link to a jabberd2 router.
    pub jabberd: Option<JabberdSection>,
}

/// `[listen]`: one address per protocol (`--ws2017`, `--arsc`, `--ims`, `--opcode`).
#[derive(Debug, Default, Deserialize)]
pub struct Listen {
    /// `--ws2017`.
    pub ws2017: Option<String>,
    /// `--arsc`.
    pub arsc: Option<String>,
    /// `--ims`.
    pub ims: Option<String>,
    /// `--opcode`.
    pub opcode: Option<String>,
}

/// `[limits]`: the keys of `switchboard_proto::Limits` (docs/limits.md).
#[derive(Debug, Default, Deserialize)]
pub struct LimitsSection {
    /// `--max-connections`.
    pub max_connections: Option<u64>,
    /// `--max-connections-per-ip`.
    pub max_connections_per_ip: Option<u64>,
    /// `--outbound-budget`.
    pub outbound_budget_bytes: Option<u64>,
    /// `--broadcast-rate-per-conn`.
    pub broadcast_per_conn: Option<String>,
    /// `--broadcast-rate-per-ip`.
    pub broadcast_per_ip: Option<String>,
    /// `--durable-rate-per-conn`.
    pub durable_per_conn: Option<String>,
    /// `--durable-rate-per-ip`.
    pub durable_per_ip: Option<String>,
    /// `--message-rate-per-conn`.
    pub message_per_conn: Option<String>,
    /// `--message-rate-per-ip`.
    pub message_per_ip: Option<String>,
    /// Addresses whose rate buckets are kept (no flag).
    pub max_ip_buckets: Option<u64>,
    /// Seconds a connection may take to log in (no flag).
    pub login_timeout: Option<f64>,
    /// `--failed-logins-per-account`.
    pub failed_logins_per_account: Option<u32>,
    /// Wrong passwords in a row from one address that lock it out (no flag).
    pub failed_logins_per_ip: Option<u32>,
    /// Seconds a lockout lasts (no flag).
    pub login_lockout: Option<f64>,
}

/// `[ws2017]`.
#[derive(Debug, Default, Deserialize)]
pub struct Ws2017Section {
    /// `--ws2017-ping-interval`, seconds.
    pub ping_interval: Option<f64>,
    /// `--ws2017-ping-timeout`, seconds.
    pub ping_timeout: Option<f64>,
    /// Longest accepted line (no flag).
    pub max_line_bytes: Option<u64>,
}

/// `[arsc]`.
#[derive(Debug, Default, Deserialize)]
pub struct ArscSection {
    /// `--arsc-guests`.
    pub guests: Option<bool>,
    /// Longest accepted request document (no flag).
    pub max_request_bytes: Option<u64>,
    /// The chat's title in the welcome (no flag).
    pub title: Option<String>,
    /// The room of a connect that names none (no flag).
    pub default_room: Option<String>,
    /// The time zone of `sendtime`, minutes east of UTC (no flag).
    pub utc_offset_minutes: Option<i64>,
    /// Rooms at most (no flag).
    pub max_rooms: Option<u64>,
    /// Members of one room at most (no flag).
    pub max_room_members: Option<u64>,
}

/// `[ims]`.
#[derive(Debug, Default, Deserialize)]
pub struct ImsSection {
    /// `--ims-alive-timeout`, seconds.
    pub alive_timeout: Option<f64>,
    /// `--ims-max-document`.
    pub max_document_bytes: Option<u64>,
    /// `--ims-nul` when `"nul"`; `"newline"` otherwise.
    pub terminator: Option<String>,
}

/// `[opcode]`.
#[derive(Debug, Default, Deserialize)]
pub struct OpcodeSection {
    /// Longest accepted line without media (no flag).
    pub max_line_bytes: Option<u64>,
    /// `--opcode-max-media`.
    pub max_media_bytes: Option<u64>,
    /// Most bytes of media one account may have stored (no flag).
    pub max_media_bytes_per_user: Option<u64>,
}

/// `[log]`.
#[derive(Debug, Default, Deserialize)]
pub struct LogSection {
    /// `--log`: a tracing filter (`RUST_LOG` syntax).
    pub filter: Option<String>,
    /// `--log-format`: `human` or `json`.
    pub format: Option<String>,
}

/// `[metrics]`.
#[derive(Debug, Default, Deserialize)]
pub struct MetricsSection {
    /// `--metrics`: where to serve `/metrics`; off when absent.
    pub listen: Option<String>,
}

/// `[jabberd]`: the link to a jabberd2 router. Each key is the flag of the same name:
/// `router` is `--jabberd-router`, `domain` `--jabberd-domain`, `user` `--jabberd-user`,
/// `secret_file` `--jabberd-secret-file` (see [`JabberdSettings`]).
#[derive(Debug, Default, Deserialize)]
pub struct JabberdSection {
    /// `--jabberd-router`: the router's component address, `HOST:PORT`.
    pub router: Option<String>,
    /// `--jabberd-domain`: the XMPP domain served.
    pub domain: Option<String>,
    /// `--jabberd-user`: the component user of the router's `router-users.xml`.
    pub user: Option<String>,
    /// `--jabberd-secret-file`: a file whose first line is that user's secret.
    pub secret_file: Option<PathBuf>,
}

/// The `[jabberd]` section, validated: the values of the `--jabberd-*` flags of the same
/// names. The secret stays in its file; only the path is kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JabberdSettings {
    /// `router` / `--jabberd-router`.
    pub router: Option<std::net::SocketAddr>,
    /// `domain` / `--jabberd-domain`.
    pub domain: Option<String>,
    /// `user` / `--jabberd-user`.
    pub user: Option<String>,
    /// `secret_file` / `--jabberd-secret-file`.
    pub secret_file: Option<PathBuf>,
}

/// What the file sets that has no flag: applied to the core's config by `serve`.
#[derive(Clone, Debug, Default)]
pub struct FileOnly {
    /// `offline_cap`.
    pub offline_cap: Option<usize>,
    /// `limits.max_ip_buckets`.
    pub max_ip_buckets: Option<usize>,
    /// `limits.login_timeout`.
    pub login_timeout: Option<std::time::Duration>,
    /// `limits.failed_logins_per_ip`.
    pub failed_logins_per_ip: Option<u32>,
    /// `limits.login_lockout`.
    pub login_lockout: Option<std::time::Duration>,
    /// `arsc.max_rooms`.
    pub arsc_max_rooms: Option<usize>,
    /// `arsc.max_room_members`.
    pub arsc_max_room_members: Option<usize>,
    /// `ws2017.max_line_bytes`.
    pub ws2017_max_line_bytes: Option<usize>,
    /// `arsc.max_request_bytes`.
    pub arsc_max_request_bytes: Option<usize>,
    /// `arsc.title`.
    pub arsc_title: Option<String>,
    /// `arsc.default_room`.
    pub arsc_default_room: Option<String>,
    /// `arsc.utc_offset_minutes`.
    pub arsc_utc_offset_minutes: Option<i32>,
    /// `opcode.max_line_bytes`.
    pub opcode_max_line_bytes: Option<usize>,
    /// `opcode.max_media_bytes_per_user`.
    pub opcode_max_media_bytes_per_user: Option<u64>,
    /// `[jabberd]`.
    pub jabberd: JabberdSettings,
}

/// Why a config file was refused. The text names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// It is not TOML, or a value has the wrong type.
    #[error("config file {path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// toml's message, with the line.
        message: String,
    },
    /// A key no section has.
    #[error("config file {path}: unknown key `{key}`{}", did_you_mean(.suggestion))]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key, with its section (`limits.max_conections`).
        key: String,
        /// The closest known key, if one is close.
        suggestion: Option<String>,
    },
    /// A value its key does not accept.
    #[error("config file {path}: `{key}`: {message}")]
    Value {
        /// The file.
        path: PathBuf,
        /// The key, with its section.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

fn did_you_mean(s: &Option<String>) -> String {
    match s {
        Some(key) => format!(" (did you mean `{key}`?)"),
        None => String::new(),
    }
}

impl File {
    /// Reads and parses `path`; every unknown key is an error.
    ///
    /// # Errors
    /// When it cannot be read, is not TOML of the right types, or has an unknown key.
    pub fn load(path: &Path) -> Result<File, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        File::parse(path, &text)
    }

    /// Parses `text` (read from `path`, for the messages).
    ///
    /// # Errors
    /// As [`File::load`].
    pub fn parse(path: &Path, text: &str) -> Result<File, ConfigError> {
        let mut unknown = Vec::new();
        let deserializer = toml::Deserializer::parse(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let file: File = serde_ignored::deserialize(deserializer, |key| {
            unknown.push(key_path(&key));
        })
        .map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        if let Some(key) = unknown.into_iter().next() {
            let suggestion = closest(&key, &known_keys());
            return Err(ConfigError::UnknownKey {
                path: path.to_owned(),
                key,
                suggestion,
            });
        }
        Ok(file)
    }

    /// Sets in `args` what the file sets, except what `args.given` says came from the
    /// command line; what has no flag goes to `args.file_only`.
    ///
    /// # Errors
    /// A value its key does not accept (the same rules as the flag's).
    pub fn apply(self, path: &Path, args: &mut ServeArgs) -> Result<(), ConfigError> {
        let given = args.given.clone();
        let mut a = Applier {
            path,
            given: &given,
        };
        let bad = |key: &str, message: String| ConfigError::Value {
            path: path.to_owned(),
            key: key.to_owned(),
            message,
        };
        a.set("data_dir", &mut args.data_dir, self.data_dir, Ok)?;
        a.set("runtime", &mut args.runtime, self.runtime, |s| {
            RuntimeKind::from_str(&s, false).map_err(|_| format!("`{s}` is not smol or mio"))
        })?;
        if let Some(seed) = self.seed {
            if !given.contains("seed") {
                args.seed = Some(seed);
            }
        }
        a.set(
            "outbound_limit_bytes",
            &mut args.outbound_limit,
            self.outbound_limit_bytes,
            at_least(1),
        )?;
        if let Some(cap) = self.offline_cap {
            args.file_only.offline_cap = Some(to_usize(
                at_least(1)(cap).map_err(|m| bad("offline_cap", m))?,
            ));
        }
        a.set(
            "offline_share_percent",
            &mut args.offline_share_percent,
            self.offline_share_percent,
            |v| match v {
                1..=100 => Ok(v as u8),
                _ => Err(format!("{v} is not a percentage from 1 to 100")),
            },
        )?;
        let listen = self.listen.unwrap_or_default();
        a.set_flag(
            "listen.ws2017",
            "ws2017",
            &mut args.ws2017,
            listen.ws2017,
            |s| listen_addr(&s),
        )?;
        a.set_flag("listen.arsc", "arsc", &mut args.arsc, listen.arsc, |s| {
            listen_addr(&s)
        })?;
        a.set_flag("listen.ims", "ims", &mut args.ims, listen.ims, |s| {
            listen_addr(&s)
        })?;
        a.set_flag(
            "listen.opcode",
            "opcode",
            &mut args.opcode,
            listen.opcode,
            |s| listen_addr(&s),
        )?;
        let limits = self.limits.unwrap_or_default();
        a.set_flag(
            "limits.max_connections",
            "max_connections",
            &mut args.max_connections,
            limits.max_connections,
            at_least(1),
        )?;
        a.set_flag(
            "limits.max_connections_per_ip",
            "max_connections_per_ip",
            &mut args.max_connections_per_ip,
            limits.max_connections_per_ip,
            at_least(1),
        )?;
        a.set_flag(
            "limits.outbound_budget_bytes",
            "outbound_budget",
            &mut args.outbound_budget,
            limits.outbound_budget_bytes,
            at_least(1),
        )?;
        for (key, flag, field, value) in [
            (
                "limits.broadcast_per_conn",
                "broadcast_rate_per_conn",
                &mut args.broadcast_rate_per_conn,
                limits.broadcast_per_conn,
            ),
            (
                "limits.broadcast_per_ip",
                "broadcast_rate_per_ip",
                &mut args.broadcast_rate_per_ip,
                limits.broadcast_per_ip,
            ),
            (
                "limits.durable_per_conn",
                "durable_rate_per_conn",
                &mut args.durable_rate_per_conn,
                limits.durable_per_conn,
            ),
            (
                "limits.durable_per_ip",
                "durable_rate_per_ip",
                &mut args.durable_rate_per_ip,
                limits.durable_per_ip,
            ),
            (
                "limits.message_per_conn",
                "message_rate_per_conn",
                &mut args.message_rate_per_conn,
                limits.message_per_conn,
            ),
            (
                "limits.message_per_ip",
                "message_rate_per_ip",
                &mut args.message_rate_per_ip,
                limits.message_per_ip,
            ),
        ] {
            a.set_flag(key, flag, field, value, |s| Rate::from_str(&s))?;
        }
        if let Some(n) = limits.max_ip_buckets {
            let n = at_least(1)(n).map_err(|m| bad("limits.max_ip_buckets", m))?;
            args.file_only.max_ip_buckets = Some(to_usize(n));
        }
        a.set_flag(
            "limits.failed_logins_per_account",
            "failed_logins_per_account",
            &mut args.failed_logins_per_account,
            limits.failed_logins_per_account,
            |n: u32| match n {
                0 => Err("must be at least 1".to_string()),
                n => Ok(n),
            },
        )?;
        if let Some(n) = limits.failed_logins_per_ip {
            let n = at_least(1)(u64::from(n)).map_err(|m| bad("limits.failed_logins_per_ip", m))?;
            args.file_only.failed_logins_per_ip = Some(n as u32);
        }
        for (key, value, slot) in [
            (
                "limits.login_timeout",
                limits.login_timeout,
                &mut args.file_only.login_timeout,
            ),
            (
                "limits.login_lockout",
                limits.login_lockout,
                &mut args.file_only.login_lockout,
            ),
        ] {
            if let Some(v) = value {
                if !(v.is_finite() && v > 0.0 && v < 1e9) {
                    return Err(bad(key, "must be a positive number of seconds".into()));
                }
                *slot = Some(std::time::Duration::from_secs_f64(v));
            }
        }
        let ws2017 = self.ws2017.unwrap_or_default();
        a.set_flag(
            "ws2017.ping_interval",
            "ws2017_ping_interval",
            &mut args.ws2017_ping_interval,
            ws2017.ping_interval,
            secs,
        )?;
        a.set_flag(
            "ws2017.ping_timeout",
            "ws2017_ping_timeout",
            &mut args.ws2017_ping_timeout,
            ws2017.ping_timeout,
            secs,
        )?;
        if let Some(n) = ws2017.max_line_bytes {
            let n = at_least(64)(n).map_err(|m| bad("ws2017.max_line_bytes", m))?;
            args.file_only.ws2017_max_line_bytes = Some(to_usize(n));
        }
        let arsc = self.arsc.unwrap_or_default();
        a.set_flag(
            "arsc.guests",
            "arsc_guests",
            &mut args.arsc_guests,
            arsc.guests,
            Ok,
        )?;
        if let Some(n) = arsc.max_request_bytes {
            let n = at_least(64)(n).map_err(|m| bad("arsc.max_request_bytes", m))?;
            args.file_only.arsc_max_request_bytes = Some(to_usize(n));
        }
        if let Some(n) = arsc.max_rooms {
            let n = at_least(1)(n).map_err(|m| bad("arsc.max_rooms", m))?;
            args.file_only.arsc_max_rooms = Some(to_usize(n));
        }
        if let Some(n) = arsc.max_room_members {
            let n = at_least(1)(n).map_err(|m| bad("arsc.max_room_members", m))?;
            args.file_only.arsc_max_room_members = Some(to_usize(n));
        }
        if let Some(title) = arsc.title {
            if title.chars().any(char::is_control) {
                return Err(bad(
                    "arsc.title",
                    "control characters are not allowed".into(),
                ));
            }
            args.file_only.arsc_title = Some(title);
        }
        if let Some(room) = arsc.default_room {
            if room.is_empty() || room.chars().count() > 64 || room.chars().any(char::is_control) {
                return Err(bad(
                    "arsc.default_room",
                    format!("`{room}` is not a room name (1-64 characters, no control characters)"),
                ));
            }
            args.file_only.arsc_default_room = Some(room);
        }
        if let Some(minutes) = arsc.utc_offset_minutes {
            match i32::try_from(minutes) {
                Ok(m) if m.abs() <= 14 * 60 => args.file_only.arsc_utc_offset_minutes = Some(m),
                _ => {
                    return Err(bad(
                        "arsc.utc_offset_minutes",
                        format!("{minutes} is not between -840 and 840"),
                    ))
                }
            }
        }
        let ims = self.ims.unwrap_or_default();
        a.set_flag(
            "ims.alive_timeout",
            "ims_alive_timeout",
            &mut args.ims_alive_timeout,
            ims.alive_timeout,
            secs,
        )?;
        a.set_flag(
            "ims.max_document_bytes",
            "ims_max_document",
            &mut args.ims_max_document,
            ims.max_document_bytes,
            at_least(64),
        )?;
        a.set_flag(
            "ims.terminator",
            "ims_nul",
            &mut args.ims_nul,
            ims.terminator,
            |s| match s.as_str() {
                "newline" => Ok(false),
                "nul" => Ok(true),
                _ => Err(format!("`{s}` is not newline or nul")),
            },
        )?;
        let opcode = self.opcode.unwrap_or_default();
        if let Some(n) = opcode.max_line_bytes {
            let n = at_least(64)(n).map_err(|m| bad("opcode.max_line_bytes", m))?;
            args.file_only.opcode_max_line_bytes = Some(to_usize(n));
        }
        if let Some(n) = opcode.max_media_bytes_per_user {
            let n = at_least(1)(n).map_err(|m| bad("opcode.max_media_bytes_per_user", m))?;
            args.file_only.opcode_max_media_bytes_per_user = Some(n);
        }
        a.set_flag(
            "opcode.max_media_bytes",
            "opcode_max_media",
            &mut args.opcode_max_media,
            opcode.max_media_bytes,
            at_least(1),
        )?;
        let log = self.log.unwrap_or_default();
        if let Some(filter) = log.filter {
            if !given.contains("log") {
                tracing_subscriber::EnvFilter::builder()
                    .parse(&filter)
                    .map_err(|e| bad("log.filter", format!("`{filter}` is not a filter: {e}")))?;
                args.log = Some(filter);
            }
        }
        a.set_flag(
            "log.format",
            "log_format",
            &mut args.log_format,
            log.format,
            |s| LogFormat::from_str(&s, false).map_err(|_| format!("`{s}` is not human or json")),
        )?;
        let metrics = self.metrics.unwrap_or_default();
        if let Some(addr) = metrics.listen {
            if !given.contains("metrics") {
                args.metrics = Some(listen_addr(&addr).map_err(|m| bad("metrics.listen", m))?);
            }
        }
        let jabberd = self.jabberd.unwrap_or_default();
        let settings = &mut args.file_only.jabberd;
        if let Some(router) = jabberd.router {
            settings.router = Some(listen_addr(&router).map_err(|m| bad("jabberd.router", m))?);
        }
        for (key, value, slot) in [
            ("jabberd.domain", jabberd.domain, &mut settings.domain),
            ("jabberd.user", jabberd.user, &mut settings.user),
        ] {
            if let Some(value) = value {
                if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(bad(key, format!("`{value}` is empty or has spaces")));
                }
                *slot = Some(value);
            }
        }
        settings.secret_file = jabberd.secret_file;
        if settings.router.is_some() {
            for (key, missing) in [
                ("jabberd.domain", settings.domain.is_none()),
                ("jabberd.user", settings.user.is_none()),
                ("jabberd.secret_file", settings.secret_file.is_none()),
            ] {
                if missing {
                    return Err(bad(key, "required when jabberd.router is set".into()));
                }
            }
        }
        Ok(())
    }
}

/// A key's path as the file writes it (`limits.max_connections`): serde_ignored's without
/// its marks for `Option`s.
fn key_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Map { parent, key } => match key_path(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        Path::Seq { parent, index } => format!("{}[{index}]", key_path(parent)),
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => key_path(parent),
    }
}

/// Applies keys unless their flag was given.
struct Applier<'a> {
    path: &'a Path,
    given: &'a BTreeSet<String>,
}

impl Applier<'_> {
    /// A key named like its flag.
    fn set<T, V>(
        &mut self,
        key: &str,
        field: &mut T,
        value: Option<V>,
        parse: impl FnOnce(V) -> Result<T, String>,
    ) -> Result<(), ConfigError> {
        self.set_flag(key, key, field, value, parse)
    }

    /// Sets `field` from `value` (the key `key`) unless the flag `flag` was given.
    fn set_flag<T, V>(
        &mut self,
        key: &str,
        flag: &str,
        field: &mut T,
        value: Option<V>,
        parse: impl FnOnce(V) -> Result<T, String>,
    ) -> Result<(), ConfigError> {
        let Some(value) = value else { return Ok(()) };
        let parsed = parse(value).map_err(|message| ConfigError::Value {
            path: self.path.to_owned(),
            key: key.to_owned(),
            message,
        })?;
        if !self.given.contains(flag) {
            *field = parsed;
        }
        Ok(())
    }
}

fn at_least(min: u64) -> impl Fn(u64) -> Result<u64, String> {
    move |v| match v >= min {
        true => Ok(v),
        false => Err(format!("{v} is less than {min}")),
    }
}

fn secs(v: f64) -> Result<Secs, String> {
    Secs::from_str(&v.to_string())
}

fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// The closest of `known` to the unknown `key`: the same name in another section, or a
/// name a few edits away in the same one.
fn closest(key: &str, known: &[String]) -> Option<String> {
    let split = |k: &str| match k.rsplit_once('.') {
        Some((section, name)) => (section.to_owned(), name.to_owned()),
        None => (String::new(), k.to_owned()),
    };
    let (section, name) = split(key);
    // A section misspelt: `[limts]` is `limits`.
    let sections: BTreeSet<String> = known.iter().map(|k| split(k).0).collect();
    let misspelt_section = (!key.contains('.'))
        .then(|| {
            sections
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| (strsim::levenshtein(key, s), s.clone()))
                .filter(|(d, _)| *d <= 2)
                .min()
                .map(|(_, s)| s)
        })
        .flatten();
    misspelt_section.or_else(|| {
        known
            .iter()
            .filter_map(|k| {
                let (ks, kn) = split(k);
                let elsewhere = usize::from(ks != section) * 2;
                let distance = strsim::levenshtein(&name, &kn) + elsewhere;
                // A typo is at most a third of the name (and at least 2 edits allowed).
                let allowed = (name.chars().count() / 3).max(2) + elsewhere;
                (distance <= allowed).then_some((distance, k))
            })
            .min()
            .map(|(_, k)| k.clone())
    })
}

/// Every key the file may hold, with its section (`limits.max_connections`), read from
/// the structs themselves, so the list cannot drift from them.
pub fn known_keys() -> Vec<String> {
    let mut keys = Vec::new();
    let _ = File::deserialize(fields::Recorder {
        prefix: String::new(),
        keys: &mut keys,
    });
    keys
}

/// A serde deserializer that answers every struct with all its fields, recording their
/// paths, and every leaf with a zero value.
mod fields {
    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
    use serde::forward_to_deserialize_any;

    pub struct Recorder<'a> {
        pub prefix: String,
        pub keys: &'a mut Vec<String>,
    }

    type Error = de::value::Error;

    impl<'de> Deserializer<'de> for Recorder<'_> {
        type Error = Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
            Err(de::Error::custom("unsupported type in the config structs"))
        }
        fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            v.visit_bool(false)
        }
        fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            v.visit_u64(0)
        }
        fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            v.visit_u64(0)
        }
        fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            v.visit_u64(0)
        }
        fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            v.visit_i64(0)
        }
        fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            v.visit_f64(0.0)
        }
        fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            v.visit_str("")
        }
        fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            v.visit_str("")
        }
        fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            v.visit_some(self)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            v: V,
        ) -> Result<V::Value, Error> {
            v.visit_map(Fields {
                prefix: self.prefix,
                keys: self.keys,
                fields,
                next: 0,
            })
        }

        forward_to_deserialize_any! {
            i8 i16 i32 u16 u128 i128 f32 char bytes byte_buf unit unit_struct
            newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }

    struct Fields<'a> {
        prefix: String,
        keys: &'a mut Vec<String>,
        fields: &'static [&'static str],
        next: usize,
    }

    impl<'de> MapAccess<'de> for Fields<'_> {
        type Error = Error;

        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, Error> {
            let Some(field) = self.fields.get(self.next) else {
                return Ok(None);
            };
            seed.deserialize(de::value::StrDeserializer::<Error>::new(field))
                .map(Some)
        }

        fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
            let field = self.fields[self.next];
            self.next += 1;
            let path = match self.prefix.is_empty() {
                true => field.to_owned(),
                false => format!("{}.{field}", self.prefix),
            };
            let before = self.keys.len();
            self.keys.push(path.clone());
            let value = seed.deserialize(Recorder {
                prefix: path,
                keys: self.keys,
            });
            // A section is not a key: its fields are.
            if self.keys.len() > before + 1 {
                self.keys.remove(before);
            }
            value
        }
    }
}

/// A `ServeArgs` value's view for `check-config`: what the file sets, in one line per key.
pub struct Summary<'a>(pub &'a ServeArgs);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.0;
        writeln!(f, "data_dir = {}", a.data_dir.display())?;
        writeln!(f, "runtime = {}", a.runtime.name())?;
        writeln!(
            f,
            "listen: ws2017 {} arsc {} ims {} opcode {}",
            a.ws2017, a.arsc, a.ims, a.opcode
        )?;
        match a.metrics {
            Some(addr) => writeln!(f, "metrics on http://{addr}/metrics")?,
            None => writeln!(f, "metrics off")?,
        }
        match a.file_only.jabberd.router {
            Some(router) => write!(f, "jabberd router {router}"),
            None => write!(f, "jabberd off"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{try_parse_from, Cli, Command};

    const EXAMPLE: &str = include_str!("../switchboard.example.toml");

    fn serve_args(argv: &[&str]) -> ServeArgs {
        let argv = std::iter::once("switchboard").chain(argv.iter().copied());
        match try_parse_from(argv).map(Cli::into_command) {
            Ok(Command::Serve(args)) => args,
            other => panic!("{other:?}"),
        }
    }

    fn applied(text: &str, argv: &[&str]) -> Result<ServeArgs, ConfigError> {
        let mut args = serve_args(argv);
        File::parse(Path::new("test.toml"), text)?.apply(Path::new("test.toml"), &mut args)?;
        Ok(args)
    }

    /// The example with its `#key = value` lines (the keys off by default) set.
    fn uncommented(text: &str) -> String {
        text.lines()
            .map(|line| match line.strip_prefix('#') {
                Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase()) => rest,
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn keys_of(table: &toml::Table, prefix: &str, out: &mut BTreeSet<String>) {
        for (key, value) in table {
            let path = match prefix.is_empty() {
                true => key.clone(),
                false => format!("{prefix}.{key}"),
            };
            match value {
                toml::Value::Table(t) => keys_of(t, &path, out),
                _ => {
                    out.insert(path);
                }
            }
        }
    }

    #[test]
    fn the_example_documents_every_key_with_its_default() {
        // Every key of the structs is in the example, and nothing else is.
        let table: toml::Table = uncommented(EXAMPLE).parse().expect("TOML");
        let mut in_example = BTreeSet::new();
        keys_of(&table, "", &mut in_example);
        let known: BTreeSet<String> = known_keys().into_iter().collect();
        assert!(
            known.contains("limits.max_connections") && known.len() >= 40,
            "{known:?}"
        );
        assert_eq!(in_example, known);
        // It parses, the keys that are off by default included...
        applied(&uncommented(EXAMPLE), &[]).expect("the example with every key set");
        // ...and as shipped it changes nothing: every value is the default.
        let mut args = applied(EXAMPLE, &[]).expect("the example");
        let defaults = serve_args(&[]);
        assert_eq!(
            format!("{:?}", crate::serve::config(&args)),
            format!("{:?}", crate::serve::config(&defaults))
        );
        // (What has no flag is compared through the core's config, above.)
        args.file_only = FileOnly::default();
        assert_eq!(format!("{args:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn keys_reach_the_core_and_flags_override_them() {
        let text = r#"
            offline_cap = 7
            [listen]
            ws2017 = "127.0.0.1:2030"
            arsc = "127.0.0.1:2031"
            [limits]
            max_connections = 5
            durable_per_ip = "6000/1000"
            max_ip_buckets = 9
            [ims]
            terminator = "nul"
            alive_timeout = 2.5
            [arsc]
            title = "Lobby"
            [opcode]
            max_media_bytes_per_user = 1000
            [log]
            format = "json"
        "#;
        let args = applied(
            text,
            &["--arsc", "127.0.0.1:3031", "--max-connections", "6"],
        )
        .expect("valid");
        assert_eq!(args.ws2017, "127.0.0.1:2030".parse().expect("addr"));
        assert_eq!(
            args.arsc,
            "127.0.0.1:3031".parse().expect("addr"),
            "the flag wins"
        );
        assert_eq!(args.log_format, LogFormat::Json);
        let config = crate::serve::config(&args);
        assert_eq!(config.limits.max_connections, 6, "the flag wins");
        assert_eq!(config.limits.durable_per_ip.per_minute, 6000);
        assert_eq!(config.limits.max_ip_buckets, 9);
        assert_eq!(config.offline_cap, 7);
        assert_eq!(config.ims.terminator, switchboard_proto::ImsTerminator::Nul);
        assert_eq!(config.ims.alive_timeout.as_millis(), 2500);
        assert_eq!(config.arsc.title, "Lobby");
        assert_eq!(config.opcode.max_media_bytes_per_user, 1000);
    }

    #[test]
    fn unknown_keys_are_named_with_the_closest_known_one() {
        let cases = [
            (
                "[limits]\nmax_conections = 5",
                "limits.max_conections",
                Some("limits.max_connections"),
            ),
            (
                "max_connections = 5",
                "max_connections",
                Some("limits.max_connections"),
            ),
            ("[limts]\nmax_connections = 5", "limts", Some("limits")),
            (
                "[ims]\nterminater = \"nul\"",
                "ims.terminater",
                Some("ims.terminator"),
            ),
            ("[jabberd]\nsecret = \"x\"", "jabberd.secret", None),
            ("colour = \"blue\"", "colour", None),
        ];
        for (text, key, suggestion) in cases {
            match applied(text, &[]) {
                Err(ConfigError::UnknownKey {
                    key: k,
                    suggestion: s,
                    ..
                }) => {
                    assert_eq!(k, key, "{text}");
                    assert_eq!(s.as_deref(), suggestion, "{text}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        let e = applied("[limits]\nmax_conections = 5", &[]).expect_err("unknown");
        assert_eq!(
            e.to_string(),
            "config file test.toml: unknown key `limits.max_conections` \
             (did you mean `limits.max_connections`?)"
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key) in [
            ("[limits]\nmax_connections = 0", "limits.max_connections"),
            (
                "[limits]\nbroadcast_per_ip = \"60\"",
                "limits.broadcast_per_ip",
            ),
            ("[listen]\nims = \"nowhere\"", "listen.ims"),
            ("runtime = \"tokio\"", "runtime"),
            ("offline_share_percent = 101", "offline_share_percent"),
            ("[ws2017]\nping_interval = 0", "ws2017.ping_interval"),
            ("[ims]\nmax_document_bytes = 10", "ims.max_document_bytes"),
            (
                "[opcode]\nmax_media_bytes_per_user = 0",
                "opcode.max_media_bytes_per_user",
            ),
            ("[log]\nformat = \"xml\"", "log.format"),
            ("[log]\nfilter = \"info,,=x=y\"", "log.filter"),
            ("[jabberd]\nrouter = \"127.0.0.1:5347\"", "jabberd.domain"),
        ] {
            match applied(text, &[]) {
                Err(ConfigError::Value { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        // A wrong type is toml's error, with the line.
        let e = applied("[limits]\nmax_connections = \"many\"", &[]).expect_err("a string");
        assert!(e.to_string().contains("line 2"), "{e}");
    }

    #[test]
    fn the_jabberd_section_maps_onto_the_jabberd_flags() {
        let text = r#"
            [jabberd]
            router = "127.0.0.1:5347"
            domain = "example.org"
            user = "jabberd"
            secret_file = "/etc/switchboard/jabberd.secret"
        "#;
        let args = applied(text, &[]).expect("valid");
        assert_eq!(
            args.file_only.jabberd,
            JabberdSettings {
                router: Some("127.0.0.1:5347".parse().expect("addr")),
                domain: Some("example.org".into()),
                user: Some("jabberd".into()),
                secret_file: Some("/etc/switchboard/jabberd.secret".into()),
            }
        );
    }
}
