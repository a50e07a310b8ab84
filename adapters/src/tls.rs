//! The one TLS client configuration every outgoing connection uses (PostgreSQL, Twitch IRC):
//! rustls with the ring provider and Mozilla's root certificates.

use std::sync::Arc;

/// Mozilla's root certificates (webpki-roots), to extend with a private CA where needed.
pub fn mozilla_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    roots
}

pub fn client_config(roots: rustls::RootCertStore) -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}
