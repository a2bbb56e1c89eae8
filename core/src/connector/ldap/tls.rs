//! The TLS client configuration of an LDAP connector (LDAPS and StartTLS): the trusted roots
//! (`rootCA` / `rootCAData`, else the system's), an optional client certificate, and
//! `insecureSkipVerify`. Always aws-lc-rs, whatever the process default is.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Where the TLS settings come from (already read from files or decoded).
pub struct TlsSettings {
    /// PEM certificates to trust instead of the system roots; `None` means the system roots.
    pub root_ca_pem: Option<Vec<u8>>,
    /// PEM client certificate chain and key.
    pub client_identity: Option<(Vec<u8>, Vec<u8>)>,
    /// Accept any server certificate (`insecureSkipVerify`).
    pub skip_verify: bool,
}

/// A TLS configuration problem: the config key at fault and why.
pub type TlsError = (&'static str, String);

/// Builds the client configuration.
pub fn client_config(settings: TlsSettings) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ("host", format!("TLS setup failed: {e}")))?;
    let builder = if settings.skip_verify {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerification(
            provider.signature_verification_algorithms,
        )))
    } else {
        let mut roots = RootCertStore::empty();
        match &settings.root_ca_pem {
            Some(pem) => {
                let mut found = 0;
                for cert in CertificateDer::pem_slice_iter(pem) {
                    let cert = cert.map_err(|_| ("rootCA", "the CA file is not valid PEM".to_owned()))?;
                    roots
                        .add(cert)
                        .map_err(|e| ("rootCA", format!("a CA certificate is not acceptable: {e}")))?;
                    found += 1;
                }
                if found == 0 {
                    return Err(("rootCA", "no certificates found in the CA data".to_owned()));
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                for e in &native.errors {
                    tracing::warn!(error = %e, "could not load a system CA certificate");
                }
                for cert in native.certs {
                    // An unparsable system certificate is skipped, as Go's pool does.
                    let _ = roots.add(cert);
                }
            }
        }
        builder.with_root_certificates(roots)
    };
    let config = match settings.client_identity {
        Some((cert_pem, key_pem)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
                .collect::<Result<_, _>>()
                .map_err(|_| ("clientCert", "the client certificate is not valid PEM".to_owned()))?;
            if chain.is_empty() {
                return Err(("clientCert", "no certificate found in the client certificate file".to_owned()));
            }
            let key = PrivateKeyDer::from_pem_slice(&key_pem)
                .map_err(|_| ("clientKey", "no PEM private key found in the client key file".to_owned()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ("clientKey", format!("the client key does not fit the certificate: {e}")))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// `insecureSkipVerify`: any certificate is accepted (signatures of the handshake are still
/// checked, so the connection is at least encrypted to whoever answered).
#[derive(Debug)]
struct NoVerification(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerification {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_ca_data_names_the_key() {
        let e = client_config(TlsSettings {
            root_ca_pem: Some(b"not pem at all".to_vec()),
            client_identity: None,
            skip_verify: false,
        })
        .unwrap_err();
        assert_eq!(e.0, "rootCA");
        let ok = client_config(TlsSettings { root_ca_pem: None, client_identity: None, skip_verify: true });
        assert!(ok.is_ok());
    }
}
