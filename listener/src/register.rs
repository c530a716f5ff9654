//! `canon-listener register-hooks`: make sure every enrolled upstream repository has our webhook.
//!
//! For each recipe whose upstream is a forge repository: list its hooks (paged by the forge
//! client) and, when none points at `<CANON_PUBLIC_URL>/hooks/<gitea|github>`, create one with
//! JSON content, the first webhook secret, the push/create/release/delete events, active.
//!
//! A hook with our URL that is inactive, lacks one of those events or sends form content would
//! stay silent or unreadable, so it is edited in place (its other events kept) and reported as
//! repaired, naming what was wrong. A forge never shows a hook's secret, so a hook that is
//! otherwise right is left alone: rotating the secret means deleting the hook (or editing it by
//! hand) and running `register-hooks` again.

use canon_shared::forge::{self, ForgeKind, Hook, HookSpec, HOOK_EVENTS};

use crate::config::Settings;

/// What happened for one recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookResult {
    /// A hook with our URL already exists.
    Found {
        recipe: String,
        repo: String,
        id: u64,
    },
    /// A hook with our URL existed but was broken; it was edited in place.
    Repaired {
        recipe: String,
        repo: String,
        id: u64,
        /// What was wrong (`inactive`, `missing events: …`, `content type …`).
        fixed: Vec<String>,
    },
    /// A hook was created.
    Created {
        recipe: String,
        repo: String,
        id: u64,
    },
    /// The recipe's upstream is not a forge repository.
    NotAForgeRepo { recipe: String },
    /// The forge call failed.
    Failed {
        recipe: String,
        repo: String,
        error: String,
    },
}

/// One line per recipe, as `register-hooks` prints it: the recipe, what happened, the hook and
/// the repository (`hello: created hook 2 on owner/name`).
impl std::fmt::Display for HookResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HookResult::Found { recipe, repo, id } => {
                write!(f, "{recipe}: found hook {id} on {repo}")
            }
            HookResult::Repaired {
                recipe,
                repo,
                id,
                fixed,
            } => write!(
                f,
                "{recipe}: repaired hook {id} on {repo} (was: {})",
                fixed.join("; ")
            ),
            HookResult::Created { recipe, repo, id } => {
                write!(f, "{recipe}: created hook {id} on {repo}")
            }
            HookResult::NotAForgeRepo { recipe } => write!(
                f,
                "{recipe}: skipped, its upstream is not a forge repository (no webhook possible)"
            ),
            HookResult::Failed {
                recipe,
                repo,
                error,
            } => write!(f, "{recipe}: FAILED on {repo}: {error}"),
        }
    }
}

