//! `gradmatch`: dataset condensation by gradient matching from the command line.

use clap::Parser;

/// Every tensor op allocates its output: glibc's malloc maps and unmaps large buffers each time (the
/// page faults and zeroing took more time than the arithmetic); mimalloc reuses them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Freed tensor buffers stay with the process for the next op of the same size instead of going back
/// to the OS, which would fault and zero every page again on reuse.
fn keep_freed_memory() {
    // `mi_option_purge_delay` (index 15 in both mimalloc v2 and v3, v3 being the one built); -1: never purge.
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: setting an allocator option is thread-safe and takes effect for later frees.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) };
}

fn main() -> anyhow::Result<()> {
    keep_freed_memory();
    gradmatch_runner::run(gradmatch_runner::Cli::parse())
}
