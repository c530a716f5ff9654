//! What `abra app deploy` adds to a recipe's `app` service before it deploys, done the same way
//! here: the recipe, chaos and version labels, and the app env exposed to the container
//! (abra's "expose all env" step), so config templates and entrypoints see `.env` values that
//! the service's `environment:` does not list (traefik's `traefik.yml.tmpl` reads
//! `{{ env "LETS_ENCRYPT_EMAIL" }}` this way).
//!
//! abra's deploy, as a program calling abra's own packages shows it: `SetRecipeLabel`,
//! `SetChaosLabel`, `SetChaosVersionLabel` (chaos deploys only), `SetVersionLabel`, then
//! `ExposeAllEnv(stack, compose, env, "<recipe>:<version>")`. Each acts on the service named
//! `app` only, and the exposed env adds only keys the service's environment does not set.
//! Pure functions: the compose override that carries the result is written by
//! [`super::compose_override::label_override`].

use std::collections::BTreeMap;

use crate::recipe::files::RecipeFiles;

/// The compose service abra labels and exposes the env to.
pub const APP_SERVICE: &str = "app";

/// What one deploy deploys, as abra labels it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedVersion {
    /// The release tag (or, for a chaos deploy of a ref, its name).
    pub version: String,
    /// For a chaos deploy (a ref that is not a release tag): the commit's short hash, abra's
    /// chaos version. `None` for a release.
    pub chaos_version: Option<String>,
}

impl DeployedVersion {
    /// Returns a release deploy of `version`.
    pub fn release(version: &str) -> Self {
        DeployedVersion {
            version: version.to_string(),
            chaos_version: None,
        }
    }

    /// Returns a chaos deploy of the ref `name` at `commit` (abra's chaos version is the first
    /// 8 hex digits of the commit).
    pub fn chaos(name: &str, commit: &str) -> Self {
        DeployedVersion {
            version: name.to_string(),
            chaos_version: Some(commit.chars().take(8).collect()),
        }
    }
}

/// Returns the deploy labels abra sets on the `app` service of `stack`:
/// `coop-cloud.<stack>.recipe=<recipe>`, `coop-cloud.<stack>.chaos=true|false`,
/// `coop-cloud.<stack>.chaos-version=<short commit>` on a chaos deploy, and
/// `coop-cloud.<stack>.version`: the release deployed, or on a chaos deploy the label the
/// compose files already carry (`compose_version`; abra keeps it), none when they carry none.
pub fn abra_labels(
    stack: &str,
    recipe: &str,
    deployed: &DeployedVersion,
    compose_version: Option<&str>,
) -> BTreeMap<String, String> {
    let key = |name: &str| format!("coop-cloud.{stack}.{name}");
    let mut labels = BTreeMap::from([
        (key("recipe"), recipe.to_string()),
        (key("chaos"), deployed.chaos_version.is_some().to_string()),
    ]);
    match &deployed.chaos_version {
        Some(commit) => {
            labels.insert(key("chaos-version"), commit.clone());
            if let Some(v) = compose_version {
                labels.insert(key("version"), v.to_string());
            }
        }
        None => {
            labels.insert(key("version"), deployed.version.clone());
        }
    }
    labels
}

/// Returns the env abra's expose-all-env step adds to the `app` service: every key of the app
/// env ([`RecipeFiles::app_env_keys`]) that the service's `environment:` does not set, with its
/// value; `TYPE` and `RECIPE` carry `<recipe>:<version>`, as abra writes them into the app's
/// `.env` at deploy. Empty when the recipe has no `app` service.
pub fn exposed_env(
    files: &RecipeFiles,
    recipe: &str,
    deployed: &DeployedVersion,
) -> BTreeMap<String, String> {
    let Some(app) = files.facts.services.iter().find(|s| s.name == APP_SERVICE) else {
        return BTreeMap::new();
    };
    files
        .app_env_keys
        .iter()
        .filter(|k| !app.environment.contains(k))
        .filter_map(|k| {
            let value = match k.as_str() {
                "TYPE" | "RECIPE" => format!("{recipe}:{}", deployed.version),
                _ => files.env.get(k)?.clone(),
            };
            Some((k.clone(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn pairs(p: &[(&str, &str)]) -> BTreeMap<String, String> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_release_deploy_is_labelled_with_its_recipe_and_version_and_not_chaos() {
        let got = abra_labels(
            "s",
            "traefik",
            &DeployedVersion::release("1.2.0+2.4.8"),
            Some("1.2.0+2.4.8"),
        );
        assert_eq!(
            got,
            pairs(&[
                ("coop-cloud.s.recipe", "traefik"),
                ("coop-cloud.s.chaos", "false"),
                ("coop-cloud.s.version", "1.2.0+2.4.8"),
            ])
        );
    }

    #[test]
    fn a_chaos_deploy_keeps_the_compose_version_and_adds_the_short_commit() {
        let chaos = DeployedVersion::chaos("main", "0123456789abcdef0123456789abcdef01234567");
        assert_eq!(
            abra_labels("s", "r", &chaos, Some("1.0.0+1")),
            pairs(&[
                ("coop-cloud.s.recipe", "r"),
                ("coop-cloud.s.chaos", "true"),
                ("coop-cloud.s.chaos-version", "01234567"),
                ("coop-cloud.s.version", "1.0.0+1"),
            ])
        );
        let unlabelled = abra_labels("s", "r", &chaos, None);
        assert!(!unlabelled.contains_key("coop-cloud.s.version"));
    }

    #[test]
    fn the_app_env_is_exposed_to_the_app_service_except_what_its_environment_sets() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(
            dir.join(".env.sample"),
            "TYPE=traefik\nDOMAIN=x.example\nLETS_ENCRYPT_EMAIL=ops@example.org\nLOG_LEVEL=INFO\n",
        )
        .unwrap();
        std::fs::write(dir.join("abra.sh"), "export TRAEFIK_YML_VERSION=v4\n").unwrap();
        std::fs::write(
            dir.join("compose.yml"),
            "services:\n  app:\n    image: traefik\n    environment: [LOG_LEVEL]\n  other:\n    image: x\n",
        )
        .unwrap();
        let overrides = pairs(&[("STACK_NAME", "s"), ("DOMAIN", "s.canon.localhost")]);
        let mut files = RecipeFiles::load(Path::new(dir), "s", &overrides).unwrap();
        files.app_env_keys.push("UNSET".into());
        let got = exposed_env(&files, "traefik", &DeployedVersion::release("1.0.0+2.4.8"));
        assert_eq!(
            got,
            pairs(&[
                ("DOMAIN", "s.canon.localhost"),
                ("LETS_ENCRYPT_EMAIL", "ops@example.org"),
                ("TRAEFIK_YML_VERSION", "v4"),
                ("TYPE", "traefik:1.0.0+2.4.8"),
            ]),
            "LOG_LEVEL stays the service's own; STACK_NAME is canon's, not the app env's; a \
             key with no value in the env is left out"
        );
    }
}
