//! XSalsa20-Poly1305, byte-compatible with libsodium's `crypto_secretbox`, sealing and opening
//! in the caller's buffer.
//!
//! The construction (NaCl, Bernstein 2009): the first 32 bytes of the XSalsa20 keystream for
//! (key, nonce) are the one-time Poly1305 key; the message is XORed with the keystream starting
//! at byte 32; the tag is Poly1305 over the ciphertext. `crypto_secretbox_easy` lays a box out
//! as `tag || ciphertext`, and so do we. Known-answer vectors generated with PyNaCl (libsodium)
//! live in `tests/vectors/secretbox.txt`; `tests/secretbox_vectors.rs` checks them.
//!
//! A (key, nonce) pair must never seal two different messages. Session keys are fresh for every
//! handshake and nonces count up within a session (see [`super::wire`]); handshake messages use
//! 19 random bytes in their nonce.

use poly1305::Poly1305;
use poly1305::universal_hash::KeyInit;
use salsa20::XSalsa20;
use salsa20::cipher::{KeyIvInit, StreamCipher};

pub const KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 24;
pub const TAG_LEN: usize = 16;

/// A 256-bit symmetric key.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(pub [u8; KEY_LEN]);

impl core::fmt::Debug for Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Why a box did not open. There is one reason only, on purpose: telling a forger *why* helps
/// the forger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenError;

fn keystream(key: &Key, nonce: &[u8; NONCE_LEN]) -> (XSalsa20, Poly1305) {
    let mut cipher = XSalsa20::new(&key.0.into(), nonce.into());
    let mut mac_key = [0u8; 32];
    cipher.apply_keystream(&mut mac_key);
    let mac = Poly1305::new(&mac_key.into());
    (cipher, mac)
}

/// Encrypts `buf[TAG_LEN..]` in place and writes the tag into `buf[..TAG_LEN]`.
///
/// Panics if `buf` is shorter than a tag: callers size their buffers from [`super::wire`]
/// constants, so a short buffer is our bug, not a peer's.
pub fn seal(key: &Key, nonce: &[u8; NONCE_LEN], buf: &mut [u8]) {
    #[cfg(feature = "nonce-audit")]
    audit::record(key, nonce);
    let (tag, msg) = buf.split_at_mut(TAG_LEN);
    let (mut cipher, mac) = keystream(key, nonce);
    cipher.apply_keystream(msg);
    tag.copy_from_slice(&mac.compute_unpadded(msg));
}

/// Checks the tag in `buf[..TAG_LEN]` and, only if it is right, decrypts `buf[TAG_LEN..]` in
/// place. On error `buf` is untouched.
pub fn open(key: &Key, nonce: &[u8; NONCE_LEN], buf: &mut [u8]) -> Result<(), OpenError> {
    if buf.len() < TAG_LEN {
        return Err(OpenError);
    }
    let (tag, msg) = buf.split_at_mut(TAG_LEN);
    let (mut cipher, mac) = keystream(key, nonce);
    let expected = mac.compute_unpadded(msg);
    if !constant_time_eq(&expected, tag) {
        return Err(OpenError);
    }
    cipher.apply_keystream(msg);
    Ok(())
}

/// Compares without an early exit, so the time taken does not reveal how many bytes matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    core::hint::black_box(diff) == 0
}

/// A deterministic random bit generator: the XSalsa20 keystream under a 256-bit seed.
///
/// The shell seeds it from `getrandom(2)`; the simulator from a test seed, which makes whole runs
/// reproducible. A stream cipher keystream under a secret key is indistinguishable from random,
/// which is exactly what we need for session randomness, identifiers and handshake nonces.
pub struct Csprng {
    stream: XSalsa20,
}

impl core::fmt::Debug for Csprng {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Csprng(..)")
    }
}

impl Csprng {
    pub fn new(seed: [u8; 32]) -> Self {
        // A fixed nonce is fine: the seed is used for nothing else.
        Csprng { stream: XSalsa20::new(&seed.into(), &[0u8; NONCE_LEN].into()) }
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        out.fill(0);
        self.stream.apply_keystream(out);
    }

    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        self.fill(&mut b);
        b
    }

    pub fn next_u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes())
    }

    pub fn next_u64(&mut self) -> u64 {
        u64::from_le_bytes(self.bytes())
    }
}

/// Test instrumentation (feature `nonce-audit`): every (key, nonce) pair sealed on this thread
/// between [`audit::start`] and [`audit::take`], so a test can prove that none repeats.
#[cfg(feature = "nonce-audit")]
pub mod audit {
    use super::{KEY_LEN, Key, NONCE_LEN};
    use std::cell::RefCell;

    type Sealed = Vec<([u8; KEY_LEN], [u8; NONCE_LEN])>;

    thread_local! {
        static SEALED: RefCell<Option<Sealed>> = const { RefCell::new(None) };
    }

    pub(super) fn record(key: &Key, nonce: &[u8; NONCE_LEN]) {
        SEALED.with(|s| {
            if let Some(v) = s.borrow_mut().as_mut() {
                v.push((key.0, *nonce));
            }
        });
    }

    /// Starts recording on this thread.
    pub fn start() {
        SEALED.with(|s| *s.borrow_mut() = Some(Vec::new()));
    }

    /// Stops recording and returns the pairs recorded.
    pub fn take() -> Sealed {
        SEALED.with(|s| s.borrow_mut().take().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: Key = Key([7u8; 32]);
    const NONCE: [u8; 24] = [9u8; 24];

    #[test]
    fn open_reverses_seal() {
        let mut buf = [0u8; TAG_LEN + 100];
        for (i, b) in buf[TAG_LEN..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let plain = buf;
        seal(&KEY, &NONCE, &mut buf);
        assert_ne!(buf[TAG_LEN..], plain[TAG_LEN..]);
        open(&KEY, &NONCE, &mut buf).unwrap();
        assert_eq!(buf[TAG_LEN..], plain[TAG_LEN..]);
    }

    #[test]
    fn any_flipped_bit_or_wrong_key_or_nonce_fails_and_leaves_the_buffer() {
        let mut sealed = [0u8; TAG_LEN + 40];
        seal(&KEY, &NONCE, &mut sealed);
        for bit in 0..sealed.len() * 8 {
            let mut b = sealed;
            b[bit / 8] ^= 1 << (bit % 8);
            let copy = b;
            assert_eq!(open(&KEY, &NONCE, &mut b), Err(OpenError));
            assert_eq!(b, copy);
        }
        let mut b = sealed;
        assert_eq!(open(&Key([8u8; 32]), &NONCE, &mut b), Err(OpenError));
        let mut nonce = NONCE;
        nonce[23] ^= 1;
        assert_eq!(open(&KEY, &nonce, &mut b), Err(OpenError));
        assert_eq!(open(&KEY, &NONCE, &mut [0u8; 5]), Err(OpenError));
    }

    #[test]
    fn empty_message_has_a_tag() {
        let mut buf = [0u8; TAG_LEN];
        seal(&KEY, &NONCE, &mut buf);
        assert!(open(&KEY, &NONCE, &mut buf).is_ok());
    }

    #[test]
    fn csprng_is_deterministic_per_seed_and_differs_across_seeds() {
        let mut a = Csprng::new([1; 32]);
        let mut b = Csprng::new([1; 32]);
        let mut c = Csprng::new([2; 32]);
        let x: [u8; 40] = a.bytes();
        assert_eq!(x, b.bytes::<40>());
        assert_ne!(x, c.bytes::<40>());
        assert_ne!(a.next_u64(), a.next_u64());
    }
}
