//! The one way canon builds an HTTP client for the APIs it calls with a credential (Drone,
//! Gitea/Forgejo, the listener): a connect timeout, a whole-request timeout, canon's user agent,
//! and redirects followed only within the origin the client was configured for. A token is sent
//! in a header; a redirect to another host, port or scheme is never followed, so the token can
//! never go anywhere but where it was configured.

use std::time::Duration;

/// How many redirects within one origin are followed before giving up.
const MAX_REDIRECTS: usize = 5;

/// Returns a client with `connect` and `request` timeouts that follows same-origin redirects only.
pub fn client(connect: Duration, request: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
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
