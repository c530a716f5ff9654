//! The recipe lint: the checks Co-op Cloud's own `abra recipe lint` makes before anyone deploys,
//! each with a stable id, as the first stage of every run and in `recipe plan`.
//!
//! Error-level findings fail the run (an `.env.sample`, an `app` service, traefik routing, an
//! image on every service, versions of configs and secrets set where abra reads them, annotated
//! release tags, secret and config names Docker takes); warnings are notes (a service without a
//! healthcheck, an image without a tag or on `latest`). The enrollment may turn single rules off
//! per recipe (`lint_skip`); what was turned off is reported. `docs/lint.md` describes each rule
//! and the abra rule it matches.
//!
//! The checkout is read as abra would deploy it at `<recipe>.example.com` (abra's stack name for
//! that domain), so a name that is too long here is too long under abra too. Reads files and the
//! checkout's git tags (git2); runs nothing.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use canon_shared::version::ReleaseVersion;

use super::compose::Compose;
use super::env_sample::{parse_abra_sh, EnvFile};
use super::files::RecipeFiles;
use super::names::{abra_stack_name, DOCKER_MAX_OBJECT_NAME};
use super::plan::app_env;

/// How much a finding weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Fails the run.
    Error,
    /// A note in the report.
    Warning,
}

impl Level {
    /// Returns the level as the report and the JSON name it (`error`, `warning`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
        }
    }
}

/// One lint rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Its stable id (what `lint_skip` names).
    pub id: &'static str,
    /// How much a finding of it weighs.
    pub level: Level,
    /// What it checks, one line.
    pub summary: &'static str,
    /// The `abra recipe lint` rule it matches, when there is one.
    pub abra: Option<&'static str>,
}

/// Every rule, in the order they are checked.
pub const RULES: &[Rule] = &[
    Rule {
        id: "env-sample",
        level: Level::Error,
        summary: "the recipe has an .env.sample",
        abra: Some("R008"),
    },
    Rule {
        id: "compose",
        level: Level::Error,
        summary: "the compose files can be read for an app at <recipe>.example.com",
        abra: None,
    },
    Rule {
        id: "app-service",
        level: Level::Error,
        summary: "one service is called `app`",
        abra: Some("R009"),
    },
    Rule {
        id: "traefik-enabled",
        level: Level::Error,
        summary: "the `app` service has the deploy label traefik.enable=true",
        abra: Some("R010"),
    },
    Rule {
        id: "service-image",
        level: Level::Error,
        summary: "every service names an image",
        abra: Some("R011"),
    },
    Rule {
        id: "versions-vendored",
        level: Level::Error,
        summary: "every *_VERSION a config or secret name uses is exported at the top of abra.sh or set in .env.sample",
        abra: Some("R012"),
    },
    Rule {
        id: "annotated-tags",
        level: Level::Error,
        summary: "every release tag of the checkout is an annotated tag",
        abra: Some("R014"),
    },
    Rule {
        id: "name-length",
        level: Level::Error,
        summary: "every secret and config name fits Docker's 64 characters",
        abra: Some("R015"),
    },
    Rule {
        id: "healthcheck",
        level: Level::Warning,
        summary: "every service has a healthcheck",
        abra: Some("R002"),
    },
    Rule {
        id: "image-tag",
        level: Level::Warning,
        summary: "every image names a tag other than `latest`",
        abra: Some("R003, R004"),
    },
];

/// Returns the rule with id `id`.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// One thing the lint found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The rule's id.
    pub rule: &'static str,
    /// Its level.
    pub level: Level,
    /// What is wrong, naming the file, service or name.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}]: {}",
            self.level.as_str(),
            self.rule,
            self.message
        )
    }
}

/// What the lint of one checkout found, after the enrollment's `lint_skip`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LintReport {
    /// What was found, in rule order.
    pub findings: Vec<Finding>,
    /// The rules the enrollment turned off.
    pub skipped: Vec<String>,
}

impl LintReport {
    /// Returns the error-level findings: the ones that fail a run.
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.level == Level::Error)
    }

    /// Returns the warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.level == Level::Warning)
    }

    /// Returns true when no error-level finding is left.
    pub fn passed(&self) -> bool {
        self.errors().next().is_none()
    }

    /// Returns the findings as the JSON `recipe plan --json` prints.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.findings
                .iter()
                .map(|f| {
                    serde_json::json!({
                        "rule": f.rule,
                        "level": f.level.as_str(),
                        "message": f.message,
                    })
                })
                .collect(),
        )
    }

    /// Returns the note that says which rules were turned off, when any were.
    pub fn skipped_note(&self) -> Option<String> {
        (!self.skipped.is_empty()).then(|| {
            format!(
                "lint rules turned off by the enrollment: {}",
                self.skipped.join(", ")
            )
        })
    }
}

