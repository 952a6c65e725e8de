//! Reading `mlvpn.conf`. (Being written.)
