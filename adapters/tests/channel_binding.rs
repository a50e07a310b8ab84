//! The starter profile's way to the database (docs/deploy.md, "Profiles"): TLS whose certificate
//! chains to no CA the client trusts, the server authenticated instead by SCRAM channel binding.
//! Against a real PostgreSQL of the test's own with TLS on and a self-signed certificate.

use highlights_adapters::postgres::Database;
use highlights_test_support::postgres::TempPostgres;

const PASSWORD: &str = "a-40-character-random-password-stand-in";

/// A server whose `app` user logs in over TLS with `method`.
async fn server(method: &str) -> TempPostgres {
    let server = TempPostgres::start_with_tls(method).expect("a PostgreSQL server with TLS");
    let owner = Database::from_url(&server.url("postgres")).unwrap().connect().await.unwrap();
    // An MD5 server needs an MD5 verifier: with a SCRAM one, PostgreSQL answers `md5` with SCRAM.
    let encryption = if method == "md5" { "md5" } else { "scram-sha-256" };
    owner
        .batch_execute(&format!(
            "SET password_encryption = '{encryption}'; CREATE ROLE app LOGIN PASSWORD '{PASSWORD}'"
        ))
        .await
        .unwrap();
    server
}

fn app_url(server: &TempPostgres, password: &str, options: &str) -> String {
    format!("postgres://app:{password}@127.0.0.1:{}/postgres?{options}", server.port())
}

#[tokio::test]
async fn with_channel_binding_required_a_server_without_a_trusted_certificate_is_reached_over_tls() {
    let server = server("scram-sha-256").await;
    let bound =
        Database::from_url(&app_url(&server, PASSWORD, "sslmode=require&channel_binding=require")).unwrap();
    let client = bound.connect().await.expect("SCRAM-SHA-256-PLUS over TLS");
    let row =
        client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap();
    assert!(row.get::<_, bool>(0), "the session is encrypted");

    // Without channel binding the certificate is checked against the CAs, and this one is not.
    let unbound = Database::from_url(&app_url(&server, PASSWORD, "sslmode=require")).unwrap();
    let Err(error) = unbound.connect().await else { panic!("a self-signed certificate was trusted") };
    assert!(
        error.to_string().contains("certificate") || error.to_string().contains("Certificate"),
        "{error}"
    );

    // A wrong password is refused, and the error does not show the password given.
    let wrong =
        Database::from_url(&app_url(&server, "not-the-password", "sslmode=require&channel_binding=require"))
            .unwrap();
    let Err(error) = wrong.connect().await else { panic!("logged in with a wrong password") };
    assert!(!error.to_string().contains("not-the-password"), "{error}");
}

#[tokio::test]
async fn a_server_that_asks_for_a_cleartext_or_md5_password_gets_none() {
    for method in ["password", "md5"] {
        let server = server(method).await;
        // The client stops before sending the password: the server asked for it without SCRAM.
        let bound =
            Database::from_url(&app_url(&server, PASSWORD, "sslmode=require&channel_binding=require"))
                .unwrap();
        let Err(error) = bound.connect().await else { panic!("{method}: logged in without channel binding") };
        assert!(error.to_string().contains("channel binding"), "{method}: {error}");
        assert!(!error.to_string().contains(PASSWORD), "{error}");
    }
}

/// A man in the middle: answers PostgreSQL's TLS request itself with a certificate of its own,
/// opens its own TLS session to the real server, and relays the bytes between the two. Returns
/// its port.
async fn man_in_the_middle(upstream: u16, dir: &std::path::Path) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (key, crt) = (dir.join("mitm.key"), dir.join("mitm.crt"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from_pem_file(&crt).unwrap()],
            PrivateKeyDer::from_pem_file(&key).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(server_config));
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(any_certificate(provider)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let (acceptor, connector) = (acceptor.clone(), connector.clone());
            tokio::spawn(async move {
                let mut ssl_request = [0u8; 8];
                client.read_exact(&mut ssl_request).await?;
                client.write_all(b"S").await?;
                let mut client = acceptor.accept(client).await?;
                let mut server = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await?;
                server.write_all(&ssl_request).await?;
                let mut answer = [0u8; 1];
                server.read_exact(&mut answer).await?;
                let name = ServerName::try_from("localhost").unwrap();
                let mut server = connector.connect(name, server).await?;
                tokio::io::copy_bidirectional(&mut client, &mut server).await.map(|_| ())
            });
        }
    });
    port
}

/// A TLS client that takes any certificate: the man in the middle's, and the control
/// connection's that does not ask for channel binding.
fn any_certificate(provider: std::sync::Arc<rustls::crypto::CryptoProvider>) -> rustls::ClientConfig {
    #[derive(Debug)]
    struct AnyCertificate(std::sync::Arc<rustls::crypto::CryptoProvider>);
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    impl ServerCertVerifier for AnyCertificate {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
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
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(AnyCertificate(provider)))
        .with_no_client_auth()
}

#[tokio::test]
async fn a_man_in_the_middle_with_a_certificate_of_its_own_cannot_relay_a_channel_bound_login() {
    let server = server("scram-sha-256").await;
    let relay = man_in_the_middle(server.port(), server.dir()).await;
    let through_relay = |options: &str| {
        format!("postgres://app:{PASSWORD}@127.0.0.1:{relay}/postgres?sslmode=require&{options}")
    };

    // Control: a client that does not insist on channel binding logs in through the relay,
    // which then reads every byte in clear.
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(any_certificate(provider));
    let config: tokio_postgres::Config = through_relay("channel_binding=disable").parse().unwrap();
    let (client, connection) = config.connect(tls).await.expect("the relay works");
    tokio::spawn(connection);
    client.query_one("SELECT 1", &[]).await.unwrap();

    // With channel binding required, the server sees the binding of the relay's session to it,
    // not of the client's session to the relay, and refuses the login.
    let bound = Database::from_url(&through_relay("channel_binding=require")).unwrap();
    let Err(error) = bound.connect().await else { panic!("a relayed channel-bound login succeeded") };
    assert!(
        error.to_string().contains("SCRAM channel binding check failed"),
        "the server refused it: {error}"
    );
    assert!(!error.to_string().contains(PASSWORD), "{error}");
    // And directly, the same client logs in: the relay is what failed.
    let direct =
        Database::from_url(&app_url(&server, PASSWORD, "sslmode=require&channel_binding=require")).unwrap();
    direct.connect().await.expect("a direct channel-bound login");
}
