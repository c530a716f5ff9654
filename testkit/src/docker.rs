//! The real Docker engine under the runner tests: fail loudly when none answers (a test that
//! needs Docker is never skipped), make it a single-node swarm when it is not one yet, and build
//! the fixture recipe's image locally (no registry is reachable).

use std::process::Command;
use std::time::Duration;

use crate::process::stdout_within;

/// The fixture recipe's image, as `scripts/build-fixture-image.sh` tags it.
pub const FIXTURE_IMAGE: &str = "canon-testapp:0.1.0";

/// Panics unless a Docker engine answers and is (or becomes) a swarm manager; then builds the
/// fixture image (cached by content hash) and returns its name.
pub fn swarm_with_fixture_image() -> String {
    let state = swarm_state();
    if state != "active" {
        let init = Command::new("docker")
            .args(["swarm", "init", "--advertise-addr", "127.0.0.1"])
            .output()
            .expect("docker runs");
        assert_eq!(
            swarm_state(),
            "active",
            "the engine refuses swarm mode: {}",
            String::from_utf8_lossy(&init.stderr)
        );
    }
    let script = crate::workspace::root().join("scripts/build-fixture-image.sh");
    let image = stdout_within(Command::new("bash").arg(script), Duration::from_secs(600));
    assert_eq!(image, FIXTURE_IMAGE);
    image
}

fn swarm_state() -> String {
    let out = Command::new("docker")
        .args(["info", "--format", "{{.Swarm.LocalNodeState}}"])
        .output()
        .unwrap_or_else(|e| panic!("these tests need the docker CLI and a Docker engine: {e}"));
    assert!(
        out.status.success(),
        "these tests need a running Docker engine, and `docker info` failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
