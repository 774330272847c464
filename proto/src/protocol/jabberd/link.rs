//! The router link's connection: stream open, SASL DIGEST-MD5, stream restart, `bind`;
//! then every depth-1 element goes to the session manager ([`super::sm`]).

use base64ct::{Base64, Encoding};
use bytes::Bytes;

use super::sasl;
use super::sm::Shared;
use super::xml::{self, Element, Read, StreamReader, NS_COMP, NS_SASL, NS_STREAM};
use crate::cx::Cx;
use crate::io::CloseReason;

/// What the sm sends to open (and, after SASL, reopen) its stream: no default namespace
/// and no `to`, as jabberd2's own components do (a default namespace of
/// `jabber:component:accept` would switch the router to XEP-0114).
pub(crate) const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";

/// Where the link is.
#[derive(Debug, PartialEq, Eq)]
enum Phase {
    /// Our header is sent; the router's header and features are awaited (`authed`:
    /// after the SASL restart).
    Opened { authed: bool },
    /// `<auth>` sent; `rspauth` is the proof expected once the response is sent, and
    /// `proven` whether the router gave it (in a second challenge).
    Auth {
        rspauth: Option<String>,
        proven: bool,
    },
    /// `<bind>` sent.
    Binding,
    /// Bound: routes flow.
    Online,
    /// Given up on (a refusal); closing.
    Failed,
}

/// The router link's connection.
#[derive(Debug)]
pub(crate) struct Link {
    reader: StreamReader,
    phase: Phase,
    /// The server is stopping: the link is closed for good, not dialed again.
    stopping: bool,
}

impl Link {
    /// The link is up: opens the stream.
    pub(crate) fn connected(cx: &mut Cx<'_>, shared: &mut Shared) -> Link {
        shared.connected(cx.conn);
        cx.send(Bytes::from_static(HEADER.as_bytes()));
        Link {
            reader: StreamReader::new(cx.config.jabberd.max_stanza_bytes),
            phase: Phase::Opened { authed: false },
            stopping: false,
        }
    }

    /// A connection accepted on a jabberd listener (there is none): closed.
    pub(crate) fn refused(cx: &mut Cx<'_>) -> Link {
        cx.close(CloseReason::ProtocolError);
        Link {
            reader: StreamReader::new(0),
            phase: Phase::Failed,
            stopping: false,
        }
    }

    /// Bytes buffered and not yet read.
    pub(crate) fn buffered(&self) -> usize {
        self.reader.buffered()
    }

    pub(crate) fn on_bytes(&mut self, cx: &mut Cx<'_>, shared: &mut Shared, bytes: &Bytes) {
        if self.phase == Phase::Failed {
            return;
        }
        self.reader.extend(bytes);
        while cx.is_open() && self.phase != Phase::Failed {
            match self.reader.next() {
                Ok(None) => return,
                Ok(Some(Read::Header)) => {}
                Ok(Some(Read::Closed)) | Err(_) => return self.fail(cx),
                Ok(Some(Read::Element(e))) => self.on_element(cx, shared, e),
            }
        }
    }

    fn fail(&mut self, cx: &mut Cx<'_>) {
        self.phase = Phase::Failed;
        cx.close(CloseReason::ProtocolError);
    }

