//! A typed client of the registry's HTTP API.

use std::path::Path;

use agora_core::api::*;
use agora_core::name::PluginRef;
use agora_core::{Digest, Sha256Hasher};
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The registry answered with a problem document.
    #[error("{}", describe(.status, .problem))]
    Api {
        status: StatusCode,
        problem: Box<Problem>,
    },
    /// An error answer that is no problem document (a proxy's page, or no body at all).
    #[error("the registry answered {status}{}", unexplained(.body))]
    Unexpected { status: StatusCode, body: String },
    #[error("cannot reach the registry at {url}: {source}")]
    Transport { url: String, source: reqwest::Error },
    #[error("invalid registry URL {0:?}{hint}", hint = url_hint(.0))]
    Url(String),
    #[error(
        "downloaded content of {digest} does not match its digest (got {actual}); nothing was kept"
    )]
    DigestMismatch { digest: Digest, actual: Digest },
    #[error("downloaded {actual} bytes of {digest} but {expected} were expected; nothing was kept")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

/// A problem document as one line a person can act on: its title, its detail, and every
/// field error the detail does not already name, then the status and the problem kind.
fn describe(status: &StatusCode, problem: &Problem) -> String {
    let title = problem.title.trim();
    let title = if title.is_empty() {
        status.canonical_reason().unwrap_or("Error")
    } else {
        title
    };
    let mut parts: Vec<String> = Vec::new();
    if let Some(detail) = problem.detail.as_deref().map(str::trim)
        && !detail.is_empty()
        && detail != title
    {
        parts.push(detail.to_owned());
    }
    for error in &problem.errors {
        let error = error.to_string();
        if !parts.iter().any(|p| p.contains(&error)) {
            parts.push(error);
        }
    }
    let mut out = title.to_owned();
    if !parts.is_empty() {
        out = format!("{out}: {}", parts.join("; "));
    }
    format!("{out} ({}, {})", status.as_u16(), problem.kind)
}

/// The body of an error answer that is no problem document, when there is one.
fn unexplained(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        " without saying why".to_owned()
    } else {
        format!(": {body}")
    }
}

/// What to say about a registry URL the client cannot use. For one without a scheme
/// (`localhost:8080`, `registry.example.com`), the URL that was probably meant: `http://`
/// for this machine, a bare IP address or a name without a dot (a local network),
/// `https://` otherwise.
pub fn url_hint(given: &str) -> String {
    const SHAPE: &str = ": a registry URL is http://HOST[:PORT] or https://HOST[:PORT]";
    let given = given.trim();
    if given.is_empty() || given.contains("://") || given.contains(char::is_whitespace) {
        return SHAPE.to_owned();
    }
    let host = given.split(['/', '?', '#']).next().unwrap_or("");
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    let local = name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().is_ok()
        || !name.contains('.');
    let scheme = if local { "http" } else { "https" };
    match reqwest::Url::parse(&format!("{scheme}://{given}")) {
        Ok(url) if !name.is_empty() && url.host_str().is_some() => {
            format!(": it has no scheme; did you mean {scheme}://{given}?")
        }
        _ => SHAPE.to_owned(),
    }
}

impl ClientError {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } | ClientError::Unexpected { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    pub fn problem(&self) -> Option<&Problem> {
        match self {
            ClientError::Api { problem, .. } => Some(problem),
            _ => None,
        }
    }
}

pub(crate) fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClientError {
    let context = context.into();
    move |source| ClientError::Io { context, source }
}

/// The environment variable naming a PEM file of certificate authorities to trust beside
/// the system's, for a registry whose certificate a private CA signed.
pub const CA_FILE_ENV: &str = "AGORA_CA_FILE";

/// The certificates of `AGORA_CA_FILE`, when it is set: every client trusts them beside
/// the system's roots (the CLI, `agora agent`, the benchmarks: every program that talks to
/// a registry through [`Client`]).
fn extra_roots() -> Result<Vec<reqwest::Certificate>, ClientError> {
    let Some(path) = std::env::var_os(CA_FILE_ENV).filter(|p| !p.is_empty()) else {
        return Ok(Vec::new());
    };
    ca_file(Path::new(&path))
}

/// The certificates of the PEM file `path`; an error names it and `AGORA_CA_FILE`.
fn ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, ClientError> {
    let context = format!(
        "cannot use {} (named by {CA_FILE_ENV}) as certificate authorities",
        path.display()
    );
    let pem = std::fs::read(path).map_err(io_error(context.clone()))?;
    let roots = reqwest::Certificate::from_pem_bundle(&pem)
        .ok()
        .filter(|roots| !roots.is_empty());
    roots.ok_or_else(|| ClientError::Io {
        context,
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "it holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        ),
    })
}

