//! The recipe model read on recipes trimmed from public Co-op Cloud repositories
//! (`plugin/tests/data/recipes`, whose README says where each file came from): each test is a
//! shape that made canon disagree with abra, read the way `recipe plan` and the docker runner
//! read it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::files::RecipeFiles;
use super::plan::{app_env, DeployPlan, PlanError};
use super::secrets::{Charset, Source};

fn recipe(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/recipes")
        .join(name)
}

fn plan(name: &str) -> Result<(RecipeFiles, DeployPlan), PlanError> {
    let env = app_env("s", "s.canon.localhost", &BTreeMap::new());
    DeployPlan::load(&recipe(name), "s", &env, None)
}

/// Returns each planned secret as `(key, name, version, version variable)`.
fn secrets(plan: &DeployPlan) -> Vec<(&str, &str, &str, Option<&str>)> {
    plan.secrets
        .iter()
        .map(|s| {
            (
                s.spec.key.as_str(),
                s.name.as_str(),
                s.spec.version.as_str(),
                s.spec.version_var.as_deref(),
            )
        })
        .collect()
}

#[test]
fn bonfire_with_s3_and_orcid_on_plans_every_secret_by_its_name() {
    let (_, plan) = plan("bonfire").unwrap();
    let got = secrets(&plan);
    for want in [
        // No `.env.sample` line: the version is the name's `:-v1` default.
        (
            "uploads_s3_access_key_id",
            "s_uploads_s3_access_key_id_v1",
            "v1",
            Some("SECRET_UPLOADS_S3_ACCESS_KEY_ID_VERSION"),
        ),
        (
            "aws_web_identity_token",
            "s_aws_web_identity_token_v1",
            "v1",
            Some("SECRET_AWS_WEB_IDENTITY_TOKEN_VERSION"),
        ),
        // Key `orchid_client_secret`, variable `SECRET_ORCID_CLIENT_SECRET_VERSION`.
        (
            "orchid_client_secret",
            "s_orchid_client_secret_v1",
            "v1",
            Some("SECRET_ORCID_CLIENT_SECRET_VERSION"),
        ),
        (
            "mail_key",
            "s_mail_key_v1",
            "v1",
            Some("SECRET_MAIL_KEY_VERSION"),
        ),
        (
            "postgres_password",
            "s_postgres_password_v1",
            "v1",
            Some("SECRET_POSTGRES_PASSWORD_VERSION"),
        ),
    ] {
        assert!(got.contains(&want), "{want:?} in {got:?}");
    }
    assert_eq!(got.len(), 12, "{got:?}");
    let base = plan
        .secrets
        .iter()
        .find(|s| s.spec.key == "secret_key_base")
        .unwrap();
    assert_eq!(base.length_modifier(), Some(128));
    assert!(plan.all_notes().is_empty(), "{:?}", plan.all_notes());
    assert_eq!(
        plan.compose_files,
        vec![
            "compose.yml",
            "compose.postgres.yml",
            "compose.s3.yml",
            "compose.auth.orcid.yml"
        ]
    );
}

#[test]
fn bonfires_merged_postgres_env_reaches_both_services() {
    let (files, plan) = plan("bonfire").unwrap();
    for service in ["app", "db"] {
        let env = &files.facts.service(service).unwrap().environment;
        for key in ["POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD_FILE"] {
            assert!(env.iter().any(|k| k == key), "{service}: {key} in {env:?}");
        }
        assert!(!env.iter().any(|k| k == "<<"), "{service}: {env:?}");
    }
    let services: Vec<&str> = plan.backup.iter().map(|b| b.service.as_str()).collect();
    assert_eq!(services, vec!["app", "db"]);
}

/// Returns a copy of the recipe `name` in a temp dir, each file's text passed through `edit`.
fn edited(name: &str, edit: impl Fn(String) -> String) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    std::fs::create_dir(&dir).unwrap();
    for entry in std::fs::read_dir(recipe(name)).unwrap() {
        let entry = entry.unwrap();
        let text = std::fs::read_to_string(entry.path()).unwrap();
        std::fs::write(dir.join(entry.file_name()), edit(text)).unwrap();
    }
    (tmp, dir)
}

