//! The wire format, version 1.
//!
//! Every datagram is one UDP payload. All integers are big-endian, so peers of either byte order
//! talk to each other. A datagram is a clear header, a 16-byte Poly1305 tag and a sealed body:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |version|  kind |               session id (32 bits) ...
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!   ...           |  handshake: key id (32 bits), 15 random bytes | transport: packet number (64 bits)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                     tag (16 bytes)                            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                     sealed body ...                           |
//! ```
//!
//! **The header is the nonce.** Handshake headers are exactly 24 bytes and are used as the
//! XSalsa20 nonce; transport headers are 13 bytes, zero-padded to 24. Changing any header byte
//! changes the keystream, hence the Poly1305 key, hence the tag: every byte the receiver acts on
//! — version, kind, session, packet number, body — is authenticated, and the kind is bound to the
//! key so a message can never be re-typed (the C original let a keepalive be turned into a
//! disconnect).
//!
//! | kind | name       | key             | body                                              |
//! |------|------------|-----------------|---------------------------------------------------|
//! | 1    | hello      | handshake key   | [`Hello`], padded to the size of a challenge      |
//! | 2    | challenge  | handshake key   | [`Challenge`]                                     |
//! | 3    | confirm    | handshake key   | [`Confirm`]                                       |
//! | 4    | data       | session key     | tunnel sequence (u32) then the IP packet          |
//! | 5    | keepalive  | session key     | [`Keepalive`]: timestamps and receive counters    |
//! | 6    | disconnect | session key     | [`Disconnect`]                                    |
//! | 7    | nack       | session key     | [`Nack`]: packets a link lost, to be resent       |
//! | 8    | probe      | session key     | [`Probe`]: an id, zeros up to the size under test |
//! | 9    | probe ack  | session key     | [`ProbeAck`]: the probe's id and size             |
//!
//! The session id is chosen at random by the client for each link session; it lets one server
//! tell sessions apart, and serve several client sites behind one port
//! ([`super::sites`]). The key id, a PRF of the sender's pre-shared key
//! ([`super::kdf::key_id`]), tells such a server which site's key opens a handshake without
//! trying them all. Packet numbers
//! count up from 0 per session and direction; with a fresh key per session and direction, no
//! (key, nonce) pair repeats. The receiver checks packet numbers against a sliding window
//! ([`super::replay`]).
//!
//! **Overhead per data packet: 33 bytes** (13 header + 16 tag + 4 tunnel sequence), plus 8 for
//! UDP and 20 (IPv4) or 40 (IPv6): 61 or 81 bytes on the path. WireGuard's is 32 + UDP/IP; the C
//! original's 44 + UDP/IP.
//!
//! The three handshake messages all have the same size ([`HANDSHAKE_LEN`]), so a server never
//! answers with more bytes than it received: no amplification.

use super::crypto::{NONCE_LEN, TAG_LEN};

/// The protocol version in the high nibble of byte 0.
pub const VERSION: u8 = 1;

pub const HANDSHAKE_HEADER_LEN: usize = NONCE_LEN;
pub const TRANSPORT_HEADER_LEN: usize = 13;
/// Bytes of the handshake header that are random (after the key id).
pub const HANDSHAKE_RANDOM_LEN: usize = HANDSHAKE_HEADER_LEN - 9;
/// Bytes in front of the IP packet in a data datagram.
pub const DATA_OVERHEAD: usize = TRANSPORT_HEADER_LEN + TAG_LEN + 4;
/// Every handshake datagram has exactly this length.
pub const HANDSHAKE_LEN: usize = HANDSHAKE_HEADER_LEN + TAG_LEN + Challenge::LEN;
/// Length of a keepalive datagram.
pub const KEEPALIVE_DATAGRAM_LEN: usize = TRANSPORT_HEADER_LEN + TAG_LEN + Keepalive::LEN;
/// Length of a disconnect datagram.
pub const DISCONNECT_DATAGRAM_LEN: usize = TRANSPORT_HEADER_LEN + TAG_LEN + Disconnect::LEN;
/// Length of the largest NACK datagram.
pub const MAX_NACK_DATAGRAM_LEN: usize = TRANSPORT_HEADER_LEN + TAG_LEN + Nack::MAX_LEN;
/// A buffer that holds any control datagram (not a resent data packet, which needs the MTU
/// plus [`DATA_OVERHEAD`]).
pub const MAX_CONTROL_LEN: usize =
    if HANDSHAKE_LEN > MAX_NACK_DATAGRAM_LEN { HANDSHAKE_LEN } else { MAX_NACK_DATAGRAM_LEN };

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Hello = 1,
    Challenge = 2,
    Confirm = 3,
    Data = 4,
    Keepalive = 5,
    Disconnect = 6,
    Nack = 7,
    Probe = 8,
    ProbeAck = 9,
}