#[derive(Clone)]
pub struct Client {
    base: reqwest::Url,
    http: reqwest::Client,
    token: Option<String>,
}

impl Client {
    pub fn new(registry: &str, token: Option<String>) -> Result<Client, ClientError> {
        let mut base =
            reqwest::Url::parse(registry).map_err(|_| ClientError::Url(registry.to_owned()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(ClientError::Url(registry.to_owned()));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("agora/", env!("CARGO_PKG_VERSION")))
            .tls_certs_merge(extra_roots()?)
            .build()
            .map_err(|source| ClientError::Transport {
                url: registry.to_owned(),
                source,
            })?;
        Ok(Client { base, http, token })
    }

    pub fn registry(&self) -> &str {
        self.base.as_str()
    }

    fn url(&self, path: &str) -> reqwest::Url {
        // Paths are built from validated names and digests only.
        self.base
            .join(path.trim_start_matches('/'))
            .unwrap_or_else(|_| self.base.clone())
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, self.url(path));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        req
    }

    /// Sends a request; an error answer becomes a [`ClientError`]. Each request is a
    /// `debug` event (method, URL, status or error, milliseconds to the answer's head),
    /// which `agora -v` shows.
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let transport = |source| ClientError::Transport {
            url: self.base.to_string(),
            source,
        };
        let request = req.build().map_err(transport)?;
        let (method, url) = (request.method().clone(), request.url().clone());
        let started = std::time::Instant::now();
        let result = self.http.execute(request).await;
        let ms = started.elapsed().as_millis() as u64;
        let response = match result {
            Ok(response) => {
                tracing::debug!(%method, %url, status = response.status().as_u16(), ms, "registry request");
                response
            }
            Err(source) => {
                tracing::debug!(%method, %url, error = %source, ms, "registry request failed");
                return Err(transport(source));
            }
        };
        if response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED {
            return Ok(response);
        }
        Err(error_from(response).await)
    }

    async fn json<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = self.send(req).await?;
        let status = response.status();
        let url = self.base.to_string();
        let body = response
            .bytes()
            .await
            .map_err(|source| ClientError::Transport { url, source })?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Unexpected {
            status,
            body: format!("unreadable answer ({e})"),
        })
    }

    pub async fn me(&self) -> Result<Me, ClientError> {
        self.json(self.request(Method::GET, "api/v1/me")).await
    }

    pub async fn create_user(
        &self,
        username: &str,
        role: Option<&str>,
    ) -> Result<User, ClientError> {
        let body = CreateUser {
            username: username.into(),
            role: role.map(Into::into),
        };
        self.json(self.request(Method::POST, "api/v1/users").json(&body))
            .await
    }

    /// Sets the web sign-in password of `username` (one's own, or anyone's as admin).
    pub async fn set_password(&self, username: &str, password: &str) -> Result<(), ClientError> {
        let body = agora_core::api::SetPassword {
            password: password.into(),
        };
        let path = format!("api/v1/users/{username}/password");
        self.send(self.request(Method::PUT, &path).json(&body))
            .await?;
        Ok(())
    }

    pub async fn list_users(&self) -> Result<Vec<User>, ClientError> {
        self.json(self.request(Method::GET, "api/v1/users")).await
    }

    pub async fn create_publisher(
        &self,
        name: &str,
        display_name: Option<&str>,
    ) -> Result<Publisher, ClientError> {
        let body = CreatePublisher {
            name: name.into(),
            display_name: display_name.map(Into::into),
        };
        self.json(self.request(Method::POST, "api/v1/publishers").json(&body))
            .await
    }

    /// Adds a member (administrators), changes a member's role, or invites (owners).
    pub async fn add_member(
        &self,
        publisher: &str,
        username: &str,
        role: Option<&str>,
    ) -> Result<MemberChangeResult, ClientError> {
        let body = AddMember {
            username: username.into(),
            role: role.map(Into::into),
        };
        self.json(
            self.request(
                Method::POST,
                &format!("api/v1/publishers/{publisher}/members"),
            )
            .json(&body),
        )
        .await
    }

    /// Removes a member (or, with one's own name, leaves the publisher).
    pub async fn remove_member(
        &self,
        publisher: &str,
        username: &str,
    ) -> Result<Vec<Member>, ClientError> {
        self.json(self.request(
            Method::DELETE,
            &format!("api/v1/publishers/{publisher}/members/{username}"),
        ))
        .await
    }

    /// Open invitations: the publisher's (owners), or with `None` the caller's own.
    pub async fn invitations(
        &self,
        publisher: Option<&str>,
    ) -> Result<Vec<Invitation>, ClientError> {
        let path = match publisher {
            Some(p) => format!("api/v1/publishers/{p}/invitations"),
            None => "api/v1/invitations".to_owned(),
        };
        self.json(self.request(Method::GET, &path)).await
    }

    pub async fn accept_invitation(&self, publisher: &str) -> Result<Vec<Member>, ClientError> {
        self.json(self.request(
            Method::POST,
            &format!("api/v1/publishers/{publisher}/invitations/accept"),
        ))
        .await
    }

    /// Withdraws an invitation (owners) or declines one's own.
    pub async fn cancel_invitation(
        &self,
        publisher: &str,
        username: &str,
    ) -> Result<(), ClientError> {
        self.send(self.request(
            Method::DELETE,
            &format!("api/v1/publishers/{publisher}/invitations/{username}"),
        ))
        .await
        .map(drop)
    }

    /// Imports OSV records (administrators).
    pub async fn import_advisories(
        &self,
        request: &agora_core::api::AdvisoryImportRequest,
    ) -> Result<agora_core::api::AdvisoryImportResponse, ClientError> {
        self.json(
            self.request(Method::POST, "api/v1/advisories")
                .json(request),
        )
        .await
    }

    /// The path of the hooks of `publisher` (a validated name), or the registry-wide ones.
    fn webhooks_path(publisher: Option<&str>) -> String {
        match publisher {
            Some(p) => format!("api/v1/publishers/{p}/webhooks"),
            None => "api/v1/webhooks".to_owned(),
        }
    }

    /// Creates a hook for `publisher`'s events, or (`None`) a registry-wide one.
    pub async fn create_webhook(
        &self,
        publisher: Option<&str>,
        request: &agora_core::webhook::WebhookCreateRequest,
    ) -> Result<agora_core::webhook::WebhookCreated, ClientError> {
        self.json(
            self.request(Method::POST, &Self::webhooks_path(publisher))
                .json(request),
        )
        .await
    }

    pub async fn webhooks(
        &self,
        publisher: Option<&str>,
    ) -> Result<Vec<agora_core::webhook::Webhook>, ClientError> {
        self.json(self.request(Method::GET, &Self::webhooks_path(publisher)))
            .await
    }

    pub async fn remove_webhook(&self, id: i64) -> Result<(), ClientError> {
        self.send(self.request(Method::DELETE, &format!("api/v1/webhooks/{id}")))
            .await
            .map(drop)
    }

    pub async fn webhook_deliveries(
        &self,
        id: i64,
    ) -> Result<Vec<agora_core::webhook::WebhookAttempt>, ClientError> {
        self.json(self.request(Method::GET, &format!("api/v1/webhooks/{id}/deliveries")))
            .await
    }

    pub async fn ping_webhook(
        &self,
        id: i64,
    ) -> Result<agora_core::webhook::WebhookPing, ClientError> {
        self.json(self.request(Method::POST, &format!("api/v1/webhooks/{id}/ping")))
            .await
    }

    // ---- tenants (agora_core::tenant) ----

    pub async fn create_tenant(
        &self,
        request: &agora_core::tenant::CreateTenant,
    ) -> Result<agora_core::tenant::Tenant, ClientError> {
        self.json(self.request(Method::POST, "api/v1/tenants").json(request))
            .await
    }

    pub async fn tenants(&self) -> Result<agora_core::tenant::TenantList, ClientError> {
        self.json(self.request(Method::GET, "api/v1/tenants")).await
    }

    pub async fn tenant(&self, tenant: &str) -> Result<agora_core::tenant::Tenant, ClientError> {
        self.json(self.request(Method::GET, &format!("api/v1/tenants/{tenant}")))
            .await
    }

    pub async fn tenant_policy(
        &self,
        tenant: &str,
    ) -> Result<agora_core::tenant::TenantPolicy, ClientError> {
        self.json(self.request(Method::GET, &format!("api/v1/tenants/{tenant}/policy")))
            .await
    }

    pub async fn set_tenant_policy(
        &self,
        tenant: &str,
        policy: &agora_core::tenant::TenantPolicy,
    ) -> Result<agora_core::tenant::TenantPolicy, ClientError> {
        self.json(
            self.request(Method::PUT, &format!("api/v1/tenants/{tenant}/policy"))
                .json(policy),
        )
        .await
    }

    pub async fn tenant_members(
        &self,
        tenant: &str,
    ) -> Result<agora_core::tenant::TenantMemberList, ClientError> {
        self.json(self.request(Method::GET, &format!("api/v1/tenants/{tenant}/members")))
            .await
    }

    /// Adds a member or changes their role (`Some`), or removes them (`None`).
    pub async fn set_tenant_member(
        &self,
        tenant: &str,
        user: &str,
        role: Option<agora_core::tenant::TenantRole>,
    ) -> Result<agora_core::tenant::TenantMemberList, ClientError> {
        let path = format!("api/v1/tenants/{tenant}/members/{user}");
        match role {
            Some(role) => {
                self.json(
                    self.request(Method::PUT, &path)
                        .json(&agora_core::tenant::SetTenantMember { role }),
                )
                .await
            }
            None => self.json(self.request(Method::DELETE, &path)).await,
        }
    }

    pub async fn register_instance(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<agora_core::tenant::RegisteredInstance, ClientError> {
        self.json(
            self.request(Method::POST, &format!("api/v1/tenants/{tenant}/instances"))
                .json(&agora_core::tenant::RegisterInstance {
                    name: name.to_owned(),
                }),
        )
        .await
    }

    pub async fn instances(
        &self,
        tenant: &str,
    ) -> Result<agora_core::tenant::InstanceList, ClientError> {
        self.json(self.request(Method::GET, &format!("api/v1/tenants/{tenant}/instances")))
            .await
    }

    pub async fn revoke_instance(&self, tenant: &str, name: &str) -> Result<(), ClientError> {
        self.send(self.request(
            Method::DELETE,
            &format!("api/v1/tenants/{tenant}/instances/{name}"),
        ))
        .await
        .map(drop)
    }

    pub async fn approvals(
        &self,
        tenant: &str,
    ) -> Result<agora_core::tenant::ApprovalList, ClientError> {
        self.json(self.request(Method::GET, &format!("api/v1/tenants/{tenant}/plugins")))
            .await
    }

    /// What approving `plugin` (at `version`, or its newest installable one) would grant.
    pub async fn install_preview(
        &self,
        tenant: &str,
        plugin: &PluginRef,
        version: Option<&str>,
    ) -> Result<agora_core::tenant::InstallPreview, ClientError> {
        let mut req = self.request(
            Method::GET,
            &format!(
                "api/v1/tenants/{tenant}/plugins/{}/{}/preview",
                plugin.publisher, plugin.name
            ),
        );
        if let Some(v) = version {
            req = req.query(&[("version", v)]);
        }
        self.json(req).await
    }

    /// Approves `plugin` at `version` for the tenant, or moves its pin there.
    pub async fn approve(
        &self,
        tenant: &str,
        plugin: &PluginRef,
        request: &agora_core::tenant::ApproveRequest,
    ) -> Result<agora_core::tenant::Approval, ClientError> {
        self.json(
            self.request(
                Method::PUT,
                &format!(
                    "api/v1/tenants/{tenant}/plugins/{}/{}",
                    plugin.publisher, plugin.name
                ),
            )
            .json(request),
        )
        .await
    }

    // ---- entitlements ----

    /// The tenants a plugin is offered to.
    pub async fn plugin_entitlements(
        &self,
        plugin: &PluginRef,
    ) -> Result<agora_core::tenant::EntitlementList, ClientError> {
        self.json(self.request(
            Method::GET,
            &format!(
                "api/v1/plugins/{}/{}/entitlements",
                plugin.publisher, plugin.name
            ),
        ))
        .await
    }

    /// Offers a private plugin to a tenant.
    pub async fn grant_entitlement(
        &self,
        plugin: &PluginRef,
        tenant: &str,
    ) -> Result<agora_core::tenant::Entitlement, ClientError> {
        self.json(self.request(
            Method::PUT,
            &format!(
                "api/v1/plugins/{}/{}/entitlements/{tenant}",
                plugin.publisher, plugin.name
            ),
        ))
        .await
    }

    /// Withdraws a plugin's offer to a tenant.
    pub async fn revoke_entitlement(
        &self,
        plugin: &PluginRef,
        tenant: &str,
    ) -> Result<agora_core::tenant::RevokedEntitlement, ClientError> {
        self.json(self.request(
            Method::DELETE,
            &format!(
                "api/v1/plugins/{}/{}/entitlements/{tenant}",
                plugin.publisher, plugin.name
            ),
        ))
        .await
    }

    /// The private plugins offered to a tenant.
    pub async fn tenant_entitlements(
        &self,
        tenant: &str,
    ) -> Result<agora_core::tenant::EntitlementList, ClientError> {
        self.json(self.request(
            Method::GET,
            &format!("api/v1/tenants/{tenant}/entitlements"),
        ))
        .await
    }

    pub async fn unapprove(&self, tenant: &str, plugin: &PluginRef) -> Result<(), ClientError> {
        self.send(self.request(
            Method::DELETE,
            &format!(
                "api/v1/tenants/{tenant}/plugins/{}/{}",
                plugin.publisher, plugin.name
            ),
        ))
        .await
        .map(drop)
    }

    pub async fn rollback(
        &self,
        tenant: &str,
        plugin: &PluginRef,
    ) -> Result<agora_core::tenant::Approval, ClientError> {
        self.json(self.request(
            Method::POST,
            &format!(
                "api/v1/tenants/{tenant}/plugins/{}/{}/rollback",
                plugin.publisher, plugin.name
            ),
        ))
        .await
    }

    pub async fn tenant_updates(
        &self,
        tenant: &str,
    ) -> Result<agora_core::tenant::UpdateList, ClientError> {
        self.json(self.request(Method::GET, &format!("api/v1/tenants/{tenant}/updates")))
            .await
    }

    pub async fn apply_updates(
        &self,
        tenant: &str,
        request: &agora_core::tenant::ApplyUpdates,
    ) -> Result<agora_core::tenant::AppliedUpdates, ClientError> {
        self.json(
            self.request(
                Method::POST,
                &format!("api/v1/tenants/{tenant}/updates/apply"),
            )
            .json(request),
        )
        .await
    }

    pub async fn fleet(&self, tenant: &str) -> Result<agora_core::tenant::FleetView, ClientError> {
        self.json(self.request(Method::GET, &format!("api/v1/tenants/{tenant}/fleet")))
            .await
    }

    // ---- an instance's own calls (its `agi_` credential as the token) ----

    /// The instance's desired set. With `after` (the generation it has) and `wait`
    /// seconds, the registry holds the answer until the set changes or the wait ends.
    pub async fn desired_set(
        &self,
        after: Option<i64>,
        wait_secs: u32,
    ) -> Result<agora_core::tenant::DesiredSet, ClientError> {
        let mut req = self
            .request(Method::GET, "api/v1/instance/desired")
            .timeout(std::time::Duration::from_secs(u64::from(wait_secs) + 30));
        if let Some(after) = after {
            req = req.query(&[
                ("after", after.to_string()),
                ("wait", wait_secs.to_string()),
            ]);
        }
        self.json(req).await
    }

    pub async fn report_instance(
        &self,
        report: &agora_core::tenant::InstanceReport,
    ) -> Result<(), ClientError> {
        self.send(
            self.request(Method::POST, "api/v1/instance/report")
                .json(report),
        )
        .await
        .map(drop)
    }

    pub async fn create_token(&self, request: &CreateToken) -> Result<CreatedToken, ClientError> {
        self.json(self.request(Method::POST, "api/v1/tokens").json(request))
            .await
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenInfo>, ClientError> {
        self.json(self.request(Method::GET, "api/v1/tokens")).await
    }

    pub async fn revoke_token(&self, id: i64) -> Result<(), ClientError> {
        self.send(self.request(Method::DELETE, &format!("api/v1/tokens/{id}")))
            .await
            .map(drop)
    }

    pub async fn keys(&self, publisher: &str) -> Result<Vec<PublisherKey>, ClientError> {
        self.json(self.request(Method::GET, &format!("api/v1/publishers/{publisher}/keys")))
            .await
    }

    pub async fn add_key(
        &self,
        publisher: &str,
        public_key: &str,
    ) -> Result<PublisherKey, ClientError> {
        let body = AddKey {
            public_key: public_key.to_owned(),
        };
        self.json(
            self.request(Method::POST, &format!("api/v1/publishers/{publisher}/keys"))
                .json(&body),
        )
        .await
    }

    pub async fn revoke_key(
        &self,
        publisher: &str,
        id: &str,
        reason: Option<&str>,
    ) -> Result<PublisherKey, ClientError> {
        let body = RevokeKey {
            id: id.to_owned(),
            reason: reason.map(str::to_owned),
        };
        self.json(
            self.request(
                Method::POST,
                &format!("api/v1/publishers/{publisher}/keys/revoke"),
            )
            .json(&body),
        )
        .await
    }

    pub async fn log_key(&self) -> Result<LogKeyInfo, ClientError> {
        self.json(self.request(Method::GET, "api/v1/log/key")).await
    }

    /// The registry's latest signed checkpoint (a C2SP signed note).
    pub async fn log_checkpoint(&self) -> Result<String, ClientError> {
        let response = self
            .send(self.request(Method::GET, "api/v1/log/checkpoint"))
            .await?;
        let url = self.base.to_string();
        response
            .text()
            .await
            .map_err(|source| ClientError::Transport { url, source })
    }

    /// Log entries from `from`, at most `limit` (the server caps it).
    pub async fn log_entries(
        &self,
        from: u64,
        limit: u32,
    ) -> Result<Vec<LogEntryBody>, ClientError> {
        self.json(self.request(
            Method::GET,
            &format!("api/v1/log/entries?from={from}&limit={limit}"),
        ))
        .await
    }

    pub async fn log_inclusion(&self, index: u64) -> Result<InclusionProofResponse, ClientError> {
        self.json(self.request(
            Method::GET,
            &format!("api/v1/log/proof/inclusion?index={index}"),
        ))
        .await
    }

    pub async fn log_consistency(
        &self,
        from: u64,
    ) -> Result<ConsistencyProofResponse, ClientError> {
        self.json(self.request(
            Method::GET,
            &format!("api/v1/log/proof/consistency?from={from}"),
        ))
        .await
    }

    pub async fn search(&self, params: &SearchParams) -> Result<SearchPage, ClientError> {
        self.json(self.request(Method::GET, "api/v1/plugins").query(params))
            .await
    }

    pub async fn plugin(&self, publisher: &str, name: &str) -> Result<PluginDetail, ClientError> {
        self.json(self.request(Method::GET, &format!("api/v1/plugins/{publisher}/{name}")))
            .await
    }

    pub async fn versions(&self, publisher: &str, name: &str) -> Result<VersionList, ClientError> {
        self.json(self.request(
            Method::GET,
            &format!("api/v1/plugins/{publisher}/{name}/versions"),
        ))
        .await
    }

    /// The newest verification report of a release whose detail the caller already
    /// fetched; `None` while it is not checked yet.
    pub async fn verification(
        &self,
        publisher: &str,
        name: &str,
        version: &str,
    ) -> Result<Option<agora_core::verification::VerificationReport>, ClientError> {
        match self
            .json(self.request(
                Method::GET,
                &format!("api/v1/plugins/{publisher}/{name}/versions/{version}/verification"),
            ))
            .await
        {
            Ok(report) => Ok(Some(report)),
            // Callers have the release's detail already: 404 here means not checked yet.
            Err(e) if e.status().is_some_and(|s| s.as_u16() == 404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn version(
        &self,
        publisher: &str,
        name: &str,
        version: &str,
    ) -> Result<VersionDetail, ClientError> {
        self.json(self.request(
            Method::GET,
            &format!("api/v1/plugins/{publisher}/{name}/versions/{version}"),
        ))
        .await
    }

    pub async fn set_lifecycle(
        &self,
        publisher: &str,
        name: &str,
        version: &str,
        request: &LifecycleRequest,
    ) -> Result<VersionDetail, ClientError> {
        let path = format!("api/v1/plugins/{publisher}/{name}/versions/{version}");
        self.json(self.request(Method::PATCH, &path).json(request))
            .await
    }

    pub async fn set_visibility(
        &self,
        publisher: &str,
        name: &str,
        visibility: agora_core::Visibility,
    ) -> Result<PluginDetail, ClientError> {
        let path = format!("api/v1/plugins/{publisher}/{name}");
        self.json(
            self.request(Method::PATCH, &path)
                .json(&PluginSettings { visibility }),
        )
        .await
    }

    pub async fn publish(
        &self,
        publisher: &str,
        name: &str,
        request: &PublishRequest,
    ) -> Result<PublishResponse, ClientError> {
        let path = format!("api/v1/plugins/{publisher}/{name}/versions");
        self.json(self.request(Method::POST, &path).json(request))
            .await
    }

    /// Whether the registry already has this blob (so it need not be uploaded again).
    pub async fn has_blob(&self, digest: &Digest) -> Result<bool, ClientError> {
        let path = format!("api/v1/blobs/{digest}");
        let absent = |e: &ClientError| e.status() == Some(StatusCode::NOT_FOUND);
        match self.send(self.request(Method::HEAD, &path)).await {
            Ok(_) => Ok(true),
            Err(e) if absent(&e) => Ok(false),
            // An answer to HEAD has no body, so no problem document saying why: ask the
            // same with GET to learn it (its body, if it succeeds, is not read).
            Err(ClientError::Unexpected { .. }) => {
                match self.send(self.request(Method::GET, &path)).await {
                    Ok(_) => Ok(true),
                    Err(e) if absent(&e) => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Streams a file to `PUT /api/v1/blobs/{digest}`, calling `progress` with each chunk's size.
    pub async fn upload_blob(
        &self,
        digest: &Digest,
        file: &Path,
        size: u64,
        progress: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<BlobInfo, ClientError> {
        let f = tokio::fs::File::open(file)
            .await
            .map_err(io_error(format!("cannot open {}", file.display())))?;
        let stream =
            tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024).inspect(move |chunk| {
                if let Ok(c) = chunk {
                    progress(c.len() as u64);
                }
            });
        let req = self
            .request(Method::PUT, &format!("api/v1/blobs/{digest}"))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(stream));
        self.json(req).await
    }

    /// Streams a blob into `dest`, hashing on the way; on any mismatch `dest` is removed.
    pub async fn download_blob(
        &self,
        digest: &Digest,
        expected_size: u64,
        dest: &Path,
    ) -> Result<(), ClientError> {
        let result = self.download_blob_inner(digest, expected_size, dest).await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(dest).await;
        }
        result
    }

    async fn download_blob_inner(
        &self,
        digest: &Digest,
        expected_size: u64,
        dest: &Path,
    ) -> Result<(), ClientError> {
        let response = self
            .send(self.request(Method::GET, &format!("api/v1/blobs/{digest}")))
            .await?;
        let file = tokio::fs::File::create(dest)
            .await
            .map_err(io_error(format!("cannot create {}", dest.display())))?;
        let mut out = tokio::io::BufWriter::with_capacity(1024 * 1024, file);
        let mut hasher = Sha256Hasher::new();
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|source| ClientError::Transport {
                url: self.base.to_string(),
                source,
            })?;
            if hasher.len() + chunk.len() as u64 > expected_size {
                return Err(ClientError::SizeMismatch {
                    digest: *digest,
                    expected: expected_size,
                    actual: hasher.len() + chunk.len() as u64,
                });
            }
            hasher.update(&chunk);
            out.write_all(&chunk)
                .await
                .map_err(io_error(format!("cannot write {}", dest.display())))?;
        }
        out.flush()
            .await
            .map_err(io_error(format!("cannot write {}", dest.display())))?;
        out.into_inner()
            .sync_all()
            .await
            .map_err(io_error(format!("cannot sync {}", dest.display())))?;
        let actual_size = hasher.len();
        let actual = hasher.finish();
        if actual_size != expected_size {
            return Err(ClientError::SizeMismatch {
                digest: *digest,
                expected: expected_size,
                actual: actual_size,
            });
        }
        if actual != *digest {
            return Err(ClientError::DigestMismatch {
                digest: *digest,
                actual,
            });
        }
        Ok(())
    }
}

async fn error_from(response: reqwest::Response) -> ClientError {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/problem+json"));
    let body = response.bytes().await.unwrap_or_default();
    if is_problem && let Ok(problem) = serde_json::from_slice::<Problem>(&body) {
        return ClientError::Api {
            status,
            problem: Box::new(problem),
        };
    }
    ClientError::Unexpected {
        status,
        body: String::from_utf8_lossy(&body).chars().take(300).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn a_ca_file_that_cannot_be_used_is_named_with_its_variable() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = ca_file(&missing).unwrap_err().to_string();
        assert!(
            err.contains("missing.pem") && err.contains("AGORA_CA_FILE"),
            "{err}"
        );
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        let err = ca_file(&garbage).unwrap_err().to_string();
        assert!(
            err.contains("garbage.pem") && err.contains("holds no PEM certificate"),
            "{err}"
        );
    }

    fn problem(title: &str, detail: Option<&str>, errors: Vec<agora_core::FieldError>) -> Problem {
        Problem {
            kind: "urn:agora:problem:invalid-request".into(),
            title: title.into(),
            status: 422,
            detail: detail.map(Into::into),
            errors,
        }
    }

    #[test]
    fn a_problem_reads_as_its_title_detail_and_field_errors() {
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        let field = agora_core::FieldError::new("version", "is not semver", Some("1.2.3"));
        // Detail that already names the field error: said once.
        let p = problem(
            "Invalid manifest",
            Some(&field.to_string()),
            vec![field.clone()],
        );
        assert_eq!(
            describe(&status, &p),
            "Invalid manifest: version: is not semver (expected 1.2.3) (422, urn:agora:problem:invalid-request)"
        );
        // Detail that does not: both.
        let p = problem(
            "Invalid release",
            Some("2 files are wrong"),
            vec![field.clone()],
        );
        assert_eq!(
            describe(&status, &p),
            "Invalid release: 2 files are wrong; version: is not semver (expected 1.2.3) (422, urn:agora:problem:invalid-request)"
        );
        // No detail, or the title again: the title alone.
        assert_eq!(
            describe(
                &StatusCode::UNAUTHORIZED,
                &problem("Unauthorized", None, vec![])
            ),
            "Unauthorized (401, urn:agora:problem:invalid-request)"
        );
        assert_eq!(
            describe(&status, &problem("Conflict", Some("Conflict"), vec![])),
            "Conflict (422, urn:agora:problem:invalid-request)"
        );
        // An empty title falls back to the status's reason.
        assert!(
            describe(&status, &problem("", Some("bad"), vec![]))
                .starts_with("Unprocessable Entity: bad (")
        );
    }

    #[test]
    fn an_answer_without_a_body_says_so_instead_of_ending_in_a_colon() {
        let e = ClientError::Unexpected {
            status: StatusCode::UNAUTHORIZED,
            body: String::new(),
        };
        assert_eq!(
            e.to_string(),
            "the registry answered 401 Unauthorized without saying why"
        );
        let e = ClientError::Unexpected {
            status: StatusCode::BAD_GATEWAY,
            body: "<html>bad gateway</html>\n".into(),
        };
        assert_eq!(
            e.to_string(),
            "the registry answered 502 Bad Gateway: <html>bad gateway</html>"
        );
    }

    #[test]
    fn a_registry_url_without_a_scheme_gets_the_url_it_probably_meant() {
        let hint = |url: &str| match Client::new(url, None) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{url} was accepted"),
        };
        assert_eq!(
            hint("localhost:8080"),
            "invalid registry URL \"localhost:8080\": it has no scheme; did you mean http://localhost:8080?"
        );
        assert!(
            hint("registry.example.com").ends_with("did you mean https://registry.example.com?")
        );
        assert!(
            hint("192.168.1.5:8080/agora").ends_with("did you mean http://192.168.1.5:8080/agora?")
        );
        assert!(hint("registry:8080").ends_with("did you mean http://registry:8080?"));
        assert!(
            hint("ftp://example.com").ends_with("is http://HOST[:PORT] or https://HOST[:PORT]")
        );
        assert!(hint("").ends_with("is http://HOST[:PORT] or https://HOST[:PORT]"));
        assert!(Client::new("http://localhost:8080", None).is_ok());
    }

    /// A registry that answers every request with 401: a problem document for GET,
    /// headers only for HEAD (as HTTP wants). Returns its URL and the methods it saw.
    async fn refusing_registry() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && socket.read(&mut byte).await.unwrap_or(0) == 1
                {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let method = head.split(' ').next().unwrap_or("").to_owned();
                log.lock().unwrap().push(method.clone());
                let body = r#"{"type":"urn:agora:problem:unauthorized","title":"Unauthorized","status":401,"detail":"token bad… is not known to this registry"}"#;
                let answer = format!(
                    "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                    body.len(),
                    if method == "HEAD" { "" } else { body }
                );
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        });
        (url, seen)
    }

    #[tokio::test]
    async fn a_refused_head_request_still_reports_the_registrys_problem() {
        let (url, seen) = refusing_registry().await;
        let client = Client::new(&url, Some("bad".into())).unwrap();
        let digest = agora_core::Digest::of(b"x");
        let e = client.has_blob(&digest).await.unwrap_err();
        assert_eq!(e.status(), Some(StatusCode::UNAUTHORIZED));
        assert_eq!(
            e.to_string(),
            "Unauthorized: token bad… is not known to this registry (401, urn:agora:problem:unauthorized)"
        );
        assert_eq!(*seen.lock().unwrap(), ["HEAD", "GET"]);
        // Every other request reads the problem the same way.
        let e = client.me().await.unwrap_err();
        assert!(
            e.to_string().contains("is not known to this registry"),
            "{e}"
        );
    }
}
