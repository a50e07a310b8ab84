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