impl Kind {
    fn from_nibble(n: u8) -> Option<Kind> {
        Some(match n {
            1 => Kind::Hello,
            2 => Kind::Challenge,
            3 => Kind::Confirm,
            4 => Kind::Data,
            5 => Kind::Keepalive,
            6 => Kind::Disconnect,
            7 => Kind::Nack,
            8 => Kind::Probe,
            9 => Kind::ProbeAck,
            _ => return None,
        })
    }

    pub fn is_handshake(self) -> bool {
        matches!(self, Kind::Hello | Kind::Challenge | Kind::Confirm)
    }

    fn byte(self) -> u8 {
        (VERSION << 4) | self as u8
    }
}

/// What is wrong with a datagram that does not parse. All of these are the peer's (or an
/// attacker's) fault: the datagram is dropped and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than its header and tag, or than the body its kind requires.
    Truncated,
    /// A protocol version we do not speak.
    Version,
    /// A kind number that does not exist.
    Kind,
    /// A body of the wrong length for its kind.
    Length,
}

/// The clear part of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub session: u32,
    /// The packet number (transport kinds; 0 for handshakes).
    pub pn: u64,
    /// The XSalsa20 nonce this header stands for.
    pub nonce: [u8; NONCE_LEN],
}

impl Header {
    /// Parses the header and checks there is room for a tag behind it.
    pub fn parse(datagram: &[u8]) -> Result<Header, WireError> {
        let first = *datagram.first().ok_or(WireError::Truncated)?;
        if first >> 4 != VERSION {
            return Err(WireError::Version);
        }
        let kind = Kind::from_nibble(first & 0x0f).ok_or(WireError::Kind)?;
        let hlen = header_len(kind);
        if datagram.len() < hlen + TAG_LEN {
            return Err(WireError::Truncated);
        }
        let session = u32::from_be_bytes(datagram[1..5].try_into().expect("4 bytes"));
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..hlen].copy_from_slice(&datagram[..hlen]);
        let pn = if kind.is_handshake() {
            if datagram.len() != HANDSHAKE_LEN {
                return Err(WireError::Length);
            }
            0
        } else {
            u64::from_be_bytes(datagram[5..13].try_into().expect("8 bytes"))
        };
        Ok(Header { kind, session, pn, nonce })
    }

    /// Writes a transport header into `buf[..TRANSPORT_HEADER_LEN]` and returns its nonce.
    pub fn emit_transport(kind: Kind, session: u32, pn: u64, buf: &mut [u8]) -> [u8; NONCE_LEN] {
        debug_assert!(!kind.is_handshake());
        buf[0] = kind.byte();
        buf[1..5].copy_from_slice(&session.to_be_bytes());
        buf[5..13].copy_from_slice(&pn.to_be_bytes());
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..TRANSPORT_HEADER_LEN].copy_from_slice(&buf[..TRANSPORT_HEADER_LEN]);
        nonce
    }

    /// The key id of a handshake header ([`super::kdf::key_id`]).
    pub fn key_id(&self) -> u32 {
        u32::from_be_bytes([self.nonce[5], self.nonce[6], self.nonce[7], self.nonce[8]])
    }

    /// Writes a handshake header into `buf[..HANDSHAKE_HEADER_LEN]` and returns its nonce.
    /// The session id and the 15 random bytes (152 bits) make the nonce unique; the key id
    /// is the same for every message sealed with one key.
    pub fn emit_handshake(
        kind: Kind,
        session: u32,
        key_id: u32,
        random: &[u8; HANDSHAKE_RANDOM_LEN],
        buf: &mut [u8],
    ) -> [u8; NONCE_LEN] {
        debug_assert!(kind.is_handshake());
        buf[0] = kind.byte();
        buf[1..5].copy_from_slice(&session.to_be_bytes());
        buf[5..9].copy_from_slice(&key_id.to_be_bytes());
        buf[9..HANDSHAKE_HEADER_LEN].copy_from_slice(random);
        buf[..NONCE_LEN].try_into().expect("24 bytes")
    }
}

