//! TLS for the `ssl://` and `wss://` listeners: loads SSL_CERTFILE and SSL_KEYFILE into
//! an acceptor (with errors that name the variable and the file, since a bad certificate
//! is an operator's mistake), loads them again on SIGHUP ([`Certificates`]), and runs the
//! server side of a handshake.

use openssl::pkey::PKey;
use openssl::ssl::{Ssl, SslAcceptor, SslMethod};
use openssl::x509::X509;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_openssl::SslStream;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{var} is not set; ssl:// and wss:// services need SSL_CERTFILE and SSL_KEYFILE")]
    NotSet { var: &'static str },
    #[error("cannot read {var} file {}: {source}", path.display())]
    Read {
        var: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("SSL_CERTFILE file {} is not a PEM certificate (chain): {source}", path.display())]
    Certificate {
        path: PathBuf,
        source: openssl::error::ErrorStack,
    },
    #[error("SSL_CERTFILE file {} holds no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("SSL_KEYFILE file {} is not an unencrypted PEM private key: {source}", path.display())]
    Key {
        path: PathBuf,
        source: openssl::error::ErrorStack,
    },
    #[error(
        "the private key in SSL_KEYFILE {} does not match the certificate in SSL_CERTFILE {}",
        key.display(),
        cert.display()
    )]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot set up TLS with SSL_CERTFILE {}: {source}", path.display())]
    Setup {
        path: PathBuf,
        source: openssl::error::ErrorStack,
    },
}

/// Builds the acceptor every TLS connection shares (cheap to clone): the first
/// certificate of `certfile` is the server's, the others its chain, as ElectrumX's
/// `load_cert_chain`. Both paths come from the configuration, which requires them for
/// TLS services; `None` is still reported rather than assumed away.
pub fn acceptor(certfile: Option<&Path>, keyfile: Option<&Path>) -> Result<SslAcceptor, TlsError> {
    let certfile = certfile.ok_or(TlsError::NotSet {
        var: "SSL_CERTFILE",
    })?;
    let keyfile = keyfile.ok_or(TlsError::NotSet { var: "SSL_KEYFILE" })?;
    let cert_pem = read("SSL_CERTFILE", certfile)?;
    let key_pem = read("SSL_KEYFILE", keyfile)?;
    let mut chain = X509::stack_from_pem(&cert_pem)
        .map_err(|source| TlsError::Certificate {
            path: certfile.to_path_buf(),
            source,
        })?
        .into_iter();
    let leaf = chain.next().ok_or_else(|| TlsError::NoCertificate {
        path: certfile.to_path_buf(),
    })?;
    let key = PKey::private_key_from_pem(&key_pem).map_err(|source| TlsError::Key {
        path: keyfile.to_path_buf(),
        source,
    })?;
    let setup = |source| TlsError::Setup {
        path: certfile.to_path_buf(),
        source,
    };
    // Checked here (openssl would refuse the pair below) for an error that says so.
    if !leaf.public_key().map_err(setup)?.public_eq(&key) {
        return Err(TlsError::Mismatch {
            cert: certfile.to_path_buf(),
            key: keyfile.to_path_buf(),
        });
    }
    let mut builder =
        SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(setup)?;
    builder.set_certificate(&leaf).map_err(setup)?;
    for cert in chain {
        builder.add_extra_chain_cert(cert).map_err(setup)?;
    }
    builder.set_private_key(&key).map_err(setup)?;
    Ok(builder.build())
}

/// The certificate and key every TLS listener hands out, replaced on SIGHUP. A session
/// keeps the certificate it was accepted with (its TLS state holds its own reference),
/// so a reload drops no one; a file that cannot be used leaves the old pair in place.
pub struct Certificates {
    certfile: PathBuf,
    keyfile: PathBuf,
    current: RwLock<SslAcceptor>,
}

impl Certificates {
    /// Loads SSL_CERTFILE and SSL_KEYFILE (both required by the configuration for TLS
    /// services; `None` is still reported).
    pub fn load(
        certfile: Option<&Path>,
        keyfile: Option<&Path>,
    ) -> Result<Arc<Certificates>, TlsError> {
        let current = RwLock::new(acceptor(certfile, keyfile)?);
        // Both are set: `acceptor` said so.
        let path = |p: Option<&Path>| p.map(Path::to_path_buf).unwrap_or_default();
        Ok(Arc::new(Certificates {
            certfile: path(certfile),
            keyfile: path(keyfile),
            current,
        }))
    }

