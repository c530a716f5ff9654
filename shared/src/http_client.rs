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
