//! Spawn fingerprints, for reload: what a plugin was started with, so that
//! a SIGHUP restarts only the plugins whose start would now differ. Two
//! parts: a SHA-256 of the normalized spawn-relevant settings, and an
//! HMAC-SHA-256 of the resolved secret values under a key drawn at random
//! for this process, so a fingerprint never reveals a value (and is useless
//! to anyone outside this process). Neither part is ever printed.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::config::Plugin;
use crate::error::Result;
use crate::value::SecretValue;

/// The per-process HMAC key.
pub(crate) struct Key([u8; 32]);

impl Key {
    pub(crate) fn generate() -> Result<Self> {
        Ok(Self(crate::crypto::random::<32>()?))
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// Feeds length-prefixed parts into a hash, so ("ab", "c") ≠ ("a", "bc").
trait Feed {
    fn part(&mut self, bytes: &[u8]);
}

impl Feed for Sha256 {
    fn part(&mut self, bytes: &[u8]) {
        self.update((bytes.len() as u64).to_be_bytes());
        self.update(bytes);
    }
}

impl Feed for Hmac<Sha256> {
    fn part(&mut self, bytes: &[u8]) {
        self.update(&(bytes.len() as u64).to_be_bytes());
        self.update(bytes);
    }
}

/// The settings a spawn depends on: command, args, cwd, env, inheritance,
/// which references feed which variables, output wiring, readiness probe,
/// stop and kill settings. Restart policy, backoff and dependencies are
/// not in it: changing them applies without a restart.
#[must_use]
pub(crate) fn settings(plugin: &Plugin) -> [u8; 32] {
    let mut h = Sha256::new();
    h.part(plugin.command.as_bytes());
    h.part(plugin.program.as_os_str().as_encoded_bytes());
    h.part(&(plugin.args.len() as u64).to_be_bytes());
    for a in &plugin.args {
        h.part(a.as_bytes());
    }
    h.part(plugin.cwd.as_os_str().as_encoded_bytes());
    h.part(&(plugin.env.len() as u64).to_be_bytes());
    for (k, v) in &plugin.env {
        h.part(k.as_bytes());
        h.part(v.as_bytes());
    }
    h.part(&(plugin.secret_env_refs.len() as u64).to_be_bytes());
    for r in &plugin.secret_env_refs {
        h.part(r.var.as_bytes());
        h.part(r.text.as_bytes());
        h.part(&[u8::from(r.proxy)]);
    }
    h.part(format!("{:?}", plugin.proxy_egress).as_bytes());
    h.part(format!("{:?}", plugin.inherit_env).as_bytes());
    h.part(&(plugin.pass_env.len() as u64).to_be_bytes());
    for g in &plugin.pass_env {
        h.part(g.as_bytes());
    }
    h.part(plugin.stop_signal.as_str().as_bytes());
    h.part(&plugin.stop_timeout.as_nanos().to_be_bytes());
    h.part(&[u8::from(plugin.kill_group), u8::from(plugin.mask_output)]);
    h.part(format!("{:?}", plugin.output).as_bytes());
    h.part(plugin.prefix.as_bytes());
    h.part(format!("{:?}", plugin.ready).as_bytes());
    h.finalize().into()
}

/// The keyed hash of the values a spawn would get, by variable.
#[must_use]
pub(crate) fn secrets(key: &Key, values: &[(String, SecretValue)]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key.0).expect("HMAC takes any key length");
    mac.part(&(values.len() as u64).to_be_bytes());
    for (var, value) in values {
        mac.part(var.as_bytes());
        mac.part(value.expose());
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervise::config::PluginsFile;
    use std::path::Path;

    fn plugin(extra: &str) -> Plugin {
        let text = format!("[[plugins]]\nid = \"a\"\ncommand = \"x\"\n{extra}\n");
        let dir = std::env::temp_dir();
        let mut c =
            PluginsFile::parse(&text, Path::new("p.toml"), &dir, &|_| false).expect("valid");
        c.plugins.remove(0)
    }

    #[test]
    fn spawn_settings_count_and_policy_does_not() {
        let base = settings(&plugin(""));
        assert_eq!(base, settings(&plugin("")));
        assert_ne!(base, settings(&plugin("args = [\"-v\"]")));
        assert_ne!(base, settings(&plugin("env = { A = \"1\" }")));
        assert_ne!(base, settings(&plugin("stop_signal = \"INT\"")));
        assert_ne!(base, settings(&plugin("secret_env_refs = { T = \"@t\" }")));
        assert_ne!(
            settings(&plugin("secret_env_refs = { T = \"@t\" }")),
            settings(&plugin("secret_proxy_refs = { T = \"@t\" }"))
        );
        let proxied = "secret_proxy_refs = { T = \"@t\" }";
        assert_ne!(
            settings(&plugin(proxied)),
            settings(&plugin(&format!("{proxied}\nproxy_egress = \"deny\"")))
        );
        assert_eq!(base, settings(&plugin("restart = \"always\"")));
        assert_eq!(base, settings(&plugin("restart_delay = \"5s\"")));
        assert_ne!(
            settings(&plugin("args = [\"ab\", \"c\"]")),
            settings(&plugin("args = [\"a\", \"bc\"]"))
        );
    }

    #[test]
    fn secret_prints_are_keyed_and_follow_values() {
        let v = |s: &[u8]| vec![("T".to_owned(), SecretValue::new(s.to_vec()))];
        let key = Key::generate().expect("key");
        let other = Key::generate().expect("key");
        assert_eq!(secrets(&key, &v(b"one")), secrets(&key, &v(b"one")));
        assert_ne!(secrets(&key, &v(b"one")), secrets(&key, &v(b"two")));
        assert_ne!(secrets(&key, &v(b"one")), secrets(&other, &v(b"one")));
    }
}
