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
//!      alice/ws2017  s: +OK uname 'you are' alice\n"
//! );
//! # Ok::<(), switchboard_snapshots::ScenarioError>(())
//! ```
//!
//! # The `.scn` format
//!
//! One step per line, played in order against a fresh [`Server`](switchboard_proto::Server)
//! (seed 0, default config) at virtual time zero:
//!
//! | line | meaning |
//! | --- | --- |
//! | `# text` | a comment, copied to the transcript; the first one is the snapshot description |
//! | (blank) | copied, to keep paragraphs |
//! | `!config KEY=VALUE` | changes the config before the first event: `server_name`, `outbound_limit_bytes`, `ws2017.ping_interval`, `ws2017.ping_timeout`, `ws2017.max_line_bytes` (durations as `3s`, `1.5s`, `250ms`) |
//! | `NAME/PROTO c: text` | client NAME sends `text` and a CRLF in one delivery; its first line connects it (the greeting shows first); later lines may drop `/PROTO` |
//! | `NAME c~: text` | sends `text` alone, no line end added (write `\n`, `\r` yourself) |
//! | `NAME c/: text` | sends `text` and a CRLF one byte per delivery |
//! | `~ +N.NNNs` | advances virtual time, firing every server deadline on the way in order (also `~ +2s`, `~ +250ms`) |
//! | `!connect:NAME/PROTO` | connects NAME explicitly (again, after it closed) |
//! | `!cut:NAME` | NAME's peer closes its connection |
//! | `!stall:NAME` | NAME stops reading: transmits are no longer acknowledged as written |
//! | `!resume:NAME` | NAME reads again, acknowledging everything it left unread |
//!
//! Text in `c:`, `c~:` and `c/:` lines takes the escapes `\\`, `\r`, `\n` and `\xNN`;
//! one space after the marker separates it, the rest of the line is sent verbatim.
//! Columns between the client and the marker are free, so scenarios can be aligned.
//!
//! # The transcript
//!
//! Every scenario line is echoed (sends normalised to their escaped form), and every
//! server output is printed the moment the server produces it, in output order, so the
//! order across clients is visible:
//!
//! - `NAME/PROTO  s: text` for a received line that ends with CRLF (the CRLF implied);
//!   `s~: text` for bytes ending otherwise (a bare LF shown as `\n`, or no line end);
//! - `NAME/PROTO  s: (closed: reason)` when the server closes the connection;
//! - `@ 2.000s` before the outputs of deadlines fired by a `~` advance, with the virtual
//!   time they fired at.
//!
//! The left column is padded to the longest `NAME/PROTO` of the scenario plus two.
//! Clients acknowledge every transmit as written unless stalled. Non-printable bytes in
//! either direction appear as `\r`, `\n`, `\\` or `\xNN`.

mod escape;
mod play;
mod scenario;

pub use play::{play, Delivery, WALL_ORIGIN_MS};
pub use scenario::{Scenario, ScenarioError};