fn header_len(kind: Kind) -> usize {
    if kind.is_handshake() { HANDSHAKE_HEADER_LEN } else { TRANSPORT_HEADER_LEN }
}

/// A small big-endian cursor over a body, so that field offsets are written once.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        head.try_into().expect("length checked by caller")
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take())
    }
    fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.take())
    }
}

struct Writer<'a>(&'a mut [u8]);

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let (head, rest) = core::mem::take(&mut self.0).split_at_mut(bytes.len());
        head.copy_from_slice(bytes);
        self.0 = rest;
    }
}

fn check_len(body: &[u8], len: usize) -> Result<Reader<'_>, WireError> {
    if body.len() == len { Ok(Reader(body)) } else { Err(WireError::Length) }
}

/// Client → server: "I want a session on this link." Padded with zeros to [`Challenge::LEN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// Random per client process: a new value tells the server the client restarted.
    pub instance: u64,
    pub client_random: [u8; 32],
    /// Client clock (see [`super::time::Instant::wire_timestamp`]), echoed for a first RTT.
    pub timestamp: u32,
}

impl Hello {
    pub const LEN: usize = Challenge::LEN;

    pub fn parse(body: &[u8]) -> Result<Self, WireError> {
        let mut r = check_len(body, Self::LEN)?;
        Ok(Hello { instance: r.u64(), client_random: r.take(), timestamp: r.u32() })
    }

    pub fn emit(&self, body: &mut [u8]) {
        body[..Self::LEN].fill(0);
        let mut w = Writer(body);
        w.put(&self.instance.to_be_bytes());
        w.put(&self.client_random);
        w.put(&self.timestamp.to_be_bytes());
    }
}

/// Server → client: a fresh random, computed from a secret rather than stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenge {
    /// Random per server process: a new value tells the client the server restarted.
    pub instance: u64,
    /// The hello's random, proving this answer is fresh.
    pub client_random: [u8; 32],
    pub server_random: [u8; 32],
    /// Which cookie epoch made `server_random`; the client echoes it.
    pub epoch: u8,
    /// The hello's timestamp.
    pub echo_timestamp: u32,
    /// Server clock, echoed by the confirm: the server's first RTT sample.
    pub timestamp: u32,
}

impl Challenge {
    pub const LEN: usize = 8 + 32 + 32 + 1 + 4 + 4;

    pub fn parse(body: &[u8]) -> Result<Self, WireError> {
        let mut r = check_len(body, Self::LEN)?;
        Ok(Challenge {
            instance: r.u64(),
            client_random: r.take(),
            server_random: r.take(),
            epoch: r.u8(),
            echo_timestamp: r.u32(),
            timestamp: r.u32(),
        })
    }

    pub fn emit(&self, body: &mut [u8]) {
        body[..Self::LEN].fill(0);
        let mut w = Writer(body);
        w.put(&self.instance.to_be_bytes());
        w.put(&self.client_random);
        w.put(&self.server_random);
        w.put(&[self.epoch]);
        w.put(&self.echo_timestamp.to_be_bytes());
        w.put(&self.timestamp.to_be_bytes());
    }
}

/// Client → server: "here are both randoms back": the server checks the cookie and creates the
/// session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirm {
    pub instance: u64,
    pub client_random: [u8; 32],
    pub server_random: [u8; 32],
    pub epoch: u8,
    /// The challenge's timestamp.
    pub echo_timestamp: u32,
}

impl Confirm {
    /// Padded with zeros to the size of a challenge.
    pub const LEN: usize = Challenge::LEN;

    pub fn parse(body: &[u8]) -> Result<Self, WireError> {
        let mut r = check_len(body, Self::LEN)?;
        Ok(Confirm {
            instance: r.u64(),
            client_random: r.take(),
            server_random: r.take(),
            epoch: r.u8(),
            echo_timestamp: r.u32(),
        })
    }

    pub fn emit(&self, body: &mut [u8]) {
        body[..Self::LEN].fill(0);
        let mut w = Writer(body);
        w.put(&self.instance.to_be_bytes());
        w.put(&self.client_random);
        w.put(&self.server_random);
        w.put(&[self.epoch]);
        w.put(&self.echo_timestamp.to_be_bytes());
    }
}

