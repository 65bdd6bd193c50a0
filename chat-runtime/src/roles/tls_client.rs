//! TLS as a client of NATS and of the CQL nodes, from the folder a TLS
//! Secret is mounted at (`ca.crt`, `tls.crt`, `tls.key`, as cert-manager
//! writes them).
//!
//! The CQL driver connects to the addresses the nodes announce and checks
//! each certificate against that IP address. Certificates of nodes that
//! come and go usually name a service instead: given such a name, the chain
//! is still verified against the CA in full, and the certificate must carry
//! that name rather than the address.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use confab_api::config::{TLS_CA_KEY, TLS_CERT_KEY, TLS_KEY_KEY};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// What a mounted TLS Secret holds: a CA to trust, a client certificate.
#[derive(Debug, PartialEq, Eq)]
pub struct TlsDir {
    /// `ca.crt`; none: the system's roots.
    pub ca: Option<PathBuf>,
    /// `tls.crt` and `tls.key`, only as a pair.
    pub client: Option<(PathBuf, PathBuf)>,
}

impl TlsDir {
    pub fn read(dir: &Path) -> Self {
        let file = |name: &str| Some(dir.join(name)).filter(|p| p.is_file());
        Self {
            ca: file(TLS_CA_KEY),
            client: file(TLS_CERT_KEY).zip(file(TLS_KEY_KEY)),
        }
    }
}

/// The client configuration for CQL over TLS: the Secret in `dir`, each
/// node's certificate checked against `server_name` when given (else
/// against the node's address). Ring is the provider, as everywhere.
pub fn cql(dir: &Path, server_name: Option<&str>) -> Result<ClientConfig> {
    let files = TlsDir::read(dir);
    let provider = provider();
    let verifier = verifier(files.ca.as_deref(), server_name, &provider)?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match files.client {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(&cert)
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .with_context(|| format!("client certificate {}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(&key)
                .with_context(|| format!("client key {}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .context("the client certificate does not match its key")
        }
        None => Ok(builder.with_no_client_auth()),
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Checks a node's certificate chain against `ca` (else the system's roots)
/// and its name against `server_name` (else the address connected to).
fn verifier(
    ca: Option<&Path>,
    server_name: Option<&str>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>> {
    let roots = Arc::new(roots(ca)?);
    let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .context("no usable CA to verify the store's certificates")?;
    Ok(match server_name {
        Some(name) => {
            let name = ServerName::try_from(name.to_owned())
                .with_context(|| format!("{name:?} is not a DNS name to check certificates by"))?;
            Arc::new(Named {
                name,
                inner: webpki,
            })
        }
        None => webpki,
    })
}

/// The CA in `ca`, or the system's roots without one.
fn roots(ca: Option<&Path>) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(ca) => {
            for cert in
                CertificateDer::pem_file_iter(ca).with_context(|| format!("CA {}", ca.display()))?
            {
                let cert = cert.with_context(|| format!("CA {}", ca.display()))?;
                roots
                    .add(cert)
                    .with_context(|| format!("CA {}", ca.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    anyhow::ensure!(!roots.is_empty(), "no CA certificate to trust");
    Ok(roots)
}

/// Verifies like `inner`, against `name` instead of the address connected
/// to.
#[derive(Debug)]
struct Named {
    name: ServerName<'static>,
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for Named {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _address: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_secret_gives_its_ca_and_a_whole_client_pair_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let none = TlsDir {
            ca: None,
            client: None,
        };
        assert_eq!(TlsDir::read(d), none);
        std::fs::write(d.join(TLS_CERT_KEY), "c").unwrap();
        assert_eq!(TlsDir::read(d), none, "a certificate without its key");
        std::fs::write(d.join(TLS_KEY_KEY), "k").unwrap();
        std::fs::write(d.join(TLS_CA_KEY), "a").unwrap();
        assert_eq!(
            TlsDir::read(d),
            TlsDir {
                ca: Some(d.join(TLS_CA_KEY)),
                client: Some((d.join(TLS_CERT_KEY), d.join(TLS_KEY_KEY))),
            }
        );
    }

    /// A CA and a certificate it issued for `names`, as PEM.
    fn issued(names: &[&str]) -> (String, String, String) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_pem = ca.clone().self_signed(&ca_key).unwrap().pem();
        let issuer = rcgen::Issuer::new(ca, &ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let leaf = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (ca_pem, leaf.pem(), key.serialize_pem())
    }

    fn verify(
        verifier: &Arc<dyn ServerCertVerifier>,
        leaf_pem: &str,
        address: &str,
    ) -> Result<(), rustls::Error> {
        let leaf = CertificateDer::from_pem_slice(leaf_pem.as_bytes()).unwrap();
        let address = ServerName::try_from(address.to_owned()).unwrap();
        verifier
            .verify_server_cert(&leaf, &[], &address, &[], UnixTime::now())
            .map(drop)
    }

    fn checker(ca: &Path, name: Option<&str>) -> Arc<dyn ServerCertVerifier> {
        verifier(Some(ca), name, &provider()).unwrap()
    }

    #[test]
    fn certificates_are_checked_against_the_address_or_the_given_name() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, leaf, _) = issued(&["cql.db.svc", "10.0.0.7"]);
        std::fs::write(dir.path().join(TLS_CA_KEY), ca).unwrap();

        let ca = dir.path().join(TLS_CA_KEY);
        let by_address = checker(&ca, None);
        assert_eq!(verify(&by_address, &leaf, "10.0.0.7"), Ok(()));
        assert!(verify(&by_address, &leaf, "10.0.0.8").is_err());

        let by_name = checker(&ca, Some("cql.db.svc"));
        assert_eq!(verify(&by_name, &leaf, "10.0.0.8"), Ok(()), "any address");
        let other = checker(&ca, Some("other.db.svc"));
        assert!(verify(&other, &leaf, "10.0.0.7").is_err(), "the name wins");

        let (_, stranger, _) = issued(&["cql.db.svc"]);
        assert!(
            verify(&by_name, &stranger, "10.0.0.7").is_err(),
            "another CA's certificate"
        );
    }

    #[test]
    fn a_client_pair_is_presented_and_broken_material_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (ca, leaf, key) = issued(&["client"]);
        std::fs::write(d.join(TLS_CA_KEY), &ca).unwrap();
        std::fs::write(d.join(TLS_CERT_KEY), &leaf).unwrap();
        std::fs::write(d.join(TLS_KEY_KEY), &key).unwrap();
        assert!(cql(d, None).unwrap().client_auth_cert_resolver.has_certs());

        let (_, _, other_key) = issued(&["client"]);
        std::fs::write(d.join(TLS_KEY_KEY), other_key).unwrap();
        let err = cql(d, None).unwrap_err().to_string();
        assert!(err.contains("does not match"), "{err}");

        std::fs::write(d.join(TLS_CA_KEY), "not a certificate").unwrap();
        assert!(cql(d, None).is_err());
        std::fs::write(d.join(TLS_CA_KEY), &ca).unwrap();
        let err = cql(d, Some("not a name!")).unwrap_err().to_string();
        assert!(err.contains("not a DNS name"), "{err}");
    }
}