/// Why registering could not even start.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// A required setting is missing.
    #[error("register-hooks needs {0}")]
    Missing(&'static str),
    /// The enrollment cannot be loaded.
    #[error(transparent)]
    Enrollment(#[from] canon_shared::recipe::EnrollmentError),
    /// The forge client cannot be built.
    #[error("forge: {0}")]
    Forge(#[from] forge::ForgeError),
}

/// Registers the webhook on every enrolled upstream; returns one result per recipe.
pub async fn register_hooks(settings: &Settings) -> Result<Vec<HookResult>, RegisterError> {
    let public = settings
        .public_url
        .as_deref()
        .ok_or(RegisterError::Missing(
            "CANON_PUBLIC_URL (the URL the forge reaches this listener at)",
        ))?;
    let forge_url = settings
        .forge_url
        .as_deref()
        .ok_or(RegisterError::Missing("CANON_FORGE_URL"))?;
    let token = settings.forge_token.clone().ok_or(RegisterError::Missing(
        "CANON_FORGE_TOKEN (with repository admin rights)",
    ))?;
    let secret = settings
        .webhook_secrets
        .first()
        .cloned()
        .ok_or(RegisterError::Missing("CANON_WEBHOOK_SECRETS"))?;
    let enrollment = canon_shared::recipe::Enrollment::load(&settings.enrollment)?;
    let kind = ForgeKind::guess(forge_url);
    let client = forge::client(kind, forge_url, Some(token))?;
    let hook_url = format!(
        "{}/hooks/{}",
        public.trim_end_matches('/'),
        match kind {
            ForgeKind::GitHub => "github",
            ForgeKind::Gitea | ForgeKind::Forgejo => "gitea",
        }
    );
    let mut out = Vec::new();
    for recipe in &enrollment.recipes {
        let name = recipe.name.to_string();
        let Some(repo) = recipe.upstream.full_name.clone() else {
            out.push(HookResult::NotAForgeRepo { recipe: name });
            continue;
        };
        let result = match client.list_hooks(&repo).await {
            Ok(hooks) => match hooks
                .iter()
                .find(|h| h.url.trim_end_matches('/') == hook_url)
            {
                Some(h) => {
                    let fixed = problems(h);
                    if fixed.is_empty() {
                        HookResult::Found {
                            recipe: name,
                            repo,
                            id: h.id,
                        }
                    } else {
                        let spec = repair_spec(h, &hook_url, secret.clone());
                        match client.edit_hook(&repo, h.id, &spec).await {
                            Ok(edited) => HookResult::Repaired {
                                recipe: name,
                                repo,
                                id: edited.id,
                                fixed,
                            },
                            Err(e) => HookResult::Failed {
                                recipe: name,
                                repo,
                                error: e.to_string(),
                            },
                        }
                    }
                }
                None => match client
                    .create_hook(&repo, &HookSpec::new(&hook_url, secret.clone()))
                    .await
                {
                    Ok(h) => HookResult::Created {
                        recipe: name,
                        repo,
                        id: h.id,
                    },
                    Err(e) => HookResult::Failed {
                        recipe: name,
                        repo,
                        error: e.to_string(),
                    },
                },
            },
            Err(e) => HookResult::Failed {
                recipe: name,
                repo,
                error: e.to_string(),
            },
        };
        match &result {
            HookResult::Found { recipe, repo, id } => {
                tracing::info!(%recipe, %repo, hook = id, "Webhook already registered.")
            }
            HookResult::Repaired {
                recipe,
                repo,
                id,
                fixed,
            } => {
                let fixed = fixed.join("; ");
                tracing::warn!(%recipe, %repo, hook = id, %fixed, "Webhook repaired.")
            }
            HookResult::Created { recipe, repo, id } => {
                tracing::info!(%recipe, %repo, hook = id, "Webhook created.")
            }
            HookResult::Failed {
                recipe,
                repo,
                error,
            } => tracing::error!(%recipe, %repo, %error, "Webhook not registered."),
            HookResult::NotAForgeRepo { recipe } => {
                tracing::warn!(%recipe, "Upstream is not a forge repository; no webhook.")
            }
        }
        out.push(result);
    }
    Ok(out)
}

/// Returns what is wrong with hook `h` (which already has our URL): empty when it is active,
/// fires for every event canon needs, and sends JSON.
pub fn problems(h: &Hook) -> Vec<String> {
    let mut out = Vec::new();
    if !h.active {
        out.push("inactive".to_string());
    }
    // GitHub's `*` means every event.
    if !h.events.iter().any(|e| e == "*") {
        let missing: Vec<&str> = HOOK_EVENTS
            .iter()
            .copied()
            .filter(|want| !h.events.iter().any(|e| e == want))
            .collect();
        if !missing.is_empty() {
            out.push(format!("missing events: {}", missing.join(", ")));
        }
    }
    match h.content_type.as_deref() {
        Some("json") => {}
        Some(other) => out.push(format!("content type {other}, not json")),
        None => out.push("content type not given, not json".to_string()),
    }
    out
}

/// Returns the spec a broken hook is rewritten to: our URL and secret, canon's events plus any
/// others the hook already fires for (an edit replaces the event list).
fn repair_spec(h: &Hook, url: &str, secret: canon_shared::secret::Secret) -> HookSpec {
    let mut spec = HookSpec::new(url, secret);
    for e in &h.events {
        if !spec.events.contains(e) {
            spec.events.push(e.clone());
        }
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(active: bool, events: &[&str], content_type: Option<&str>) -> Hook {
        Hook {
            id: 7,
            url: "https://canon.example.org/hooks/gitea".into(),
            content_type: content_type.map(str::to_string),
            events: events.iter().map(|e| e.to_string()).collect(),
            active,
        }
    }

    #[test]
    fn a_correct_hook_has_no_problems() {
        let all = ["create", "delete", "push", "release"];
        assert!(problems(&hook(true, &all, Some("json"))).is_empty());
        assert!(problems(&hook(true, &["*"], Some("json"))).is_empty());
    }

    #[test]
    fn each_problem_is_named() {
        assert_eq!(
            problems(&hook(false, &["push", "create"], Some("form"))),
            vec![
                "inactive",
                "missing events: release, delete",
                "content type form, not json"
            ]
        );
        assert_eq!(
            problems(&hook(true, &HOOK_EVENTS, None)),
            vec!["content type not given, not json"]
        );
    }

    #[test]
    fn a_repair_keeps_the_hooks_other_events() {
        let h = hook(false, &["push", "pull_request"], Some("json"));
        let spec = repair_spec(&h, &h.url, canon_shared::secret::Secret::new("s"));
        assert_eq!(
            spec.events,
            vec!["push", "create", "release", "delete", "pull_request"]
        );
    }
}
