//! The link handshake: three messages, sealed with the handshake key derived from the password.
//!
//! ```text
//! client                                   server
//!   hello {instance, client_random, ts} ---->      (no state kept)
//!        <---- challenge {instance, client_random, server_random, epoch, echo ts, ts}
//!   confirm {instance, client_random, server_random, epoch, echo ts} ---->
//!                                                  checks the cookie, creates the session,
//!        <---- keepalive (first packet of the session: the client marks the link up)
//! ```
//!
//! * **Proof of key.** Every message is sealed with the handshake key; the server opens a hello
//!   or it drops it and says nothing, so a sender without the password gets no answer at all.
//! * **No state before proof of freshness.** The server's random is not stored: it is a PRF of a
//!   per-process secret, the current epoch ([`EPOCH`]), the link, the session id and the client's
//!   random ([`super::kdf::cookie_random`]). A replayed hello therefore costs the server one
//!   computation and gets a challenge that leads nowhere; it creates nothing.
//! * **Freshness.** The server creates the session only on a confirm whose server random it can
//!   recompute for the current or the previous epoch, i.e. one made within the last 2–4 s from a
//!   challenge it issued. A confirm replayed within that time is caught by a small log of recent
//!   confirms ([`ConfirmLog`]); after it, the cookie has expired. Only then is the link's peer
//!   address learned or moved.
//! * **No amplification.** All three messages have the same size (the hello is padded).
//! * **Fresh keys.** Session keys derive from both randoms ([`super::kdf::session_keys`]), so a
//!   restart of either side yields new keys and no nonce can ever repeat.

use super::crypto::{self, Csprng, Key, TAG_LEN, constant_time_eq};
use super::kdf::{Random, cookie_random};
use super::time::{Duration, Instant};
use super::wire::{Challenge, Confirm, HANDSHAKE_HEADER_LEN, HANDSHAKE_LEN, Header, Hello, Kind};

/// Length of a cookie epoch. A confirm is accepted during the epoch of its challenge and the
/// next one.
pub const EPOCH: Duration = Duration::from_secs(2);

/// Why a handshake message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    /// Did not open with the handshake key: wrong password, corruption or forgery.
    Unauthenticated,
    /// Opened, but its body is not the right shape.
    Malformed,
    /// A challenge for a hello we did not send (or no longer wait for).
    Unexpected,
    /// A confirm whose cookie expired or was never ours.
    Stale,
    /// A confirm seen before.
    Replayed,
}

/// Seals a handshake `kind` message whose body `emit` writes, into `buf[..HANDSHAKE_LEN]`.
/// `key_id` names the pre-shared key `key` derives from ([`super::kdf::key_id`]).
pub fn seal(
    key: &Key,
    key_id: u32,
    rng: &mut Csprng,
    kind: Kind,
    session: u32,
    buf: &mut [u8],
    emit: impl FnOnce(&mut [u8]),
) -> usize {
    let buf = &mut buf[..HANDSHAKE_LEN];
    let nonce = Header::emit_handshake(kind, session, key_id, &rng.bytes(), buf);
    emit(&mut buf[HANDSHAKE_HEADER_LEN + TAG_LEN..]);
    crypto::seal(key, &nonce, &mut buf[HANDSHAKE_HEADER_LEN..]);
    HANDSHAKE_LEN
}

/// Opens a handshake message in place and returns its body.
pub fn open<'a>(key: &Key, header: &Header, buf: &'a mut [u8]) -> Result<&'a [u8], HandshakeError> {
    crypto::open(key, &header.nonce, &mut buf[HANDSHAKE_HEADER_LEN..HANDSHAKE_LEN])
        .map_err(|_| HandshakeError::Unauthenticated)?;
    Ok(&buf[HANDSHAKE_HEADER_LEN + TAG_LEN..HANDSHAKE_LEN])
}

/// The server's side: the cookie secret, from which server randoms are computed.
#[derive(Debug)]
pub struct CookieJar {
    secret: Key,
}

