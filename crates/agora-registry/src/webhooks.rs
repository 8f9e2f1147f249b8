//! Webhooks: signed HTTP callbacks on registry events, per publisher or registry-wide.
//!
//! Administrators manage registry-wide hooks (every publisher's events); a publisher's
//! owners manage its own ([`Caller::require_webhooks`]). Each event a hook subscribes to
//! becomes a delivery, queued with its `webhook` job in one transaction ([`emit`]); the
//! action that caused it never fails nor waits for it (a store error is logged). A
//! worker ([`run_worker`]) sends each delivery signed as the Standard Webhooks
//! specification says ([`sign`]), retries it with the job queue's backoff on a non-2xx
//! answer or a transport error, and records every attempt, the newest
//! [`KEEP_ATTEMPTS`] per hook.
//!
//! Hooks may not reach loopback, private or link-local addresses (checked on the URL's
//! literal address and on every address its name resolves to at delivery) unless the
//! operator allows it ([`WebhookSettings::allow_private`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_core::net::is_internal;
use agora_core::verification::{SeverityCounts, VerificationReport};
use agora_core::webhook::{
    self, Webhook, WebhookAttempt, WebhookCreateRequest, WebhookCreated, WebhookPing,
};
use agora_core::{Lifecycle, PluginRef};
use agora_store::{
    AttemptRecord, ClaimedJob, DeliveryRecord, DeliveryState, NewWebhook, WEBHOOK_JOB_KIND,
    WebhookRecord, now_ms,
};
use base64ct::{Base64, Encoding};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::Registry;
use crate::caller::Caller;
use crate::error::{RegistryError, Result};

/// Most hooks one publisher may have.
pub const MAX_PUBLISHER_HOOKS: usize = 20;
/// Most registry-wide hooks.
pub const MAX_REGISTRY_HOOKS: usize = 50;
/// Longest hook URL, in characters.
pub const MAX_URL_CHARS: usize = 2048;
/// Attempts per delivery before it is given up (the job queue's backoff between them:
/// 2 s doubled each time).
pub const MAX_ATTEMPTS: u32 = 8;
/// How long one attempt may take, connection to the end of the answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes of a receiver's answer read (the rest is dropped).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Attempts (and finished deliveries) kept per hook in its history.
pub const KEEP_ATTEMPTS: u32 = 100;
/// How long a worker holds a claimed delivery: longer than one attempt.
const LEASE: Duration = Duration::from_secs(60);
/// The prefix of a signing secret, as the Standard Webhooks specification writes it.
pub const SECRET_PREFIX: &str = "whsec_";
/// The event a ping sends (not one a hook subscribes to: a ping goes to the hook asked).
pub const PING_EVENT: &str = "webhook.ping";

/// The operator's webhook settings (`[webhooks]` in the server's configuration).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Let hooks reach loopback, private and link-local addresses (off by default: a
    /// hook must not be a way into the registry's own network).
    pub allow_private: bool,
}

/// A fresh signing secret: `whsec_` and the base64 of 32 random bytes.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    format!("{SECRET_PREFIX}{}", Base64::encode_string(&bytes))
}

/// The `webhook-signature` header of a delivery: `v1,` and the base64 HMAC-SHA256, keyed
/// with the secret's bytes, of `{id}.{timestamp}.{body}` (Standard Webhooks).
pub fn sign(secret: &str, message_id: &str, timestamp: i64, body: &[u8]) -> Result<String> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let key = Base64::decode_vec(encoded)
        .map_err(|e| RegistryError::internal("a webhook secret is not base64", e))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key)
        .map_err(|e| RegistryError::internal("a webhook secret is unusable", e))?;
    mac.update(message_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!(
        "v1,{}",
        Base64::encode_string(&mac.finalize().into_bytes())
    ))
}

