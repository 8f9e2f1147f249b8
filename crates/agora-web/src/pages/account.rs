//! Signing in and out, and the account page: memberships, API tokens (create, revoke),
//! the signing keys of one's publishers, and the password.

use agora_core::api::CreateToken;
use agora_registry::accounts::{self, SignIn};
use agora_registry::{publishers, tokens};
use agora_server::ClientAddr;
use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::{render, see_other};
use crate::error::PageError;
use crate::format;
use crate::layout::Layout;
use crate::session::{self, Visitor};
use crate::state::Web;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    login_csrf: String,
    next: String,
    username: String,
    error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    next: String,
}

fn login_page(
    web: &Web,
    visitor: &Visitor,
    status: StatusCode,
    next: &str,
    username: &str,
    error: Option<String>,
) -> Result<Response, PageError> {
    let (token, cookie) = session::login_csrf(visitor);
    let page = LoginPage {
        layout: visitor.layout(web, "Sign in"),
        login_csrf: token,
        next: super::local_path(next).to_owned(),
        username: username.to_owned(),
        error,
    };
    let mut response = (status, Html(page.render()?)).into_response();
    if let Some(c) = cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(response)
}

pub async fn login_form(
    State(web): State<Web>,
    visitor: Visitor,
    Query(q): Query<LoginQuery>,
) -> Result<Response, PageError> {
    if visitor.signed_in.is_some() {
        return Ok(see_other(super::local_path(&q.next)));
    }
    login_page(&web, &visitor, StatusCode::OK, &q.next, "", None)
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    csrf: String,
    username: String,
    password: String,
    #[serde(default)]
    next: String,
}

