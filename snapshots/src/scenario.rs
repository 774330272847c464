//! `.scn` files: parsed into [`Scenario`]s, every mistake reported with its file and line.

use core::fmt;
use core::net::IpAddr;
use core::time::Duration;
use std::path::Path;

use switchboard_proto::{Config, Protocol};

use crate::escape::{escape, unescape};

/// Every protocol a scenario may name, by [`Protocol::name`].
const PROTOCOLS: &[Protocol] = &[
    Protocol::Ws2017,
    Protocol::Admin,
    Protocol::Arsc,
    Protocol::Ims,
    Protocol::Opcode,
];

/// A parsed scenario: its description, the config it runs with and its steps.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub(crate) file: String,
    pub(crate) description: Option<String>,
    pub(crate) config: Config,
    pub(crate) steps: Vec<Step>,
    /// Width of the transcript's left column (`name/protocol` and padding).
    pub(crate) width: usize,
}

/// A mistake in a scenario, or something it asked for that cannot be done (sending on a
/// closed connection); displayed as `file:line: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioError {
    /// The file, as it was named when loaded.
    pub file: String,
    /// The 1-based line, if the mistake has one.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ScenarioError {}

/// One line of a scenario.
#[derive(Clone, Debug)]
pub(crate) struct Step {
    /// 1-based line in the file.
    pub(crate) line: usize,
    pub(crate) kind: StepKind,
}

#[derive(Clone, Debug)]
pub(crate) enum StepKind {
    /// An empty line, kept in the transcript to keep its paragraphs.
    Blank,
    /// `# text`, copied to the transcript.
    Comment(String),
    /// `!config key=value`, already applied to [`Scenario::config`]; copied to the transcript.
    Config(String),
    /// `~ +N.NNNs`.
    Advance(Duration),
    /// `!connect:NAME/PROTO` or `!connect:NAME/PROTO@ADDR`.
    Connect {
        client: String,
        protocol: Protocol,
        from: Option<Origin>,
    },
    /// `NAME[/PROTO] c: ...`, `c~: ...` or `c/: ...`.
    Send {
        client: String,
        protocol: Option<Protocol>,
        mode: SendMode,
        bytes: Vec<u8>,
    },
    /// `!cut:NAME`.
    Cut(String),
    /// `!stall:NAME`.
    Stall(String),
    /// `!resume:NAME`.
    Resume(String),
    /// `!hold-commits`: the store stops committing until `!commit`.
    HoldCommits,
    /// `!commit`: the store commits what accumulated and keeps up again.
    Commit,
    /// `!store-fail`: the store's commits fail until `!store-ok`.
    StoreFail,
    /// `!store-ok`: the store's commits succeed again.
    StoreOk,
    /// `!crash`: the server and the store's uncommitted batch are gone.
    Crash,
    /// `!restart`: a new server over the committed state.
    Restart,
}

/// Where a `!connect:NAME/PROTO@...` connection comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// `@10.0.0.7`: a network peer with this address.
    Ip(IpAddr),
    /// `@local`: the local socket (as the admin CLI connects).
    Local,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Ip(ip) => write!(f, "{ip}"),
            Origin::Local => f.write_str("local"),
        }
    }
}

/// How a client's line is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SendMode {
    /// `c:` the text and a CRLF, in one delivery.
    Line,
    /// `c~:` the text alone (line endings written as escapes), in one delivery.
    Raw,
    /// `c/:` the text and a CRLF, one byte per delivery.
    Bytewise,
}

impl SendMode {
    pub(crate) fn marker(self) -> &'static str {
        match self {
            SendMode::Line => "c:",
            SendMode::Raw => "c~:",
            SendMode::Bytewise => "c/:",
        }
    }
}

