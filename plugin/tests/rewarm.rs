//! `canon-plugin canonical rewarm` on the real Docker engine: a host that lost its warm volumes
//! gets the warm canonical back from the canonical's tag, with the canonical's data, no hold
//! left behind and the canonical unchanged; a warm run afterwards starts from it.
//!
//! These tests need a Docker engine. Without one they FAIL with a message saying so; they are
//! never skipped. Each test uses its own recipe name.

use std::process::{Command, Output};

use canon_plugin::runners::docker::DockerRunner;
use canon_plugin::runners::warm::warm_volumes;
use canon_plugin::settings::ClaimedCommit;
use canon_plugin::tag_mode::run_tag_mode;
use canon_shared::gate::{StageStatus, TestedRef};
use canon_shared::recipe::{RecipeName, Stage};
use canon_shared::state::holds::WarmHolds;
use canon_shared::state::StateDir;

use crate::support;
use support::engine::{engine, ok, Upstream, MARKER_CHECK};

const BASE: &str = "1.0.0+0.1.0";

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn rewarm_gives_a_host_that_lost_its_warm_volumes_the_canonicals_data_back() {
    engine();
    let up = Upstream::new("crwm");
    let recipe = up.recipe(90, Some(MARKER_CHECK));
    let name = RecipeName::parse(&up.name).unwrap();
    up.release(BASE, "1.0.0", false);
    up.sync_mirror();
    let settings = up.run_settings(
        &recipe,
        TestedRef::Tag(BASE.into()),
        "1",
        &[("EXPECT_MARKER", "1.0.0")],
    );
    let first = run_tag_mode(&settings, &DockerRunner::default()).expect("the tag run");
    assert!(first.promoted(), "{:#?}", first.report);
    let warm_volume = format!("warm-{}_data", up.name);
    assert_eq!(up.volume_file(&warm_volume, "installed"), "1.0.0");
    let canonical = StateDir::new(up.state()).read_canonical(&name).unwrap();
    let history = StateDir::new(up.state()).read_history(&name).unwrap();

    // The host loses its warm volumes: warm runs have nothing to start from.
    ok("docker", &["volume", "rm", &warm_volume]);
    let lost = warm_volumes(&name).expect_err("no warm volumes");
    assert!(lost.contains("has no volumes on this host"), "{lost}");

    let enrollment = up.work.join("enrollment.yml");
    std::fs::write(
        &enrollment,
        up.enrollment_yaml(Some(90), Some(MARKER_CHECK), 2),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_canon-plugin"))
        .args([
            "canonical",
            "rewarm",
            "--runner",
            "docker",
            "--recipe",
            &up.name,
        ])
        .arg("--config")
        .arg(&enrollment)
        .arg("--state-dir")
        .arg(up.state())
        .arg("--work-dir")
        .arg(up.work.join("runs"))
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!(
            "canon: deployed {} {BASE} (commit {}) again as the warm canonical",
            up.name,
            canonical.as_ref().unwrap().commit
        )),
        "{}",
        text(&out)
    );

    // The warm canonical's data is back, installed by the canonical's tag, settled (no `.prev`
    // copy, no marker) and held by nobody; the records did not change.
    assert_eq!(up.volume_file(&warm_volume, "installed"), "1.0.0");
    assert_eq!(warm_volumes(&name), Ok(vec![warm_volume.clone()]));
    let status = WarmHolds::new(&up.state(), &name).status().unwrap();
    assert!(status.is_idle(), "{status:?}");
    let state = StateDir::new(up.state());
    assert_eq!(state.read_canonical(&name).unwrap(), canonical);
    assert_eq!(state.read_history(&name).unwrap(), history);

    // A warm run starts from it: the head reads the marker the canonical's install wrote.
    let head = up.branch("feature", "2.0.0-pr", false);
    up.sync_mirror();
    let mut settings = up.run_settings(
        &recipe,
        TestedRef::Ref("feature".into()),
        "2",
        &[("EXPECT_MARKER", "1.0.0")],
    );
    settings.claimed_commits = vec![ClaimedCommit {
        source: "commit",
        commit: head.parse().unwrap(),
    }];
    let warm = run_tag_mode(&settings, &DockerRunner::default()).expect("the ref run");
    let r = &warm.report;
    assert_eq!((r.green, r.exit_code), (true, 0), "{r:#?}");
    let install = r.stages.iter().find(|s| s.name == Stage::Install).unwrap();
    assert_eq!(install.status, StageStatus::Skipped, "{install:?}");
    assert!(
        install
            .reason
            .as_deref()
            .is_some_and(|why| why.starts_with(&format!("reattached the warm canonical {BASE}"))),
        "{install:?}"
    );
    assert_eq!(
        r.warm.as_ref().map(|w| w.volumes[0].from.clone()),
        Some(warm_volume)
    );
    up.drop_warm();
}
