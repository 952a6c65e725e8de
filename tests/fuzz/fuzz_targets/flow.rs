//! The readers of packets from the TUN device (any host on the LAN writes them): the flow
//! classifier and the sparse-packet test, on arbitrary bytes read as IP packets and as
//! Ethernet frames. None may panic; a packet's flow does not depend on its length beyond the
//! headers, and `duplicate = all` takes everything for real-time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlvpn::proto::flow::{Classifier, Duplicate, PortList};
use mlvpn::proto::sparse::is_sparse;

fuzz_target!(|data: &[u8]| {
    let ports: PortList = [(1, 1024), (5060, 5061)].into_iter().collect();
    let auto = Classifier::new(0x5eed, Duplicate::Auto, ports.clone());
    let all = Classifier::new(0x5eed, Duplicate::All, ports);
    for ethernet in [false, true] {
        let a = auto.classify(data, ethernet);
        let b = all.classify(data, ethernet);
        assert_eq!(a.hash, b.hash, "the flow does not depend on the duplication mode");
        assert!(b.realtime);
        let _ = is_sparse(data, ethernet);
    }
});