impl CookieJar {
    pub fn new(rng: &mut Csprng) -> Self {
        CookieJar { secret: Key(rng.bytes()) }
    }

    fn epoch(now: Instant) -> u64 {
        now.as_micros() / EPOCH.as_micros()
    }

    /// The challenge for a hello that opened: (server random, epoch byte for the wire).
    pub fn challenge(&self, now: Instant, link: u16, session: u32, hello: &Hello) -> (Random, u8) {
        let epoch = Self::epoch(now);
        (cookie_random(&self.secret, link, epoch, session, &hello.client_random), epoch as u8)
    }

    /// Whether `confirm` answers a challenge this server issued for `link` and `session` in the
    /// current or the previous epoch.
    pub fn check(
        &self,
        now: Instant,
        link: u16,
        session: u32,
        confirm: &Confirm,
    ) -> Result<(), HandshakeError> {
        let current = Self::epoch(now);
        let epoch = if confirm.epoch == current as u8 {
            current
        } else if confirm.epoch == current.wrapping_sub(1) as u8 {
            current.wrapping_sub(1)
        } else {
            return Err(HandshakeError::Stale);
        };
        let expected = cookie_random(&self.secret, link, epoch, session, &confirm.client_random);
        if constant_time_eq(&expected, &confirm.server_random) { Ok(()) } else { Err(HandshakeError::Stale) }
    }
}

/// Confirms accepted recently on one link, so that a replayed confirm cannot make a second
/// session while its cookie is still valid. A client makes at most two handshakes a second per
/// link (see [`super::link::HANDSHAKE_RETRY`]) and a cookie lives at most two epochs, so
/// [`ConfirmLog::SIZE`] entries always cover the cookie lifetime.
#[derive(Debug, Clone)]
pub struct ConfirmLog {
    seen: [([u8; 16], Instant); ConfirmLog::SIZE],
    next: usize,
}

impl Default for ConfirmLog {
    fn default() -> Self {
        ConfirmLog { seen: [([0; 16], Instant::ZERO); ConfirmLog::SIZE], next: 0 }
    }
}

impl ConfirmLog {
    pub const SIZE: usize = 16;

    /// Records `client_random` unless it was recorded within the cookie lifetime.
    pub fn admit(&mut self, now: Instant, client_random: &Random) -> Result<(), HandshakeError> {
        let lifetime = EPOCH.saturating_mul(2);
        let tag: [u8; 16] = client_random[..16].try_into().expect("16 bytes");
        let fresh = |at: Instant| at != Instant::ZERO && now - at <= lifetime;
        if self.seen.iter().any(|(t, at)| fresh(*at) && *t == tag) {
            return Err(HandshakeError::Replayed);
        }
        // Use the slot in rotation; if it is still fresh (a client hammering the server), the
        // oldest entry goes — its cookie is the closest to expiry anyway.
        self.seen[self.next] = (tag, now.max(Instant::from_micros(1)));
        self.next = (self.next + 1) % Self::SIZE;
        Ok(())
    }
}

/// The client's side of one handshake in progress.
#[derive(Debug, Clone)]
pub struct Pending {
    pub session: u32,
    pub client_random: Random,
    /// Set once the challenge came and the confirm went: the session exists and the link
    /// waits for the server's first packet.
    pub confirmed: bool,
}

