//! The docker runner's children on the real engine, with a sentinel in every credential
//! variable of both binaries: a release whose `.env.sample` sets `PATH=.:/usr/bin:/bin` and
//! `DOCKER_HOST`, and that ships an executable `docker` at its root, still deploys with the
//! docker CLI canon was started with, which finds no sentinel in its own environment nor in
//! canon's (`/proc/$PPID/environ`).

use crate::child_env::{no_sentinel, run, stub};
use crate::support::Fixture;

use std::os::unix::fs::PermissionsExt;

#[test]
fn the_docker_runners_docker_finds_no_credential_and_a_recipe_path_never_picks_it() {
    crate::support::engine::engine();
    let f = Fixture::new();
    let marker = f.dir.path().join("planted-docker-ran");
    std::fs::write(
        f.work.join(".env.sample"),
        "TYPE=app\nPATH=.:/usr/bin:/bin\nDOCKER_HOST=tcp://127.0.0.1:9\nLD_PRELOAD=/nonexistent.so\n",
    )
    .unwrap();
    let planted = f.work.join("docker");
    std::fs::write(
        &planted,
        format!("#!/bin/sh\ntouch '{}'\nexit 1\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o755)).unwrap();
    canon_testkit::git::git(&f.work, &["add", "."]);
    f.release("1.0.0+1.0", true);
    let real = crate::support::engine::ok("sh", &["-c", "command -v docker"]);
    let bin = f.dir.path().join("bin");
    let log = f.dir.path().join("docker-env.log");
    // Every docker command goes to the real CLI, except the deploy itself: recorded, then
    // refused, so the run ends red at once and tears down what it made.
    stub(
        &bin,
        "docker",
        &log,
        &format!(
            "if [ \"$1 $2\" = 'stack deploy' ]; then exit 1; fi\nexec '{}' \"$@\"",
            real.trim()
        ),
    );
    let out = run(&f, "1.0.0+1.0", &["--runner", "docker"], Some(&bin));
    no_sentinel(&log, &out);
    let seen = std::fs::read_to_string(&log).unwrap();
    assert!(
        seen.contains("== docker stack deploy"),
        "the deploy never ran the docker on canon's PATH:\n{}\n{seen}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in seen.lines() {
        assert!(
            !line.starts_with("DOCKER_HOST=tcp://127.0.0.1:9")
                && !line.starts_with("LD_PRELOAD=")
                && line != "PATH=.:/usr/bin:/bin",
            "a recipe variable reached docker: {line}"
        );
    }
    assert!(!marker.exists(), "the recipe's own `docker` ran");
}
