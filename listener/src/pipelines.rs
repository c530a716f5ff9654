//! The pipelines canon serves to Drone's configuration extension (`/drone/config`): which one a
//! build gets, and its YAML rendered from the listener's settings.
//!
//! A recipe mirror is a faithful copy of upstream and carries no canon pipeline, and the
//! repository builds are started in need not carry one either: Drone asks the listener, and the
//! listener answers with the same pipelines `.drone.yml` and `examples/recipe-mirror.drone.yml`
//! show (a test holds them equal). Pure: the route decides from the request, this file only
//! from facts.

use std::path::Path;

use crate::config::PipelineSettings;

/// What a repository Drone asks about is to canon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoRole {
    /// The mirror of an enrolled recipe.
    Mirror,
    /// A repository canon starts tag builds in (`CANON_DRONE_REPO`, or an enrolled recipe's
    /// `drone_repo`), with its own `.drone.yml` for everything else.
    Builds,
    /// Both at once (a recipe whose `drone_repo` is its mirror).
    MirrorAndBuilds,
}

/// One of canon's pipelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pipeline {
    /// `canonical`: cold CI of one recipe at one release tag (a `custom` build the listener or the
    /// sweep starts, with `CANON_RECIPE`, `CANON_TAG` and `CANON_COMMIT`).
    Canonical,
    /// `weekly-sweep`: the cron job's sweep over every enrolled recipe.
    Sweep,
    /// `recipe`: a pull request or a branch push of a mirror, run warm.
    Warm,
}

/// Returns the pipeline a build of `event` in a repository of `role` gets; `None` lets the
/// repository's own `.drone.yml` be used.
///
/// A mirror always gets canon's warm pipeline, even for events it does not run on (a tag the
/// mirror sync pushed): the recipe's own `.drone.yml` is upstream's, not canon's, and is never
/// run with canon's host mounts.
pub fn pipeline_for(role: RepoRole, event: &str) -> Option<Pipeline> {
    match (event, role) {
        ("custom", _) => Some(Pipeline::Canonical),
        ("cron", _) => Some(Pipeline::Sweep),
        (_, RepoRole::Mirror | RepoRole::MirrorAndBuilds) => Some(Pipeline::Warm),
        (_, RepoRole::Builds) => None,
    }
}

/// What a pipeline is rendered from besides the [`PipelineSettings`].
#[derive(Debug, Clone, Copy)]
pub struct RenderContext<'a> {
    /// The branch the sweep starts builds on (`CANON_DRONE_BRANCH`).
    pub drone_branch: &'a str,
    /// This listener's public URL (`CANON_PUBLIC_URL`): the sweep reports to it and asks it
    /// about missed webhooks.
    pub listener_url: Option<&'a str>,
}

