//! `secret broker`: a local capability broker. A trusted process holds the
//! provider credentials; callers (an agent, a tool host, an SDK pointed at
//! `http://127.0.0.1:PORT/proxy/NAME/v1`) present a caller token and get
//! their requests forwarded to the route's upstream with the credential
//! header added. The caller uses the key and never holds it. The broker
//! enforces path and method allowlists, rate limits and a body cap, streams
//! bodies both ways unbuffered, and audits denials one by one and allowed
//! traffic as per-route summaries.
//!
//! Rooms:
//!
//! - `cmd`: the commands' flow (`run|check|status|token`), from arguments
//!   to exit code, including the one call into the resolver, reload and
//!   shutdown;
//! - `config`: `broker.toml`, every problem at once with positions;
//! - `route`: path normalisation and the allowlists;
//! - `token`: the caller token file and its constant-time check;
//! - `limit`: per-route token buckets;
//! - `serve`: listeners, connections and the request handler;
//! - `upstream`: TLS client connections, pooled, with timeouts (no route
//!   or secret knowledge, for reuse by an intercepting proxy);
//! - `runtime`: the one-thread tokio runtime both servers run on;
//! - `status`: counters, the status snapshot, the audit writer and
//!   summaries;
//! - `proxy`, `intercept`, `ca`, `placeholder`, `substitute`: `secret
//!   exec --proxy` (the child holds placeholders; a loopback proxy swaps
//!   them for values on TLS connections to the granted hosts), over the
//!   same `upstream` client.
//!
//! It does not own the store, grants or audit format: it uses them as
//! consumer `broker`, delivery `http`.

pub(crate) mod ca;
pub(crate) mod cmd;
pub(crate) mod config;
pub(crate) mod intercept;
pub(crate) mod limit;
pub(crate) mod placeholder;
pub(crate) mod proxy;
pub(crate) mod route;
pub(crate) mod runtime;
pub(crate) mod serve;
pub(crate) mod status;
pub(crate) mod substitute;
pub(crate) mod token;
pub(crate) mod upstream;
