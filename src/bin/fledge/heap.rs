//! Keeps the controller's resident memory close to what its caches hold.
//!
//! glibc's malloc keeps freed memory for reuse instead of returning it: a burst or a start-up
//! decodes thousands of objects at once (list pages of 500, a thousand reconciles), and after it
//! the pages of those short-lived buffers stay resident for as long as the process lives, spread
//! over one arena per thread that ever allocated. Measured at N = 1,000 rollouts, that made the
//! resident set after a restart far larger than the same controller's after a quiet start (see
//! hack/bench_notes.md). So the controller caps the arenas, sends large buffers to their own
//! mappings (returned when freed), and now and then hands free pages back to the kernel.
//! Elsewhere (musl, macOS) this does nothing.

use std::time::Duration;

/// How often free pages go back to the kernel. A trim walks the free lists, a millisecond or so
/// for a heap of tens of MiB; it is not needed more often than memory can usefully fall.
pub const TRIM_EVERY: Duration = Duration::from_secs(30);

/// Sets glibc's allocator up for a long-lived process whose memory comes in bursts. Call once,
/// before other threads exist.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any other thread allocates.
    unsafe {
        // Two arenas, not eight per core: the controller's threads share a few caches and do
        // little allocating in parallel, while every extra arena keeps its own free pages.
        libc::mallopt(libc::M_ARENA_MAX, 2);
        // A fixed threshold (glibc otherwise raises it to the largest buffer freed so far): a
        // list page or a large response body gets its own mapping, returned as soon as it is
        // freed instead of fragmenting the heap.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

/// Returns free heap pages to the kernel every [`TRIM_EVERY`], forever.
pub async fn trim_periodically() {
    let mut tick = tokio::time::interval(TRIM_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        trim();
    }
}

fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe; it takes each arena's lock while it walks it.
    unsafe {
        libc::malloc_trim(0);
    }
}
