//! What an account may do beyond logging in: storage quotas, transfer
//! rates and the addresses it may log in from. The same keys come from a
//! `[[user]]` table of the users file and from an `--auth-program`'s
//! answer; anonymous and system-account sessions get the server's
//! defaults (`--download-rate`, `--upload-rate`) and no quota.

use std::net::IpAddr;

use serde::{Deserialize, Deserializer};

use crate::proxy::Network;

/// One account's limits and address filters. `None` means "not set":
/// no quota, or the server's default rate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserPolicy {
    /// Most bytes the files under the user's home may take in all.
    pub quota_bytes: Option<u64>,
    /// Most files under the user's home.
    pub quota_files: Option<u64>,
    /// Most bytes one upload may have.
    pub max_file_size: Option<u64>,
    /// Bytes per second each download of this user may go at (`0`:
    /// unlimited; unset: `--download-rate`).
    pub download_rate: Option<u64>,
    /// Bytes per second each upload of this user may go at (`0`:
    /// unlimited; unset: `--upload-rate`).
    pub upload_rate: Option<u64>,
    /// Networks the user may log in from (empty: anywhere).
    #[serde(deserialize_with = "networks")]
    pub allow_from: Vec<Network>,
    /// Networks the user may not log in from; checked before `allow_from`.
    #[serde(deserialize_with = "networks")]
    pub deny_from: Vec<Network>,
}

impl UserPolicy {
    /// Whether a login from `ip` is allowed: not in `deny_from`, and in
    /// `allow_from` when that is set.
    pub fn admits(&self, ip: IpAddr) -> bool {
        if self.deny_from.iter().any(|n| n.contains(ip)) {
            return false;
        }
        self.allow_from.is_empty() || self.allow_from.iter().any(|n| n.contains(ip))
    }

    /// Whether any storage limit is set (usage must then be counted).
    pub fn has_quota(&self) -> bool {
        self.quota_bytes.is_some() || self.quota_files.is_some()
    }

    /// The rate downloads go at, given the server's default (`0`:
    /// unlimited).
    pub fn download_rate_or(&self, default: u64) -> u64 {
        self.download_rate.unwrap_or(default)
    }

    /// The rate uploads go at, given the server's default (`0`:
    /// unlimited).
    pub fn upload_rate_or(&self, default: u64) -> u64 {
        self.upload_rate.unwrap_or(default)
    }
}

/// A list of `ADDR` or `ADDR/LEN` strings.
fn networks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Network>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    list.iter()
        .map(|s| s.parse().map_err(serde::de::Error::custom))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(toml_text: &str) -> Result<UserPolicy, toml::de::Error> {
        toml::from_str(toml_text)
    }

    #[test]
    fn deny_from_is_checked_before_allow_from() {
        let p = policy(
            r#"
            allow_from = ["10.0.0.0/8", "2001:db8::/32"]
            deny_from = ["10.9.9.0/24"]
            "#,
        )
        .unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(p.admits(ip("10.1.2.3")));
        assert!(p.admits(ip("2001:db8::1")));
        assert!(p.admits(ip("::ffff:10.1.2.3")));
        assert!(!p.admits(ip("10.9.9.9")));
        assert!(!p.admits(ip("192.168.1.1")));
        assert!(!p.admits(ip("2001:db9::1")));
        assert!(UserPolicy::default().admits(ip("192.168.1.1")));
    }

    #[test]
    fn bad_networks_and_unknown_keys_are_refused() {
        assert!(policy(r#"allow_from = ["10.0.0.1/8"]"#).is_err());
        assert!(policy(r#"allow_from = ["nowhere"]"#).is_err());
        assert!(policy("quota = 5").is_err());
        let p = policy("quota_files = 3\ndownload_rate = 0").unwrap();
        assert!(p.has_quota());
        assert_eq!(p.download_rate_or(100), 0);
        assert_eq!(p.upload_rate_or(100), 100);
    }
}
