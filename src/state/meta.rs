//! The `meta` table: facts about the state file itself, as `key → value` text. Today this
//! warden's [`Identity`], which every dedup key carries:
//!
//! - `instance`: the configured one (`[alerting] instance`), remembered; without one, the one
//!   remembered, else the host name (made a valid instance by [`instance_from_host`]) and
//!   remembered, so renaming the host does not change the keys of a warden that never
//!   configured an instance;
//! - `epoch`: set once, when the file first needs it (a new file, or one from before version
//!   2), to the unix seconds of that moment in base 36, and never changed: a lost state file
//!   restarts incident numbers, and the new epoch keeps them from repeating an earlier key.

use rusqlite::{OptionalExtension, Transaction, TransactionBehavior};

use super::{Store, StoreError};
use crate::alert::{instance_char, valid_instance, Identity, MAX_INSTANCE_LEN};
use crate::clock::Timestamp;

/// A valid instance named after `host`: every character outside `[A-Za-z0-9._-]` becomes `-`,
/// the result is cut to 64 characters, and an empty host name gives `warden`.
pub fn instance_from_host(host: &str) -> String {
    let name: String = host
        .chars()
        .map(|c| if instance_char(c) { c } else { '-' })
        .take(MAX_INSTANCE_LEN)
        .collect();
    if name.is_empty() {
        "warden".to_string()
    } else {
        name
    }
}

/// `secs` in base 36, lowercase (`1789198089` → `tl8q2x`).
fn base36(mut secs: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(secs % 36) as usize]);
        secs /= 36;
        if secs == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("base-36 digits are ASCII")
}

/// The epoch a file first given an identity at `now` gets.
fn epoch_at(now: Timestamp) -> String {
    base36(now.as_millis().div_euclid(1000).max(0) as u64)
}

fn get(tx: &Transaction<'_>, key: &str) -> rusqlite::Result<Option<String>> {
    tx.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
}

fn set(tx: &Transaction<'_>, key: &str, value: &str) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )
    .map(|_| ())
}

impl Store {
    /// This warden's identity, in one transaction: the instance is `configured` if given
    /// (and remembered, replacing what was), else the remembered one, else
    /// [`instance_from_host`]`(host)` (remembered); the epoch is the remembered one, else set
    /// now from `now`. A `configured` instance that is not [`valid_instance`] is refused; a
    /// remembered one that is not (an edited file) is logged and replaced as if absent.
    /// Blocking: call it at startup or from `spawn_blocking`.
    pub fn identity(
        &self,
        configured: Option<&str>,
        host: &str,
        now: Timestamp,
    ) -> Result<Identity, StoreError> {
        if let Some(configured) = configured {
            valid_instance(configured).map_err(|detail| StoreError {
                path: self.path.to_path_buf(),
                operation: "identity",
                detail,
            })?;
        }
        let path = self.path.clone();
        self.blocking("identity", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let stored = get(&tx, "instance")?;
            let remembered = stored.clone().filter(|s| match valid_instance(s) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(
                        store = %path.display(),
                        error = %e,
                        "the remembered instance is not valid; using the host name"
                    );
                    false
                }
            });
            let instance = match configured {
                Some(configured) => configured.to_string(),
                None => remembered.unwrap_or_else(|| instance_from_host(host)),
            };
            if stored.as_deref() != Some(instance.as_str()) {
                set(&tx, "instance", &instance)?;
            }
            let epoch = match get(&tx, "epoch")? {
                Some(epoch) => epoch,
                None => {
                    let epoch = epoch_at(now);
                    set(&tx, "epoch", &epoch)?;
                    epoch
                }
            };
            tx.commit()?;
            Ok(Identity { instance, epoch })
        })
    }
}

impl Store {
    /// The key that signs acknowledgement links: the one the file remembers, else `fresh`
    /// (hex of random bytes the caller drew), remembered. A new state file means new links.
    /// Blocking: call it at startup or from `spawn_blocking`.
    pub fn ack_key(&self, fresh: String) -> Result<String, StoreError> {
        self.blocking("ack key", move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let key = match get(&tx, "ack_key")? {
                Some(k) if k.len() >= 32 => k,
                _ => {
                    set(&tx, "ack_key", &fresh)?;
                    fresh
                }
            };
            tx.commit()?;
            Ok(key)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_are_short_safe_names() {
        for ok in ["web-1", "a", "db.prod_eu-1", &"x".repeat(64)] {
            assert_eq!(valid_instance(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a/b", "web 1", "é", &"x".repeat(65)] {
            assert!(valid_instance(bad).is_err(), "{bad}");
        }
        assert_eq!(
            valid_instance("a/b").unwrap_err(),
            "instance \"a/b\" must be 1 to 64 characters of letters, digits, '.', '_' and '-' \
             (it names this warden in every dedup key), e.g. \"web-1\""
        );
    }

    #[test]
    fn host_names_become_valid_instances() {
        let cases = [
            ("web-1.prod.example", "web-1.prod.example"),
            ("my host/é", "my-host--"),
            ("", "warden"),
        ];
        for (host, want) in cases {
            assert_eq!(instance_from_host(host), want, "{host:?}");
        }
        let long = instance_from_host(&"h".repeat(100));
        assert_eq!(long.len(), 64);
        for host in ["web-1", "a b c", "", "ü", &"é".repeat(80)] {
            let instance = instance_from_host(host);
            assert_eq!(
                valid_instance(&instance),
                Ok(()),
                "{host:?} -> {instance:?}"
            );
        }
    }

    #[test]
    fn epochs_are_unix_seconds_in_base_36() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
        assert_eq!(epoch_at(Timestamp(1_789_198_089_999)), "tl8q2x");
        assert_eq!(epoch_at(Timestamp(-5)), "0");
    }
}
