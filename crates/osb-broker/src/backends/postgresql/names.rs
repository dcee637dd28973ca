//! Names of the databases and roles the broker creates.
//!
//! Every name derives from the server's name prefix and the instance or
//! binding id alone, so the broker finds its objects again after a crash
//! without any record of its own. A name is the prefix (`osb` unless
//! `name_prefix` sets another), `_`, the first hex digits of the SHA-256 of
//! the instance id, then a suffix. It is lower case, safe whatever the id
//! contains, and within PostgreSQL's 63-byte limit: a hash has 24 hex
//! digits (96 bits), or 23 (92 bits) with a 12-character prefix.
//!
//! A prefix has no `_`, so the names of brokers with different prefixes
//! never look alike: brokers sharing a server need different prefixes.

use sha2::{Digest, Sha256};

/// The name prefix of a server whose config sets none.
pub const DEFAULT_PREFIX: &str = "osb";

/// The maximum length of a name prefix.
pub const MAX_PREFIX_LEN: usize = 12;

/// Hex digits of the SHA-256 kept in a name, unless the prefix is too long.
const HASH_HEX_LEN: usize = 24;

/// PostgreSQL's limit on the bytes of a name.
const MAX_NAME_LEN: usize = 63;

const SEPARATOR: &str = "_";
const OWNER_SUFFIX: &str = "_owner";
const READER_SUFFIX: &str = "_reader";
const BINDING_INFIX: &str = "_b_";

/// The naming scheme of one server's objects: the prefix and the hash length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    prefix: String,
    hash_len: usize,
}

impl Default for Naming {
    fn default() -> Self {
        Naming::new(DEFAULT_PREFIX).expect("the default prefix is valid")
    }
}

impl Naming {
    /// Checks `prefix`: a lower-case ASCII letter, then up to 11 lower-case
    /// letters or digits. The error message lists what a prefix may contain.
    pub fn new(prefix: &str) -> Result<Self, String> {
        let mut bytes = prefix.bytes();
        let valid = bytes.next().is_some_and(|b| b.is_ascii_lowercase())
            && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && prefix.len() <= MAX_PREFIX_LEN;
        if !valid {
            return Err(format!(
                "is {prefix:?}; a name prefix is a lower-case letter followed by up to \
                 {} lower-case letters or digits, such as \"osb\" or \"osbteam2\"",
                MAX_PREFIX_LEN - 1
            ));
        }
        // The longest name is a binding role: prefix, separator, two hashes
        // and the binding infix.
        let room = MAX_NAME_LEN - prefix.len() - SEPARATOR.len() - BINDING_INFIX.len();
        Ok(Naming {
            prefix: prefix.to_owned(),
            hash_len: HASH_HEX_LEN.min(room / 2),
        })
    }

    /// Returns the prefix, such as `osb`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Returns the start of every name made with this naming, such as `osb_`.
    pub fn name_start(&self) -> String {
        format!("{}{SEPARATOR}", self.prefix)
    }

    /// Derives the names for `instance_id`.
    pub fn instance(&self, instance_id: &str) -> InstanceNames {
        self.instance_from_hash(&self.short_hash(instance_id))
    }

    /// Derives the names from the [`Naming::short_hash`] of the instance id.
    pub fn instance_from_hash(&self, instance_hash: &str) -> InstanceNames {
        let database = format!("{}{instance_hash}", self.name_start());
        InstanceNames {
            owner: format!("{database}{OWNER_SUFFIX}"),
            reader: format!("{database}{READER_SUFFIX}"),
            binding_prefix: format!("{database}{BINDING_INFIX}"),
            marker: format!(
                "osb-broker database of the instance whose id hashes to {instance_hash}, \
                 name prefix {}",
                self.prefix
            ),
            database,
            hash_len: self.hash_len,
        }
    }

    /// Returns the first hex digits of SHA-256(`id`) that names keep.
    pub fn short_hash(&self, id: &str) -> String {
        hex_prefix(id, self.hash_len)
    }

