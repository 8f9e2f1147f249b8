//! TLS for `agora serve`: the certificate and key loaded from PEM files, checked to belong
//! together, and reloaded while the server runs.
//!
//! [`Certificates`] is the `rustls` certificate resolver every handshake asks: it hands
//! out the pair it holds now, so a reload changes what new handshakes get while open
//! connections keep the pair they started with. [`Certificates::watch`] polls the two
//! files (their content, so a same-second replacement counts) and swaps in a new pair
//! once it has stayed the same over two polls, so a certificate and key replaced one after
//! the other are read as a pair, not half-way. A new pair that cannot be used is refused
//! with an error log line naming the file and the reason; the old pair stays in use.
//!
//! The crypto provider is aws-lc-rs (the one `reqwest` already builds), chosen explicitly.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::http::HeaderValue;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::Digest;

/// How often the certificate and key files are read for changes.
pub const RELOAD_POLL: Duration = Duration::from_secs(2);

/// Why a certificate or key cannot be used; each names its file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} holds no certificate: expected PEM (-----BEGIN CERTIFICATE-----), the server's \
         certificate first, then its intermediates{}", .path.display(), why(.reason)
    )]
    NoCertificate { path: PathBuf, reason: String },
    #[error("{} is not a usable certificate: {reason}", .path.display())]
    BadCertificate { path: PathBuf, reason: String },
    #[error(
        "{} holds no private key: expected PEM, PKCS#8 (-----BEGIN PRIVATE KEY-----), RSA \
         (-----BEGIN RSA PRIVATE KEY-----) or SEC1 (-----BEGIN EC PRIVATE KEY-----){}",
        .path.display(), why(.reason)
    )]
    NoKey { path: PathBuf, reason: String },
    #[error(
        "{} holds an encrypted private key, which the server cannot unlock: store it \
         decrypted, readable only by the server (`openssl pkey -in KEY -out KEY.plain`)",
        .path.display()
    )]
    EncryptedKey { path: PathBuf },
    #[error("{} is not a usable private key: {reason}", .path.display())]
    BadKey { path: PathBuf, reason: String },
    #[error("the private key {} does not belong to the certificate {}", .key.display(), .cert.display())]
    Mismatch { cert: PathBuf, key: PathBuf },
}

fn why(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(" ({reason})")
    }
}

/// The two files of a server's TLS identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, PEM: the server's certificate first.
    pub cert: PathBuf,
    /// Its private key, PEM: PKCS#8, RSA or SEC1.
    pub key: PathBuf,
}

/// `Strict-Transport-Security` for answers over TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hsts {
    pub max_age: Duration,
    pub include_subdomains: bool,
}

impl Hsts {
    /// The header's value: `max-age=N[; includeSubDomains]`.
    pub fn header_value(&self) -> HeaderValue {
        let mut value = format!("max-age={}", self.max_age.as_secs());
        if self.include_subdomains {
            value.push_str("; includeSubDomains");
        }
        HeaderValue::try_from(value).unwrap_or_else(|_| HeaderValue::from_static("max-age=0"))
    }
}

