//! The one TLS client configuration every outgoing connection uses (PostgreSQL, Twitch IRC):
//! rustls with the aws-lc-rs provider (the workspace's only one, as in the AWS SDK's client) and
//! Mozilla's root certificates. HTTP (reqwest) uses the same provider with the platform's roots.

use std::sync::Arc;

/// Mozilla's root certificates (webpki-roots), to extend with a private CA where needed.
pub fn mozilla_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    roots
}

pub fn client_config(roots: rustls::RootCertStore) -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("the aws-lc-rs provider supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// A client that takes any server certificate (still checking that the server holds its key)
/// and leaves authenticating the server to the protocol above: only for PostgreSQL with SCRAM
/// channel binding required, where the server proves it knows the password's verifier for this
/// very TLS session (the binding is the hash of the certificate it presented). Nothing else may
/// use it.
#[cfg(feature = "postgres")]
pub(crate) fn client_config_for_channel_binding() -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the aws-lc-rs provider supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ChannelBoundServer { provider }))
        .with_no_client_auth()
}

/// See [`client_config_for_channel_binding`].
#[cfg(feature = "postgres")]
#[derive(Debug)]
struct ChannelBoundServer {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

#[cfg(feature = "postgres")]
impl rustls::client::danger::ServerCertVerifier for ChannelBoundServer {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(feature = "http")]
/// Every outgoing HTTP call's client builder (Helix, OAuth, webhooks): this module's TLS
/// configuration. reqwest's own default would read the system's CA certificates on every build
/// and fail (`Client::new()` panics) on a host that has none, such as a minimal container.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().tls_backend_preconfigured(client_config(mozilla_roots()))
}

#[cfg(feature = "http")]
/// [`http_client_builder`] built: build it once per process and clone it (clones share the
/// connection pool).
pub fn http_client() -> reqwest::Client {
    http_client_builder().build().expect("a client with a preconfigured rustls configuration always builds")
}

#[cfg(all(test, feature = "http"))]
mod tests {
    #[tokio::test]
    async fn the_http_client_speaks_plain_http_and_verifies_tls_with_mozillas_roots() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            for _ in 0..2 {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = [0u8; 1024];
                let read = socket.read(&mut request).await.unwrap();
                if request[..read].starts_with(b"GET") {
                    socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.unwrap();
                }
                // Anything else is a TLS ClientHello: hang up, as a server without TLS would.
            }
        });
        let client = super::http_client();
        let body = client.get(format!("http://{address}/")).send().await.unwrap().text().await.unwrap();
        assert_eq!(body, "ok");
        let refused = client.get(format!("https://{address}/")).send().await;
        assert!(refused.is_err(), "a TLS handshake with a plain-HTTP peer must fail");
        server.await.unwrap();
    }
}