impl Scenario {
    /// Reads and parses the scenario at `path`.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: file.clone(),
            line: None,
            message: format!("cannot read: {e}"),
        })?;
        Scenario::parse(&file, &text)
    }

    /// Parses scenario `text`; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let mut scenario = Scenario {
            file: file.to_owned(),
            description: None,
            config: Config::default(),
            steps: Vec::new(),
            width: 0,
        };
        let mut labels: Vec<String> = Vec::new();
        let mut protocols: Vec<(String, Protocol)> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let fail = |message: String| ScenarioError {
                file: file.to_owned(),
                line: Some(line),
                message,
            };
            let kind = parse_line(raw).map_err(fail)?;
            match &kind {
                StepKind::Comment(text) if scenario.description.is_none() => {
                    let text = text.trim_start_matches('#').trim();
                    scenario.description = Some(text.to_owned());
                }
                StepKind::Config(setting) => {
                    let started = scenario.steps.iter().any(|s| {
                        !matches!(
                            s.kind,
                            StepKind::Blank | StepKind::Comment(_) | StepKind::Config(_)
                        )
                    });
                    if started {
                        return Err(fail("!config must come before the first event".to_owned()));
                    }
                    apply_config(&mut scenario.config, setting).map_err(fail)?;
                }
                StepKind::Connect {
                    client, protocol, ..
                } => {
                    set_protocol(&mut protocols, client, *protocol);
                    labels.push(format!("{client}/{protocol}"));
                }
                StepKind::Send {
                    client, protocol, ..
                } => match protocol {
                    Some(protocol) => {
                        set_protocol(&mut protocols, client, *protocol);
                        labels.push(format!("{client}/{protocol}"));
                    }
                    None if protocols.iter().any(|(c, _)| c == client) => {}
                    None => {
                        return Err(fail(format!(
                        "the first line of {client} must name its protocol, as in {client}/ws2017"
                    )))
                    }
                },
                StepKind::Cut(client) | StepKind::Stall(client) | StepKind::Resume(client)
                    if !protocols.iter().any(|(c, _)| c == client) =>
                {
                    return Err(fail(format!("{client} has not connected yet")));
                }
                _ => {}
            }
            scenario.steps.push(Step { line, kind });
        }
        scenario.width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) + 2;
        Ok(scenario)
    }

    /// The snapshot description: the text of the first `#` comment.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The file name the scenario was loaded or parsed under.
    pub fn file(&self) -> &str {
        &self.file
    }

    pub(crate) fn error(&self, line: usize, message: String) -> ScenarioError {
        ScenarioError {
            file: self.file.clone(),
            line: Some(line),
            message,
        }
    }
}

fn set_protocol(protocols: &mut Vec<(String, Protocol)>, client: &str, protocol: Protocol) {
    match protocols.iter_mut().find(|(c, _)| c == client) {
        Some(entry) => entry.1 = protocol,
        None => protocols.push((client.to_owned(), protocol)),
    }
}

fn parse_line(raw: &str) -> Result<StepKind, String> {
    if raw.trim().is_empty() {
        return Ok(StepKind::Blank);
    }
    if raw.starts_with('#') {
        return Ok(StepKind::Comment(raw.trim_end().to_owned()));
    }
    if let Some(rest) = raw.strip_prefix('~') {
        return parse_advance(rest.trim()).map(StepKind::Advance);
    }
    if let Some(rest) = raw.strip_prefix('!') {
        return parse_directive(rest.trim_end());
    }
    parse_send(raw)
}

fn parse_advance(text: &str) -> Result<Duration, String> {
    let Some(amount) = text.strip_prefix('+') else {
        return Err(format!(
            "time advances are written `~ +N.NNNs`, not `~ {text}`"
        ));
    };
    parse_duration(amount)
}

