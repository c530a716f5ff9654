//! The one way canon builds an HTTP client for the APIs it calls with a credential (Drone,
//! Gitea/Forgejo, the listener): a connect timeout, a whole-request timeout, canon's user agent,
//! and redirects followed only within the origin the client was configured for. A token is sent
//! in a header; a redirect to another host, port or scheme is never followed, so the token can
//! never go anywhere but where it was configured.
//!
//! TLS is rustls over one crypto provider, ring, for every client in the process (reqwest's
//! here, octocrab's for GitHub): [`builder`] installs it as the process default before reqwest
//! builds its TLS configuration, because reqwest is compiled without a provider of its own.

use std::time::Duration;

/// How many redirects within one origin are followed before giving up.
const MAX_REDIRECTS: usize = 5;

/// Installs ring as the process's rustls crypto provider; does nothing when one is installed.
pub fn install_crypto_provider() {
    // `Err` only says a provider is already installed; ring is the only one compiled in, so it
    // is this one.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Returns a bare `reqwest` client builder with canon's crypto provider installed. Every
/// `reqwest` client is built from here: without a provider installed, building one panics.
pub fn builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
}

/// Returns a client with `connect` and `request` timeouts that follows same-origin redirects only.
pub fn client(connect: Duration, request: Duration) -> reqwest::Result<reqwest::Client> {
    builder()
        .connect_timeout(connect)
        .timeout(request)
        .user_agent(concat!("canon/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            let same_origin = attempt
                .previous()
                .first()
                .is_some_and(|first| first.origin() == attempt.url().origin());
            if same_origin && attempt.previous().len() <= MAX_REDIRECTS {
                attempt.follow()
            } else {
                attempt.stop()
            }
        }))
        .build()
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::process::Command;
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    use super::*;

    /// Makes a self-signed certificate for `localhost` and `127.0.0.1` with the openssl CLI
    /// (ca-certificates depends on it); returns (certificate PEM, key PEM).
    fn self_signed(dir: &std::path::Path) -> (Vec<u8>, Vec<u8>) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            // An end-entity certificate: a CA certificate cannot be a server's own.
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("the openssl CLI runs");
        assert!(out.status.success(), "{out:?}");
        (
            std::fs::read(cert).expect("cert"),
            std::fs::read(key).expect("key"),
        )
    }

    /// Serves HTTPS on loopback with rustls (the process's provider), answering `tls-ok` to each
    /// connection that completes a handshake; returns the port.
    fn https_server(cert_pem: &[u8], key_pem: &[u8]) -> u16 {
        let certs = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .expect("certificate PEM");
        let key = PrivateKeyDer::from_pem_slice(key_pem).expect("key PEM");
        let config = Arc::new(
            rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .expect("server config"),
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                    continue;
                };
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut reader = BufReader::new(&mut tls);
                let mut line = String::new();
                // A refused handshake ends here with an error: the next connection is served.
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                let _ = tls.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\ntls-ok",
                );
                let _ = tls.flush();
            }
        });
        port
    }

    #[tokio::test]
    async fn a_client_speaks_tls_over_ring_and_verifies_the_server() {
        let dir = tempfile::tempdir().expect("temp dir");
        install_crypto_provider();
        let provider = rustls::crypto::CryptoProvider::get_default().expect("a provider");
        assert!(
            provider
                .cipher_suites
                .iter()
                .eq(rustls::crypto::ring::default_provider()
                    .cipher_suites
                    .iter()),
            "the process provider is ring's"
        );
        let (cert, key) = self_signed(dir.path());
        let port = https_server(&cert, &key);
        let url = format!("https://localhost:{port}/");

        // canon's client trusts the system roots only: a self-signed server is refused.
        let refused = client(Duration::from_secs(5), Duration::from_secs(10))
            .expect("client")
            .get(&url)
            .send()
            .await
            .expect_err("an unknown certificate is refused");
        assert!(
            refused.is_connect() && format!("{refused:?}").contains("InvalidCertificate"),
            "{refused:?}"
        );

        let trusting = builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&cert).expect("PEM"))
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let answer = trusting.get(&url).send().await.expect("a TLS request");
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.text().await.expect("body"), "tls-ok");
    }
}
