//! TLS on both sides of the proxy, with rustls.
//!
//! - **Downstream**: a service with `[services.tls]` serves TLS with the
//!   given certificate chain and key, offering `h2` and `http/1.1` by ALPN
//!   (plain listeners speak HTTP/1.1 and h2c with prior knowledge).
//! - **Upstream**: `https://` backends are verified against the system's
//!   roots, or a CA bundle (`[services.upstream_tls] ca_file`), with SNI
//!   from the backend's host name and an optional client certificate.
//!   `dangerously_skip_certificate_verification` turns verification off for
//!   a staging backend with a self-made certificate — loudly: it is logged
//!   as a warning at start-up.
//!
//! Everything is read and checked when the configuration is validated, so a
//! missing file, a key that does not match its certificate or a PEM file
//! holding no certificate is an error at start-up that names the setting.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use serde::{Deserialize, Serialize};

/// `[services.tls]`: serve this service over TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerTlsConfig {
    /// PEM certificate chain, leaf first. Required.
    pub cert_file: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the leaf. Required.
    pub key_file: String,
}

/// `[services.upstream_tls]`: how `https://` backends are trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamTlsConfig {
    /// PEM bundle of the CAs to trust. Default: the system's roots.
    pub ca_file: Option<String>,
    /// PEM client certificate chain, for backends that require one.
    pub client_cert_file: Option<String>,
    /// Its PEM private key.
    pub client_key_file: Option<String>,
    /// Accept any certificate from `https://` backends (a staging backend
    /// with a self-made certificate). Never in production: anyone on the
    /// path can read and change the traffic. Default `false`.
    pub dangerously_skip_certificate_verification: bool,
}

/// One crypto provider, named: another crate in the same build may enable
/// a second, and rustls then refuses to pick one itself.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read_certs(field: &str, path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{field}: cannot read {path:?}: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{field}: {path:?} is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "{field}: {path:?} holds no certificate (expected -----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(certs)
}

fn read_key(field: &str, path: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        format!(
            "{field}: cannot read a private key from {path:?} (PKCS#8, PKCS#1 or SEC1 PEM): {e}"
        )
    })
}

/// The acceptor's configuration; `field` names the table in errors.
pub fn server_config(field: &str, c: &ServerTlsConfig) -> Result<Arc<ServerConfig>, String> {
    if c.cert_file.is_empty() || c.key_file.is_empty() {
        return Err(format!(
            "{field}: both cert_file and key_file are required (PEM files)"
        ));
    }
    let certs = read_certs(&format!("{field}.cert_file"), &c.cert_file)?;
    let key = read_key(&format!("{field}.key_file"), &c.key_file)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("{field}: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            format!(
                "{field}.key_file: {:?} does not fit the certificate in {:?}: {e}",
                c.key_file, c.cert_file
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The client configuration of a service's `https://` backends; `http2`
/// offers `h2` by ALPN.
pub fn client_config(field: &str, c: &UpstreamTlsConfig) -> Result<ClientConfig, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("{field}: {e}"))?;
    let builder = if c.dangerously_skip_certificate_verification {
        tracing::warn!("{field}.dangerously_skip_certificate_verification is on: https backends are NOT verified");
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider())))
    } else {
        let mut roots = RootCertStore::empty();
        match &c.ca_file {
            Some(path) => {
                for cert in read_certs(&format!("{field}.ca_file"), path)? {
                    roots
                        .add(cert)
                        .map_err(|e| format!("{field}.ca_file: {path:?}: {e}"))?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                for cert in found.certs {
                    let _ = roots.add(cert);
                }
                if roots.is_empty() {
                    return Err(format!(
                        "{field}.ca_file: no system root certificates found; name a CA bundle (PEM)"
                    ));
                }
            }
        }
        builder.with_root_certificates(roots)
    };
    match (&c.client_cert_file, &c.client_key_file) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let certs = read_certs(&format!("{field}.client_cert_file"), cert)?;
            let key = read_key(&format!("{field}.client_key_file"), key)?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                format!("{field}.client_key_file: does not fit the client certificate: {e}")
            })
        }
        _ => Err(format!(
            "{field}: client_cert_file and client_key_file go together"
        )),
    }
}

/// A verifier that accepts every certificate (still checking that the
/// handshake's signatures are well-formed).
#[derive(Debug)]
struct AcceptAnything(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