/// Lints the checkout `dir` of `recipe`, without the rules `skip` names. An id in `skip` that
/// names no rule is an error finding of its own, so a typo never turns nothing off silently.
pub fn lint(dir: &Path, recipe: &str, skip: &[String]) -> LintReport {
    let mut findings = check(dir, recipe);
    let mut skipped = Vec::new();
    for id in skip {
        if rule(id).is_some() {
            if !skipped.contains(id) {
                skipped.push(id.clone());
            }
        } else {
            findings.push(Finding {
                rule: "lint-skip",
                level: Level::Error,
                message: format!(
                    "the enrollment's lint_skip names `{id}`, which is no lint rule (rules: {})",
                    RULES.iter().map(|r| r.id).collect::<Vec<_>>().join(", ")
                ),
            });
        }
    }
    findings.retain(|f| !skipped.iter().any(|s| s == f.rule));
    LintReport { findings, skipped }
}

/// Runs every rule over `dir`.
fn check(dir: &Path, recipe: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut add = |rule: &'static str, message: String| {
        let level = self::rule(rule).map_or(Level::Error, |r| r.level);
        out.push(Finding {
            rule,
            level,
            message,
        });
    };
    let env_sample = canon_shared::bounded_read::read_to_string(
        &dir.join(".env.sample"),
        canon_shared::bounded_read::TEXT_FILE,
    )
    .ok();
    if env_sample.is_none() {
        add(
            "env-sample",
            "the recipe has no .env.sample: `abra app new` cannot create an app from it".into(),
        );
    }
    let domain = format!("{recipe}.example.com");
    let stack = abra_stack_name(&domain);
    let overrides = app_env(&stack, &domain, &Default::default());
    // Without a `.env.sample` (already a finding) the other rules still read the compose files,
    // with an empty app env, so one run names every problem.
    let empty_env = match env_sample {
        Some(_) => None,
        None => tempfile::NamedTempFile::new().ok(),
    };
    let loaded = match &empty_env {
        Some(empty) => RecipeFiles::load_with_env(dir, empty.path(), &stack, &overrides),
        None => RecipeFiles::load(dir, &stack, &overrides),
    };
    let files = match loaded {
        Ok(files) => files,
        Err(e) => {
            add(
                "compose",
                format!("the compose files cannot be read for an app at {domain}: {e}"),
            );
            return out;
        }
    };
    let facts = &files.facts;
    if facts.service("app").is_none() {
        let names: Vec<&str> = facts.services.iter().map(|s| s.name.as_str()).collect();
        add(
            "app-service",
            format!(
                "no service is called `app` (services: {}); abra reads the version and timeout labels there",
                if names.is_empty() { "none".into() } else { names.join(", ") }
            ),
        );
    }
    // abra's rule reads the `app` service only: the label on another service does not count.
    {
        let routed = facts.service("app").is_some_and(|app| {
            app.deploy_labels
                .get("traefik.enable")
                .is_some_and(|v| v.trim() == "true")
        });
        if !routed {
            let elsewhere: Vec<&str> = facts
                .services
                .iter()
                .filter(|s| {
                    s.name != "app"
                        && s.deploy_labels
                            .get("traefik.enable")
                            .is_some_and(|v| v.trim() == "true")
                })
                .map(|s| s.name.as_str())
                .collect();
            let also = if elsewhere.is_empty() {
                String::new()
            } else {
                format!(
                    " (it is on {}, which abra does not read)",
                    elsewhere.join(", ")
                )
            };
            add(
                "traefik-enabled",
                format!(
                    "the `app` service has no deploy label traefik.enable=true{also}: traefik would route nothing to the app"
                ),
            );
        }
    }
    for s in &facts.services {
        match s.image.as_deref().map(str::trim) {
            None | Some("") => add(
                "service-image",
                format!("service `{}` names no image", s.name),
            ),
            Some(image) => {
                if let Some(why) = image_tag_problem(image) {
                    add(
                        "image-tag",
                        format!("service `{}`: image {image} {why}", s.name),
                    );
                }
            }
        }
    }
    let mut set: BTreeSet<String> = BTreeSet::new();
    if let Some(text) = &env_sample {
        set.extend(EnvFile::parse(text).vars().into_keys());
    }
    if let Ok(text) = canon_shared::bounded_read::read_to_string(
        &dir.join("abra.sh"),
        canon_shared::bounded_read::TEXT_FILE,
    ) {
        set.extend(parse_abra_sh(&text).into_iter().map(|(k, _)| k));
    }
    for (kind, key, written) in names_as_written(&files) {
        for var in version_vars(&written) {
            if !set.contains(&var) {
                add(
                    "versions-vendored",
                    format!(
                        "{kind} `{key}` is named `{written}`, but {var} is neither exported at the top of abra.sh nor set in .env.sample"
                    ),
                );
            }
        }
    }
    if let Some(tags) = lightweight_release_tags(dir) {
        if !tags.is_empty() {
            add(
                "annotated-tags",
                format!(
                    "release tags that are not annotated: {} (abra reads a release from an annotated tag)",
                    tags.join(", ")
                ),
            );
        }
    }
    for (kind, name) in facts
        .secrets
        .iter()
        .map(|s| ("secret", &s.name))
        .chain(facts.configs.iter().map(|c| ("config", &c.name)))
    {
        if name.len() > DOCKER_MAX_OBJECT_NAME {
            add(
                "name-length",
                format!(
                    "{kind} name {name} is {} characters for an app at {domain}; Docker refuses names over {DOCKER_MAX_OBJECT_NAME}",
                    name.len()
                ),
            );
        }
    }
    for s in &facts.services {
        let has = s.healthcheck.as_ref().is_some_and(|h| !h.is_disabled());
        if !has {
            add(
                "healthcheck",
                format!("service `{}` has no healthcheck", s.name),
            );
        }
    }
    out.sort_by_key(|f| RULES.iter().position(|r| r.id == f.rule));
    out
}