/// A hook URL's check: `http` or `https`, a host, no user information, at most
/// [`MAX_URL_CHARS`], and (unless `allow_private`) no literal internal address.
pub fn check_url(url: &str, allow_private: bool) -> Result<reqwest::Url> {
    const EXPECTED: &str = "an http:// or https:// URL of at most 2048 characters, without user:password@, \
         reaching a public address";
    let bad = |why: String| RegistryError::field("url", why, Some(EXPECTED));
    crate::error::one_line("url", url)?;
    if url.chars().count() > MAX_URL_CHARS {
        return Err(bad(format!(
            "is {} characters long, more than {MAX_URL_CHARS}",
            url.chars().count()
        )));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(format!("is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad(format!(
            "has the scheme {:?}; only http and https are accepted",
            parsed.scheme()
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(
            "carries user information (user:password@); put credentials nowhere in a hook URL"
                .into(),
        ));
    }
    let Some(host) = parsed.host_str() else {
        return Err(bad("names no host".into()));
    };
    if !allow_private {
        let internal = host.eq_ignore_ascii_case("localhost")
            || host
                .trim_matches(['[', ']'])
                .parse::<IpAddr>()
                .is_ok_and(is_internal);
        if internal {
            return Err(bad(format!(
                "names {host}, a loopback, private or link-local address; the operator \
                 allows those with [webhooks] allow_private = true"
            )));
        }
    }
    Ok(parsed)
}

/// The event types, checked: 1 to 4 of [`webhook::EVENTS`], each once.
fn check_events(events: &[String]) -> Result<Vec<String>> {
    let accepted = format!("a list of one or more of {}", webhook::events_list());
    if events.is_empty() {
        return Err(RegistryError::field(
            "events",
            "is empty; a hook subscribes to at least one event",
            Some(&accepted),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if !webhook::is_event(e) {
            return Err(RegistryError::field(
                &format!("events[{i}]"),
                format!("{:?} is not an event type", crate::error::truncate(e)),
                Some(&accepted),
            ));
        }
        if !out.contains(e) {
            out.push(e.clone());
        }
    }
    Ok(out)
}

/// Creates a hook: registry-wide (`publisher` `None`, administrators) or for a
/// publisher (its owners). The secret is in the answer, and only there.
pub async fn create(
    registry: &Registry,
    caller: &Caller,
    publisher: Option<&str>,
    request: WebhookCreateRequest,
) -> Result<WebhookCreated> {
    let (publisher_id, existing, limit) = match publisher {
        None => {
            caller.require_admin()?;
            (
                None,
                registry.meta.webhooks(None).await?,
                MAX_REGISTRY_HOOKS,
            )
        }
        Some(name) => {
            let p = authorize_publisher(registry, caller, name).await?;
            (
                Some(p.id),
                registry.meta.webhooks(Some(p.id)).await?,
                MAX_PUBLISHER_HOOKS,
            )
        }
    };
    let url = check_url(&request.url, registry.webhooks.allow_private)?;
    let events = check_events(&request.events)?;
    if existing.len() >= limit {
        let whose = match publisher {
            Some(p) => format!("publisher {p} has"),
            None => "the registry has".to_owned(),
        };
        return Err(RegistryError::conflict(format!(
            "{whose} {} webhooks, the most allowed ({limit}); remove one with `agora webhook remove ID` first",
            existing.len()
        )));
    }
    let secret = new_secret();
    let record = registry
        .meta
        .create_webhook(&NewWebhook {
            publisher_id,
            url: url.to_string(),
            events,
            secret: secret.clone(),
            enabled: request.enabled,
            created_by: caller.user.username.clone(),
        })
        .await?;
    tracing::info!(webhook = record.id, publisher = ?record.publisher, "webhook created");
    Ok(WebhookCreated {
        webhook: to_wire(&record),
        secret,
    })
}

/// The hooks of a publisher (its owners) or the registry-wide ones (administrators).
pub async fn list(
    registry: &Registry,
    caller: &Caller,
    publisher: Option<&str>,
) -> Result<Vec<Webhook>> {
    let publisher_id = match publisher {
        None => {
            caller.require_admin()?;
            None
        }
        Some(name) => Some(authorize_publisher(registry, caller, name).await?.id),
    };
    Ok(registry
        .meta
        .webhooks(publisher_id)
        .await?
        .iter()
        .map(to_wire)
        .collect())
}

/// Deletes a hook, its pending deliveries and its history.
pub async fn remove(registry: &Registry, caller: &Caller, id: i64) -> Result<()> {
    authorize_hook(registry, caller, id).await?;
    registry
        .meta
        .delete_webhook(id, &caller.user.username)
        .await?;
    Ok(())
}

/// A hook's delivery attempts, newest first.
pub async fn deliveries(
    registry: &Registry,
    caller: &Caller,
    id: i64,
) -> Result<Vec<WebhookAttempt>> {
    authorize_hook(registry, caller, id).await?;
    Ok(registry
        .meta
        .webhook_attempts(id, KEEP_ATTEMPTS)
        .await?
        .into_iter()
        .map(|a| WebhookAttempt {
            message_id: a.message_id,
            event: a.event,
            attempt: a.attempt,
            at: crate::time::rfc3339(a.at),
            status_code: a.status_code,
            error: a.error,
            duration_ms: a.duration_ms,
        })
        .collect())
}

/// Queues a `webhook.ping` delivery to one hook, enabled or not.
pub async fn ping(registry: &Registry, caller: &Caller, id: i64) -> Result<WebhookPing> {
    let hook = authorize_hook(registry, caller, id).await?;
    let data = serde_json::json!({ "webhook": hook.id });
    let message_id = enqueue(registry, &hook, PING_EVENT, data).await?;
    Ok(WebhookPing { message_id })
}

async fn authorize_publisher(
    registry: &Registry,
    caller: &Caller,
    name: &str,
) -> Result<agora_store::PublisherRecord> {
    let p = crate::publishers::get(registry, name).await?;
    let owner = crate::publishers::is_owner(registry, &p, &caller.user.username).await?;
    caller.require_webhooks(&p, owner)?;
    Ok(p)
}

/// The hook `id` if the caller may manage it; a hook they may not see is not found.
async fn authorize_hook(registry: &Registry, caller: &Caller, id: i64) -> Result<WebhookRecord> {
    let missing = || RegistryError::not_found(format!("webhook {id} not found"));
    let Some((hook, publisher_id)) = registry.meta.webhook(id).await? else {
        return Err(missing());
    };
    match (publisher_id, &hook.publisher) {
        (Some(pid), Some(name)) => {
            if !caller.is_admin() && !caller.is_member(pid) {
                return Err(missing());
            }
            authorize_publisher(registry, caller, name).await?;
        }
        _ => {
            if !caller.is_admin() {
                return Err(missing());
            }
        }
    }
    Ok(hook)
}

fn to_wire(r: &WebhookRecord) -> Webhook {
    Webhook {
        id: r.id,
        publisher: r.publisher.clone(),
        url: r.url.clone(),
        events: r.events.clone(),
        enabled: r.enabled,
        created_by: r.created_by.clone(),
        created_at: crate::time::rfc3339(r.created_at),
    }
}

/// A fresh delivery id (`webhook-id`): `msg_` and 16 random bytes, hex.
fn new_message_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    format!("msg_{}", hex::encode(bytes))
}

/// Records one delivery of `event` to `hook` with its job; returns its `webhook-id`.
async fn enqueue(
    registry: &Registry,
    hook: &WebhookRecord,
    event: &str,
    data: serde_json::Value,
) -> Result<String> {
    let message_id = new_message_id();
    let body = serde_json::json!({
        "type": event,
        "timestamp": crate::time::rfc3339(now_ms()),
        "data": data,
    });
    registry
        .meta
        .enqueue_delivery(hook.id, &message_id, event, &body.to_string(), MAX_ATTEMPTS)
        .await?;
    Ok(message_id)
}

/// Queues `event` about a release of `publisher` to every enabled hook that subscribes
/// to it (the publisher's and the registry-wide ones). Never fails: the action that
/// caused the event has happened; a store error is logged.
pub async fn emit(registry: &Registry, publisher: &str, event: &str, data: serde_json::Value) {
    if let Err(e) = try_emit(registry, publisher, event, data).await {
        tracing::warn!(event, publisher, error = %e, "could not queue a webhook delivery");
    }
}

async fn try_emit(
    registry: &Registry,
    publisher: &str,
    event: &str,
    data: serde_json::Value,
) -> Result<()> {
    let Some(p) = registry.meta.publisher_by_name(publisher).await? else {
        return Ok(());
    };
    for hook in registry.meta.webhooks_for_event(p.id, event).await? {
        enqueue(registry, &hook, event, data.clone()).await?;
    }
    Ok(())
}

/// `release.published`.
pub async fn release_published(registry: &Registry, plugin: &PluginRef, version: &str) {
    let data = serde_json::json!({
        "release": format!("{plugin}@{version}"),
        "publisher": plugin.publisher.as_str(),
        "plugin": plugin.name.as_str(),
        "version": version,
    });
    emit(
        registry,
        plugin.publisher.as_str(),
        webhook::RELEASE_PUBLISHED,
        data,
    )
    .await;
}

/// `verification.completed`: the outcome and the findings counted by severity.
pub async fn verification_completed(registry: &Registry, report: &VerificationReport) {
    let counts = SeverityCounts::of(report.stages.iter().flat_map(|s| s.findings.iter()));
    let data = serde_json::json!({
        "release": report.release,
        "outcome": report.outcome.as_str(),
        "checked_at": report.checked_at,
        "counts": counts,
    });
    let publisher = report.release.split('/').next().unwrap_or_default();
    emit(registry, publisher, webhook::VERIFICATION_COMPLETED, data).await;
}

/// `release.lifecycle`: what was done (`yank`, `unyank`, `deprecate`, `insecure`,
/// `takedown`, or `restore` for a deprecated or insecure release made active again),
/// the state before and after, and the reason given.
pub async fn lifecycle_changed(
    registry: &Registry,
    release: &str,
    previous: Lifecycle,
    state: Lifecycle,
    reason: Option<&str>,
) {
    let action = match (previous, state) {
        (_, Lifecycle::Yanked) => "yank",
        (Lifecycle::Yanked, Lifecycle::Active) => "unyank",
        (_, Lifecycle::Active) => "restore",
        (_, Lifecycle::Deprecated) => "deprecate",
        (_, Lifecycle::Insecure) => "insecure",
        (_, Lifecycle::Removed) => "takedown",
    };
    let data = serde_json::json!({
        "release": release,
        "action": action,
        "previous_state": previous.as_str(),
        "state": state.as_str(),
        "reason": reason,
    });
    let publisher = release.split('/').next().unwrap_or_default();
    emit(registry, publisher, webhook::RELEASE_LIFECYCLE, data).await;
}

/// `advisory.matched`: an advisory affects a component of a release.
pub async fn advisory_matched(
    registry: &Registry,
    release: &str,
    advisory: &str,
    component_purl: &str,
    fixed: Option<&str>,
) {
    let data = serde_json::json!({
        "release": release,
        "advisory": advisory,
        "component": component_purl,
        "fixed": fixed,
    });
    let publisher = release.split('/').next().unwrap_or_default();
    emit(registry, publisher, webhook::ADVISORY_MATCHED, data).await;
}

/// The worker loop: sends due deliveries, waits `idle_wait` when there are none, keeps
/// going through store errors (logged). Runs until its task is dropped.
pub async fn run_worker(registry: Arc<Registry>, worker: String, idle_wait: Duration) {
    let client = match http_client(registry.webhooks) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook client; no webhook is sent");
            return;
        }
    };
    loop {
        match deliver_one(&registry, &client, &worker).await {
            Ok(true) => {}
            Ok(false) => tokio::time::sleep(idle_wait).await,
            Err(e) => {
                tracing::error!(error = %e, "the webhook worker cannot reach the store");
                tokio::time::sleep(idle_wait * 4).await;
            }
        }
    }
}

