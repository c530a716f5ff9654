//! `canon-listener register-hooks`: make sure every enrolled upstream repository has our webhook.
//!
//! For each recipe whose upstream is a forge repository: list its hooks (paged by the forge
//! client) and, when none points at `<CANON_PUBLIC_URL>/hooks/<gitea|github>`, create one with
//! JSON content, the first webhook secret, the push/create/release/delete events, active.

use canon_shared::forge::{self, ForgeKind, HookSpec};

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
            ForgeKind::Gitea => "gitea",
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
                Some(h) => HookResult::Found {
                    recipe: name,
                    repo,
                    id: h.id,
                },
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