/// Returns why `image` has no usable tag (`None` when it has one): no tag, or `latest`.
fn image_tag_problem(image: &str) -> Option<&'static str> {
    let without_digest = image.split('@').next().unwrap_or(image);
    // The tag follows the last `:` after the last `/` (a registry port is before a `/`).
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    match last.split_once(':') {
        None if image.contains('@') => None,
        None => Some("has no tag"),
        Some((_, "latest")) => Some("uses the tag `latest`"),
        Some((_, "")) => Some("has an empty tag"),
        Some(_) => None,
    }
}

/// Returns `(kind, key, name as written)` of every secret and config of the compose files of
/// `files`, read as written (`${…}` kept).
fn names_as_written(files: &RecipeFiles) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    for path in &files.compose_files {
        let Ok(text) =
            canon_shared::bounded_read::read_to_string(path, canon_shared::bounded_read::YAML_FILE)
        else {
            continue;
        };
        let Ok(c) = Compose::parse(path, &text) else {
            continue;
        };
        out.extend(c.secrets.into_iter().map(|s| ("secret", s.key, s.name)));
        out.extend(c.configs.into_iter().map(|c| ("config", c.key, c.name)));
    }
    out
}

/// Returns the variables ending in `_VERSION` that `text` references without a default
/// (`${X_VERSION}`, `$X_VERSION`, `${X_VERSION:?msg}`); `${X_VERSION:-v1}` has its own value.
fn version_vars(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        if bytes.get(i + 1) == Some(&b'$') {
            i += 2;
            continue;
        }
        let braced = bytes.get(i + 1) == Some(&b'{');
        let start = i + 1 + usize::from(braced);
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(text.len(), |n| start + n);
        let name = &text[start..end];
        let rest = &text[end..];
        let defaulted = braced && (rest.starts_with(":-") || rest.starts_with('-'));
        if name.ends_with("_VERSION") && !defaulted && !out.iter().any(|v| v == name) {
            out.push(name.to_string());
        }
        i = end.max(i + 1);
    }
    out
}

