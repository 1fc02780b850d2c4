//! What the fuzz targets share.
#![allow(dead_code, reason = "each target uses only part of it")]

pub mod framing;
