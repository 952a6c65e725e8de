//! Every `unsafe` block of the crate. (Being written.)
