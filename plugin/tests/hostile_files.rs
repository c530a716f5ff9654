//! Files canon reads but did not write cannot stall or exhaust it: a recipe's `.env.sample` or
//! compose file that is `/dev/zero` or a FIFO, a secret file that is one, and a deeply nested
//! compose file or enrollment are refused at once with an error naming the file.

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use canon_plugin::recipe::files::RecipeFiles;
use canon_shared::recipe::Enrollment;

/// Runs `f` on a thread and returns its result, failing the test (instead of hanging it) when
/// it takes longer than 20 s.
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    let started = Instant::now();
    let out = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{what} did not end in 20 s"));
    println!("{what}: {:?}", started.elapsed());
    out
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0);
}

/// A recipe folder with a compose file and a `.env.sample`.
fn recipe() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("compose.yml"),
        "services:\n  app:\n    image: nginx:1.27\n",
    )
    .unwrap();
    std::fs::write(dir.path().join(".env.sample"), "TYPE=app\n").unwrap();
    dir
}

/// Loads the recipe at `dir` and returns the whole error text, panicking when it loads.
fn load_error(dir: &Path) -> String {
    let dir = dir.to_path_buf();
    let what = format!("loading {}", dir.display());
    within(&what, move || {
        match RecipeFiles::load(&dir, "app_test", &BTreeMap::new()) {
            Ok(_) => panic!("the recipe loaded"),
            Err(e) => chain(&e),
        }
    })
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

#[test]
fn an_env_sample_that_is_dev_zero_or_a_fifo_is_refused_at_once() {
    let dir = recipe();
    let sample = dir.path().join(".env.sample");
    std::fs::remove_file(&sample).unwrap();
    symlink("/dev/zero", &sample).unwrap();
    let e = load_error(dir.path());
    assert!(e.contains(".env.sample"), "{e}");
    assert!(e.contains("not a regular file"), "{e}");

    std::fs::remove_file(&sample).unwrap();
    mkfifo(&sample);
    let e = load_error(dir.path());
    assert!(e.contains(".env.sample"), "{e}");
    assert!(e.contains("not a regular file"), "{e}");

    std::fs::remove_file(&sample).unwrap();
    symlink("/dev/stdin", &sample).unwrap();
    let e = load_error(dir.path());
    assert!(e.contains(".env.sample"), "{e}");
}

#[test]
fn a_compose_file_that_is_dev_zero_or_too_large_is_refused() {
    let dir = recipe();
    let compose = dir.path().join("compose.yml");
    std::fs::remove_file(&compose).unwrap();
    symlink("/dev/zero", &compose).unwrap();
    let e = load_error(dir.path());
    assert!(e.contains("compose.yml"), "{e}");
    assert!(e.contains("not a regular file"), "{e}");

    std::fs::remove_file(&compose).unwrap();
    let mut big = String::from("services:\n  app:\n    image: nginx:1.27\n");
    while big.len() <= 2 << 20 {
        big.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    std::fs::write(&compose, big).unwrap();
    let e = load_error(dir.path());
    assert!(e.contains("compose.yml"), "{e}");
    assert!(e.contains("larger than 1 MiB"), "{e}");
}

/// About 200 KB of block mappings nested one level per line.
fn nested_block(len: usize) -> String {
    let mut text = String::new();
    let mut depth = 0;
    while text.len() < len {
        text.push_str(&" ".repeat(depth % 2000));
        text.push_str("k:\n");
        depth += 1;
    }
    text.push_str(&" ".repeat(depth % 2000));
    text.push_str("k: v\n");
    text
}

/// About 200 KB of flow sequences nested in each other.
fn nested_flow(len: usize) -> String {
    format!("x: {}{}\n", "[".repeat(len / 2), "]".repeat(len / 2))
}

#[test]
fn a_deeply_nested_compose_file_is_refused_at_once() {
    for (kind, nested) in [
        (
            "block",
            format!(
                "services:\n  app:\n    image: nginx\n    labels:\n{}",
                indent(&nested_block(200_000), 6)
            ),
        ),
        (
            "flow",
            format!(
                "services:\n  app:\n    image: nginx\n    labels: {}\n",
                nested_flow(200_000).trim_start_matches("x: ").trim_end()
            ),
        ),
    ] {
        let dir = recipe();
        std::fs::write(dir.path().join("compose.yml"), nested).unwrap();
        let e = load_error(dir.path());
        assert!(e.contains("compose.yml"), "{kind}: {e}");
        assert!(e.contains("nested deeper than 64 levels"), "{kind}: {e}");
    }
}

fn indent(text: &str, by: usize) -> String {
    text.lines()
        .map(|l| format!("{}{l}\n", " ".repeat(by)))
        .collect()
}

#[test]
fn a_deeply_nested_enrollment_is_refused_at_once() {
    for (kind, nested) in [
        (
            "block",
            format!(
                "recipes:\n  - name: app\n    upstream: o/app\n    x:\n{}",
                indent(&nested_block(200_000), 6)
            ),
        ),
        (
            "flow",
            format!(
                "recipes: {}\n",
                nested_flow(200_000).trim_start_matches("x: ").trim_end()
            ),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enrollment.yml");
        std::fs::write(&path, nested).unwrap();
        let e = within(
            &format!("the {kind} enrollment"),
            move || match Enrollment::load(&path) {
                Ok(_) => panic!("the enrollment loaded"),
                Err(e) => e.to_string(),
            },
        );
        assert!(e.contains("enrollment.yml"), "{kind}: {e}");
        assert!(e.contains("nested deeper than 64 levels"), "{kind}: {e}");
    }
}

#[test]
fn an_enrollment_or_a_secret_file_that_is_dev_zero_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("enrollment.yml");
    symlink("/dev/zero", &path).unwrap();
    let e = within("the /dev/zero enrollment", move || {
        Enrollment::load(&path).map(|_| ()).map_err(|e| chain(&e))
    })
    .unwrap_err();
    assert!(e.contains("enrollment.yml"), "{e}");
    assert!(e.contains("not a regular file"), "{e}");

    let fifo = dir.path().join("token");
    mkfifo(&fifo);
    for path in [Path::new("/dev/zero").to_path_buf(), fifo] {
        let shown = path.display().to_string();
        let e = within(&format!("the secret file {shown}"), move || {
            canon_shared::settings::read_secret_file(
                "mirror_token",
                &path,
                canon_shared::settings::SecretContent::Token,
            )
            .map(|_| ())
        })
        .unwrap_err();
        assert!(e.contains(&shown), "{e}");
        assert!(e.contains("not a regular file"), "{e}");
    }
}
