//! Our XSalsa20-Poly1305 against libsodium's `crypto_secretbox_easy`, on vectors that
//! `tests/vectors/gen_secretbox.py` generated with PyNaCl.

use mlvpn::proto::crypto::{Key, TAG_LEN, open, seal};

fn hex(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn seal_and_open_match_libsodium() {
    let text = include_str!("vectors/secretbox.txt");
    let mut count = 0;
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(' ').collect();
        let key = Key(hex(f[0]).try_into().unwrap());
        let nonce: [u8; 24] = hex(f[1]).try_into().unwrap();
        let msg = hex(f[2]);
        let expected = hex(f[3]);
        assert_eq!(expected.len(), TAG_LEN + msg.len());

        let mut buf = vec![0u8; TAG_LEN + msg.len()];
        buf[TAG_LEN..].copy_from_slice(&msg);
        seal(&key, &nonce, &mut buf);
        assert_eq!(buf, expected, "seal, {} bytes", msg.len());

        open(&key, &nonce, &mut buf).expect("libsodium's box opens");
        assert_eq!(buf[TAG_LEN..], msg[..]);

        let mut tampered = expected.clone();
        *tampered.last_mut().unwrap() ^= 0x80;
        assert!(open(&key, &nonce, &mut tampered).is_err());
        count += 1;
    }
    assert_eq!(count, 20, "every vector was checked");
}