/// `1.5s`, `2s`, `250ms`, whole milliseconds at most.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration such as 2s, 1.500s or 250ms");
    if let Some(ms) = text.strip_suffix("ms") {
        return ms
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| bad());
    }
    let secs = text.strip_suffix('s').ok_or_else(bad)?;
    let (whole, frac) = secs.split_once('.').unwrap_or((secs, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let frac: u64 = format!("{frac:0<3}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(1000)
        .and_then(|ms| ms.checked_add(frac))
        .map(Duration::from_millis)
        .ok_or_else(bad)
}

fn parse_directive(text: &str) -> Result<StepKind, String> {
    if let Some(setting) = text.strip_prefix("config ") {
        return Ok(StepKind::Config(setting.trim().to_owned()));
    }
    let (name, arg) = text.split_once(':').unwrap_or((text, ""));
    match name {
        "connect" => {
            let (client, from) = match arg.split_once('@') {
                Some((client, from)) => (client, Some(parse_origin(from)?)),
                None => (arg, None),
            };
            let (client, protocol) = parse_client(client)?;
            let protocol = protocol
                .ok_or_else(|| format!("!connect needs a protocol: !connect:{client}/ws2017"))?;
            Ok(StepKind::Connect {
                client,
                protocol,
                from,
            })
        }
        "cut" | "stall" | "resume" => {
            let (client, protocol) = parse_client(arg)?;
            if protocol.is_some() {
                return Err(format!(
                    "!{name} takes a client name alone: !{name}:{client}"
                ));
            }
            Ok(match name {
                "cut" => StepKind::Cut(client),
                "stall" => StepKind::Stall(client),
                _ => StepKind::Resume(client),
            })
        }
        "hold-commits" | "commit" | "store-fail" | "store-ok" | "crash" | "restart" => {
            if text != name {
                return Err(format!("!{name} takes no argument"));
            }
            Ok(match name {
                "hold-commits" => StepKind::HoldCommits,
                "commit" => StepKind::Commit,
                "store-fail" => StepKind::StoreFail,
                "store-ok" => StepKind::StoreOk,
                "crash" => StepKind::Crash,
                _ => StepKind::Restart,
            })
        }
        _ => Err(format!(
            "unknown directive !{text} (known: !config KEY=VALUE, !connect:NAME/PROTO[@ADDR], \
             !cut:NAME, !stall:NAME, !resume:NAME, !hold-commits, !commit, !store-fail, \
             !store-ok, !crash, !restart)"
        )),
    }
}

/// The `ADDR` of `!connect:NAME/PROTO@ADDR`: an IP address or `local`.
fn parse_origin(text: &str) -> Result<Origin, String> {
    if text == "local" {
        return Ok(Origin::Local);
    }
    text.parse().map(Origin::Ip).map_err(|_| {
        format!("`{text}` is not an IP address or `local` (as in !connect:NAME/ws2017@10.0.0.7)")
    })
}

/// `NAME` or `NAME/PROTO`.
fn parse_client(text: &str) -> Result<(String, Option<Protocol>), String> {
    let (name, protocol) = match text.split_once('/') {
        Some((name, protocol)) => (name, Some(protocol)),
        None => (text, None),
    };
    if name.is_empty()
        || name
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, ':' | '/' | '@'))
    {
        return Err(format!(
            "`{text}` is not a client name (NAME or NAME/PROTO)"
        ));
    }
    let protocol = match protocol {
        None => None,
        Some(p) => Some(
            PROTOCOLS
                .iter()
                .copied()
                .find(|known| known.name() == p)
                .ok_or_else(|| {
                    let known: Vec<&str> = PROTOCOLS.iter().map(|p| p.name()).collect();
                    format!("unknown protocol `{p}` (known: {})", known.join(", "))
                })?,
        ),
    };
    Ok((name.to_owned(), protocol))
}

