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
