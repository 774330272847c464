//! Transcript snapshots: `.scn` scenarios played against the sans-I/O core in virtual
//! time, each producing a readable transcript that insta keeps as a reviewed snapshot.
//!
//! ```
//! use switchboard_snapshots::{play, Delivery, Scenario};
//!
//! let scenario = Scenario::parse("hello.scn", "# hello\nalice/ws2017 c: uname alice\n")?;
//! let transcript = play(&scenario, Delivery::AsWritten)?;
//! assert_eq!(
//!     transcript,
//!     "# hello\n\
//!      alice/ws2017  s: +OK switchboard ws2017 ready\n\
//!      alice/ws2017  c: uname alice\n\
//!      alice/ws2017  s: +OK uname you are alice\n"
//! );
//! # Ok::<(), switchboard_snapshots::ScenarioError>(())
//! ```
//!
//! # The `.scn` format
//!
//! One step per line, played in order against a fresh [`Server`](switchboard_proto::Server)
//! (seed 0, default config, an empty store) at virtual time zero:
//!
//! | line | meaning |
//! | --- | --- |
//! | `# text` | a comment, copied to the transcript; the first one is the snapshot description |
//! | (blank) | copied, to keep paragraphs |
//! | `!config KEY=VALUE` | changes the config before the first event: `server_name`, `outbound_limit_bytes`, `offline_cap`, `ws2017.ping_interval`, `ws2017.ping_timeout`, `ws2017.max_line_bytes`, `arsc.guests`, `arsc.max_request_bytes` (durations as `3s`, `1.5s`, `250ms`) |
//! | `NAME/PROTO c: text` | client NAME sends `text` and a CRLF in one delivery; its first line connects it (the greeting shows first); later lines may drop `/PROTO` |
//! | `NAME c~: text` | sends `text` alone, no line end added (write `\n`, `\r` yourself) |
//! | `NAME c/: text` | sends `text` and a CRLF one byte per delivery |
//! | `~ +N.NNNs` | advances virtual time, firing every server deadline on the way in order (also `~ +2s`, `~ +250ms`) |
//! | `!connect:NAME/PROTO` | connects NAME explicitly (again, after it closed) |
//! | `!connect:NAME/PROTO@ADDR` | connects NAME from IP address `ADDR` (`10.0.0.7`, `::1`) or from `local`, the local socket |
//! | `!cut:NAME` | NAME's peer closes its connection |
//! | `!stall:NAME` | NAME stops reading: transmits are no longer acknowledged as written |
//! | `!resume:NAME` | NAME reads again, acknowledging everything it left unread |
//! | `!hold-commits` | the store stops committing: persisted changes pile up in its batch, and what waits on them stays held |
//! | `!commit` | the store commits the batch (releasing what waited on it) and keeps up again |
//! | `!store-fail` | every commit fails from now on: the batch stays, the server hears `CommitFailed` |
//! | `!store-ok` | commits succeed again: the batch is retried and commits |
//! | `!crash` | the server is gone, with its held outputs and the store's uncommitted batch; every open connection is lost |
//! | `!restart` | a new server (seed plus one per boot) over what the store committed; clients reconnect with `!connect` |
//!
//! Clients of protocols `ws2017` and `arsc` connect from `127.0.0.1` unless told otherwise; `admin`
//! clients (the `switchboard` CLI) from the local socket. Each `!` directive has its undo:
//! `!stall`/`!resume`, `!hold-commits`/`!commit`, `!store-fail`/`!store-ok`,
//! `!crash`/`!restart`. A directive that does not fit (`!commit` without
//! `!hold-commits`, a send between `!crash` and `!restart`) is an error naming its line.
//!
//! Text in `c:`, `c~:` and `c/:` lines takes the escapes `\\`, `\r`, `\n` and `\xNN`;
//! one space after the marker separates it, the rest of the line is sent verbatim.
//! Columns between the client and the marker are free, so scenarios can be aligned.
//!
//! The tests play every scenario as written, then again with every client byte in its
//! own delivery ([`Delivery::Bytewise`]), and again once per cut point with every send
//! cut in two deliveries there ([`Delivery::SplitAt`], so a send of several lines is
//! read as complete lines with a partial one): the transcripts must be identical.
//!
//! # The world around the server
//!
//! The player drives the server as a runtime does, through a
//! [`Pump`](switchboard_proto::Pump): bytes that reveal a durable change (and everything
//! after them on that connection) wait for its commit while other connections' traffic
//! flows. The pump asks for one batch at a time and gathers the next meanwhile; unless
//! held or failing, the store model commits the batch in flight once the server is idle at
//! an instant (after each step, after each deadline a `~` fires). A failed batch is
//! reported once and retried by the pump after its backoff, in virtual time, so a
//! scenario advances the clock (`~ +50ms`) to see the retry. Effects run at once: a fake
//! password hasher turns `pw` into `test$pw`. After each step the server's durable state
//! must equal the committed state plus every uncommitted change.
//!
//! # The transcript
//!
//! Every scenario line is echoed (sends normalised to their escaped form), and every
//! output is printed the moment it is carried out, in order, so the order across clients
//! and against the store is visible:
//!
//! - `NAME/PROTO  s: text` for a received line that ends with CRLF (the CRLF implied);
//!   `s~: text` for bytes ending otherwise (a bare LF shown as `\n`, or no line end);
//! - `NAME/PROTO  s: (closed: reason)` when the server closes the connection, and
//!   `s: (lost: crash)` for each connection open at a `!crash`;
//! - `db: #N change` for each change as it is committed (`N` is its sequence number,
//!   which starts at 1 with each server), such as `db: #1 account created bob` or
//!   `db: #2 offline queued alice -> bob "hi" (message 0)`; `db: commit of #N failed:
//!   disk full` when a failing store's commit fails; `db: #N lost: change` for each
//!   uncommitted change at a `!crash`;
//! - `@ 2.000s` before the outputs of deadlines fired by a `~` advance, with the virtual
//!   time they fired at.
//!
//! The left column is padded to the longest `NAME/PROTO` of the scenario plus two; `db:`
//! lines leave it blank. Clients acknowledge every transmit as written unless stalled.
//! Non-printable bytes in either direction appear as `\r`, `\n`, `\\` or `\xNN`.

mod escape;
mod play;
mod scenario;
mod store;

pub use play::{longest_send, play, Delivery, WALL_ORIGIN_MS};
pub use scenario::{Scenario, ScenarioError};
