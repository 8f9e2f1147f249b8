//! Signing in and out, and the account page: memberships, API tokens (create, revoke),
//! the signing keys of one's publishers, and the password.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use agora_core::api::CreateToken;
use agora_server::ClientAddr;
use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::{Layout, PageError, render, see_other};
use crate::Web;
use crate::format;
use crate::session::{self, Visitor};

/// Failed sign-ins one client may make for one user name before each further attempt
/// must wait (1 s, then 2 s, 4 s, ... up to [`MAX_DELAY`]).
const FREE_PER_PAIR: u32 = 5;
/// Failed sign-ins one client may make across all names before it must wait the same way,
/// so flooding made-up names neither escapes the throttle nor flushes it.
const FREE_PER_CLIENT: u32 = 30;
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// An entry is forgotten this long after its last failure.
const FORGET_AFTER: Duration = Duration::from_secs(30 * 60);
/// Entries kept per table; when full, the one with the fewest failures goes (an
/// attacker's own entries are the busiest, so flooding the table does not reset them).
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    /// How long until the next attempt is allowed, given `free` failures without waiting.
    fn wait(&self, free: u32, now: Instant) -> Option<Duration> {
        let over = self.count.checked_sub(free)?;
        let delay = Duration::from_secs(1u64 << over.min(20)).min(MAX_DELAY);
        (self.last + delay)
            .checked_duration_since(now)
            .filter(|d| !d.is_zero())
    }
}

/// A bounded table of failures by key.
struct Table<K> {
    entries: HashMap<K, Failures>,
}

impl<K: std::hash::Hash + Eq + Clone> Table<K> {
    fn new() -> Self {
        Table {
            entries: HashMap::new(),
        }
    }

    fn record(&mut self, key: &K, now: Instant) {
        if !self.entries.contains_key(key) && self.entries.len() >= MAX_TRACKED {
            self.entries
                .retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
            if self.entries.len() >= MAX_TRACKED
                && let Some(quietest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, f)| (f.count, f.last))
                    .map(|(k, _)| k.clone())
            {
                self.entries.remove(&quietest);
            }
        }
        let f = self.entries.entry(key.clone()).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.duration_since(f.last) >= FORGET_AFTER {
            f.count = 0;
        }
        f.count += 1;
        f.last = now;
    }

    fn wait(&self, key: &K, free: u32, now: Instant) -> Option<Duration> {
        self.entries.get(key)?.wait(free, now)
    }
}

/// Slows password guessing without letting anyone lock a user out: failures count per
/// (user name, client address) pair and per client address, and each attempt beyond the
/// free ones waits twice as long as the last. The real owner, signing in from their own
/// address, is never held up by someone else's failures.
pub struct Throttle {
    tables: Mutex<Tables>,
}

/// Failures per (user name, client address), and per client address.
type Tables = (Table<(String, IpAddr)>, Table<IpAddr>);

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            tables: Mutex::new((Table::new(), Table::new())),
        }
    }
}

/// Stands for clients whose address the server does not know (tests drive the router
/// without a connection).
const UNKNOWN_CLIENT: IpAddr = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);

impl Throttle {
    /// How long this client must wait before trying this name again, if at all.
    fn wait(&self, user: &str, client: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let tables = self.tables.lock().ok()?;
        let pair = tables
            .0
            .wait(&(user.to_owned(), client), FREE_PER_PAIR, now);
        let all = tables.1.wait(&client, FREE_PER_CLIENT, now);
        pair.max(all)
    }

    /// Counts an attempt as a failure before the password is checked, so concurrent
    /// guesses cannot all slip in; [`Throttle::succeed`] takes it back.
    fn fail(&self, user: &str, client: IpAddr) {
        let now = Instant::now();
        if let Ok(mut tables) = self.tables.lock() {
            tables.0.record(&(user.to_owned(), client), now);
            tables.1.record(&client, now);
        }
    }

