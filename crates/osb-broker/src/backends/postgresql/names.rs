//! Names of the databases and roles the broker creates.
//!
//! Every name derives from the instance or binding id alone, so the broker
//! finds its objects again after a crash without any record of its own. A
//! name is `osb_`, then the first 24 hex digits (96 bits) of the SHA-256 of
//! the instance id, then a suffix: at most 55 bytes, within PostgreSQL's
//! 63-byte limit, lower case, and safe whatever the id contains.

use sha2::{Digest, Sha256};

/// The prefix of every name the broker creates.
pub const PREFIX: &str = "osb_";

/// Hex digits of the SHA-256 kept in a name.
const HASH_HEX_LEN: usize = 24;

const OWNER_SUFFIX: &str = "_owner";
const READER_SUFFIX: &str = "_reader";
const BINDING_INFIX: &str = "_b_";

/// The names of one instance's database and group roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceNames {
    /// The database, `osb_<hash>`.
    pub database: String,
    /// The non-login role that owns the database and everything in it.
    pub owner: String,
    /// The non-login role whose members may only read.
    pub reader: String,
    /// The prefix of every binding role name of the instance.
    pub binding_prefix: String,
}

impl InstanceNames {
    /// Derives the names for `instance_id`.
    pub fn new(instance_id: &str) -> Self {
        Self::from_hash(&short_hash(instance_id))
    }

    /// Derives the names from the [`short_hash`] of the instance id.
    pub fn from_hash(instance_hash: &str) -> Self {
        let database = format!("{PREFIX}{instance_hash}");
        InstanceNames {
            owner: format!("{database}{OWNER_SUFFIX}"),
            reader: format!("{database}{READER_SUFFIX}"),
            binding_prefix: format!("{database}{BINDING_INFIX}"),
            database,
        }
    }

    /// Returns the login role of `binding_id`.
    pub fn binding_role(&self, binding_id: &str) -> String {
        format!("{}{}", self.binding_prefix, short_hash(binding_id))
    }

    /// Tells whether `role` is a binding role of this instance.
    pub fn is_binding_role(&self, role: &str) -> bool {
        role.strip_prefix(&self.binding_prefix)
            .is_some_and(is_short_hash)
    }
}

/// Returns the first [`HASH_HEX_LEN`] lower-case hex digits of SHA-256(`id`).
pub fn short_hash(id: &str) -> String {
    let digest = Sha256::digest(id.as_bytes());
    let mut hex = String::with_capacity(HASH_HEX_LEN);
    for byte in digest.iter().take(HASH_HEX_LEN / 2) {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

fn is_short_hash(text: &str) -> bool {
    text.len() == HASH_HEX_LEN
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

/// Parses a database name as the broker makes them.
pub fn parse_database(name: &str) -> Option<ParsedName> {
    let hash = name.strip_prefix(PREFIX)?;
    is_short_hash(hash).then(|| ParsedName::Database {
        instance_hash: hash.to_owned(),
    })
}

/// Parses a role name as the broker makes them.
pub fn parse_role(name: &str) -> Option<ParsedName> {
    let rest = name.strip_prefix(PREFIX)?;
    if rest.len() < HASH_HEX_LEN || !rest.is_char_boundary(HASH_HEX_LEN) {
        return None;
    }
    let (instance_hash, suffix) = rest.split_at(HASH_HEX_LEN);
    if !is_short_hash(instance_hash) {
        return None;
    }
    let instance_hash = instance_hash.to_owned();
    match suffix {
        OWNER_SUFFIX => Some(ParsedName::Owner { instance_hash }),
        READER_SUFFIX => Some(ParsedName::Reader { instance_hash }),
        _ => {
            let binding_hash = suffix.strip_prefix(BINDING_INFIX)?;
            is_short_hash(binding_hash).then(|| ParsedName::Binding {
                instance_hash,
                binding_hash: binding_hash.to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_and_lower_case() {
        let long_id = "ä'\";".repeat(300);
        let names = InstanceNames::new(&long_id);
        let binding = names.binding_role(&long_id);
        for name in [&names.database, &names.owner, &names.reader, &binding] {
            assert!(name.len() <= 63, "{name}");
            assert!(name.starts_with(PREFIX), "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
        }
    }

    #[test]
    fn names_are_deterministic() {
        assert_eq!(InstanceNames::new("a"), InstanceNames::new("a"));
        assert_ne!(InstanceNames::new("a"), InstanceNames::new("b"));
    }

    #[test]
    fn parse_round_trips() {
        let names = InstanceNames::new("instance");
        let hash = short_hash("instance");
        assert_eq!(
            parse_database(&names.database),
            Some(ParsedName::Database {
                instance_hash: hash.clone()
            })
        );
        assert_eq!(
            parse_role(&names.owner),
            Some(ParsedName::Owner {
                instance_hash: hash.clone()
            })
        );
        assert_eq!(
            parse_role(&names.reader),
            Some(ParsedName::Reader {
                instance_hash: hash.clone()
            })
        );
        let binding = names.binding_role("binding");
        assert_eq!(
            parse_role(&binding),
            Some(ParsedName::Binding {
                instance_hash: hash,
                binding_hash: short_hash("binding")
            })
        );
        assert!(names.is_binding_role(&binding));
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
}