/// The crypto provider of every TLS connection the server makes.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The pair new handshakes get, and where it was read from.
#[derive(Debug)]
pub struct Certificates {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificates {
    /// Reads and checks the pair: both files readable, a certificate and a private key
    /// that belong together.
    pub fn load(files: TlsFiles) -> Result<Certificates, TlsError> {
        let provider = provider();
        let (cert, key) = read_pair(&files)?;
        let current = certified_key(&files, &cert, &key, &provider)?;
        Ok(Certificates {
            files,
            provider,
            current: RwLock::new(Arc::new(current)),
        })
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The pair new handshakes get now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the files again and, when they hold a usable pair, makes it the current one.
    pub fn reload(&self) -> Result<(), TlsError> {
        let (cert, key) = read_pair(&self.files)?;
        self.replace(&cert, &key)
    }

    fn replace(&self, cert: &[u8], key: &[u8]) -> Result<(), TlsError> {
        let next = certified_key(&self.files, cert, key, &self.provider)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
        Ok(())
    }

    /// Polls the files every `every` for good; a changed pair is loaded once it has read
    /// the same on two polls in a row (so a certificate and a key replaced one after the
    /// other are taken together), and a pair that cannot be used is logged once, naming
    /// the file and why, while the old pair stays in use.
    pub async fn watch(self: Arc<Self>, every: Duration) {
        let seen = |pair: &Result<(Vec<u8>, Vec<u8>), TlsError>| -> [u8; 32] {
            let mut hash = sha2::Sha256::new();
            match pair {
                Ok((cert, key)) => {
                    hash.update((cert.len() as u64).to_le_bytes());
                    hash.update(cert);
                    hash.update(key);
                }
                Err(e) => hash.update(format!("error: {e}")),
            }
            hash.finalize().into()
        };
        let mut applied = seen(&read_pair(&self.files));
        let mut last = applied;
        loop {
            tokio::time::sleep(every).await;
            let pair = read_pair(&self.files);
            let now = seen(&pair);
            if now == applied || now != last {
                last = now;
                continue;
            }
            applied = now;
            match pair.and_then(|(cert, key)| self.replace(&cert, &key)) {
                Ok(()) => tracing::info!(
                    cert = %self.files.cert.display(),
                    key = %self.files.key.display(),
                    "TLS certificate reloaded; new connections use it"
                ),
                Err(e) => tracing::error!(
                    error = %e,
                    "the new TLS certificate or key is refused; the previous pair stays in use"
                ),
            }
        }
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_pair(files: &TlsFiles) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    Ok((read(&files.cert)?, read(&files.key)?))
}

/// The pair in `cert` and `key` (PEM bytes read from `files`), checked.
fn certified_key(
    files: &TlsFiles,
    cert: &[u8],
    key: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let no_certificate = |reason: String| TlsError::NoCertificate {
        path: files.cert.clone(),
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| no_certificate(e.to_string()))?;
    if chain.is_empty() {
        return Err(no_certificate(String::new()));
    }
    let key_der = PrivateKeyDer::from_pem_slice(key).map_err(|e| match e {
        pem::Error::NoItemsFound if contains(key, b"ENCRYPTED PRIVATE KEY") => {
            TlsError::EncryptedKey {
                path: files.key.clone(),
            }
        }
        pem::Error::NoItemsFound => TlsError::NoKey {
            path: files.key.clone(),
            reason: String::new(),
        },
        other => TlsError::NoKey {
            path: files.key.clone(),
            reason: other.to_string(),
        },
    })?;
    let signing_key = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| TlsError::BadKey {
            path: files.key.clone(),
            reason: e.to_string(),
        })?;
    let pair = CertifiedKey::new(chain, signing_key);
    match pair.keys_match() {
        Ok(()) => Ok(pair),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::Mismatch {
                cert: files.cert.clone(),
                key: files.key.clone(),
            })
        }
        // A key that cannot tell its public half is taken on trust (rustls does the same).
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(pair),
        Err(e) => Err(TlsError::BadCertificate {
            path: files.cert.clone(),
            reason: e.to_string(),
        }),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the `openssl` command in `dir` (it must be installed: the tests fail without).
    fn openssl(dir: &Path, args: &[&str]) {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl command is needed to make test certificates");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A self-signed P-256 certificate `NAME.crt` and its PKCS#8 key `NAME.key`.
    fn pair(dir: &Path, name: &str) -> TlsFiles {
        let (cert, key) = (format!("{name}.crt"), format!("{name}.key"));
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &cert,
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        TlsFiles {
            cert: dir.join(cert),
            key: dir.join(key),
        }
    }

    #[test]
    fn pkcs8_rsa_and_sec1_keys_load() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ec = pair(d, "ec");
        Certificates::load(ec.clone()).expect("PKCS#8");
        openssl(d, &["ec", "-in", "ec.key", "-out", "sec1.key"]);
        assert!(
            std::fs::read_to_string(d.join("sec1.key"))
                .unwrap()
                .contains("BEGIN EC PRIVATE KEY")
        );
        Certificates::load(TlsFiles {
            key: d.join("sec1.key"),
            ..ec
        })
        .expect("SEC1");
        openssl(d, &["genrsa", "-traditional", "-out", "rsa.key", "2048"]);
        openssl(
            d,
            &[
                "req", "-x509", "-key", "rsa.key", "-out", "rsa.crt", "-days", "2", "-subj",
                "/CN=rsa",
            ],
        );
        assert!(
            std::fs::read_to_string(d.join("rsa.key"))
                .unwrap()
                .contains("BEGIN RSA PRIVATE KEY")
        );
        Certificates::load(TlsFiles {
            cert: d.join("rsa.crt"),
            key: d.join("rsa.key"),
        })
        .expect("RSA");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = pair(dir.path(), "a");
        let b = pair(dir.path(), "b");
        let err = Certificates::load(TlsFiles {
            cert: a.cert,
            key: b.key,
        })
        .unwrap_err();
        assert!(matches!(err, TlsError::Mismatch { .. }), "{err}");
        let err = err.to_string();
        assert!(
            err.contains("b.key") && err.contains("a.crt") && err.contains("does not belong"),
            "{err}"
        );
    }