    fn succeed(&self, user: &str, client: IpAddr) {
        if let Ok(mut tables) = self.tables.lock() {
            tables.0.entries.remove(&(user.to_owned(), client));
            if let Some(f) = tables.1.entries.get_mut(&client) {
                f.count = f.count.saturating_sub(1);
            }
        }
    }
}

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
        layout: Layout::new(web, visitor, "Sign in"),
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
    let client = client.unwrap_or(UNKNOWN_CLIENT);
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
    if let Some(wait) = web.throttle.wait(username, client) {
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
    web.throttle.fail(username, client);
    let found = web.app.meta.user_credentials(username).await?;
    let (user, stored) = match found {
        Some((user, stored)) => (Some(user), stored),
        None => (None, None),
    };
    let ok = agora_server::password::verify(form.password, stored).await;
    let Some(user) = user.filter(|_| ok) else {
        tracing::info!(user = %username, "failed sign-in");
        return login_page(
            &web,
            &visitor,
            StatusCode::UNAUTHORIZED,
            &form.next,
            username,
            Some("Wrong user name or password.".into()),
        );
    };
    web.throttle.succeed(username, client);
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
    let tokens = web
        .app
        .meta
        .list_tokens(Some(me.user.id))
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
        for k in web.app.meta.keys(*id).await? {
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
    let invitations = web
        .app
        .meta
        .invitations(None, Some(&me.user.username))
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
        layout: Layout::new(web, visitor, "Your account"),
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
    let created = agora_server::create_token(
        &web.app,
        &caller,
        CreateToken {
            name: form.name,
            scopes: form.scope,
            expires_in_seconds,
            for_user: None,
        },
    )
    .await?;
    account_page(&web, &visitor, Some(created.token)).await
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
    let mine = web
        .app
        .meta
        .list_tokens(Some(caller.user.id))
        .await?
        .iter()
        .any(|t| t.id == id);
    if !mine {
        return Err(PageError::NotFound(format!("you have no token {id}")));
    }
    agora_server::revoke_token(&web.app, &caller, id).await?;
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
            agora_server::accept_invitation(&web.app, &caller, &publisher).await?;
        }
        "decline" => {
            let me = caller.user.username.clone();
            agora_server::withdraw_invitation(&web.app, &caller, &publisher, &me).await?;
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
    let me = visitor.check_csrf(&form.csrf)?;
    let (_, stored) = web
        .app
        .meta
        .user_credentials(&me.user.username)
        .await?
        .ok_or(PageError::SignIn("/account".into()))?;
    if !agora_server::password::verify(form.current, stored).await {
        return Err(PageError::BadInput(
            "current password: it is not your password".into(),
        ));
    }
    agora_server::password::check_new(&form.new)?;
    let hash = agora_server::password::hash(form.new).await?;
    // Setting the password ends every session, this one too: sign in again.
    web.app
        .meta
        .set_password(me.user.id, Some(&hash), &me.user.username)
        .await?;
    Ok(see_other("/login?next=/account"))
}

#[cfg(test)]
mod throttle_tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn failures_from_one_client_never_lock_out_another() {
        let t = Throttle::default();
        let attacker = ip("203.0.113.9");
        for _ in 0..FREE_PER_PAIR {
            assert!(t.wait("admin", attacker).is_none());
            t.fail("admin", attacker);
        }
        let wait = t.wait("admin", attacker).expect("the attacker waits");
        assert!(wait <= Duration::from_secs(1));
        assert!(
            t.wait("admin", ip("198.51.100.7")).is_none(),
            "the owner, elsewhere, signs in"
        );
        // Each further failure doubles the wait, up to the ceiling.
        t.fail("admin", attacker);
        t.fail("admin", attacker);
        let longer = t.wait("admin", attacker).unwrap();
        assert!(longer > Duration::from_secs(2) && longer <= Duration::from_secs(4));
        for _ in 0..40 {
            t.fail("admin", attacker);
        }
        assert!(t.wait("admin", attacker).unwrap() <= MAX_DELAY);
    }

    #[test]
    fn made_up_names_hit_the_per_client_limit_and_cannot_flush_the_table() {
        let t = Throttle::default();
        let attacker = ip("203.0.113.9");
        t.fail("admin", attacker);
        for i in 0..FREE_PER_CLIENT {
            t.fail(&format!("junk{i}"), attacker);
        }
        assert!(
            t.wait("someone-new", attacker).is_some(),
            "a new name from a flooding client waits too"
        );
        // A table flooded past its bound keeps the busiest entries.
        let mut table = Table::new();
        let now = Instant::now();
        for _ in 0..10 {
            table.record(&"busy".to_owned(), now);
        }
        for i in 0..MAX_TRACKED + 50 {
            table.record(&format!("junk{i}"), now + Duration::from_millis(1));
        }
        assert!(table.entries.len() <= MAX_TRACKED);
        assert_eq!(table.entries.get("busy").map(|f| f.count), Some(10));
    }
}