/// The client deliveries go through: no redirects followed, no proxy, a deadline per
/// attempt, and (unless private addresses are allowed) a resolver that refuses names
/// resolving to internal addresses.
pub fn http_client(settings: WebhookSettings) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("agora-webhooks/", env!("CARGO_PKG_VERSION")));
    if !settings.allow_private {
        builder = builder.dns_resolver(Arc::new(PublicOnly));
    }
    builder
        .build()
        .map_err(|e| RegistryError::internal("cannot build the webhook HTTP client", e))
}

/// Resolves names, keeping only public addresses (none left: an error naming the name).
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> =
                all.into_iter().filter(|a| !is_internal(a.ip())).collect();
            if public.is_empty() {
                return Err(format!(
                    "{host} resolves to no public address (private addresses need [webhooks] allow_private = true)"
                )
                .into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// Claims and sends one due delivery; false when none was due.
async fn deliver_one(registry: &Registry, client: &reqwest::Client, worker: &str) -> Result<bool> {
    let lease = i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX);
    let Some(job) = registry
        .meta
        .claim_job(worker, &[WEBHOOK_JOB_KIND], lease)
        .await?
    else {
        return Ok(false);
    };
    let delivery = match job.subject.parse::<i64>() {
        Ok(id) => registry.meta.delivery(id).await?,
        Err(_) => None,
    };
    let hook = match &delivery {
        Some(d) => registry.meta.webhook(d.webhook_id).await?.map(|(h, _)| h),
        None => None,
    };
    let (Some(delivery), Some(hook)) = (delivery, hook) else {
        // The hook was removed meanwhile (its deliveries with it): nothing to send.
        registry.meta.complete_job(&job).await?;
        return Ok(true);
    };
    if !hook.enabled && delivery.event != PING_EVENT {
        registry.meta.complete_job(&job).await?;
        return Ok(true);
    }
    let started = Instant::now();
    let at = now_ms();
    let sent = send(client, registry.webhooks, &hook, &delivery).await;
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    record(registry, &job, &delivery, sent, at, duration_ms).await?;
    Ok(true)
}

/// Records an attempt and ends or retries its job.
async fn record(
    registry: &Registry,
    job: &ClaimedJob,
    delivery: &DeliveryRecord,
    sent: std::result::Result<u16, String>,
    at: i64,
    duration_ms: i64,
) -> Result<()> {
    let (status_code, error) = match &sent {
        Ok(status) if (200..300).contains(status) => (Some(*status), None),
        Ok(status) => (
            Some(*status),
            Some(format!("the receiver answered HTTP {status}")),
        ),
        Err(e) => (None, Some(e.clone())),
    };
    let state = match (&error, job.attempt >= job.max_attempts) {
        (None, _) => DeliveryState::Delivered,
        (Some(_), true) => DeliveryState::Failed,
        (Some(_), false) => DeliveryState::Pending,
    };
    let attempt = AttemptRecord {
        delivery_id: delivery.id,
        message_id: delivery.message_id.clone(),
        event: delivery.event.clone(),
        attempt: job.attempt,
        at,
        status_code,
        error: error.clone(),
        duration_ms,
    };
    registry
        .meta
        .record_attempt(delivery, &attempt, state, KEEP_ATTEMPTS)
        .await?;
    match error {
        None => {
            registry.meta.complete_job(job).await?;
        }
        Some(e) => {
            let retry = registry.meta.fail_job(job, &e).await?;
            tracing::warn!(job = job.id, delivery = %delivery.message_id, error = %e, ?retry, "a webhook delivery failed");
        }
    }
    Ok(())
}

/// One attempt: the signed POST; the receiver's status, or why none came.
async fn send(
    client: &reqwest::Client,
    settings: WebhookSettings,
    hook: &WebhookRecord,
    delivery: &DeliveryRecord,
) -> std::result::Result<u16, String> {
    // Checked again: the operator may have disallowed private addresses since.
    let url = check_url(&hook.url, settings.allow_private).map_err(|e| e.to_string())?;
    let timestamp = now_ms() / 1000;
    let body = delivery.payload.as_bytes().to_vec();
    let signature =
        sign(&hook.secret, &delivery.message_id, timestamp, &body).map_err(|e| e.to_string())?;
    let mut response = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &delivery.message_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .map_err(|e| transport_error(&e))?;
    let status = response.status().as_u16();
    // The answer is read (so the connection ends cleanly), at most MAX_RESPONSE_BYTES.
    let mut read = 0usize;
    while read < MAX_RESPONSE_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => read += chunk.len(),
            Ok(None) => break,
            Err(e) => return Err(transport_error(&e)),
        }
    }
    Ok(status)
}

