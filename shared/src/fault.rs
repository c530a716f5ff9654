//! Test-only fault points: places where a test can make the plugin die as if killed with
//! SIGKILL, to prove that a crash there leaves nothing the next run cannot repair: a promote of
//! the plugin, a push to the state repository.
//!
//! Only debug builds (test builds) look at [`FAULT_ENV`]; in a release build [`point`] does
//! nothing and the variable is never read. Separate from the modes so that no production code
//! path depends on it.

/// The environment variable naming the one fault point to die at, e.g. `promote:healthy`.
/// Test-only: read by debug builds alone.
pub const FAULT_ENV: &str = "CANON_TEST_FAULT";

/// Aborts the process at once (no destructors, no cleanup, like `kill -9`) when this is a debug
/// build and [`FAULT_ENV`] names `name`; with `name@stop`, it says so on stderr and waits there
/// for the test to kill it (with SIGKILL itself). Test-only: a release build compiles it to
/// nothing.
pub fn point(name: &str) {
    // The environment is read here and not once in `main` on purpose: the hook must stay out of
    // the settings, which describe production behaviour only.
    #[cfg(debug_assertions)]
    if let Ok(v) = std::env::var(FAULT_ENV) {
        if v == name {
            eprintln!("canon: test fault point {name}: aborting");
            std::process::abort();
        }
        if v.strip_suffix("@stop") == Some(name) {
            eprintln!("canon: test fault point {name}: stopped");
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}