#[test]
fn traefiks_dashboard_port_named_web_is_a_route_canon_cannot_follow() {
    // At this version the recipe labels its own port `web`, an entrypoint's name: traefik cannot
    // build a server address from it, so the dashboard's router sends every visitor an error.
    let err = plan("traefik-ovh").unwrap_err().to_string();
    assert_eq!(
        err,
        "routing: service `app`, router `traefik`: label traefik.http.services.traefik.loadbalancer.server.port=web is no port number"
    );
}

#[test]
fn bonfires_router_serves_the_domain_and_its_extra_domains_on_port_4000() {
    let (_, plan) = plan("bonfire").unwrap();
    let routes: Vec<(&str, &str, Vec<&str>, u16)> = plan
        .routes
        .iter()
        .map(|r| {
            let hosts = r.hosts.iter().map(String::as_str).collect();
            (r.service.as_str(), r.router.as_str(), hosts, r.port)
        })
        .collect();
    assert_eq!(routes, vec![("app", "s", vec!["s.canon.localhost"], 4000)]);
    let mut extra = BTreeMap::new();
    extra.insert(
        "EXTRA_DOMAINS".to_string(),
        ", `www.s.canon.localhost`".to_string(),
    );
    let env = app_env("s", "s.canon.localhost", &extra);
    let (_, plan) = DeployPlan::load(&recipe("bonfire"), "s", &env, None).unwrap();
    assert_eq!(
        plan.routes[0].hosts,
        vec!["s.canon.localhost", "www.s.canon.localhost"]
    );
}

#[test]
fn traefiks_ovh_secret_takes_its_version_from_a_variable_without_version_in_its_name() {
    let (_tmp, dir) = edited("traefik-ovh", |t| t.replace("port=web", "port=8080"));
    let env = app_env("s", "s.canon.localhost", &BTreeMap::new());
    let (_, plan) = DeployPlan::load(&dir, "s", &env, None).unwrap();
    assert_eq!(
        secrets(&plan),
        vec![
            (
                "ovh_app_secret",
                "s_ovh_app_secret_v1",
                "v1",
                Some("SECRET_OVH_APP_SECRET_VERSION")
            ),
            (
                "ovh_consumer_key",
                "s_ovh_consumer_key_v1",
                "v1",
                Some("SECRET_OVH_CONSUMER_KEY")
            ),
        ]
    );
}

#[test]
fn traefiks_ovh_secret_without_its_variable_is_refused_as_abra_refuses_it() {
    let (_tmp, dir) = edited("traefik-ovh", |t| {
        t.replace("SECRET_OVH_CONSUMER_KEY=v1\n", "")
            .replace("port=web", "port=8080")
    });
    let env = app_env("s", "s.canon.localhost", &BTreeMap::new());
    let err = DeployPlan::load(&dir, "s", &env, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("secret `ovh_consumer_key`: its name `s_ovh_consumer_key_` ends in `_`")
            && err.contains("set SECRET_OVH_CONSUMER_KEY in the app env")
            && err.contains("abra refuses to deploy it"),
        "{err}"
    );
}

#[test]
fn llamenos_charsets_and_lengths_are_honoured() {
    let (_, plan) = plan("llamenos").unwrap();
    let got: Vec<(&str, usize, Charset)> = plan
        .secrets
        .iter()
        .map(|s| (s.spec.key.as_str(), s.spec.length, s.spec.charset))
        .collect();
    assert_eq!(
        got,
        vec![
            ("db_password", 32, Charset::Alnum),
            ("hmac_secret", 64, Charset::Hex),
            ("minio_access", 20, Charset::Alnum),
            ("minio_secret", 40, Charset::Alnum),
            ("server_nostr", 64, Charset::Hex),
        ]
    );
    assert!(plan
        .secrets
        .iter()
        .all(|s| s.spec.source == Source::Generated));
    let hmac = plan
        .secrets
        .iter()
        .find(|s| s.spec.key == "hmac_secret")
        .unwrap();
    let value = hmac.spec.value().unwrap();
    assert_eq!(value.len(), 64);
    assert!(value.bytes().all(|b| b"0123456789abcdef".contains(&b)));
}

#[test]
fn nodex_nexts_env_sample_in_a_sub_folder_does_not_count() {
    let err = plan("nodex-next").unwrap_err().to_string();
    assert!(
        err.contains("nodex-next/.env.sample: missing")
            && err.contains(
                "found deploy/.env.sample, but abra reads only the checkout's top folder"
            ),
        "{err}"
    );
}