fn parse_send(raw: &str) -> Result<StepKind, String> {
    let (client, rest) = raw.split_once([' ', '\t']).unwrap_or((raw, ""));
    let rest = rest.trim_start_matches([' ', '\t']);
    let (marker, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let mode = match marker {
        "c:" => SendMode::Line,
        "c~:" => SendMode::Raw,
        "c/:" => SendMode::Bytewise,
        "s:" | "s~:" => return Err("s: lines are written by the harness, never by the scenario".to_owned()),
        _ => {
            return Err(format!(
                "cannot read `{raw}`: expected `# comment`, `~ +Ns`, `!directive` or `NAME[/PROTO] c: text` \
                 (or c~: for raw bytes, c/: for one byte per delivery)"
            ))
        }
    };
    let (client, protocol) = parse_client(client)?;
    let mut bytes = unescape(text)?;
    if mode != SendMode::Raw {
        bytes.extend_from_slice(b"\r\n");
    }
    if bytes.is_empty() {
        return Err("c~: with nothing to send".to_owned());
    }
    Ok(StepKind::Send {
        client,
        protocol,
        mode,
        bytes,
    })
}

fn apply_config(config: &mut Config, setting: &str) -> Result<(), String> {
    let Some((key, value)) = setting.split_once('=') else {
        return Err(format!("!config takes KEY=VALUE, not `{setting}`"));
    };
    let (key, value) = (key.trim(), value.trim());
    let number = || {
        value
            .parse::<usize>()
            .map_err(|_| format!("{key} takes a whole number, not `{value}`"))
    };
    match key {
        "server_name" => config.server_name = value.to_owned(),
        "outbound_limit_bytes" => config.outbound_limit_bytes = number()?,
        "offline_cap" => config.offline_cap = number()?,
        "ws2017.ping_interval" => config.ws2017.ping_interval = parse_duration(value)?,
        "ws2017.ping_timeout" => config.ws2017.ping_timeout = parse_duration(value)?,
        "ws2017.max_line_bytes" => config.ws2017.max_line_bytes = number()?,
        "arsc.guests" => {
            config.arsc.guests = value
                .parse()
                .map_err(|_| format!("{key} takes true or false, not `{value}`"))?
        }
        "arsc.max_request_bytes" => config.arsc.max_request_bytes = number()?,
        "ims.alive_timeout" => config.ims.alive_timeout = parse_duration(value)?,
        "ims.max_document_bytes" => config.ims.max_document_bytes = number()?,
        "ims.terminator" => {
            config.ims.terminator = match value {
                "newline" => switchboard_proto::ImsTerminator::Newline,
                "nul" => switchboard_proto::ImsTerminator::Nul,
                _ => return Err(format!("{key} takes `newline` or `nul`, not `{value}`")),
            }
        }
        "opcode.max_line_bytes" => config.opcode.max_line_bytes = number()?,
        "opcode.max_media_bytes" => config.opcode.max_media_bytes = number()?,
        "opcode.max_media_bytes_per_user" => {
            config.opcode.max_media_bytes_per_user = u64::try_from(number()?)
                .map_err(|_| format!("{key} takes a smaller number, not `{value}`"))?
        }
        "offline_share_percent" => {
            config.offline_share_percent = value
                .parse()
                .map_err(|_| format!("{key} takes a percentage, not `{value}`"))?
        }
        "limits.max_connections" => config.limits.max_connections = number()?,
        "limits.max_connections_per_ip" => config.limits.max_connections_per_ip = number()?,
        "limits.outbound_budget_bytes" => config.limits.outbound_budget_bytes = number()?,
        "limits.broadcast_per_conn.burst" => {
            config.limits.broadcast_per_conn.burst = u32::try_from(number()?)
                .map_err(|_| format!("{key} takes a smaller number, not `{value}`"))?
        }
        "limits.durable_per_conn.burst" => {
            config.limits.durable_per_conn.burst = u32::try_from(number()?)
                .map_err(|_| format!("{key} takes a smaller number, not `{value}`"))?
        }
        _ => {
            return Err(format!(
                "unknown config key `{key}` (known: server_name, outbound_limit_bytes, \
                 offline_cap, ws2017.ping_interval, ws2017.ping_timeout, ws2017.max_line_bytes, \
                 ims.alive_timeout, ims.max_document_bytes, ims.terminator, \
                 opcode.max_line_bytes, opcode.max_media_bytes, opcode.max_media_bytes_per_user, \
                 offline_share_percent, limits.max_connections, limits.max_connections_per_ip, \
                 limits.outbound_budget_bytes, limits.broadcast_per_conn.burst, \
                 limits.durable_per_conn.burst, arsc.guests, arsc.max_request_bytes)"
            ))
        }
    }
    Ok(())
}

/// A duration as transcripts show it: `2.000s`.
pub(crate) fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

impl StepKind {
    /// The step as the transcript echoes it; `None` for sends, which the player prints
    /// with the client's column after connecting it.
    pub(crate) fn echo(&self) -> Option<String> {
        Some(match self {
            StepKind::Blank => String::new(),
            StepKind::Comment(text) => text.clone(),
            StepKind::Config(setting) => format!("!config {setting}"),
            StepKind::Advance(d) => format!("~ +{}", format_duration(*d)),
            StepKind::Connect {
                client,
                protocol,
                from: None,
            } => format!("!connect:{client}/{protocol}"),
            StepKind::Connect {
                client,
                protocol,
                from: Some(from),
            } => format!("!connect:{client}/{protocol}@{from}"),
            StepKind::Cut(client) => format!("!cut:{client}"),
            StepKind::Stall(client) => format!("!stall:{client}"),
            StepKind::Resume(client) => format!("!resume:{client}"),
            StepKind::HoldCommits => "!hold-commits".to_owned(),
            StepKind::Commit => "!commit".to_owned(),
            StepKind::StoreFail => "!store-fail".to_owned(),
            StepKind::StoreOk => "!store-ok".to_owned(),
            StepKind::Crash => "!crash".to_owned(),
            StepKind::Restart => "!restart".to_owned(),
            StepKind::Send { .. } => return None,
        })
    }

    /// What a send shows after its marker: the bytes, without the CRLF the marker implies.
    pub(crate) fn send_text(mode: SendMode, bytes: &[u8]) -> String {
        match mode {
            SendMode::Raw => escape(bytes),
            SendMode::Line | SendMode::Bytewise => {
                escape(bytes.strip_suffix(b"\r\n").unwrap_or(bytes))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse("t.scn", text)
    }

    #[test]
    fn the_first_comment_is_the_description_and_config_applies() {
        let s = parse(
            "# login works\n# more\n!config ws2017.ping_timeout=3s\n!config outbound_limit_bytes=99\n\
             alice/ws2017 c: uname alice\nalice c/: cgetu\n~ +2s\n!cut:alice\n",
        )
        .unwrap();
        assert_eq!(s.description(), Some("login works"));
        assert_eq!(s.config.ws2017.ping_timeout, Duration::from_secs(3));
        assert_eq!(s.config.outbound_limit_bytes, 99);
        assert_eq!(s.width, "alice/ws2017".len() + 2);
        assert_eq!(s.steps.len(), 8);
    }

    #[test]
    fn mistakes_name_file_and_line() {
        let err = |text: &str| parse(text).unwrap_err().to_string();
        assert_eq!(
            err("# x\nalice c: uname alice\n"),
            "t.scn:2: the first line of alice must name its protocol, as in alice/ws2017"
        );
        assert!(err("alice/irc c: x").starts_with("t.scn:1: unknown protocol `irc`"));
        assert!(
            err("alice/ws2017 s: x").starts_with("t.scn:1: s: lines are written by the harness")
        );
        assert!(err("alice/ws2017 c: \\q").starts_with("t.scn:1: unknown escape \\q"));
        assert!(err("~ 2s").starts_with("t.scn:1: time advances are written"));
        assert!(err("~ +2").starts_with("t.scn:1: `2` is not a duration"));
        assert!(err("!cut:bob").starts_with("t.scn:1: bob has not connected yet"));
        assert!(err("!frobnicate").starts_with("t.scn:1: unknown directive"));
        assert!(err("!config nope=1").starts_with("t.scn:1: unknown config key `nope`"));
        assert!(err("a/ws2017 c: x\n!config server_name=y")
            .starts_with("t.scn:2: !config must come before"));
    }

    #[test]
    fn connections_may_name_their_address() {
        let s = parse(
            "!connect:m/ws2017@10.0.0.7\n!connect:six/ws2017@::1\n!connect:ops/admin@local\n\
             !connect:d/ws2017\n",
        )
        .unwrap();
        let echoes: Vec<String> = s.steps.iter().filter_map(|s| s.kind.echo()).collect();
        assert_eq!(
            echoes,
            [
                "!connect:m/ws2017@10.0.0.7",
                "!connect:six/ws2017@::1",
                "!connect:ops/admin@local",
                "!connect:d/ws2017",
            ]
        );
        let err = |text: &str| parse(text).unwrap_err().to_string();
        assert!(err("!connect:m/ws2017@10.0.0.300").contains("is not an IP address or `local`"));
        assert!(err("!connect:m@10.0.0.1").contains("!connect needs a protocol"));
        assert!(err("a@b/ws2017 c: x").contains("is not a client name"));
    }

    #[test]
    fn store_and_server_directives_take_no_argument() {
        let s =
            parse("!hold-commits\n!commit\n!store-fail\n!store-ok\n!crash\n!restart\n").unwrap();
        let echoes: Vec<String> = s.steps.iter().filter_map(|s| s.kind.echo()).collect();
        assert_eq!(
            echoes,
            [
                "!hold-commits",
                "!commit",
                "!store-fail",
                "!store-ok",
                "!crash",
                "!restart"
            ]
        );
        assert_eq!(
            parse("!crash:now").unwrap_err().to_string(),
            "t.scn:1: !crash takes no argument"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.025s"), Ok(Duration::from_millis(25)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("1.0001s").is_err());
        assert!(parse_duration("s").is_err());
        assert_eq!(format_duration(Duration::from_millis(15_025)), "15.025s");
    }

    #[test]
    fn sends_keep_their_bytes() {
        let s = parse("a/ws2017 c: x y \na c~: uname b\\n\na   c/:\n").unwrap();
        let bytes: Vec<(SendMode, Vec<u8>)> = s
            .steps
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::Send { mode, bytes, .. } => Some((*mode, bytes.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            bytes,
            vec![
                (SendMode::Line, b"x y \r\n".to_vec()),
                (SendMode::Raw, b"uname b\n".to_vec()),
                (SendMode::Bytewise, b"\r\n".to_vec()),
            ]
        );
    }
}
