//! The control socket's request parser on arbitrary bytes, fed whole and byte by byte: it may
//! not panic, must decide by [`MAX_REQUEST`] bytes, and must not change its mind about a
//! complete request when more bytes follow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlvpn::control::request::{MAX_REQUEST, Parse, parse};

fuzz_target!(|data: &[u8]| {
    let whole = parse(data, true);
    assert_ne!(whole, Parse::Incomplete, "at end of input the parser decides");
    let mut decided = None;
    for end in 0..=data.len() {
        match parse(&data[..end], false) {
            Parse::Incomplete => assert!(end < MAX_REQUEST, "undecided after {end} bytes"),
            done => {
                decided.get_or_insert(done);
            }
        }
    }
    if let (Some(Parse::Done(first)), Parse::Done(last)) = (decided, parse(data, false)) {
        assert_eq!(first, last, "a complete request changed with more bytes");
    }
});
