//! The ims protocol (`seeds/ims.txt`, PROTOCOLS.md "ims"): back-to-back XML documents
//! over TCP. Every client document is echoed, then answered; LOGIN with the MD5 hex of
//! the password, MESSAGE delivered live or stored, STATUS, FRIEND with invites, and a
//! connection closed after 15 s without a document.

pub(crate) mod codec;
#[cfg(test)]
mod codec_tests;
pub(crate) mod framer;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzz;
pub(crate) mod session;
#[cfg(test)]
mod tests;