    /// The acceptor for a new connection (a cheap, reference-counted clone).
    pub fn acceptor(&self) -> SslAcceptor {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Loads the files again; on success new connections get the new pair. Returns a
    /// description of the new certificate for the log.
    pub fn reload(&self) -> Result<String, TlsError> {
        let fresh = acceptor(Some(&self.certfile), Some(&self.keyfile))?;
        let described = fresh
            .context()
            .certificate()
            .map(describe)
            .unwrap_or_default();
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(described)
    }
}

/// Subject and expiry, for the log.
fn describe(cert: &openssl::x509::X509Ref) -> String {
    let subject = cert
        .subject_name()
        .entries()
        .filter_map(|entry| entry.data().to_string().ok())
        .collect::<Vec<_>>()
        .join(", ");
    format!("subject {subject:?}, valid until {}", cert.not_after())
}

/// Reloads the TLS certificate and key on every SIGHUP, for as long as the server runs
/// (`None`: no TLS service; the signal is only logged). Installed at start-up, so that a
/// SIGHUP never terminates the server (its default action), even during catch-up.
pub async fn reload_on_hangup(certificates: Option<Arc<Certificates>>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(hangup) => hangup,
        Err(e) => {
            log::error!("cannot handle SIGHUP ({e}): TLS certificates cannot be reloaded");
            return;
        }
    };
    while hangup.recv().await.is_some() {
        let Some(certificates) = &certificates else {
            log::info!("SIGHUP received: no ssl:// or wss:// service, nothing to reload");
            continue;
        };
        // Reading two small files: brief enough for the runtime's thread.
        match certificates.reload() {
            Ok(described) => log::info!(
                "SIGHUP received: TLS certificate reloaded from {} and {} ({described}); \
                 sessions already open keep theirs",
                certificates.certfile.display(),
                certificates.keyfile.display()
            ),
            Err(e) => log::error!(
                "SIGHUP received: TLS certificate NOT reloaded, the previous one stays in use: {e}"
            ),
        }
    }
}

fn read(var: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        var,
        path: path.to_path_buf(),
        source,
    })
}

/// The server side of a TLS handshake on `stream`. No timeout here: the caller bounds
/// the whole connection set-up.
pub async fn handshake<S>(
    acceptor: &SslAcceptor,
    stream: S,
) -> Result<SslStream<S>, openssl::ssl::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let ssl = Ssl::new(acceptor.context())?;
    let mut stream = SslStream::new(ssl, stream)?;
    Pin::new(&mut stream).accept().await?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::asn1::Asn1Time;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::x509::X509NameBuilder;

    fn key() -> PKey<openssl::pkey::Private> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
    }

    fn certificate(key: &PKey<openssl::pkey::Private>) -> X509 {
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_nid(Nid::COMMONNAME, "localhost")
            .unwrap();
        let name = name.build();
        let mut cert = X509::builder().unwrap();
        cert.set_version(2).unwrap();
        cert.set_subject_name(&name).unwrap();
        cert.set_issuer_name(&name).unwrap();
        cert.set_pubkey(key).unwrap();
        let not_before = Asn1Time::days_from_now(0).unwrap();
        let not_after = Asn1Time::days_from_now(1).unwrap();
        cert.set_not_before(&not_before).unwrap();
        cert.set_not_after(&not_after).unwrap();
        cert.sign(key, MessageDigest::sha256()).unwrap();
        cert.build()
    }

    fn message(result: Result<SslAcceptor, TlsError>) -> String {
        result.err().map(|e| e.to_string()).unwrap_or_default()
    }

    /// Writes the files and builds an acceptor from them.
    fn load(cert_pem: &[u8], key_pem: &[u8]) -> (tempfile::TempDir, Result<SslAcceptor, TlsError>) {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, cert_pem).unwrap();
        std::fs::write(&key, key_pem).unwrap();
        let result = acceptor(Some(&cert), Some(&key));
        (dir, result)
    }

    #[test]
    fn loads_a_certificate_chain_and_its_key() {
        let key = key();
        let mut chain = certificate(&key).to_pem().unwrap();
        chain.extend(certificate(&self::key()).to_pem().unwrap());
        let (_dir, result) = load(&chain, &key.private_key_to_pem_pkcs8().unwrap());
        assert!(result.is_ok(), "{:?}", result.err());
    }

    #[test]
    fn errors_name_the_variable_and_the_file() {
        let missing = Path::new("/nonexistent/ferrumx/cert.pem");
        let error = message(acceptor(Some(missing), Some(missing)));
        assert!(
            error.starts_with("cannot read SSL_CERTFILE file /nonexistent/ferrumx/cert.pem: "),
            "{error}"
        );
        let error = message(acceptor(None, Some(missing)));
        assert!(error.starts_with("SSL_CERTFILE is not set"), "{error}");

        let key = key();
        let key_pem = key.private_key_to_pem_pkcs8().unwrap();
        let cert_pem = certificate(&key).to_pem().unwrap();
        let (_dir, result) = load(b"not a certificate", &key_pem);
        assert!(
            matches!(
                result,
                Err(TlsError::NoCertificate { .. } | TlsError::Certificate { .. })
            ),
            "{:?}",
            result.err()
        );
        let (_dir, result) = load(&cert_pem, b"not a key");
        assert!(
            matches!(result, Err(TlsError::Key { .. })),
            "{:?}",
            result.err()
        );
        let other_key = self::key().private_key_to_pem_pkcs8().unwrap();
        let (_dir, result) = load(&cert_pem, &other_key);
        let error = message(result);
        assert!(error.contains("does not match the certificate"), "{error}");
    }
}
