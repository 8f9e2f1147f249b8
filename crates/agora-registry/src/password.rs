//! Passwords for signing in to the web pages: Argon2id (the crate's defaults, OWASP's
//! recommended parameters), hashed and checked off the async runtime.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use std::sync::LazyLock;

use crate::error::RegistryError;

pub const MIN_PASSWORD_CHARS: usize = 12;
pub const MAX_PASSWORD_CHARS: usize = 256;

/// Checks a new password's length: the one rule NIST SP 800-63B asks for.
pub fn check_new(password: &str) -> Result<(), RegistryError> {
    let chars = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(RegistryError::field(
            "password",
            format!("is {chars} characters long"),
            Some("12 to 256 characters; a passphrase of several words is a good choice"),
        ));
    }
    Ok(())
}

/// Argon2id runs at most this many at once (each takes ~19 MiB and a core for tens of
/// milliseconds): a flood of sign-ins queues instead of exhausting memory and threads.
static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// The PHC string of an Argon2id hash of `password` with a fresh random salt.
pub async fn hash(password: String) -> Result<String, RegistryError> {
    let _slot = SLOTS
        .acquire()
        .await
        .map_err(|e| RegistryError::internal("password hashing is shut down", e))?;
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
    })
    .await
    .map_err(|e| RegistryError::internal("password hashing stopped", e))?
    .map_err(|e| RegistryError::internal("could not hash a password", e))
}

/// A hash of nothing anyone knows, checked when the user does not exist so that a
/// missing account and a wrong password take the same time.
static DUMMY: LazyLock<String> = LazyLock::new(|| {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the operating system provides randomness");
    Argon2::default()
        .hash_password_with_salt(b"agora-no-such-user", &salt)
        .map(|h| h.to_string())
        .unwrap_or_default()
});

/// Whether `password` matches the stored PHC string; `None` (no password set or no
/// such user) never matches but costs the same.
pub async fn verify(password: String, stored: Option<String>) -> bool {
    let known = stored.is_some();
    let stored = stored.unwrap_or_else(|| DUMMY.clone());
    let Ok(_slot) = SLOTS.acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .verify_password(password.as_bytes(), stored.as_str())
            .is_ok()
    })
    .await
    .unwrap_or(false)
        && known
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_wrong_passwords_do_not() {
        let stored = hash("correct horse battery".into()).await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify("correct horse battery".into(), Some(stored.clone())).await);
        assert!(!verify("correct horse batterY".into(), Some(stored)).await);
        assert!(!verify("agora-no-such-user".into(), None).await);
        assert!(!verify("x".into(), Some("not a phc string".into())).await);
    }

    #[test]
    fn length_is_checked() {
        assert!(check_new("short").is_err());
        assert!(check_new(&"x".repeat(257)).is_err());
        assert!(check_new("twelve chars").is_ok());
    }
}
