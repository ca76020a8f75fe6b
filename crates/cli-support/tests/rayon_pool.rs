//! In its own test binary: it builds rayon's global pool, which a process does once.

use cli_support::{WORKER_STACK_BYTES, on_compute_pool};

#[test]
fn work_runs_on_a_pool_worker_with_a_deep_stack() {
    assert_eq!(rayon::current_thread_index(), None, "the test thread is not a worker");
    let (worker, value) = on_compute_pool(|| (rayon::current_thread_index(), 6 * 7));
    assert!(worker.is_some(), "the work ran outside the pool");
    assert_eq!(value, 42);
    // Recursion deeper than a default 2 MiB thread stack allows.
    fn depth(n: usize) -> usize {
        let pad = std::hint::black_box([0u8; 1024]);
        if n == 0 { pad[0] as usize } else { 1 + depth(n - 1) + pad[n % 1024] as usize }
    }
    let frames = 8 * 1024; // ≥ 8 MiB of frames
    assert!(frames * 1024 < WORKER_STACK_BYTES);
    assert_eq!(on_compute_pool(|| depth(frames)), frames);
}