/// Keepalive flags.
pub mod flags {
    /// "Answer with a keepalive now": used to probe a link that has data outstanding.
    pub const ACK_REQUESTED: u8 = 1;
    /// `echo_timestamp` and `echo_delay` are meaningful.
    pub const HAS_ECHO: u8 = 2;
    /// `owd` and `owd_min` are meaningful.
    pub const HAS_OWD: u8 = 4;
}

/// Liveness, round-trip time and receive feedback for one link.
///
/// Each side reports what it has received on the link so far; the sender turns two successive
/// reports into a loss rate (packets the report says arrived, over packet numbers it covers) and,
/// later, a delivery rate (bytes over time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Keepalive {
    pub flags: u8,
    /// Sender's clock when sending.
    pub timestamp: u32,
    /// The timestamp of the latest keepalive received from the peer ...
    pub echo_timestamp: u32,
    /// ... and how many microseconds ago it arrived.
    pub echo_delay: u32,
    /// Highest packet number received from the peer on this session.
    pub rx_highest_pn: u64,
    /// Packets received from the peer on this session (wrapping).
    pub rx_packets: u32,
    /// Bytes of datagrams received from the peer on this session (wrapping).
    pub rx_bytes: u32,
    /// How long the peer's keepalives take to reach us on this link, smoothed, plus the
    /// unknown offset between the two clocks ([`super::owd`]) ...
    pub owd: u32,
    /// ... and the minimum of that over the last seconds: the difference is queueing.
    pub owd_min: u32,
}

impl Keepalive {
    pub const LEN: usize = 1 + 4 + 4 + 4 + 8 + 4 + 4 + 4 + 4;

    pub fn parse(body: &[u8]) -> Result<Self, WireError> {
        let mut r = check_len(body, Self::LEN)?;
        Ok(Keepalive {
            flags: r.u8(),
            timestamp: r.u32(),
            echo_timestamp: r.u32(),
            echo_delay: r.u32(),
            rx_highest_pn: r.u64(),
            rx_packets: r.u32(),
            rx_bytes: r.u32(),
            owd: r.u32(),
            owd_min: r.u32(),
        })
    }

    pub fn emit(&self, body: &mut [u8]) {
        let mut w = Writer(body);
        w.put(&[self.flags]);
        w.put(&self.timestamp.to_be_bytes());
        w.put(&self.echo_timestamp.to_be_bytes());
        w.put(&self.echo_delay.to_be_bytes());
        w.put(&self.rx_highest_pn.to_be_bytes());
        w.put(&self.rx_packets.to_be_bytes());
        w.put(&self.rx_bytes.to_be_bytes());
        w.put(&self.owd.to_be_bytes());
        w.put(&self.owd_min.to_be_bytes());
    }
}

/// "I am closing this session."
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disconnect {
    pub reason: DisconnectReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    Shutdown = 1,
    Reconfigured = 2,
    Other = 255,
}

impl Disconnect {
    pub const LEN: usize = 1;

    pub fn parse(body: &[u8]) -> Result<Self, WireError> {
        let mut r = check_len(body, Self::LEN)?;
        let reason = match r.u8() {
            1 => DisconnectReason::Shutdown,
            2 => DisconnectReason::Reconfigured,
            _ => DisconnectReason::Other,
        };
        Ok(Disconnect { reason })
    }

    pub fn emit(&self, body: &mut [u8]) {
        body[0] = self.reason as u8;
    }
}

/// "These packets of mine did not arrive": one entry per gap, naming the session (so a NACK
/// about a lossy link can travel on a better one), the first missing packet number and how many.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Nack {
    pub gaps: heapless::Vec<(u32, u64, u16), { Nack::MAX }>,
}

impl Nack {
    pub const MAX: usize = 16;
    const ENTRY: usize = 4 + 8 + 2;
    pub const MAX_LEN: usize = 1 + Self::MAX * Self::ENTRY;

    pub fn len(&self) -> usize {
        1 + self.gaps.len() * Self::ENTRY
    }

    pub fn is_empty(&self) -> bool {
        self.gaps.is_empty()
    }

