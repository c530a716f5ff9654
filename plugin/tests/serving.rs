//! The serving check on the machine's real Docker engine: the fixture recipe joined to a `proxy`
//! network (named for the test, so runs never share it) as Co-op Cloud recipes join traefik's,
//! with busybox in its image for the request container. A route that answers is green with the
//! stage's `serving` field; a route whose port nothing listens on, or whose page answers 404, is
//! red at install naming the route and what came back.
//!
//! These tests need a Docker engine. Without one they FAIL with a message saying so; they are
//! never skipped.

use canon_plugin::runners::docker::DockerRunner;
use canon_plugin::runners::Runner;
use canon_shared::gate::{ServingCheck, ServingVia, StageStatus};
use canon_shared::recipe::{Recipe, Stage};

use crate::support;
use support::engine::{empty, engine, sh, status, PastLint, Upstream};

/// Releases the fixture recipe at `tag` with its app on the test's `proxy` network and in the
/// image with busybox, its compose text passed through `edit`.
fn release_on_proxy(up: &Upstream, tag: &str, edit: impl Fn(String) -> String) -> String {
    let network = proxy_network(up);
    up.release_fixture("recipe", tag, |file, text| {
        if file != "compose.yml" {
            return text;
        }
        let joined = text
            .replace(
                "image: canon-testapp:0.1.0",
                "image: canon-testapp-sh:0.1.0",
            )
            .replace(
                "    networks:\n      - internal\n",
                "    networks:\n      - internal\n      - proxy\n",
            )
            .replace(
                "networks:\n  internal:\n",
                &format!(
                    "networks:\n  internal:\n  proxy:\n    external: true\n    name: {network}\n"
                ),
            );
        assert!(
            joined.contains("- proxy") && joined.contains(&network),
            "{joined}"
        );
        edit(joined)
    })
}

/// The name of the test's `proxy` network.
fn proxy_network(up: &Upstream) -> String {
    format!("{}-proxy", up.name)
}

/// The enrollment: no health probe (the serving check is the one under test), a short timeout.
fn recipe(up: &Upstream, path: Option<&str>) -> Recipe {
    let mut recipe = up.recipe(40, None);
    recipe.health_path = None;
    recipe.serving.path = path.map(str::to_string);
    recipe
}

/// Removes the test's `proxy` network (a run creates a missing external network and leaves it,
/// as traefik's is shared) and checks nothing else is left.
fn finish(up: &Upstream) {
    let out = sh("docker", &["network", "rm", &proxy_network(up)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(up.objects(), empty(), "the run left objects behind");
}

#[test]
fn a_route_that_answers_is_green_with_the_request_in_the_report() {
    engine();
    let up = Upstream::new("srva");
    let c1 = release_on_proxy(&up, "1.0.0+0.1.0", |t| t);
    let ctx = up.ctx(&recipe(&up, Some("/version")), "1.0.0+0.1.0", &c1, "1");
    let results = DockerRunner::default()
        .run(&ctx)
        .expect("the run reports stages")
        .past_lint();
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
    for stage in [&results[0], &results[3]] {
        let serving = stage.serving.clone().expect("the serving check ran");
        let want_host = serving.host.clone();
        assert!(
            want_host.starts_with(&format!("cold-{}", up.name))
                && want_host.ends_with(".canon.localhost"),
            "{serving:?}"
        );
        assert_eq!(
            serving,
            ServingCheck {
                host: want_host,
                path: "/version".into(),
                port: 8080,
                via: ServingVia::Direct,
                status: 200,
            }
        );
        assert!(
            stage
                .notes
                .iter()
                .any(|n| n.starts_with("serving: router `")
                    && n.contains("answered 200 to GET /version")),
            "{:?}",
            stage.notes
        );
        assert!(
            !stage.notes.iter().any(|n| n.contains("docker_gwbridge")),
            "sent from inside the network: {:?}",
            stage.notes
        );
    }
    finish(&up);
}

#[test]
fn a_route_to_a_port_nothing_listens_on_is_red_at_install_naming_it() {
    engine();
    let up = Upstream::new("srvb");
    let c1 = release_on_proxy(&up, "1.0.0+0.1.0", |t| {
        t.replace("server.port=8080", "server.port=8099")
    });
    let ctx = up.ctx(&recipe(&up, None), "1.0.0+0.1.0", &c1, "1");
    let results = DockerRunner::default()
        .run(&ctx)
        .expect("the run reports stages")
        .past_lint();
    assert_eq!(results[0].name, Stage::Install);
    assert_eq!(results[0].status, StageStatus::Failed, "{results:#?}");
    let reason = results[0].reason.clone().unwrap_or_default();
    assert!(
        reason.contains("serving check (expecting 200, 301, 302): service `app`, router `cold-")
            && reason.contains("GET / with Host: cold-")
            && reason.contains(".canon.localhost on port 8099: ")
            && reason.contains("refused the connection"),
        "{reason}"
    );
    assert_eq!(results[0].serving, None);
    finish(&up);
}

#[test]
fn a_page_that_answers_404_is_red_with_the_status() {
    engine();
    let up = Upstream::new("srvc");
    let c1 = release_on_proxy(&up, "1.0.0+0.1.0", |t| t);
    // The fixture app answers 404 on `/`: a visitor would get an error.
    let ctx = up.ctx(&recipe(&up, None), "1.0.0+0.1.0", &c1, "1");
    let results = DockerRunner::default()
        .run(&ctx)
        .expect("the run reports stages")
        .past_lint();
    assert_eq!(results[0].status, StageStatus::Failed, "{results:#?}");
    let reason = results[0].reason.clone().unwrap_or_default();
    assert!(
        reason.contains("GET / with Host: cold-")
            && reason.contains("on port 8080: ")
            && reason.contains("answered 404"),
        "{reason}"
    );
    finish(&up);
}
