//! The node's identity file: which node id and cluster a data dir belongs
//! to, and the incarnation drawn when the dir was first used.
//!
//! ```text
//! DATA/node-<id>/identity      raftkv-identity-v1
//!                              node_id=3
//!                              cluster_id=raftkv
//!                              incarnation=7c02a41f9b3e0d55
//! ```
//!
//! Written once, to a temporary name, fsynced, renamed and the directory
//! fsynced, before the WAL exists: a data dir without it is an empty disk
//! (or one from before identities), and its node is a new incarnation.

use std::fs::{self, File};
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use raftkv::message::{Incarnation, NodeId, NO_INCARNATION};

use super::{io_error, sync_dir, StorageError};

/// File name of the identity inside a node's data dir.
pub const IDENTITY_FILE_NAME: &str = "identity";
const IDENTITY_TEMPORARY_NAME: &str = "identity.tmp";
const HEADER: &str = "raftkv-identity-v1";
/// Largest identity file read (it holds three short lines).
const IDENTITY_BYTES_MAX: u64 = 4 * 1024;

/// What a data dir says about the node that owns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub node_id: NodeId,
    pub cluster_id: String,
    pub incarnation: Incarnation,
    /// True when this start created it (the data dir held no identity).
    pub created: bool,
}

/// Why a data dir's identity cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(
        "node data: {} belongs to node {found}, not node {expected}; \
         point --data-dir at node {expected}'s own directory",
        .dir.display()
    )]
    OtherNode {
        dir: PathBuf,
        found: NodeId,
        expected: NodeId,
    },
    #[error(
        "node data: {} belongs to cluster '{found}', not '{expected}'; \
         pass --cluster-id {found} or use another data dir",
        .dir.display()
    )]
    OtherCluster {
        dir: PathBuf,
        found: String,
        expected: String,
    },
}

impl Identity {
    /// Reads the identity of `dir`, or creates one with a fresh incarnation
    /// when there is none. Refuses a dir of another node or cluster.
    pub fn load_or_create(
        dir: &Path,
        node_id: NodeId,
        cluster_id: &str,
    ) -> Result<Identity, IdentityError> {
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        let path = dir.join(IDENTITY_FILE_NAME);
        let identity = match read(&path)? {
            Some(identity) => identity,
            None => create(dir, node_id, cluster_id)?,
        };
        if identity.node_id != node_id {
            return Err(IdentityError::OtherNode {
                dir: dir.to_path_buf(),
                found: identity.node_id,
                expected: node_id,
            });
        }
        if identity.cluster_id != cluster_id {
            return Err(IdentityError::OtherCluster {
                dir: dir.to_path_buf(),
                found: identity.cluster_id,
                expected: cluster_id.to_string(),
            });
        }
        Ok(identity)
    }

    /// The incarnation as logs and RAFT.STATUS show it.
    pub fn incarnation_hex(&self) -> String {
        format!("{:016x}", self.incarnation)
    }
}

fn read(path: &Path) -> Result<Option<Identity>, StorageError> {
    let text = match fs::metadata(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error(path)(error)),
        Ok(meta) if meta.len() > IDENTITY_BYTES_MAX => {
            return Err(corrupt(path, "larger than an identity file can be"))
        }
        Ok(_) => fs::read_to_string(path).map_err(io_error(path))?,
    };
    parse(&text).map(Some).map_err(|what| corrupt(path, &what))
}

fn corrupt(path: &Path, what: &str) -> StorageError {
    StorageError::Corrupt {
        file: path.to_path_buf(),
        offset: 0,
        what: format!("identity file: {what}"),
    }
}

fn parse(text: &str) -> Result<Identity, String> {
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err(format!("the first line is not '{HEADER}'"));
    }
    let (mut node_id, mut cluster_id, mut incarnation) = (None, None, None);
    for line in lines {
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line '{line}' is not key=value"))?;
        match key {
            "node_id" => node_id = value.parse::<NodeId>().ok(),
            "cluster_id" => cluster_id = Some(value.to_string()),
            "incarnation" => incarnation = u64::from_str_radix(value, 16).ok(),
            _ => return Err(format!("unknown key '{key}'")),
        }
    }
    match (node_id, cluster_id, incarnation) {
        (Some(node_id), Some(cluster_id), Some(incarnation))
            if node_id != 0 && incarnation != NO_INCARNATION =>
        {
            Ok(Identity {
                node_id,
                cluster_id,
                incarnation,
                created: false,
            })
        }
        _ => Err("node_id, cluster_id or incarnation missing or invalid".into()),
    }
}

fn create(dir: &Path, node_id: NodeId, cluster_id: &str) -> Result<Identity, StorageError> {
    let identity = Identity {
        node_id,
        cluster_id: cluster_id.to_string(),
        incarnation: fresh_incarnation(),
        created: true,
    };
    let text = format!(
        "{HEADER}\nnode_id={node_id}\ncluster_id={cluster_id}\nincarnation={}\n",
        identity.incarnation_hex()
    );
    let temporary = dir.join(IDENTITY_TEMPORARY_NAME);
    let mut file = File::create(&temporary).map_err(io_error(&temporary))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_error(&temporary))?;
    let path = dir.join(IDENTITY_FILE_NAME);
    fs::rename(&temporary, &path).map_err(io_error(&path))?;
    sync_dir(dir)?;
    Ok(identity)
}

/// A random non-zero incarnation. `RandomState` is seeded from the OS's
/// random source once per process; mixing in the time and pid keeps two
/// draws in one process (tests) apart.
fn fresh_incarnation() -> Incarnation {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    match hasher.finish() {
        NO_INCARNATION => 1,
        incarnation => incarnation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_dir_gets_a_fresh_incarnation_that_is_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = Identity::load_or_create(dir.path(), 2, "c1").expect("created");
        assert!(first.created);
        assert_ne!(first.incarnation, NO_INCARNATION);
        let again = Identity::load_or_create(dir.path(), 2, "c1").expect("loaded");
        assert!(!again.created);
        assert_eq!(again.incarnation, first.incarnation);
        let wiped = tempfile::tempdir().expect("temp dir");
        let other = Identity::load_or_create(wiped.path(), 2, "c1").expect("created");
        assert_ne!(
            other.incarnation, first.incarnation,
            "a new disk, a new life"
        );
    }

    #[test]
    fn a_dir_of_another_node_or_cluster_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().expect("temp dir");
        Identity::load_or_create(dir.path(), 2, "c1").expect("created");
        let error = Identity::load_or_create(dir.path(), 3, "c1").expect_err("other node");
        assert!(
            error.to_string().contains("belongs to node 2, not node 3"),
            "{error}"
        );
        let error = Identity::load_or_create(dir.path(), 2, "c9").expect_err("other cluster");
        assert!(
            error.to_string().contains("cluster 'c1', not 'c9'"),
            "{error}"
        );
    }

    #[test]
    fn a_damaged_identity_file_is_refused_not_replaced() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join(IDENTITY_FILE_NAME), "garbage\n").expect("write");
        let error = Identity::load_or_create(dir.path(), 2, "c1").expect_err("corrupt");
        assert!(error.to_string().contains("identity file"), "{error}");
        assert_eq!(
            fs::read_to_string(dir.path().join(IDENTITY_FILE_NAME)).expect("read"),
            "garbage\n"
        );
    }
}
