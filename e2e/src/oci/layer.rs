//! A file tree in memory and its image layer: a deterministic tar, gzipped,
//! with the two sha256 digests an OCI image names it by.
//!
//! Owns: [`Tree`] (paths → folders, files with their bytes, symlinks; owners
//! numeric) and [`Layer::of`]. Determinism is the point: entries sorted by
//! path (a folder before what it holds), mtime 0, no user or group names, a
//! gzip header without time or file name — so the same inputs give the same
//! digests and an unchanged image imports as unchanged. Must not touch the
//! file system: the host side fills trees (`host.rs`).

use std::collections::BTreeMap;
use std::io::Write;

use sha2::{Digest, Sha256};

/// What one path in a layer is. Modes are permission bits (`0o755`,
/// `0o1777`); owners are numeric uid and gid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Dir {
        mode: u32,
        owner: (u32, u32),
    },
    File {
        mode: u32,
        owner: (u32, u32),
        bytes: Vec<u8>,
    },
    Symlink {
        target: String,
    },
}

/// Paths (relative to `/`, no leading or trailing `/`) and what they are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
}

impl Tree {
    /// Puts `node` at `path` (absolute or relative to `/`), replacing what was
    /// there, and adds its missing parent folders as root-owned 0755.
    pub fn insert(&mut self, path: &str, node: Node) {
        let path = path.trim_matches('/');
        assert!(!path.is_empty(), "a layer entry needs a path below /");
        let mut parent = String::new();
        for part in path
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map_or(&[][..], |(_, p)| p)
        {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            self.nodes.entry(parent.clone()).or_insert(Node::Dir {
                mode: 0o755,
                owner: (0, 0),
            });
        }
        self.nodes.insert(path.to_string(), node);
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path.trim_matches('/'))
    }

    /// Entries in the order a layer holds them.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.nodes.iter().map(|(p, n)| (p.as_str(), n))
    }
}

/// One layer, ready to be a blob.
#[derive(Clone, Debug)]
pub struct Layer {
    /// The gzipped tar: the blob.
    pub gz: Vec<u8>,
    /// `sha256:<hex>` of the gzipped tar: the manifest's layer digest.
    pub digest: String,
    /// `sha256:<hex>` of the tar: the config's `rootfs.diff_ids` entry.
    pub diff_id: String,
}

impl Layer {
    pub fn of(tree: &Tree) -> std::io::Result<Layer> {
        let tar = tar_of(tree)?;
        let mut gz = flate2::GzBuilder::new()
            .mtime(0)
            .write(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar)?;
        let gz = gz.finish()?;
        Ok(Layer {
            digest: sha256(&gz),
            diff_id: sha256(&tar),
            gz,
        })
    }
}

/// `sha256:<hex>`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The tree as an uncompressed tar.
pub fn tar_of(tree: &Tree) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, node) in tree.iter() {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(0);
        match node {
            Node::Dir { mode, owner } => {
                h.set_entry_type(tar::EntryType::Directory);
                set_owner(&mut h, *mode, *owner);
                h.set_size(0);
                tar.append_data(&mut h, format!("{path}/"), std::io::empty())?;
            }
            Node::File { mode, owner, bytes } => {
                h.set_entry_type(tar::EntryType::Regular);
                set_owner(&mut h, *mode, *owner);
                h.set_size(bytes.len() as u64);
                tar.append_data(&mut h, path, bytes.as_slice())?;
            }
            Node::Symlink { target } => {
                h.set_entry_type(tar::EntryType::Symlink);
                set_owner(&mut h, 0o777, (0, 0));
                h.set_size(0);
                tar.append_link(&mut h, path, target)?;
            }
        }
    }
    tar.into_inner()
}

fn set_owner(h: &mut tar::Header, mode: u32, (uid, gid): (u32, u32)) {
    h.set_mode(mode);
    h.set_uid(uid.into());
    h.set_gid(gid.into());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(binary: &[u8]) -> Tree {
        let mut t = Tree::default();
        // Inserted out of order on purpose: the layer sorts.
        t.insert(
            "/usr/local/bin/app",
            Node::File {
                mode: 0o755,
                owner: (0, 0),
                bytes: binary.to_vec(),
            },
        );
        t.insert(
            "/data",
            Node::Dir {
                mode: 0o755,
                owner: (65532, 65532),
            },
        );
        t.insert(
            "/lib64",
            Node::Symlink {
                target: "usr/lib64".into(),
            },
        );
        t
    }

    #[test]
    fn the_same_tree_gives_the_same_digests() {
        let (a, b) = (
            Layer::of(&sample(b"ELF1")).unwrap(),
            Layer::of(&sample(b"ELF1")).unwrap(),
        );
        assert_eq!(
            (&a.digest, &a.diff_id, &a.gz),
            (&b.digest, &b.diff_id, &b.gz)
        );
        assert_eq!(a.diff_id, sha256(&tar_of(&sample(b"ELF1")).unwrap()));
        let c = Layer::of(&sample(b"ELF2")).unwrap();
        assert_ne!(a.diff_id, c.diff_id);
    }

    #[test]
    fn entries_are_sorted_with_their_parents_and_owners() {
        let tar = tar_of(&sample(b"ELF")).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let entries: Vec<(String, tar::EntryType, u64, u64, u32, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                let path = e.path().unwrap().to_string_lossy().into_owned();
                (
                    path,
                    h.entry_type(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect();
        use tar::EntryType::{Directory as D, Regular as F, Symlink as L};
        assert_eq!(
            entries,
            [
                ("data/".into(), D, 65532, 65532, 0o755, 0),
                ("lib64".into(), L, 0, 0, 0o777, 0),
                ("usr/".into(), D, 0, 0, 0o755, 0),
                ("usr/local/".into(), D, 0, 0, 0o755, 0),
                ("usr/local/bin/".into(), D, 0, 0, 0o755, 0),
                ("usr/local/bin/app".into(), F, 0, 0, 0o755, 0),
            ]
        );
    }

    #[test]
    fn a_parent_already_there_is_kept() {
        let mut t = Tree::default();
        t.insert(
            "tmp",
            Node::Dir {
                mode: 0o1777,
                owner: (0, 0),
            },
        );
        t.insert(
            "tmp/x",
            Node::Symlink {
                target: "/y".into(),
            },
        );
        assert_eq!(
            t.get("/tmp"),
            Some(&Node::Dir {
                mode: 0o1777,
                owner: (0, 0)
            })
        );
    }
}
