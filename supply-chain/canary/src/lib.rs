//! Never built: only its dependency on a vulnerable release matters.