    fn is_short_hash(&self, text: &str) -> bool {
        is_hex_of_len(text, self.hash_len)
    }

    /// Parses a database name as the broker makes them with this naming.
    pub fn parse_database(&self, name: &str) -> Option<ParsedName> {
        let hash = name.strip_prefix(&self.name_start())?;
        self.is_short_hash(hash).then(|| ParsedName::Database {
            instance_hash: hash.to_owned(),
        })
    }

    /// Parses a role name as the broker makes them with this naming.
    pub fn parse_role(&self, name: &str) -> Option<ParsedName> {
        let rest = name.strip_prefix(&self.name_start())?;
        if rest.len() < self.hash_len || !rest.is_char_boundary(self.hash_len) {
            return None;
        }
        let (instance_hash, suffix) = rest.split_at(self.hash_len);
        if !self.is_short_hash(instance_hash) {
            return None;
        }
        let instance_hash = instance_hash.to_owned();
        match suffix {
            OWNER_SUFFIX => Some(ParsedName::Owner { instance_hash }),
            READER_SUFFIX => Some(ParsedName::Reader { instance_hash }),
            _ => {
                let binding_hash = suffix.strip_prefix(BINDING_INFIX)?;
                self.is_short_hash(binding_hash)
                    .then(|| ParsedName::Binding {
                        instance_hash,
                        binding_hash: binding_hash.to_owned(),
                    })
            }
        }
    }
}

/// The names of one instance's database and group roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceNames {
    /// The database, `<prefix>_<hash>`.
    pub database: String,
    /// The non-login role that owns the database and everything in it.
    pub owner: String,
    /// The non-login role whose members may only read.
    pub reader: String,
    /// The prefix of every binding role name of the instance.
    pub binding_prefix: String,
    /// The comment on the database that marks it as made by the broker for
    /// this instance.
    pub marker: String,
    hash_len: usize,
}

impl InstanceNames {
    /// Derives the names for `instance_id` with the default prefix.
    pub fn new(instance_id: &str) -> Self {
        Naming::default().instance(instance_id)
    }

    /// Returns the login role of `binding_id`.
    pub fn binding_role(&self, binding_id: &str) -> String {
        format!(
            "{}{}",
            self.binding_prefix,
            hex_prefix(binding_id, self.hash_len)
        )
    }

    /// Tells whether `role` is a binding role of this instance.
    pub fn is_binding_role(&self, role: &str) -> bool {
        role.strip_prefix(&self.binding_prefix)
            .is_some_and(|hash| is_hex_of_len(hash, self.hash_len))
    }
}

/// Returns the first 24 lower-case hex digits of SHA-256(`id`), as names
/// with the default prefix keep them.
pub fn short_hash(id: &str) -> String {
    hex_prefix(id, HASH_HEX_LEN)
}

