//! TLS for the gateway's own listener: a certificate chain and a private key
//! from PEM files, re-read when they change, so a renewed certificate (a
//! cert-manager Secret, a certbot renewal) is served without a restart.
//!
//! A pair that does not load at start is an error; a pair that does not load
//! later (half written, key and certificate from different renewals) is
//! logged and the previous one stays in use until the files change again.
//! The files are checked at most every [`CHECK_EVERY`], by their metadata
//! only, on the handshake that comes after that interval.
//!
//! This module owns no socket: [`acceptor`] hands the server a
//! [`TlsAcceptor`]; the accept loop in [`super::server`] bounds handshakes.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
pub use tokio_rustls::TlsAcceptor;

/// Longest time a changed certificate or key goes unnoticed.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Where the gateway's certificate and key live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the first certificate.
    pub key: PathBuf,
}

/// Why a certificate and key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} holds no PEM certificate chain that parses: {error}", path.display())]
    Certificate {
        path: PathBuf,
        error: rustls::pki_types::pem::Error,
    },
    #[error("{} holds no PEM private key that parses: {error}", path.display())]
    Key {
        path: PathBuf,
        error: rustls::pki_types::pem::Error,
    },
    #[error("the key in {} cannot serve the certificate in {}: {error}", key.display(), cert.display())]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        error: rustls::Error,
    },
    #[error("TLS settings refused: {0}")]
    Settings(rustls::Error),
}

/// An acceptor serving the pair in `files` (HTTP/1.1 over TLS 1.2 or 1.3),
/// reloading it when the files change. Fails if the pair does not load now.
pub fn acceptor(files: TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let resolver = Reloading::new(files, provider.clone())?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Settings)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    // The server speaks HTTP/1.1 only (WebSocket upgrades need it).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Size, change time and inode of both files: what tells a rewrite or a
/// swapped symlink (how Kubernetes updates a mounted Secret) apart.
type Fingerprint = [Option<(SystemTime, u64, u64)>; 2];

fn fingerprint(files: &TlsFiles) -> Fingerprint {
    use std::os::unix::fs::MetadataExt;
    let one = |p: &Path| {
        let m = std::fs::metadata(p).ok()?;
        Some((m.modified().ok()?, m.len(), m.ino()))
    };
    [one(&files.cert), one(&files.key)]
}

/// The current pair, and when the files were last looked at.
struct Reloading {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// Taken by the one handshake that checks the files; others go on with
    /// the current pair instead of waiting for it.
    check: Mutex<(Instant, Fingerprint)>,
}

impl fmt::Debug for Reloading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloading")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl Reloading {
    fn new(files: TlsFiles, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let seen = fingerprint(&files);
        let pair = load(&files, &provider)?;
        Ok(Self {
            current: RwLock::new(Arc::new(pair)),
            check: Mutex::new((Instant::now(), seen)),
            files,
            provider,
        })
    }

    /// Reloads the pair if the interval passed and the files changed.
    fn refresh(&self) {
        let Ok(mut check) = self.check.try_lock() else {
            return;
        };
        let (checked, seen) = &mut *check;
        if checked.elapsed() < CHECK_EVERY {
            return;
        }
        *checked = Instant::now();
        let now = fingerprint(&self.files);
        if now == *seen {
            return;
        }
        *seen = now;
        match load(&self.files, &self.provider) {
            Ok(pair) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(pair);
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => tracing::warn!(
                error = %e,
                "TLS certificate or key changed but does not load: still serving the previous one"
            ),
        }
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.refresh();
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// Reads and checks the pair: the chain parses, the key parses and belongs
/// to the first certificate.
fn load(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|error| TlsError::Read {
            path: path.to_owned(),
            error,
        })
    };
    let (cert_pem, key_pem) = (read(&files.cert)?, read(&files.key)?);
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::Certificate {
            path: files.cert.clone(),
            error,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| TlsError::Key {
        path: files.key.clone(),
        error,
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|error| TlsError::Pair {
        cert: files.cert.clone(),
        key: files.key.clone(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> (TlsFiles, rcgen::CertifiedKey<rcgen::KeyPair>) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let files = TlsFiles {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, made.cert.pem()).unwrap();
        std::fs::write(&files.key, made.signing_key.serialize_pem()).unwrap();
        (files, made)
    }

    fn provider() -> CryptoProvider {
        rustls::crypto::ring::default_provider()
    }

    #[test]
    fn a_matching_pair_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (files, made) = pair(dir.path(), "a");
        let loaded = load(&files, &provider()).unwrap();
        assert_eq!(loaded.cert[0].as_ref(), made.cert.der().as_ref());
    }

    #[test]
    fn each_broken_pair_says_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = pair(dir.path(), "a");
        let (b, _) = pair(dir.path(), "b");
        let mixed = TlsFiles {
            cert: a.cert.clone(),
            key: b.key.clone(),
        };
        assert!(matches!(
            load(&mixed, &provider()),
            Err(TlsError::Pair { .. })
        ));
        let swapped = TlsFiles {
            cert: a.key.clone(),
            key: a.cert.clone(),
        };
        assert!(matches!(
            load(&swapped, &provider()),
            Err(TlsError::NoCertificate { .. })
        ));
        let missing = TlsFiles {
            cert: dir.path().join("none.crt"),
            key: a.key.clone(),
        };
        let e = load(&missing, &provider()).unwrap_err();
        assert!(matches!(e, TlsError::Read { .. }));
        assert!(e.to_string().contains("none.crt"), "{e}");
        let no_key = TlsFiles {
            cert: a.cert.clone(),
            key: a.cert.clone(),
        };
        assert!(matches!(
            load(&no_key, &provider()),
            Err(TlsError::Key { .. })
        ));
    }

    #[test]
    fn an_acceptor_refuses_to_start_without_a_usable_pair() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: dir.path().join("x.crt"),
            key: dir.path().join("x.key"),
        };
        assert!(acceptor(files).is_err());
    }
}
