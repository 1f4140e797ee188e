//! The actlab binary: runs the CLI and turns any error into one line and exit code 2.

fn main() {
    // `actlab ... | head` should end quietly, as other command-line tools do.
    #[cfg(unix)]
    // SAFETY: restoring the default SIGPIPE action before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Large buffers (evaluation, diagnostics, datasets) are allocated per pass; a fixed
    // threshold keeps them mapped on their own and returned when freed, instead of the
    // allocator raising it and keeping every thread's high-water mark resident. Fixing
    // it also fixes the trim threshold, so that is raised by hand: small allocations
    // would otherwise grow and shrink the heap thousands of times a run.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 * 1024 * 1024);
    }
    // A bad ACTLAB_SIMD is refused before any work, not at the first kernel.
    let result = actlab::simd::check()
        .map_err(anyhow::Error::from)
        .and_then(|_| actlab::cli::main());
    if let Err(e) = result {
        if let Some(i) = e.downcast_ref::<actlab::run::Interrupted>() {
            eprintln!("{i}");
            std::process::exit(130);
        }
        // Each cause once: skip causes whose text the message already contains.
        let mut msg = String::new();
        for c in e.chain().map(|c| c.to_string()) {
            if !msg.contains(&c) {
                if !msg.is_empty() {
                    msg.push_str(": ");
                }
                msg.push_str(&c);
            }
        }
        // One line, whatever a library put in its message.
        let msg = msg.split_whitespace().collect::<Vec<_>>().join(" ");
        eprintln!("error: {msg}");
        std::process::exit(2);
    }
}
