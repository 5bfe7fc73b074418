//! The API server's TLS identity, made fresh at every start: a CA and a serving certificate for
//! 127.0.0.1 signed by it. kubectl only sends a bearer token over HTTPS, so the token the API
//! requires needs TLS; the CA goes into the kubeconfig. Everything uses the ring provider (no
//! aws-lc), and ALPN offers HTTP/1.1 only: kubectl's upgrades (port-forward) need it.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::{Error, Result};

/// A CA and a certificate for 127.0.0.1 signed by it.
pub(crate) struct Identity {
    pub ca_pem: String,
    ca_der: CertificateDer<'static>,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

fn tls_error(what: &str, err: impl std::fmt::Display) -> Error {
    Error::io(
        format!("cannot {what} for the API server"),
        std::io::Error::other(err.to_string()),
    )
}

impl Identity {
    /// Generates a new CA and serving certificate (ECDSA P-256).
    pub fn generate() -> Result<Identity> {
        let ca_key = KeyPair::generate().map_err(|e| tls_error("generate the CA key", e))?;
        let mut ca_params =
            CertificateParams::new(Vec::new()).map_err(|e| tls_error("describe the CA", e))?;
        let mut ca_name = DistinguishedName::new();
        ca_name.push(DnType::CommonName, "harness-ca");
        ca_params.distinguished_name = ca_name;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(|e| tls_error("sign the CA", e))?;
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate().map_err(|e| tls_error("generate the server key", e))?;
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .map_err(|e| tls_error("describe the server certificate", e))?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "harness-apiserver");
        params.distinguished_name = name;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| tls_error("sign the server certificate", e))?;
        Ok(Identity {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().clone(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        })
    }

    /// The rustls configuration serving this identity over TLS 1.2/1.3 with ALPN `http/1.1`.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("choose TLS versions", e))?
            .with_no_client_auth()
            .with_single_cert(vec![self.cert_der.clone(), self.ca_der.clone()], key)
            .map_err(|e| tls_error("load the serving certificate", e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_a_usable_config() {
        let identity = Identity::generate().unwrap();
        assert!(identity.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let config = identity.server_config().unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}
