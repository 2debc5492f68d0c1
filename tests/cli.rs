//! Black-box tests through the real `secret` binary: one test binary, one
//! module per capability, a temporary `SECRET_HOME` per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

mod audit;
mod broker;
mod check;
mod docs;
mod exec;
mod first_hour;
mod fixtures;
mod grants;
mod holes;
mod hostile;
mod import;
mod keychain;
mod lifecycle;
mod limits;
mod link;
mod mask;
mod plugins;
mod process;
mod proxy;
mod recipes;
mod remote_azure;
mod remote_command;
mod remote_openbao;
mod reveal;
mod scopes;
mod security;
mod terminal;
mod unlock;
mod vault;
