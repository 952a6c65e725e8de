//! The configuration reader on arbitrary text: errors, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(c) = mlvpn::config::parse("fuzz.conf", text) {
            let _ = c.engine_config();
            let _ = c.dump();
        }
    }
});