    pub fn parse(body: &[u8]) -> Result<Self, WireError> {
        let (&count, rest) = body.split_first().ok_or(WireError::Truncated)?;
        let count = usize::from(count);
        if count > Self::MAX {
            return Err(WireError::Length);
        }
        let mut r = check_len(rest, count * Self::ENTRY)?;
        let mut gaps = heapless::Vec::new();
        for _ in 0..count {
            let entry = (r.u32(), r.u64(), u16::from_be_bytes(r.take()));
            gaps.push(entry).map_err(|_| WireError::Length)?;
        }
        Ok(Nack { gaps })
    }

    pub fn emit(&self, body: &mut [u8]) {
        let mut w = Writer(body);
        w.put(&[self.gaps.len() as u8]);
        for (session, first, count) in &self.gaps {
            w.put(&session.to_be_bytes());
            w.put(&first.to_be_bytes());
            w.put(&count.to_be_bytes());
        }
    }
}

/// "Does a datagram this large cross the path?" Path MTU discovery's probe ([`super::pmtu`],
/// RFC 8899 section 4.1): sealed like any transport message, so only the peer can answer it,
/// and padded with zeros to the size under test. The padding is authenticated too: a path that
/// truncates large datagrams (MLVPN#89) fails the probe instead of passing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub id: u32,
}

impl Probe {
    /// The body without padding.
    pub const MIN_LEN: usize = 4;

    pub fn parse(body: &[u8]) -> Result<Self, WireError> {
        if body.len() < Self::MIN_LEN {
            return Err(WireError::Truncated);
        }
        let (id, padding) = body.split_at(Self::MIN_LEN);
        if padding.iter().any(|&b| b != 0) {
            return Err(WireError::Length);
        }
        Ok(Probe { id: u32::from_be_bytes(id.try_into().expect("4 bytes")) })
    }

    /// Writes the id and zeros over the whole of `body`.
    pub fn emit(&self, body: &mut [u8]) {
        body.fill(0);
        body[..Self::MIN_LEN].copy_from_slice(&self.id.to_be_bytes());
    }
}

/// "Your probe `id` of `size` bytes arrived", sent back on the link the probe came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeAck {
    pub id: u32,
    /// The probe's UDP payload length as received.
    pub size: u16,
}

impl ProbeAck {
    pub const LEN: usize = 6;

    pub fn parse(body: &[u8]) -> Result<Self, WireError> {
        let mut r = check_len(body, Self::LEN)?;
        Ok(ProbeAck { id: r.u32(), size: u16::from_be_bytes(r.take()) })
    }

    pub fn emit(&self, body: &mut [u8]) {
        let mut w = Writer(body);
        w.put(&self.id.to_be_bytes());
        w.put(&self.size.to_be_bytes());
    }
}

/// Length of a probe acknowledgement datagram.
pub const PROBE_ACK_DATAGRAM_LEN: usize = TRANSPORT_HEADER_LEN + TAG_LEN + ProbeAck::LEN;
/// The smallest probe datagram.
pub const MIN_PROBE_DATAGRAM_LEN: usize = TRANSPORT_HEADER_LEN + TAG_LEN + Probe::MIN_LEN;