    #[test]
    fn garbage_missing_and_encrypted_files_are_named_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let good = pair(d, "good");
        std::fs::write(d.join("garbage.pem"), "hello\n").unwrap();
        let broken_der =
            "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
        std::fs::write(d.join("broken.crt"), broken_der).unwrap();
        openssl(
            d,
            &[
                "pkcs8",
                "-topk8",
                "-in",
                "good.key",
                "-out",
                "enc.key",
                "-passout",
                "pass:secret",
            ],
        );
        let cases: [(TlsFiles, &str); 6] = [
            (
                TlsFiles {
                    cert: d.join("garbage.pem"),
                    ..good.clone()
                },
                "garbage.pem holds no certificate",
            ),
            (
                TlsFiles {
                    key: d.join("garbage.pem"),
                    ..good.clone()
                },
                "garbage.pem holds no private key",
            ),
            (
                TlsFiles {
                    key: good.cert.clone(),
                    ..good.clone()
                },
                "good.crt holds no private key",
            ),
            (
                TlsFiles {
                    cert: d.join("broken.crt"),
                    ..good.clone()
                },
                "broken.crt is not a usable certificate",
            ),
            (
                TlsFiles {
                    key: d.join("enc.key"),
                    ..good.clone()
                },
                "enc.key holds an encrypted private key",
            ),
            (
                TlsFiles {
                    cert: d.join("missing.crt"),
                    ..good.clone()
                },
                "cannot read",
            ),
        ];
        for (files, expected) in cases {
            let err = Certificates::load(files.clone()).unwrap_err().to_string();
            assert!(err.contains(expected), "{files:?}: {err}");
        }
    }

    #[test]
    fn a_reload_takes_a_new_pair_and_refuses_a_broken_one() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let served = pair(d, "served");
        let next = pair(d, "next");
        let certificates = Certificates::load(served.clone()).unwrap();
        let first = certificates.current().cert[0].clone();
        std::fs::copy(&next.cert, &served.cert).unwrap();
        std::fs::copy(&next.key, &served.key).unwrap();
        certificates.reload().unwrap();
        let second = certificates.current().cert[0].clone();
        assert_ne!(first, second);
        std::fs::write(&served.key, "not a key").unwrap();
        assert!(certificates.reload().is_err());
        assert_eq!(certificates.current().cert[0], second, "the old pair stays");
    }

    #[tokio::test]
    async fn the_watcher_swaps_in_a_replaced_pair_and_keeps_the_old_one_over_a_broken_one() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let served = pair(d, "served");
        let next = pair(d, "next");
        let certificates = Arc::new(Certificates::load(served.clone()).unwrap());
        let first = certificates.current().cert[0].clone();
        let watcher = tokio::spawn(certificates.clone().watch(Duration::from_millis(20)));
        // A key and then its certificate replaced: the watcher waits for both.
        std::fs::copy(&next.key, &served.key).unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        std::fs::copy(&next.cert, &served.cert).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while certificates.current().cert[0] == first {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the new pair was not taken"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let second = certificates.current().cert[0].clone();
        std::fs::write(&served.cert, "garbage").unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(certificates.current().cert[0], second, "the old pair stays");
        watcher.abort();
    }

    #[test]
    fn hsts_says_max_age_and_subdomains() {
        let hsts = Hsts {
            max_age: Duration::from_secs(31_536_000),
            include_subdomains: false,
        };
        assert_eq!(hsts.header_value(), "max-age=31536000");
        let hsts = Hsts {
            include_subdomains: true,
            ..hsts
        };
        assert_eq!(hsts.header_value(), "max-age=31536000; includeSubDomains");
    }
}
