//! One link session: the directional keys a handshake produced, the packet number counter, and
//! the replay window.

use super::crypto::{self, Key, TAG_LEN};
use super::kdf::SessionKeys;
use super::replay::{Replay, ReplayWindow};
use super::wire::{Header, Kind, TRANSPORT_HEADER_LEN};

/// Why a transport datagram was refused by its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    Replayed,
    Unauthenticated,
}

#[derive(Debug)]
pub struct Session {
    /// Chosen by the client; carried in every header.
    pub id: u32,
    tx_key: Key,
    rx_key: Key,
    /// The next packet number to send.
    tx_pn: u64,
    replay: ReplayWindow,
    /// Packets and datagram bytes received and authenticated (wrapping), reported to the peer.
    pub rx_packets: u32,
    pub rx_bytes: u32,
    /// The peer process this session was made with.
    pub peer_instance: u64,
}

impl Session {
    pub fn new(id: u32, keys: SessionKeys, is_client: bool, peer_instance: u64) -> Self {
        let (tx_key, rx_key) = if is_client {
            (keys.client_to_server, keys.server_to_client)
        } else {
            (keys.server_to_client, keys.client_to_server)
        };
        Session {
            id,
            tx_key,
            rx_key,
            tx_pn: 0,
            replay: ReplayWindow::default(),
            rx_packets: 0,
            rx_bytes: 0,
            peer_instance,
        }
    }

    /// The packet number the next [`Session::seal`] will use.
    pub fn next_pn(&self) -> u64 {
        self.tx_pn
    }

    /// The highest packet number received.
    pub fn rx_highest(&self) -> u64 {
        self.replay.highest().unwrap_or(0)
    }

    /// The highest packet number received, if any was.
    pub fn rx_highest_seen(&self) -> Option<u64> {
        self.replay.highest()
    }

    /// Writes a `kind` header into `datagram[..13]` and seals the body `datagram[29..]` in
    /// place. Returns the packet number used.
    pub fn seal(&mut self, kind: Kind, datagram: &mut [u8]) -> u64 {
        let pn = self.tx_pn;
        // 2^64 packets would take 584 000 years at a million per second.
        self.tx_pn += 1;
        let nonce = Header::emit_transport(kind, self.id, pn, datagram);
        crypto::seal(&self.tx_key, &nonce, &mut datagram[TRANSPORT_HEADER_LEN..]);
        pn
    }

    /// Authenticates and decrypts `datagram` (whose `header` was parsed) in place, and records
    /// its packet number. Nothing changes unless it authenticates and is new.
    pub fn open(&mut self, header: &Header, datagram: &mut [u8]) -> Result<(), OpenError> {
        self.replay.check(header.pn).map_err(|_: Replay| OpenError::Replayed)?;
        crypto::open(&self.rx_key, &header.nonce, &mut datagram[TRANSPORT_HEADER_LEN..])
            .map_err(|_| OpenError::Unauthenticated)?;
        self.replay.accept(header.pn).map_err(|_| OpenError::Replayed)?;
        self.rx_packets = self.rx_packets.wrapping_add(1);
        self.rx_bytes = self.rx_bytes.wrapping_add(datagram.len() as u32);
        Ok(())
    }

    /// The body of an opened datagram.
    pub fn body(datagram: &[u8]) -> &[u8] {
        &datagram[TRANSPORT_HEADER_LEN + TAG_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::kdf::session_keys;

    fn pair() -> (Session, Session) {
        let keys = session_keys(&Key([1; 32]), &[2; 32], &[3; 32]);
        (Session::new(77, keys.clone(), true, 1), Session::new(77, keys, false, 2))
    }

    #[test]
    fn client_seals_server_opens_and_replays_are_refused() {
        let (mut c, mut s) = pair();
        let mut d = [0u8; TRANSPORT_HEADER_LEN + TAG_LEN + 5];
        d[29..].copy_from_slice(b"hello");
        c.seal(Kind::Data, &mut d);
        let captured = d;
        let h = Header::parse(&d).unwrap();
        assert_eq!((h.kind, h.session, h.pn), (Kind::Data, 77, 0));
        s.open(&h, &mut d).unwrap();
        assert_eq!(Session::body(&d), b"hello");
        let mut again = captured;
        assert_eq!(s.open(&h, &mut again), Err(OpenError::Replayed));
        assert_eq!(s.rx_packets, 1);
    }

    #[test]
    fn directions_use_different_keys() {
        let (mut c, _) = pair();
        let mut d = [0u8; 40];
        c.seal(Kind::Keepalive, &mut d);
        let h = Header::parse(&d).unwrap();
        // The client cannot open its own packet (reflection).
        assert_eq!(c.open(&h, &mut d), Err(OpenError::Unauthenticated));
    }

    #[test]
    fn a_forged_packet_does_not_move_the_window() {
        let (mut c, mut s) = pair();
        let mut d = [0u8; 40];
        c.seal(Kind::Keepalive, &mut d);
        let mut forged = d;
        forged[5..13].copy_from_slice(&1000u64.to_be_bytes());
        let hf = Header::parse(&forged).unwrap();
        assert_eq!(s.open(&hf, &mut forged), Err(OpenError::Unauthenticated));
        assert_eq!(s.rx_highest(), 0);
        let h = Header::parse(&d).unwrap();
        assert!(s.open(&h, &mut d).is_ok());
    }
}
