//! The privilege-separation messages on arbitrary bytes, both directions: decoding may not
//! panic, and what decodes encodes back to the same bytes. (The root parent decodes what the
//! unprivileged child sends it: this is the boundary an attacker who owns the child crosses.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlvpn::daemon::privsep::{ToChild, ToParent};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ToParent::decode(data) {
        let mut out = Vec::new();
        m.encode(&mut out).expect("a decoded request encodes");
        assert_eq!(ToParent::decode(&out).ok(), Some(m));
    }
    if let Ok(m) = ToChild::decode(data) {
        let mut out = Vec::new();
        m.encode(&mut out);
        assert_eq!(ToChild::decode(&out).ok(), Some(m));
    }
});