impl Pending {
    /// Checks that `challenge` answers this hello.
    pub fn accept(&self, challenge: &Challenge) -> Result<(), HandshakeError> {
        if !self.confirmed && constant_time_eq(&challenge.client_random, &self.client_random) {
            Ok(())
        } else {
            Err(HandshakeError::Unexpected)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Hello {
        Hello { instance: 1, client_random: [9; 32], timestamp: 5 }
    }

    fn confirm_for(jar: &CookieJar, now: Instant, link: u16, session: u32) -> Confirm {
        let (server_random, epoch) = jar.challenge(now, link, session, &hello());
        Confirm { instance: 1, client_random: [9; 32], server_random, epoch, echo_timestamp: 6 }
    }

    #[test]
    fn seal_and_open_round_trip_and_bind_the_kind() {
        let key = Key([4; 32]);
        let mut rng = Csprng::new([0; 32]);
        let mut buf = [0u8; HANDSHAKE_LEN];
        let n = seal(&key, 7, &mut rng, Kind::Hello, 42, &mut buf, |b| hello().emit(b));
        assert_eq!(n, HANDSHAKE_LEN);
        let h = Header::parse(&buf).unwrap();
        assert_eq!((h.kind, h.session), (Kind::Hello, 42));
        let mut copy = buf;
        assert_eq!(Hello::parse(open(&key, &h, &mut copy).unwrap()), Ok(hello()));

        // Re-typing the message as a confirm breaks the tag.
        let mut retyped = buf;
        retyped[0] = (retyped[0] & 0xf0) | Kind::Confirm as u8;
        let h = Header::parse(&retyped).unwrap();
        assert_eq!(open(&key, &h, &mut retyped), Err(HandshakeError::Unauthenticated));
        let h = Header::parse(&buf).unwrap();
        assert_eq!(open(&Key([5; 32]), &h, &mut buf), Err(HandshakeError::Unauthenticated));
    }

    #[test]
    fn cookies_are_valid_for_this_and_the_next_epoch_only() {
        let jar = CookieJar::new(&mut Csprng::new([1; 32]));
        let t0 = Instant::from_micros(10 * EPOCH.as_micros() + 5);
        let c = confirm_for(&jar, t0, 3, 77);
        assert_eq!(jar.check(t0, 3, 77, &c), Ok(()));
        assert_eq!(jar.check(t0 + EPOCH, 3, 77, &c), Ok(()));
        assert_eq!(jar.check(t0 + EPOCH.saturating_mul(2), 3, 77, &c), Err(HandshakeError::Stale));
        // 256 epochs later the epoch byte matches again, but the full epoch is in the MAC.
        assert_eq!(jar.check(t0 + EPOCH.saturating_mul(256), 3, 77, &c), Err(HandshakeError::Stale));
        assert_eq!(jar.check(t0, 4, 77, &c), Err(HandshakeError::Stale), "other link");
        assert_eq!(jar.check(t0, 3, 78, &c), Err(HandshakeError::Stale), "other session");
        let other = CookieJar::new(&mut Csprng::new([2; 32]));
        assert_eq!(other.check(t0, 3, 77, &c), Err(HandshakeError::Stale), "restarted server");
    }

    #[test]
    fn confirm_log_refuses_a_replay_within_the_cookie_lifetime() {
        let mut log = ConfirmLog::default();
        let t = Instant::from_micros(1_000_000);
        assert_eq!(log.admit(t, &[1; 32]), Ok(()));
        assert_eq!(log.admit(t + Duration::from_millis(100), &[1; 32]), Err(HandshakeError::Replayed));
        assert_eq!(log.admit(t, &[2; 32]), Ok(()));
        // Sixteen legitimate handshakes later the first is still remembered if still fresh...
        for k in 3..17u8 {
            log.admit(t + Duration::from_millis(k as u64 * 250), &[k; 32]).unwrap();
        }
        assert_eq!(log.admit(t + Duration::from_millis(3900), &[2; 32]), Err(HandshakeError::Replayed));
    }

    #[test]
    fn a_challenge_must_echo_the_pending_random() {
        let p = Pending { session: 1, client_random: [9; 32], confirmed: false };
        let mut ch = Challenge {
            instance: 2,
            client_random: [9; 32],
            server_random: [1; 32],
            epoch: 0,
            echo_timestamp: 0,
            timestamp: 0,
        };
        assert_eq!(p.accept(&ch), Ok(()));
        ch.client_random[0] ^= 1;
        assert_eq!(p.accept(&ch), Err(HandshakeError::Unexpected));
    }
}
