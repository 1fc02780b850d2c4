//! The `attic` binary (to be written).
fn main() {}
