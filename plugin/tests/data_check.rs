//! The enrollment's `data_check` on the real Docker engine: a fixture app that serves a small
//! store from memory (canon-testapp's `/items`), backed up as a dump that a backupbot pre-hook
//! writes, and restored by a post-hook that loads the dump back. Its broken variant restores the
//! dump file and never loads it: the file-level check passes it, the `data_check` does not.
//!
//! These tests need a Docker engine. Without one they FAIL with a message saying so; they are
//! never skipped.

use std::path::Path;

use canon_plugin::runners::docker::DockerRunner;
use canon_plugin::runners::ladder::RestoreProof;
use canon_plugin::runners::warm::RunOutput;
use canon_plugin::runners::Runner;
use canon_shared::gate::StageStatus;
use canon_shared::recipe::{Enrollment, Recipe, Stage};

use crate::support;
use support::engine::{empty, engine, status, PastLint, Upstream};

/// The fixture's whole-volume backup label, replaced below by a dump and its hooks.
const WHOLE_VOLUME: &str = "        - \"backupbot.backup.path=/data\"\n";

/// The backup of the store: the pre-hook dumps it into `dump.txt`, the one path backed up.
const DUMP: &str = r#"        - "backupbot.backup.volumes.data.path=dump.txt"
        - "backupbot.backup.pre-hook=touch $$DATA_DIR/store.txt && cp $$DATA_DIR/store.txt $$DATA_DIR/dump.txt"
"#;

/// The restore post-hook that loads the restored dump into the store the app serves from.
const LOAD: &str = r#"        - "backupbot.restore.post-hook=cp $$DATA_DIR/dump.txt $$DATA_DIR/store.txt && /canon-testapp get /reload"
"#;

/// The `data_check` of the enrollment: a row added through the app before the backup, removed
/// after it, and served again after the restore.
const DATA_CHECK: &str = r#"    data_check:
      seed: /canon-testapp get '/add?item=seeded-before-backup'
      change: /canon-testapp get '/remove?item=seeded-before-backup'
      verify: |
        items=$(/canon-testapp get /items)
        echo "the app serves: ${items:-nothing}"
        echo "$items" | grep -qx seeded-before-backup
"#;

/// Releases the fixture recipe with the store's backup labels (with the loading post-hook when
/// `loads` is true) in the shell image, its hooks' commands need a shell; returns the commit.
fn release_store_app(up: &Upstream, loads: bool) -> String {
    up.release_fixture("recipe", "1.0.0+0.1.0", |name, text| {
        if name != "compose.yml" {
            return text;
        }
        assert!(text.contains(WHOLE_VOLUME), "the fixture's labels changed");
        let labels = if loads {
            format!("{DUMP}{LOAD}")
        } else {
            DUMP.to_string()
        };
        text.replace("canon-testapp:0.1.0", "canon-testapp-sh:0.1.0")
            .replace(WHOLE_VOLUME, &labels)
    })
}

/// The recipe's enrollment, with the `data_check` when `checked` is true.
fn enrolled(up: &Upstream, checked: bool) -> Recipe {
    let mut yaml = up.enrollment_yaml(Some(90), None, 2);
    if checked {
        yaml.push_str(DATA_CHECK);
    }
    let e = Enrollment::parse(Path::new("enrollment.yml"), &yaml).unwrap();
    e.recipes[0].clone()
}

/// Runs the recipe cold as build `build`; checks the run left nothing behind.
fn run(up: &Upstream, recipe: &Recipe, commit: &str, build: &str) -> RunOutput {
    let ctx = up.ctx(recipe, "1.0.0+0.1.0", commit, build);
    let out = DockerRunner::default()
        .run(&ctx)
        .expect("the run reports stages");
    assert_eq!(up.objects(), empty(), "the cold run left objects behind");
    out
}

#[test]
fn a_restore_that_loads_the_dump_back_into_the_app_is_proven_on_the_apps_data() {
    engine();
    let up = Upstream::new("cfdl");
    let commit = release_store_app(&up, true);
    let out = run(&up, &enrolled(&up, true), &commit, "1");
    assert_eq!(out.restore_proof, Some(RestoreProof::AppData));
    let results = out.past_lint();
    assert_eq!(
        status(&results),
        vec![
            (Stage::Install, StageStatus::Passed),
            (Stage::Upgrade, StageStatus::Skipped),
            (Stage::Backup, StageStatus::Passed),
            (Stage::Restore, StageStatus::Passed),
            (Stage::Custom, StageStatus::Skipped),
        ],
        "{results:#?}"
    );
    assert!(
        results[3]
            .notes
            .iter()
            .any(|n| n
                == "restore proven on the app's data: data_check.verify passed after the restore"),
        "{results:#?}"
    );
}

#[test]
fn a_restore_that_only_copies_the_dump_back_passes_on_files_and_fails_the_data_check() {
    engine();
    let up = Upstream::new("cfdc");
    let commit = release_store_app(&up, false);

    // The file-level check alone: the dump is back in the volume, so the restore passes.
    let out = run(&up, &enrolled(&up, false), &commit, "1");
    assert_eq!(out.restore_proof, Some(RestoreProof::Files));
    let results = out.past_lint();
    assert_eq!(results[3].name, Stage::Restore);
    assert_eq!(results[3].status, StageStatus::Passed, "{results:#?}");
    assert!(
        results[3].notes.iter().any(
            |n| n == "restore proven at the file level only: the enrollment sets no data_check"
        ),
        "{results:#?}"
    );

    // The data_check: the app never loaded the dump, so the seeded row is not what it serves.
    let out = run(&up, &enrolled(&up, true), &commit, "2");
    assert_eq!(out.restore_proof, None);
    let results = out.past_lint();
    assert_eq!(
        status(&results)[..4],
        [
            (Stage::Install, StageStatus::Passed),
            (Stage::Upgrade, StageStatus::Skipped),
            (Stage::Backup, StageStatus::Passed),
            (Stage::Restore, StageStatus::Failed),
        ],
        "{results:#?}"
    );
    let reason = results[3].reason.clone().unwrap_or_default();
    for want in [
        "data_check.verify in service `app`",
        "failed with exit code 1",
        "its output ends: the app serves: nothing",
    ] {
        assert!(reason.contains(want), "{want:?} in {reason}");
    }
}
