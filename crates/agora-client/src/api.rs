//! A typed client of the registry's HTTP API.

use std::path::Path;

use agora_core::api::*;
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
    #[error("the registry answered {status}: {body}")]
    Unexpected { status: StatusCode, body: String },
    #[error("cannot reach the registry at {url}: {source}")]
    Transport { url: String, source: reqwest::Error },
    #[error("invalid registry URL {0:?}")]
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

fn describe(status: &StatusCode, problem: &Problem) -> String {
    let mut out = problem
        .detail
        .clone()
        .unwrap_or_else(|| problem.title.clone());
    if problem.errors.len() > 1 || (problem.errors.len() == 1 && problem.detail.is_none()) {
        out = format!(
            "{}: {}",
            problem.title,
            problem
                .errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    format!("{out} ({}, {})", status.as_u16(), problem.kind)
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

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let url = self.base.to_string();
        let response = req
            .send()
            .await
            .map_err(|source| ClientError::Transport { url, source })?;
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
        match self
            .send(self.request(Method::HEAD, &format!("api/v1/blobs/{digest}")))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(false),
            Err(ClientError::Unexpected {
                status: StatusCode::NOT_FOUND,
                ..
            }) => Ok(false),
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
