//! TLS for the `ssl://` and `wss://` listeners: loads SSL_CERTFILE and SSL_KEYFILE into
//! an acceptor (with errors that name the variable and the file, since a bad certificate
//! is an operator's mistake), and runs the server side of a handshake.

use openssl::pkey::PKey;
use openssl::ssl::{Ssl, SslAcceptor, SslMethod};
use openssl::x509::X509;
use std::path::{Path, PathBuf};
use std::pin::Pin;
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
        "the private key in SSL_KEYFILE {} does not match the certificate in SSL_CERTFILE {}: {source}",
        key.display(),
        cert.display()
    )]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        source: openssl::error::ErrorStack,
    },
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
    let mut builder =
        SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(setup)?;
    builder.set_certificate(&leaf).map_err(setup)?;
    for cert in chain {
        builder.add_extra_chain_cert(cert).map_err(setup)?;
    }
    builder.set_private_key(&key).map_err(setup)?;
    builder
        .check_private_key()
        .map_err(|source| TlsError::Mismatch {
            cert: certfile.to_path_buf(),
            key: keyfile.to_path_buf(),
            source,
        })?;
    Ok(builder.build())
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
