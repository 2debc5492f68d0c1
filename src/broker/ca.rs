//! The per-launch certificate authority of `exec --proxy`: an ECDSA P-256
//! CA made when the proxy starts, its private key only in this process's
//! memory (gone when the launch ends), name-constrained to the hosts the
//! launch's grants allow, and the leaf certificates it signs for those
//! hosts, cached per host (one key and signature per host per launch).
//! It owns certificates only; which connections are intercepted is
//! `intercept`'s business.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::ServerConfig;
use time::OffsetDateTime;
use zeroize::Zeroize;

use crate::error::{Error, Result};

/// How long the certificates are valid: the key dies with the launch
/// anyway; the window only has to outlast the longest-running child.
const VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);
/// Clock skew the certificates tolerate.
const SKEW: Duration = Duration::from_secs(3600);
/// At most this many leaf certificates are cached (a `*.domain` grant
/// could name any number of hosts).
const MAX_LEAVES: usize = 1024;

/// The CA's key, wiped (its serialized form) when the launch ends.
struct Key(KeyPair);

impl Drop for Key {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// The launch's CA and its cache of leaf server configurations.
pub(crate) struct Authority {
    params: CertificateParams,
    key: Key,
    der: CertificateDer<'static>,
    pem: String,
    leaves: Mutex<HashMap<String, Arc<ServerConfig>>>,
}

fn failed(e: rcgen::Error) -> Error {
    Error::internal(format!("making the proxy's certificates: {e}"))
}

impl Authority {
    /// A new CA that may only sign for `hosts` (exact names, `*.domain`
    /// patterns, IP addresses).
    pub(crate) fn new(hosts: &[String]) -> Result<Self> {
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.not_before = now - SKEW;
        params.not_after = now + VALIDITY;
        let mut name = DistinguishedName::new();
        name.push(
            DnType::CommonName,
            format!("secret exec --proxy CA (pid {})", std::process::id()),
        );
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.name_constraints = Some(constraints(hosts));
        let key = Key(KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(failed)?);
        let cert = params.self_signed(&key.0).map_err(failed)?;
        Ok(Self {
            der: cert.der().clone(),
            pem: pem_certificate(cert.der()),
            params,
            key,
            leaves: Mutex::new(HashMap::new()),
        })
    }

    /// The CA certificate in PEM, for the child's trust bundle.
    #[must_use]
    pub(crate) fn pem(&self) -> &str {
        &self.pem
    }

    /// The TLS server side for `host` (offering HTTP/2 and HTTP/1.1), signed
    /// once per host and cached.
    pub(crate) fn server_config(&self, host: &str) -> Result<Arc<ServerConfig>> {
        let host = host.to_ascii_lowercase();
        if let Some(config) = self
            .leaves
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&host)
        {
            return Ok(Arc::clone(config));
        }
        let config = Arc::new(self.leaf(&host)?);
        let mut leaves = self.leaves.lock().unwrap_or_else(PoisonError::into_inner);
        if leaves.len() >= MAX_LEAVES {
            leaves.clear();
        }
        leaves.insert(host, Arc::clone(&config));
        Ok(config)
    }

    fn leaf(&self, host: &str) -> Result<ServerConfig> {
        let mut params = CertificateParams::new(vec![host.to_owned()]).map_err(failed)?;
        params.not_before = self.params.not_before;
        params.not_after = self.params.not_after;
        // No common name for an address: OpenSSL checks a CN against the
        // CA's DNS name constraints when a leaf has no DNS name, and an
        // address is no DNS name (curl: "permitted subtree violation").
        let mut name = DistinguishedName::new();
        if host.parse::<IpAddr>().is_err() {
            name.push(DnType::CommonName, host);
        }
        params.distinguished_name = name;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(failed)?;
        let issuer = Issuer::from_params(&self.params, &self.key.0);
        let cert = params.signed_by(&key, &issuer).map_err(failed)?;
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::internal(format!("TLS setup: {e}")))?
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone(), self.der.clone()], private)
            .map_err(|e| Error::internal(format!("TLS setup for {host}: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// A certificate in PEM: base64 of the DER, 64 columns, armoured.
fn pem_certificate(der: &[u8]) -> String {
    use base64ct::Encoding;
    let body = base64ct::Base64::encode_string(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Name constraints: DNS subtrees for the names (`*.domain` and `domain`
/// both become the subtree `domain`), address subtrees for IP addresses;
/// with no address allowed, every address is excluded.
fn constraints(hosts: &[String]) -> NameConstraints {
    let mut permitted = Vec::new();
    let mut any_ip = false;
    for host in hosts {
        match host.parse::<IpAddr>() {
            Ok(ip) => {
                any_ip = true;
                let bits = if ip.is_ipv4() { 32 } else { 128 };
                permitted.push(GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
                    ip, bits,
                )));
            }
            Err(_) => permitted.push(GeneralSubtree::DnsName(
                host.strip_prefix("*.").unwrap_or(host).to_ascii_lowercase(),
            )),
        }
    }
    let excluded = if any_ip {
        Vec::new()
    } else {
        vec![
            GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
                IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                0,
            )),
            GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
                IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
                0,
            )),
        ]
    };
    NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: excluded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_are_cached_per_host() {
        let ca = Authority::new(&["localhost".into(), "127.0.0.1".into()]).expect("ca");
        assert!(ca.pem().starts_with("-----BEGIN CERTIFICATE-----"));
        let a = ca.server_config("localhost").expect("leaf");
        let b = ca.server_config("LOCALHOST").expect("leaf");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(ca.server_config("127.0.0.1").is_ok());
    }
}
