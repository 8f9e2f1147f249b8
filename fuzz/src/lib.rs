//! The checks of the fuzz targets, shared with the main workspace's regression test.
pub mod checks;
