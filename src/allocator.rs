//! The allocator's settings: `baton` (and the benchmarks) run on mimalloc,
//! set up here so that a months-long daemon's RSS follows what it holds.
//!
//! Measured with `cargo bench --bench e2e -- --only lifetime` (1M handoffs
//! opened and resolved, 100k open at once, closed ones evicted), peak RSS
//! over RSS at 100k open: 1.25 with mimalloc's defaults; 1.21 without
//! transparent huge pages (the `no_thp` build feature in `Cargo.toml`:
//! mimalloc no longer `madvise`s its regions into 2 MiB pages, where a few
//! live blocks keep a whole huge page resident); 1.14 with the purge delay
//! below as well (and the baseline 161 → 152 MiB). glibc's malloc, for
//! comparison, is slower on every runtime thread (see `src/main.rs`).

/// How long mimalloc waits before returning a freed page's memory to the
/// OS, in milliseconds (its default is 1,000; 100 measured as well as 0 or
/// 10, with a tenth of the purge calls of 10).
pub const PURGE_DELAY_MS: std::ffi::c_long = 100;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (v3, as v2): the
/// Rust bindings leave it out. The test below checks it against mimalloc's
/// documented default, so an upgrade that renumbers it fails there.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Applies the settings above; call first thing in `main`. Harmless when
/// another allocator is the global one (it only sets mimalloc's option).
pub fn tune() {
    // SAFETY: `mi_option_set` stores an integer in mimalloc's option table;
    // it has no preconditions and may be called at any time, from any thread.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_tuned() {
        // SAFETY: reads and writes of mimalloc's option table; see `tune`.
        let get = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(get(), 1000, "mimalloc v3's default purge delay");
        tune();
        assert_eq!(get(), PURGE_DELAY_MS);
    }
}