/// Returns the release tags of the checkout's git repository that are lightweight, sorted;
/// `None` when `dir` is no git repository (a plain folder given to `recipe plan`).
fn lightweight_release_tags(dir: &Path) -> Option<Vec<String>> {
    let repo = git2::Repository::open(dir).ok()?;
    let names = repo.tag_names(None).ok()?;
    let mut out: Vec<String> = Vec::new();
    for i in 0..names.len() {
        let Ok(Some(name)) = names.get(i) else {
            continue;
        };
        if ReleaseVersion::parse(name).is_err() {
            continue;
        }
        let lightweight = repo
            .find_reference(&format!("refs/tags/{name}"))
            .ok()
            .and_then(|r| r.target())
            .and_then(|oid| repo.find_object(oid, None).ok())
            .is_some_and(|o| o.kind() != Some(git2::ObjectType::Tag));
        if lightweight {
            out.push(name.to_string());
        }
    }
    out.sort();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    fn ids(r: &LintReport) -> Vec<(&str, Level)> {
        r.findings.iter().map(|f| (f.rule, f.level)).collect()
    }

    const GOOD: &str = r#"
services:
  app:
    image: nginx:1.27
    healthcheck: {test: ["CMD", "true"]}
    configs: [{source: nginx_conf, target: /etc/nginx.conf}]
    deploy:
      labels: ["traefik.enable=true", "coop-cloud.${STACK_NAME}.version=1.0.0+1.27"]
configs:
  nginx_conf:
    name: ${STACK_NAME}_nginx_conf_${NGINX_CONF_VERSION}
    file: nginx.conf
secrets:
  db_password:
    external: true
    name: ${STACK_NAME}_db_password_${SECRET_DB_PASSWORD_VERSION}
"#;

    #[test]
    fn the_fixture_recipes_pass_every_error_level_rule() {
        for fixture in ["recipe", "recipe-multifile"] {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../fixtures")
                .join(fixture);
            let r = lint(&dir, "fixture", &[]);
            assert!(r.passed(), "{fixture}: {:#?}", r.findings);
        }
    }

    #[test]
    fn a_recipe_as_abra_wants_it_has_no_finding() {
        let dir = recipe(&[
            ("compose.yml", GOOD),
            (".env.sample", "TYPE=x\nSECRET_DB_PASSWORD_VERSION=v1\n"),
            ("abra.sh", "export NGINX_CONF_VERSION=v1\n"),
        ]);
        let r = lint(dir.path(), "x", &[]);
        assert_eq!(r.findings, vec![]);
        assert!(r.passed());
        assert_eq!(r.to_json(), serde_json::json!([]));
    }

    #[test]
    fn a_checkout_without_env_sample_or_app_or_traefik_or_images_is_red_on_each() {
        let dir = recipe(&[(
            "compose.yml",
            "services:\n  web: {image: \"nginx\"}\n  worker: {}\n",
        )]);
        let r = lint(dir.path(), "x", &[]);
        assert_eq!(
            ids(&r),
            vec![
                ("env-sample", Level::Error),
                ("app-service", Level::Error),
                ("traefik-enabled", Level::Error),
                ("service-image", Level::Error),
                ("healthcheck", Level::Warning),
                ("healthcheck", Level::Warning),
                ("image-tag", Level::Warning),
            ]
        );
        assert!(!r.passed());
        assert!(r.findings[3]
            .message
            .contains("service `worker` names no image"));
        assert_eq!(
            r.to_json()[0],
            serde_json::json!({"rule": "env-sample", "level": "error", "message": r.findings[0].message})
        );
    }

    #[test]
    fn traefik_routing_counts_only_on_the_app_service_as_abra_reads_it() {
        let dir = recipe(&[
            (
                "compose.yml",
                "services:\n  app:\n    image: \"nginx:1.27\"\n    healthcheck: {test: [\"CMD\", \"true\"]}\n  web:\n    image: \"nginx:1.27\"\n    healthcheck: {test: [\"CMD\", \"true\"]}\n    deploy:\n      labels: [\"traefik.enable=true\"]\n",
            ),
            (".env.sample", "DOMAIN=x.example.com\n"),
        ]);
        let r = lint(dir.path(), "x", &[]);
        assert_eq!(ids(&r), vec![("traefik-enabled", Level::Error)]);
        assert!(
            r.findings[0]
                .message
                .contains("it is on web, which abra does not read"),
            "{}",
            r.findings[0].message
        );
    }

    #[test]
    fn a_version_variable_set_nowhere_is_red_naming_it_and_a_default_counts_as_set() {
        let dir = recipe(&[
            ("compose.yml", GOOD),
            (".env.sample", "SECRET_DB_PASSWORD_VERSION=v1\n"),
        ]);
        let r = lint(dir.path(), "x", &[]);
        assert_eq!(ids(&r), vec![("versions-vendored", Level::Error)]);
        assert!(
            r.findings[0].message.contains("config `nginx_conf`")
                && r.findings[0].message.contains("NGINX_CONF_VERSION"),
            "{}",
            r.findings[0]
        );
        assert_eq!(
            version_vars(
                "${STACK_NAME}_k_${SECRET_K_VERSION:-v1}_$A_VERSION.${B_VERSION:?x}$$C_VERSION"
            ),
            vec!["A_VERSION", "B_VERSION"]
        );
    }

    #[test]
    fn the_traefik_ovh_secret_fits_under_abra_and_a_longer_one_is_red_with_its_length() {
        // coop-cloud-traefik's OVH secrets, under a recipe name long enough to cross the limit.
        let compose = GOOD.to_string()
            + "  ovh_application_secret_key_for_dns_challenge:\n    external: true\n    name: ${STACK_NAME}_ovh_application_secret_key_for_dns_challenge_${SECRET_OVH_VERSION}\n";
        let dir = recipe(&[
            ("compose.yml", &compose),
            (
                ".env.sample",
                "SECRET_DB_PASSWORD_VERSION=v1\nSECRET_OVH_VERSION=v1\n",
            ),
            ("abra.sh", "export NGINX_CONF_VERSION=v1\n"),
        ]);
        let r = lint(dir.path(), "traefik", &[]);
        assert_eq!(ids(&r), vec![("name-length", Level::Error)]);
        let name = "traefik_example_com_ovh_application_secret_key_for_dns_challenge_v1";
        assert_eq!(
            r.findings[0].message,
            format!("secret name {name} is {} characters for an app at traefik.example.com; Docker refuses names over 64", name.len())
        );
    }

    #[test]
    fn untagged_and_latest_images_are_warnings_and_digests_and_ports_are_understood() {
        for (image, problem) in [
            ("nginx", Some("has no tag")),
            ("nginx:latest", Some("uses the tag `latest`")),
            ("registry:5000/nginx", Some("has no tag")),
            ("registry:5000/nginx:1.2", None),
            ("nginx@sha256:abc", None),
            ("bonfirenetworks/bonfire:1.0.6-social-amd64", None),
        ] {
            assert_eq!(image_tag_problem(image), problem, "{image}");
        }
    }

    #[test]
    fn skipped_rules_are_listed_and_an_unknown_id_is_an_error() {
        let dir = recipe(&[("compose.yml", "services:\n  app: {image: \"x:1\"}\n")]);
        let skip = vec!["env-sample".to_string(), "traefik-enabled".to_string()];
        let r = lint(dir.path(), "x", &skip);
        assert_eq!(ids(&r), vec![("healthcheck", Level::Warning)]);
        assert!(r.passed());
        assert_eq!(
            r.skipped_note().as_deref(),
            Some("lint rules turned off by the enrollment: env-sample, traefik-enabled")
        );
        let r = lint(dir.path(), "x", &["env_sample".to_string()]);
        assert!(!r.passed());
        assert!(r
            .findings
            .iter()
            .any(|f| f.rule == "lint-skip" && f.message.contains("`env_sample`")));
    }

    #[test]
    fn lightweight_release_tags_are_red_and_annotated_ones_pass() {
        let dir = recipe(&[
            ("compose.yml", GOOD),
            (".env.sample", "SECRET_DB_PASSWORD_VERSION=v1\n"),
            ("abra.sh", "export NGINX_CONF_VERSION=v1\n"),
        ]);
        let repo = git2::Repository::init(dir.path()).unwrap();
        let mut index = repo.index().unwrap();
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        let commit = repo
            .commit(Some("HEAD"), &sig, &sig, "init", &tree, &[])
            .unwrap();
        let obj = repo.find_object(commit, None).unwrap();
        repo.tag(
            "1.0.0+1.27",
            &obj,
            &sig,
            "chore: publish 1.0.0+1.27 release",
            false,
        )
        .unwrap();
        repo.tag_lightweight("1.0.1+1.27", &obj, false).unwrap();
        repo.tag_lightweight("not-a-release", &obj, false).unwrap();
        let r = lint(dir.path(), "x", &[]);
        assert_eq!(ids(&r), vec![("annotated-tags", Level::Error)]);
        assert!(
            r.findings[0].message.contains(": 1.0.1+1.27 ("),
            "{}",
            r.findings[0]
        );
        assert_eq!(lightweight_release_tags(&dir.path().join("nope")), None);
    }

    #[test]
    fn every_rule_id_is_unique_and_documented() {
        let doc = include_str!("../../../docs/lint.md");
        let mut seen = BTreeSet::new();
        for r in RULES {
            assert!(seen.insert(r.id), "{} twice", r.id);
            assert!(
                doc.contains(&format!("`{}`", r.id)),
                "docs/lint.md lacks {}",
                r.id
            );
        }
        assert!(doc.contains("`lint-skip`"));
    }
}