/// Returns `text` as a YAML double-quoted scalar (JSON's string syntax is YAML's).
fn q(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

/// Returns the `volumes:` of a pipeline or a step (`host`: the pipeline's, with host paths).
fn volumes(s: &PipelineSettings, indent: &str, host: bool) -> String {
    let config_dir = s.enrollment.parent().unwrap_or(Path::new("/"));
    let mut out = format!("{indent}volumes:\n");
    for (name, path) in [
        ("state", s.state_dir.as_path()),
        ("config", config_dir),
        ("docker", Path::new("/var/run/docker.sock")),
    ] {
        let path = q(&path.to_string_lossy());
        if host {
            out.push_str(&format!(
                "{indent}  - name: {name}\n{indent}    host:\n{indent}      path: {path}\n"
            ));
        } else {
            out.push_str(&format!(
                "{indent}  - name: {name}\n{indent}    path: {path}\n"
            ));
        }
    }
    out
}

/// Returns the `from_secret` settings for `names`.
fn secrets(s: &PipelineSettings, names: &[&str]) -> String {
    names
        .iter()
        .map(|name| {
            format!(
                "      {name}:\n        from_secret: {}\n",
                q(&format!("{}{name}", s.secret_prefix))
            )
        })
        .collect()
}

/// Renders `pipeline` as one YAML document.
pub fn render(pipeline: Pipeline, s: &PipelineSettings, ctx: RenderContext<'_>) -> String {
    let (name, trigger, extra, step, settings, secret_names): (_, _, _, _, String, &[&str]) =
        match pipeline {
            Pipeline::Canonical => (
                "canonical",
                "trigger:\n  event: [custom]\n",
                "concurrency:\n  limit: 2\n",
                "canonical",
                "      recipe: ${CANON_RECIPE}\n      tag: ${CANON_TAG}\n      commit: ${CANON_COMMIT}\n      runner: docker\n      timeout: 60m\n"
                    .to_string(),
                &["upstream_token", "mirror_token", "ssh_key"],
            ),
            Pipeline::Sweep => (
                "weekly-sweep",
                "trigger:\n  event: [cron]\n  cron: [weekly]\n",
                "",
                "sweep",
                {
                    let mut t = format!("      mode: sweep\n      jobs: 2\n      drone_branch: {}\n", q(ctx.drone_branch));
                    if let Some(url) = ctx.listener_url {
                        t.push_str(&format!("      listener_url: {}\n", q(url)));
                    }
                    t
                },
                if ctx.listener_url.is_some() {
                    &["drone_token", "upstream_token", "mirror_token", "ssh_key", "listener_token"]
                } else {
                    &["drone_token", "upstream_token", "mirror_token", "ssh_key"]
                },
            ),
            Pipeline::Warm => (
                "recipe",
                "trigger:\n  event: [pull_request, push]\n",
                "",
                "warm-run",
                "      runner: docker\n      timeout: 60m\n".to_string(),
                &["mirror_token", "ssh_key"],
            ),
        };
    let mut out = format!("kind: pipeline\ntype: docker\nname: {name}\n\n{trigger}");
    if !extra.is_empty() {
        out.push('\n');
        out.push_str(extra);
    }
    out.push('\n');
    out.push_str(&volumes(s, "", true));
    out.push_str(&format!(
        "\nsteps:\n  - name: {step}\n    image: {}\n    pull: if-not-exists\n",
        q(&s.image)
    ));
    out.push_str(&volumes(s, "    ", false));
    out.push_str("    settings:\n");
    out.push_str(&format!(
        "      config: {}\n      state_dir: {}\n",
        q(&s.enrollment.to_string_lossy()),
        q(&s.state_dir.to_string_lossy())
    ));
    out.push_str(&settings);
    out.push_str(&secrets(s, secret_names));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mirror_never_falls_back_to_its_own_pipeline() {
        for event in ["push", "pull_request", "tag", "promote", "rollback"] {
            assert_eq!(
                pipeline_for(RepoRole::Mirror, event),
                Some(Pipeline::Warm),
                "{event}"
            );
        }
        assert_eq!(
            pipeline_for(RepoRole::Mirror, "custom"),
            Some(Pipeline::Canonical)
        );
    }

    #[test]
    fn the_builds_repository_keeps_its_own_pipeline_except_for_canon_s_builds() {
        assert_eq!(pipeline_for(RepoRole::Builds, "push"), None);
        assert_eq!(pipeline_for(RepoRole::Builds, "tag"), None);
        assert_eq!(pipeline_for(RepoRole::Builds, "pull_request"), None);
        assert_eq!(
            pipeline_for(RepoRole::Builds, "custom"),
            Some(Pipeline::Canonical)
        );
        assert_eq!(
            pipeline_for(RepoRole::Builds, "cron"),
            Some(Pipeline::Sweep)
        );
        assert_eq!(
            pipeline_for(RepoRole::MirrorAndBuilds, "push"),
            Some(Pipeline::Warm)
        );
    }

    #[test]
    fn settings_reach_the_yaml_quoted() {
        let s = PipelineSettings {
            image: "registry.example/canon-plugin:9.9.9".into(),
            state_dir: "/srv/canon state".into(),
            enrollment: "/srv/conf/enrollment.yml".into(),
            secret_prefix: "canon_".into(),
        };
        let yaml = render(
            Pipeline::Sweep,
            &s,
            RenderContext {
                drone_branch: "trunk: #1",
                listener_url: Some("https://canon.example"),
            },
        );
        let v: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        let step = &v["steps"][0];
        assert_eq!(step["image"], "registry.example/canon-plugin:9.9.9");
        assert_eq!(step["settings"]["drone_branch"], "trunk: #1");
        assert_eq!(step["settings"]["state_dir"], "/srv/canon state");
        assert_eq!(step["settings"]["config"], "/srv/conf/enrollment.yml");
        assert_eq!(step["settings"]["listener_url"], "https://canon.example");
        assert_eq!(
            step["settings"]["listener_token"]["from_secret"],
            "canon_listener_token"
        );
        assert_eq!(v["volumes"][1]["host"]["path"], "/srv/conf");
        assert_eq!(step["volumes"][0]["path"], "/srv/canon state");
    }
}
