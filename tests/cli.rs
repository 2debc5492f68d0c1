//! Black-box tests through the real `secret` binary: one test binary, one
//! module per capability, a temporary `SECRET_HOME` per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

mod audit;
mod docs;
mod exec;
mod fixtures;
mod grants;
mod keychain;
mod lifecycle;
mod mask;
mod plugins;
mod process;
mod remote_azure;
mod remote_command;
mod remote_openbao;
mod scopes;
mod security;
mod unlock;
mod vault;