pub async fn login(
    State(web): State<Web>,
    visitor: Visitor,
    ClientAddr(client): ClientAddr,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    session::check_login_csrf(&visitor, &form.csrf)?;
    let username = form.username.trim();
    if username.is_empty() || username.len() > 64 || form.password.len() > 1024 {
        return login_page(
            &web,
            &visitor,
            StatusCode::BAD_REQUEST,
            &form.next,
            "",
            Some("Enter your user name and password.".into()),
        );
    }
    let user = match accounts::sign_in(&web.registry, username, form.password, client).await? {
        SignIn::Accepted(user) => user,
        SignIn::Wait(wait) => {
            let seconds = wait.as_secs().max(1);
            let mut page = login_page(
                &web,
                &visitor,
                StatusCode::TOO_MANY_REQUESTS,
                &form.next,
                username,
                Some(format!(
                    "Too many failed attempts from here; try again in {seconds} seconds."
                )),
            )?;
            page.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            return Ok(page);
        }
        SignIn::Refused => {
            return login_page(
                &web,
                &visitor,
                StatusCode::UNAUTHORIZED,
                &form.next,
                username,
                Some("Wrong user name or password.".into()),
            );
        }
    };
    let cookie = session::start(&web, &visitor, &user).await?;
    let mut response = see_other(super::local_path(&form.next));
    response.headers_mut().append(header::SET_COOKIE, cookie);
    tracing::info!(user = %user.username, "signed in");
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutPage {
    layout: Layout,
}

/// `GET /logout` (a bookmark, a typed address): signing out changes state, so it takes a
/// post with the session's CSRF token; this page offers that button, or says one is
/// already signed out.
pub async fn logout_page(State(web): State<Web>, visitor: Visitor) -> Result<Response, PageError> {
    let title = if visitor.signed_in.is_some() {
        "Sign out"
    } else {
        "Signed out"
    };
    render(&LogoutPage {
        layout: visitor.layout(&web, title),
    })
}

pub async fn logout(
    State(web): State<Web>,
    visitor: Visitor,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    visitor.check_csrf(&form.csrf)?;
    let cookie = session::end(&web, &visitor).await?;
    let mut response = see_other("/");
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub scopes: String,
    pub created: String,
    pub expires: String,
    pub last_used: String,
    pub revoked: bool,
}

pub struct InvitationRow {
    pub publisher: String,
    pub role: String,
    pub invited_by: String,
    pub expires: String,
}

pub struct KeyRow {
    pub publisher: String,
    pub id: String,
    pub algorithm: String,
    pub comment: String,
    pub created: String,
    pub revoked: Option<String>,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    layout: Layout,
    username: String,
    role: &'static str,
    publishers: Vec<String>,
    invitations: Vec<InvitationRow>,
    tokens: Vec<TokenRow>,
    keys: Vec<KeyRow>,
    scope_options: Vec<String>,
    new_token: Option<String>,
}

async fn account_page(
    web: &Web,
    visitor: &Visitor,
    new_token: Option<String>,
) -> Result<Response, PageError> {
    let me = visitor.require("/account")?;
    let caller = visitor
        .caller()
        .ok_or(PageError::SignIn("/account".into()))?;
    let tokens = tokens::list(&web.registry, &caller, false)
        .await?
        .into_iter()
        .map(|t| TokenRow {
            id: t.id,
            name: t.name,
            prefix: t.prefix,
            scopes: t.scopes,
            created: format::date(t.created_at),
            expires: t.expires_at.map_or("never".into(), format::date),
            last_used: t.last_used_at.map_or("never".into(), format::date),
            revoked: t.revoked_at.is_some(),
        })
        .collect();
    let mut keys = Vec::new();
    for (id, name) in &me.memberships {
        for k in web.registry.meta.keys(*id).await? {
            keys.push(KeyRow {
                publisher: name.clone(),
                id: k.id,
                algorithm: k.algorithm,
                comment: k.comment.unwrap_or_default(),
                created: format::date(k.created_at),
                revoked: k.revoked_at.map(format::date),
            });
        }
    }
    let mut scope_options = vec![
        "read:private".to_owned(),
        "review".to_owned(),
        "publish:*".to_owned(),
        "members:*".to_owned(),
    ];
    scope_options.extend(me.memberships.iter().map(|(_, n)| format!("publish:{n}")));
    scope_options.extend(me.memberships.iter().map(|(_, n)| format!("members:{n}")));
    if visitor.is_admin() {
        scope_options.push("admin".into());
    }
    let invitations = publishers::my_invitations(&web.registry, &caller)
        .await?
        .into_iter()
        .map(|i| InvitationRow {
            publisher: i.publisher,
            role: i.role,
            invited_by: i.invited_by,
            expires: format::date(i.expires_at),
        })
        .collect();
    let page = AccountPage {
        layout: visitor.layout(web, "Your account"),
        username: me.user.username.clone(),
        role: me.user.role.as_str(),
        publishers: me.memberships.iter().map(|(_, n)| n.clone()).collect(),
        invitations,
        tokens,
        keys,
        scope_options,
        new_token,
    };
    let mut response = render(&page)?;
    // It may show a new token's secret: no copy of it in any cache.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

pub async fn account(State(web): State<Web>, visitor: Visitor) -> Result<Response, PageError> {
    account_page(&web, &visitor, None).await
}

#[derive(Debug, Deserialize)]
pub struct TokenForm {
    csrf: String,
    name: String,
    scope: String,
    #[serde(default)]
    expires_days: String,
}

pub async fn create_token(
    State(web): State<Web>,
    visitor: Visitor,
    Form(form): Form<TokenForm>,
) -> Result<Response, PageError> {
    visitor.check_csrf(&form.csrf)?;
    let caller = visitor
        .caller()
        .ok_or(PageError::SignIn("/account".into()))?;
    let expires_in_seconds = match form.expires_days.trim() {
        "" | "never" => None,
        d => Some(
            d.parse::<u64>()
                .ok()
                .filter(|d| (1..=3650).contains(d))
                .ok_or_else(|| {
                    PageError::BadInput("expires: choose a number of days from 1 to 3650".into())
                })?
                * 86_400,
        ),
    };
    let (_, secret) = tokens::create(
        &web.registry,
        &caller,
        CreateToken {
            name: form.name,
            scopes: form.scope,
            expires_in_seconds,
            for_user: None,
        },
    )
    .await?;
    account_page(&web, &visitor, Some(secret)).await
}

pub async fn revoke_token(
    State(web): State<Web>,
    visitor: Visitor,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    visitor.check_csrf(&form.csrf)?;
    let caller = visitor
        .caller()
        .ok_or(PageError::SignIn("/account".into()))?;
    // Only one's own tokens here, administrators included.
    let mine = tokens::list(&web.registry, &caller, false)
        .await?
        .iter()
        .any(|t| t.id == id);
    if !mine {
        return Err(PageError::NotFound(format!("you have no token {id}")));
    }
    tokens::revoke(&web.registry, &caller, id).await?;
    Ok(see_other("/account"))
}

/// Accepts or declines an invitation to join a publisher, through the API's own rules.
pub async fn answer_invitation(
    State(web): State<Web>,
    visitor: Visitor,
    Path((publisher, answer)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    visitor.check_csrf(&form.csrf)?;
    let caller = visitor
        .caller()
        .ok_or(PageError::SignIn("/account".into()))?;
    match answer.as_str() {
        "accept" => {
            publishers::accept(&web.registry, &caller, &publisher).await?;
        }
        "decline" => {
            let me = caller.user.username.clone();
            publishers::withdraw(&web.registry, &caller, &publisher, &me).await?;
        }
        _ => {
            return Err(PageError::NotFound(
                "there is no page at this address".into(),
            ));
        }
    }
    Ok(see_other("/account"))
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    csrf: String,
    current: String,
    new: String,
}

pub async fn change_password(
    State(web): State<Web>,
    visitor: Visitor,
    Form(form): Form<PasswordForm>,
) -> Result<Response, PageError> {
    visitor.check_csrf(&form.csrf)?;
    let caller = visitor
        .caller()
        .ok_or(PageError::SignIn("/account".into()))?;
    // Setting the password ends every session, this one too: sign in again.
    accounts::change_own_password(&web.registry, &caller, form.current, form.new).await?;
    Ok(see_other("/login?next=/account"))
}
