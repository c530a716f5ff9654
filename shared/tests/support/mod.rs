//! Test helpers shared by the mirror and forge tests: hermetic git fixtures, a git smart-HTTP
//! server (`git http-backend` as CGI behind a loopback HTTP server with basic auth), and
//! loopback servers answering in the shapes of the Gitea/Forgejo and GitHub APIs.

#![allow(dead_code)]

pub mod api;
pub mod git;
