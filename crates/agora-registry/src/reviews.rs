//! Ratings and reviews: one per user per plugin, editable, tied to the version reviewed;
//! administrators hide abusive ones with a reason (a hidden review leaves the rating).

use agora_core::api::ReviewInput;
use agora_store::{NewReview, PluginRecord, ReviewRecord, UserRecord};

use crate::Registry;
use crate::caller::Caller;
use crate::catalog::visible_plugin;
use crate::error::{RegistryError, Result, one_line_opt, truncate};

/// Most reviews listed at once.
pub const MAX_REVIEWS: u32 = 200;
/// Longest reason for hiding a review.
pub const MAX_REASON_CHARS: usize = 500;

/// A plugin the viewer may see, and its reviews, newest first (hidden ones too for
/// administrators).
pub async fn list(
    registry: &Registry,
    caller: Option<&Caller>,
    publisher: &str,
    name: &str,
) -> Result<(PluginRecord, Vec<ReviewRecord>)> {
    let viewer = crate::caller::viewer_of(caller);
    let plugin = visible_plugin(registry, &viewer, publisher, name).await?;
    let items = registry
        .meta
        .reviews(plugin.id, viewer.admin, MAX_REVIEWS)
        .await?;
    Ok((plugin, items))
}

/// Writes or replaces the caller's review of a plugin (a token needs the `review` scope).
pub async fn write(
    registry: &Registry,
    caller: &Caller,
    publisher: &str,
    name: &str,
    input: ReviewInput,
) -> Result<ReviewRecord> {
    caller.require_review()?;
    let plugin = visible_plugin(registry, &caller.viewer(), publisher, name).await?;
    write_checked(registry, &plugin, &caller.user, input).await
}

/// Checks a review and stores it, for a plugin the caller may see.
async fn write_checked(
    registry: &Registry,
    plugin: &PluginRecord,
    user: &UserRecord,
    input: ReviewInput,
) -> Result<ReviewRecord> {
    input
        .check()
        .map_err(|e| RegistryError::field(&e.field, e.problem, e.expected.as_deref()))?;
    let version = match input.version.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => v.to_owned(),
        _ => plugin.latest_version.clone().ok_or_else(|| {
            RegistryError::field(
                "version",
                "the plugin has no installable version to review",
                Some("an existing version"),
            )
        })?,
    };
    match registry.meta.version(plugin.id, &version).await? {
        Some(v) if v.state != agora_core::Lifecycle::Removed => {}
        _ => {
            return Err(RegistryError::field(
                "version",
                format!(
                    "{}/{} has no version {:?}",
                    plugin.publisher,
                    plugin.name,
                    truncate(&version)
                ),
                Some("a published version of this plugin"),
            ));
        }
    }
    Ok(registry
        .meta
        .upsert_review(NewReview {
            plugin_id: plugin.id,
            user_id: user.id,
            version,
            rating: i64::from(input.rating),
            body: input.body.trim().replace("\r\n", "\n"),
            actor: user.username.clone(),
        })
        .await?)
}

/// Hides a review with a reason (or with `None` shows it again): administrators only.
pub async fn hide(
    registry: &Registry,
    caller: &Caller,
    id: i64,
    reason: Option<&str>,
) -> Result<()> {
    caller.require_admin()?;
    one_line_opt("reason", reason)?;
    let actor = caller.user.username.as_str();
    let reason = reason.map(str::trim);
    if let Some(r) = reason {
        let chars = r.chars().count();
        if chars == 0 || chars > MAX_REASON_CHARS {
            return Err(RegistryError::field(
                "reason",
                if chars == 0 {
                    "is empty".to_owned()
                } else {
                    format!("is {chars} characters long")
                },
                Some("why the review is hidden, 1 to 500 characters"),
            ));
        }
    }
    if registry.meta.hide_review(id, reason, actor).await? {
        Ok(())
    } else {
        Err(RegistryError::not_found(format!("review {id} not found")))
    }
}
