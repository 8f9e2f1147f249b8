//! Process-wide memory policy, set before any thread starts.
//!
//! glibc's malloc gives a thread that finds the arenas busy an arena of its own, up to
//! eight per core, and keeps what is freed in each arena for reuse. A server moving
//! megabyte buffers on every worker thread (blob chunks, request bodies, SQLite pages)
//! thus keeps the high-water mark of each arena resident: measured with 100,000 plugins
//! under the benchmark suite's load, 92 MiB of heap at the end with the default arenas
//! and 40 MiB with two, at the same throughput (`docs/benchmarks.md`).

/// Arenas glibc's malloc may use, unless `MALLOC_ARENA_MAX` says otherwise.
pub const MALLOC_ARENAS: i32 = 2;

/// Caps glibc's malloc at [`MALLOC_ARENAS`] arenas; an operator's `MALLOC_ARENA_MAX`
/// (glibc's own setting) wins. Nothing to do with other C libraries (musl has a single
/// heap).
pub fn cap_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a tunable of the allocator; it is called before the
        // process starts any thread.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        }
    }
}