/// Reads the tunnel sequence at the front of an opened data body.
pub fn parse_data(body: &[u8]) -> Result<(u32, &[u8]), WireError> {
    if body.len() < 4 {
        return Err(WireError::Truncated);
    }
    let (seq, payload) = body.split_at(4);
    Ok((u32::from_be_bytes(seq.try_into().expect("4 bytes")), payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_and_ack_round_trip() {
        let mut body = [0xffu8; 40];
        Probe { id: 0x0102_0304 }.emit(&mut body);
        assert_eq!(Probe::parse(&body), Ok(Probe { id: 0x0102_0304 }));
        assert_eq!(Probe::parse(&body[..4]), Ok(Probe { id: 0x0102_0304 }));
        assert_eq!(Probe::parse(&body[..3]), Err(WireError::Truncated));
        body[39] = 1;
        assert_eq!(Probe::parse(&body), Err(WireError::Length), "padding must be zeros");
        let mut ack = [0u8; ProbeAck::LEN];
        ProbeAck { id: 7, size: 1452 }.emit(&mut ack);
        assert_eq!(ProbeAck::parse(&ack), Ok(ProbeAck { id: 7, size: 1452 }));
        assert_eq!(ProbeAck::parse(&ack[..5]), Err(WireError::Length));
    }

    #[test]
    fn handshake_messages_are_equal_in_size() {
        assert_eq!(Hello::LEN, Challenge::LEN);
        assert_eq!(Confirm::LEN, Challenge::LEN);
        assert_eq!(HANDSHAKE_LEN, 24 + 16 + 81);
        assert_eq!(DATA_OVERHEAD, 33);
    }

    #[test]
    fn header_round_trip_and_nonce_covers_the_header() {
        let mut buf = [0u8; 64];
        let nonce = Header::emit_transport(Kind::Keepalive, 0xdead_beef, 0x0102_0304_0506_0708, &mut buf);
        let h = Header::parse(&buf).unwrap();
        assert_eq!(h.kind, Kind::Keepalive);
        assert_eq!(h.session, 0xdead_beef);
        assert_eq!(h.pn, 0x0102_0304_0506_0708);
        assert_eq!(h.nonce, nonce);
        assert_eq!(&buf[..13], &[0x15, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&nonce[13..], &[0; 11]);

        let mut hs = [0u8; HANDSHAKE_LEN];
        let nonce = Header::emit_handshake(Kind::Hello, 7, 0x0a0b_0c0d, &[0xaa; 15], &mut hs);
        assert_eq!(&hs[..24], &nonce);
        assert_eq!(&hs[5..9], &[0x0a, 0x0b, 0x0c, 0x0d]);
        let h = Header::parse(&hs).unwrap();
        assert_eq!(h.kind, Kind::Hello);
        assert_eq!(h.key_id(), 0x0a0b_0c0d);
    }

    #[test]
    fn bad_headers_are_errors() {
        assert_eq!(Header::parse(&[]), Err(WireError::Truncated));
        assert_eq!(Header::parse(&[0x24; 40]), Err(WireError::Version));
        assert_eq!(Header::parse(&[0x10; 40]), Err(WireError::Kind));
        assert_eq!(Header::parse(&[0x1a; 40]), Err(WireError::Kind));
        assert_eq!(Header::parse(&[0x14; 28]), Err(WireError::Truncated));
        assert!(Header::parse(&[0x14; 29]).is_ok());
        assert_eq!(Header::parse(&[0x11; 100]), Err(WireError::Length));
    }

    #[test]
    fn bodies_round_trip_and_reject_wrong_lengths() {
        let k = Keepalive {
            flags: 3,
            timestamp: 1,
            echo_timestamp: 2,
            echo_delay: 3,
            rx_highest_pn: 4,
            rx_packets: 5,
            rx_bytes: 6,
            owd: 7,
            owd_min: 8,
        };
        let mut b = [0u8; Keepalive::LEN];
        k.emit(&mut b);
        assert_eq!(Keepalive::parse(&b), Ok(k));
        assert_eq!(Keepalive::parse(&b[1..]), Err(WireError::Length));

        let c = Confirm {
            instance: 9,
            client_random: [1; 32],
            server_random: [2; 32],
            epoch: 3,
            echo_timestamp: 4,
        };
        let mut b = [0u8; Confirm::LEN];
        c.emit(&mut b);
        assert_eq!(Confirm::parse(&b), Ok(c));

        let h = Hello { instance: 1, client_random: [8; 32], timestamp: 77 };
        let mut b = [0xffu8; Hello::LEN];
        h.emit(&mut b);
        assert_eq!(Hello::parse(&b), Ok(h));
        assert!(b[44..].iter().all(|&x| x == 0), "padding is zero");

        let mut n = Nack::default();
        n.gaps.push((7, 1 << 40, 3)).unwrap();
        n.gaps.push((8, 5, 1)).unwrap();
        let mut b = [0u8; Nack::MAX_LEN];
        n.emit(&mut b);
        assert_eq!(Nack::parse(&b[..n.len()]), Ok(n.clone()));
        assert_eq!(Nack::parse(&b[..n.len() - 1]), Err(WireError::Length));
        assert_eq!(Nack::parse(&[17]), Err(WireError::Length));
        assert_eq!(Nack::parse(&[]), Err(WireError::Truncated));

        assert_eq!(parse_data(&[0, 0, 1]), Err(WireError::Truncated));
        assert_eq!(parse_data(&[0, 0, 1, 2, 9]), Ok((258, &[9u8][..])));
    }
}