    fn on_element(&mut self, cx: &mut Cx<'_>, shared: &mut Shared, e: Element) {
        if e.is(NS_STREAM, "error") {
            return self.fail(cx);
        }
        match &mut self.phase {
            Phase::Opened { authed } => {
                if !e.is(NS_STREAM, "features") {
                    return;
                }
                if *authed {
                    let domain = xml::esc(&cx.config.jabberd.domain).into_owned();
                    let bind = format!("<bind xmlns='{NS_COMP}' name='{domain}'/>");
                    cx.send(Bytes::from(bind));
                    self.phase = Phase::Binding;
                    return;
                }
                let offered = (e.child(NS_SASL, "mechanisms").into_iter())
                    .flat_map(Element::elements)
                    .any(|m| m.name == "mechanism" && m.text().trim() == "DIGEST-MD5");
                if !offered {
                    return self.fail(cx);
                }
                let auth = format!("<auth xmlns='{NS_SASL}' mechanism='DIGEST-MD5'/>");
                cx.send(Bytes::from(auth));
                self.phase = Phase::Auth {
                    rspauth: None,
                    proven: false,
                };
            }
            Phase::Auth { rspauth, proven } if e.is(NS_SASL, "challenge") => {
                if let Some(expected) = rspauth {
                    // A second challenge: the router's proof in it rather than in
                    // <success> (RFC 2831), checked before the empty response.
                    if *proven || claimed_proof(&e).as_ref() != Some(expected) {
                        return self.fail(cx);
                    }
                    *proven = true;
                    let empty = format!("<response xmlns='{NS_SASL}'/>");
                    return cx.send(Bytes::from(empty));
                }
                let Some(challenge) = decode(&e.text()) else {
                    return self.fail(cx);
                };
                let config = &cx.config.jabberd;
                let cnonce = format!("{:016x}{:016x}", cx.rng.next_u64(), cx.rng.next_u64());
                let uri = format!("jabberd-router/{}", config.domain);
                let answer =
                    sasl::answer(&challenge, &config.user, &config.secret.0, &cnonce, &uri);
                let Ok(answer) = answer else {
                    return self.fail(cx);
                };
                let response = Base64::encode_string(answer.response.as_bytes());
                *rspauth = Some(answer.rspauth);
                let reply = format!("<response xmlns='{NS_SASL}'>{response}</response>");
                cx.send(Bytes::from(reply));
            }
            Phase::Auth { rspauth, proven } if e.is(NS_SASL, "success") => {
                // The router proves it knows the secret too: in <success>, or in the
                // second challenge before it. A router that never does is dropped.
                let proved = match claimed_proof(&e) {
                    Some(claimed) => !*proven && Some(&claimed) == rspauth.as_ref(),
                    None => *proven,
                };
                if !proved || rspauth.is_none() {
                    return self.fail(cx);
                }
                self.reader.restart();
                cx.send(Bytes::from_static(HEADER.as_bytes()));
                self.phase = Phase::Opened { authed: true };
            }
            Phase::Auth { .. } if e.is(NS_SASL, "failure") => self.fail(cx),
            Phase::Auth { .. } => {}
            Phase::Binding if e.is(NS_COMP, "bind") => {
                if e.attr("error").is_some() {
                    return self.fail(cx);
                }
                self.phase = Phase::Online;
                shared.online(cx);
            }
            Phase::Binding => {
                // Advertisements may come before the bind's answer.
                shared.on_element(cx, &e);
            }
            Phase::Online => shared.on_element(cx, &e),
            Phase::Failed => {}
        }
    }

    /// The server is stopping: the stream ends (c2s then closes the streams of every
    /// client of the domain) and the link is not dialed again.
    pub(crate) fn on_shutdown(&mut self, cx: &mut Cx<'_>) {
        self.stopping = true;
        if self.phase != Phase::Failed {
            cx.send(Bytes::from_static(b"</stream:stream>"));
        }
        cx.close(CloseReason::Shutdown);
    }

    /// The connection is gone: every session it carried ends; the link is dialed again
    /// unless the server is stopping.
    pub(crate) fn on_close(&mut self, cx: &mut Cx<'_>, shared: &mut Shared) {
        shared.link_closed(cx, !self.stopping);
    }
}

/// The `rspauth` a SASL element's base64 text carries, if any.
fn claimed_proof(e: &Element) -> Option<String> {
    let proof = decode(e.text().trim())?;
    let told = sasl::fields(&proof).ok()?;
    told.into_iter()
        .find(|(k, _)| k == "rspauth")
        .map(|(_, v)| v)
}

/// The base64 text of a SASL element, decoded ("=" alone is empty).
fn decode(text: &str) -> Option<String> {
    let text = text.trim();
    if text.is_empty() || text == "=" {
        return Some(String::new());
    }
    let bytes = Base64::decode_vec(text).ok()?;
    String::from_utf8(bytes).ok()
}
