//! Key derivation: from the configured password to a pre-shared key, from the pre-shared key
//! and two fresh randoms to per-session keys, and the server's stateless handshake cookie.
//!
//! Everything here is BLAKE2s (RFC 7693) in its keyed mode, which is a PRF. Every input starts
//! with a distinct ASCII label, so no output of one derivation can be mistaken for another.
//!
//! * `psk = stretch(password)`: `h0 = BLAKE2s("mlvpn psk v1" || password)`, then
//!   `h(i) = BLAKE2s-MAC(key = h(i-1), "mlvpn psk v1" || password)` for [`PSK_ROUNDS`] rounds.
//!   The rounds make each offline guess of a captured handshake cost about as much as
//!   [`PSK_ROUNDS`] hashes; they cannot make a weak password strong, so `mlvpn genkey` prints a
//!   256-bit random one. (A memory-hard function such as Argon2 would need megabytes of RAM on
//!   routers that have few, and a dependency we do not want.)
//! * `handshake key = BLAKE2s-MAC(psk, "mlvpn handshake v1")` seals the three handshake messages.
//! * session keys, one per direction:
//!   `BLAKE2s-MAC(psk, "mlvpn c2s v1" || client_random || server_random)` and the same with
//!   `s2c`. Both randoms are 32 fresh bytes; either side's fresh random alone makes the keys new,
//!   so a restart of either side can never bring back an old key, and with it an old nonce.
//! * `server_random = BLAKE2s-MAC(cookie_secret, "mlvpn cookie v1" || link || epoch ||
//!   session || client_random)`, with the full 64-bit epoch number: the server recomputes it when the client confirms, which lets
//!   it answer a hello without keeping any state (see [`super::handshake`]).

use super::crypto::{KEY_LEN, Key};
use blake2::digest::{FixedOutput, KeyInit, Update};
use blake2::{Blake2s256, Blake2sMac256};

/// Rounds of password stretching: about 10 ms on an x86 server and 0.1 s on a MIPS 24Kc router,
/// paid once at start and on reload.
pub const PSK_ROUNDS: u32 = 16_384;

/// 32 random bytes contributed by one side to a handshake.
pub type Random = [u8; 32];

fn mac(key: &Key, parts: &[&[u8]]) -> Key {
    let mut m = <Blake2sMac256 as KeyInit>::new(&key.0.into());
    for p in parts {
        Update::update(&mut m, p);
    }
    let mut out = [0u8; KEY_LEN];
    out.copy_from_slice(&m.finalize_fixed());
    Key(out)
}

/// The pre-shared key stretched from the configured password.
pub fn psk_from_password(password: &[u8]) -> Key {
    psk_with_rounds(password, PSK_ROUNDS)
}

fn psk_with_rounds(password: &[u8], rounds: u32) -> Key {
    const LABEL: &[u8] = b"mlvpn psk v1";
    let mut h = Blake2s256::default();
    Update::update(&mut h, LABEL);
    Update::update(&mut h, password);
    let mut key = Key([0; KEY_LEN]);
    key.0.copy_from_slice(&h.finalize_fixed());
    for _ in 0..rounds {
        key = mac(&key, &[LABEL, password]);
    }
    key
}

/// The key that seals handshake messages.
pub fn handshake_key(psk: &Key) -> Key {
    mac(psk, &[b"mlvpn handshake v1"])
}

/// The key id: 32 bits that name a pre-shared key in the clear, in every handshake header
/// ([`super::wire::Header::key_id`]), so that a server with many sites finds the site of a
/// hello with one table lookup instead of trying every site's key. It is a PRF of the key, so
/// it tells an observer nothing about the key; it does tell them which hellos share one (a
/// site's handshakes can be linked across address changes, as its link addresses can).
pub fn key_id(psk: &Key) -> u32 {
    let id = mac(psk, &[b"mlvpn key id v1"]);
    u32::from_be_bytes([id.0[0], id.0[1], id.0[2], id.0[3]])
}

/// The two directional keys of one link session.
#[derive(Debug, Clone)]
pub struct SessionKeys {
    pub client_to_server: Key,
    pub server_to_client: Key,
}

pub fn session_keys(psk: &Key, client_random: &Random, server_random: &Random) -> SessionKeys {
    SessionKeys {
        client_to_server: mac(psk, &[b"mlvpn c2s v1", client_random, server_random]),
        server_to_client: mac(psk, &[b"mlvpn s2c v1", client_random, server_random]),
    }
}

/// The server's random for a hello, recomputable from the confirm without stored state.
pub fn cookie_random(secret: &Key, link: u16, epoch: u64, session: u32, client_random: &Random) -> Random {
    // The whole epoch number goes in, although only its low byte travels: a confirm replayed
    // 256 epochs later matches the byte but not the MAC.
    let mut input = [0u8; 14];
    input[..2].copy_from_slice(&link.to_be_bytes());
    input[2..10].copy_from_slice(&epoch.to_be_bytes());
    input[10..].copy_from_slice(&session.to_be_bytes());
    mac(secret, &[b"mlvpn cookie v1", &input, client_random]).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blake2s_matches_rfc7693_appendix_b() {
        // RFC 7693, Appendix B: BLAKE2s-256("abc").
        let mut h = Blake2s256::default();
        Update::update(&mut h, b"abc");
        let out = h.finalize_fixed();
        let expected = [
            0x50, 0x8C, 0x5E, 0x8C, 0x32, 0x7C, 0x14, 0xE2, 0xE1, 0xA7, 0x2B, 0xA3, 0x4E, 0xEB, 0x45, 0x2F,
            0x37, 0x45, 0x8B, 0x20, 0x9E, 0xD6, 0x3A, 0x29, 0x4D, 0x99, 0x9B, 0x4C, 0x86, 0x67, 0x59, 0x82,
        ];
        assert_eq!(out.as_slice(), &expected);
    }

    #[test]
    fn psk_depends_on_every_byte_and_round() {
        let a = psk_with_rounds(b"secret", 3);
        assert_eq!(a, psk_with_rounds(b"secret", 3));
        assert_ne!(a, psk_with_rounds(b"secreT", 3));
        assert_ne!(a, psk_with_rounds(b"secret", 4));
    }

    #[test]
    fn session_keys_are_directional_and_fresh() {
        let psk = Key([1; 32]);
        let k = session_keys(&psk, &[2; 32], &[3; 32]);
        assert_ne!(k.client_to_server, k.server_to_client);
        let other = session_keys(&psk, &[2; 32], &[4; 32]);
        assert_ne!(k.client_to_server, other.client_to_server);
        assert_ne!(handshake_key(&psk), k.client_to_server);
    }

    #[test]
    fn cookie_binds_link_epoch_session_and_random() {
        let s = Key([5; 32]);
        let base = cookie_random(&s, 1, 2, 3, &[4; 32]);
        assert_eq!(base, cookie_random(&s, 1, 2, 3, &[4; 32]));
        assert_ne!(base, cookie_random(&s, 0, 2, 3, &[4; 32]));
        assert_ne!(base, cookie_random(&s, 1, 3, 3, &[4; 32]));
        assert_ne!(base, cookie_random(&s, 1, 2, 4, &[4; 32]));
        assert_ne!(base, cookie_random(&s, 1, 2, 3, &[5; 32]));
    }
}