/// A transport error with its causes, on one line.
fn transport_error(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    if e.is_timeout() {
        text.push_str(" (timed out after 10 s)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification's reference libraries.
        let signature = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn the_signature_is_the_hmac_of_id_timestamp_and_body() {
        let secret = new_secret();
        let key = Base64::decode_vec(secret.strip_prefix(SECRET_PREFIX).unwrap()).unwrap();
        assert_eq!(key.len(), 32);
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(b"msg_1.1700000000.{\"a\":1}");
        let expected = format!("v1,{}", Base64::encode_string(&mac.finalize().into_bytes()));
        assert_eq!(
            sign(&secret, "msg_1", 1_700_000_000, b"{\"a\":1}").unwrap(),
            expected
        );
        assert_ne!(
            sign(&secret, "msg_1", 1_700_000_001, b"{\"a\":1}").unwrap(),
            expected
        );
    }

    fn field_of(e: RegistryError) -> String {
        e.errors
            .first()
            .map(|f| f.field.clone())
            .unwrap_or_default()
    }

    #[test]
    fn hook_urls_are_http_or_https_without_user_information_or_internal_addresses() {
        assert!(check_url("https://hooks.example.com/agora", false).is_ok());
        assert!(check_url("http://hooks.example.com:8080/x?y=1", false).is_ok());
        for bad in [
            "ftp://hooks.example.com/",
            "file:///etc/passwd",
            "https://user:pw@hooks.example.com/",
            "https://user@hooks.example.com/",
            "not a url",
            "http://127.0.0.1:9000/",
            "http://localhost/",
            "http://10.1.2.3/",
            "http://192.168.0.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
        ] {
            let e = check_url(bad, false).expect_err(bad);
            assert_eq!(field_of(e), "url", "{bad}");
        }
        let long = format!("https://hooks.example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert_eq!(field_of(check_url(&long, false).unwrap_err()), "url");
        assert!(check_url("http://127.0.0.1:9000/", true).is_ok());
        assert!(check_url("https://user:pw@127.0.0.1/", true).is_err());
    }

    #[test]
    fn events_are_from_the_closed_list_and_the_error_lists_them() {
        assert_eq!(
            check_events(&["release.published".into(), "release.published".into()]).unwrap(),
            vec!["release.published".to_owned()]
        );
        let e = check_events(&["release.published".into(), "release.deleted".into()]).unwrap_err();
        let f = &e.errors[0];
        assert_eq!(f.field, "events[1]");
        assert!(
            f.expected
                .as_deref()
                .unwrap_or_default()
                .contains("verification.completed")
        );
        assert_eq!(field_of(check_events(&[]).unwrap_err()), "events");
    }
}