fn hex_prefix(id: &str, len: usize) -> String {
    let digest = Sha256::digest(id.as_bytes());
    let mut hex = String::with_capacity(len + 1);
    for byte in digest.iter().take(len.div_ceil(2)) {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex.truncate(len);
    hex
}

fn is_hex_of_len(text: &str, len: usize) -> bool {
    text.len() == len
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The object a broker-made name belongs to, parsed from the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedName {
    /// An instance's database; the hash of its instance id.
    Database { instance_hash: String },
    /// An instance's owner role.
    Owner { instance_hash: String },
    /// An instance's reader role.
    Reader { instance_hash: String },
    /// A binding's login role.
    Binding {
        instance_hash: String,
        binding_hash: String,
    },
}

impl ParsedName {
    /// Returns the hash of the instance id the name derives from.
    pub fn instance_hash(&self) -> &str {
        match self {
            ParsedName::Database { instance_hash }
            | ParsedName::Owner { instance_hash }
            | ParsedName::Reader { instance_hash }
            | ParsedName::Binding { instance_hash, .. } => instance_hash,
        }
    }
}

/// Parses a database name as the broker makes them with the default prefix.
pub fn parse_database(name: &str) -> Option<ParsedName> {
    Naming::default().parse_database(name)
}

/// Parses a role name as the broker makes them with the default prefix.
pub fn parse_role(name: &str) -> Option<ParsedName> {
    Naming::default().parse_role(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_names(naming: &Naming, id: &str) -> Vec<String> {
        let names = naming.instance(id);
        let binding = names.binding_role(id);
        vec![names.database, names.owner, names.reader, binding]
    }

    #[test]
    fn names_are_short_and_lower_case() {
        let long_id = "ä'\";".repeat(300);
        for prefix in ["osb", "a", "abcdefghijk", "abcdefghijk1"] {
            let naming = Naming::new(prefix).expect(prefix);
            for name in all_names(&naming, &long_id) {
                assert!(name.len() <= 63, "{name}");
                assert!(name.starts_with(&format!("{prefix}_")), "{name}");
                assert!(
                    name.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                    "{name}"
                );
            }
            // At least 80 bits of each hash.
            assert!(naming.short_hash("x").len() * 4 >= 80);
        }
    }

    #[test]
    fn default_names_are_unchanged() {
        let names = InstanceNames::new("a");
        assert_eq!(names.database, format!("osb_{}", short_hash("a")));
        assert_eq!(short_hash("a").len(), 24);
        assert_eq!(
            names.binding_role("b"),
            format!("osb_{}_b_{}", short_hash("a"), short_hash("b"))
        );
    }

    #[test]
    fn prefixes_are_checked() {
        for prefix in ["osb", "a", "team2", "abcdefghijk1"] {
            assert!(Naming::new(prefix).is_ok(), "{prefix}");
        }
        for prefix in ["", "1abc", "Osb", "osb_", "o-b", "abcdefghijklm", "ösb"] {
            assert!(Naming::new(prefix).is_err(), "{prefix}");
        }
    }

    #[test]
    fn names_are_deterministic() {
        assert_eq!(InstanceNames::new("a"), InstanceNames::new("a"));
        assert_ne!(InstanceNames::new("a"), InstanceNames::new("b"));
        let other = Naming::new("other").expect("valid");
        assert_ne!(
            InstanceNames::new("a").database,
            other.instance("a").database
        );
    }

    #[test]
    fn parse_round_trips() {
        for prefix in ["osb", "abcdefghijk1"] {
            let naming = Naming::new(prefix).expect(prefix);
            let names = naming.instance("instance");
            let hash = naming.short_hash("instance");
            assert_eq!(
                naming.parse_database(&names.database),
                Some(ParsedName::Database {
                    instance_hash: hash.clone()
                })
            );
            assert_eq!(
                naming.parse_role(&names.owner),
                Some(ParsedName::Owner {
                    instance_hash: hash.clone()
                })
            );
            assert_eq!(
                naming.parse_role(&names.reader),
                Some(ParsedName::Reader {
                    instance_hash: hash.clone()
                })
            );
            let binding = names.binding_role("binding");
            assert_eq!(
                naming.parse_role(&binding),
                Some(ParsedName::Binding {
                    instance_hash: hash,
                    binding_hash: naming.short_hash("binding")
                })
            );
            assert!(names.is_binding_role(&binding));
        }
    }

    #[test]
    fn parse_rejects_foreign_names() {
        for name in ["postgres", "osb_", "osb_xyz", "osb_1234_owner", "osb_é"] {
            assert_eq!(parse_database(name), None, "{name}");
            assert_eq!(parse_role(name), None, "{name}");
        }
        let names = InstanceNames::new("instance");
        assert_eq!(parse_role(&format!("{}x", names.owner)), None);
    }

    #[test]
    fn other_prefixes_do_not_parse() {
        let osb = Naming::default();
        let other = Naming::new("osbx").expect("valid");
        let names = other.instance("instance");
        assert_eq!(osb.parse_database(&names.database), None);
        assert_eq!(osb.parse_role(&names.owner), None);
        let names = osb.instance("instance");
        assert_eq!(other.parse_database(&names.database), None);
        assert_eq!(other.parse_role(&names.reader), None);
    }
}
