//! An OCI image layout in one tar: what `ctr images import` takes.
//!
//! Owns: image references normalised the way containerd's CRI plugin does
//! ([`Reference`]: `confab/chat-runtime:0.1.0` is
//! `docker.io/confab/chat-runtime:0.1.0`, so a pod that says the short name
//! with `imagePullPolicy: Never` finds the imported image), and the layout
//! itself ([`archive`]): `oci-layout`, `index.json` naming the image in the
//! annotations `ctr` reads, and `blobs/sha256/` holding the config, the
//! manifest and the layers. Deterministic like the layers. Must not touch
//! the file system.

use serde_json::json;

use super::layer::{Layer, Tree, sha256};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A fully qualified image name and tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// Registry and repository: `docker.io/confab/chat-runtime`.
    pub name: String,
    pub tag: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("image reference {reference:?}: {why} (expected [REGISTRY/]REPOSITORY[:TAG], lowercase)")]
pub struct ReferenceError {
    reference: String,
    why: &'static str,
}

impl Reference {
    /// Normalises like docker's `ParseNormalizedNamed`, which containerd's
    /// CRI applies to a pod's image: no registry → `docker.io`, a single
    /// component on docker.io → `library/…`, no tag → `latest`. The first
    /// component is a registry when it holds `.` or `:` or is `localhost`.
    pub fn parse(reference: &str) -> Result<Reference, ReferenceError> {
        let fail = |why| ReferenceError {
            reference: reference.to_string(),
            why,
        };
        if reference.contains('@') {
            return Err(fail("digests are not supported"));
        }
        let slash = reference.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match reference[slash..].rfind(':') {
            Some(i) => (&reference[..slash + i], &reference[slash + i + 1..]),
            None => (reference, "latest"),
        };
        let tag_ok = tag.len() <= 128
            && tag
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !tag_ok {
            return Err(fail("bad tag"));
        }
        let (domain, path) = match name.split_once('/') {
            Some((d, rest)) if d.contains(['.', ':']) || d == "localhost" => (d, rest.to_string()),
            _ => ("docker.io", name.to_string()),
        };
        let domain = if domain == "index.docker.io" {
            "docker.io"
        } else {
            domain
        };
        let path = if domain == "docker.io" && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        let path_ok = path.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                && part.starts_with(|c: char| c.is_ascii_alphanumeric())
                && part.ends_with(|c: char| c.is_ascii_alphanumeric())
        });
        if !path_ok {
            return Err(fail("bad repository name"));
        }
        Ok(Reference {
            name: format!("{domain}/{path}"),
            tag: tag.to_string(),
        })
    }

    /// `docker.io/confab/chat-runtime:0.1.0`.
    pub fn full(&self) -> String {
        format!("{}:{}", self.name, self.tag)
    }
}

/// Builds the layers of `trees` (base first) and returns the layout tar and
/// the manifest's digest (the image's id in containerd).
pub fn archive(
    reference: &Reference,
    config: serde_json::Value,
    trees: &[&Tree],
) -> std::io::Result<(Vec<u8>, String)> {
    let layers = trees
        .iter()
        .map(|t| Layer::of(t))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut config = config;
    config["rootfs"] = json!({
        "type": "layers",
        "diff_ids": layers.iter().map(|l| l.diff_id.as_str()).collect::<Vec<_>>(),
    });
    let config = to_bytes(&config);
    let manifest = to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": descriptor(CONFIG, &config),
        "layers": layers.iter().map(|l| descriptor(LAYER, &l.gz)).collect::<Vec<_>>(),
    }));
    let mut image = descriptor(MANIFEST, &manifest);
    image["platform"] = json!({ "architecture": super::ARCH, "os": "linux" });
    image["annotations"] = json!({
        "io.containerd.image.name": reference.full(),
        "org.opencontainers.image.ref.name": reference.tag,
    });
    let index = to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [image],
    }));
    let mut files: Vec<(String, &[u8])> = vec![
        ("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#),
        ("index.json".into(), &index),
        (blob_path(&config), &config),
        (blob_path(&manifest), &manifest),
    ];
    files.extend(layers.iter().map(|l| (blob_path(&l.gz), l.gz.as_slice())));
    Ok((tar_files(&files)?, sha256(&manifest)))
}

fn descriptor(media_type: &str, bytes: &[u8]) -> serde_json::Value {
    json!({ "mediaType": media_type, "digest": sha256(bytes), "size": bytes.len() })
}

fn to_bytes(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("a JSON value serialises")
}

fn blob_path(bytes: &[u8]) -> String {
    format!(
        "blobs/sha256/{}",
        sha256(bytes).trim_start_matches("sha256:")
    )
}

/// Regular files (and the `blobs/`, `blobs/sha256/` folders) in a tar,
/// sorted, root-owned, mtime 0.
fn tar_files(files: &[(String, &[u8])]) -> std::io::Result<Vec<u8>> {
    let mut tree = Tree::default();
    for (path, bytes) in files {
        tree.insert(
            path,
            super::layer::Node::File {
                mode: 0o644,
                owner: (0, 0),
                bytes: bytes.to_vec(),
            },
        );
    }
    super::layer::tar_of(&tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_normalised_like_the_cri_does() {
        for (given, want) in [
            (
                "confab/chat-runtime:0.1.0",
                "docker.io/confab/chat-runtime:0.1.0",
            ),
            ("busybox", "docker.io/library/busybox:latest"),
            ("index.docker.io/confab/x:1", "docker.io/confab/x:1"),
            ("localhost/pause:3.9", "localhost/pause:3.9"),
            ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
            ("localhost:5000/a/b", "localhost:5000/a/b:latest"),
        ] {
            assert_eq!(Reference::parse(given).unwrap().full(), want, "{given}");
        }
        let r = Reference::parse("confab/confab-operator:0.1.0").unwrap();
        assert_eq!(
            (r.name.as_str(), r.tag.as_str()),
            ("docker.io/confab/confab-operator", "0.1.0")
        );
    }

    #[test]
    fn bad_references_are_refused() {
        for bad in [
            "Confab/x:1",
            "confab/x:",
            "confab//x",
            "x@sha256:00",
            "confab/x:-1",
            "confab/-x",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_index_names_the_image_and_every_blob_is_there() {
        let mut tree = Tree::default();
        tree.insert(
            "etc/hostname",
            super::super::layer::Node::File {
                mode: 0o644,
                owner: (0, 0),
                bytes: b"x\n".to_vec(),
            },
        );
        let reference = Reference::parse("confab/x:1").unwrap();
        let (tar, digest) = archive(&reference, json!({"os": "linux"}), &[&tree]).unwrap();
        let mut files = std::collections::BTreeMap::new();
        for e in tar::Archive::new(tar.as_slice()).entries().unwrap() {
            let mut e = e.unwrap();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut bytes).unwrap();
            files.insert(e.path().unwrap().to_string_lossy().into_owned(), bytes);
        }
        let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
        let m = &index["manifests"][0];
        assert_eq!(m["digest"], digest);
        assert_eq!(
            m["annotations"]["io.containerd.image.name"],
            "docker.io/confab/x:1"
        );
        assert_eq!(m["annotations"]["org.opencontainers.image.ref.name"], "1");
        let blob = |d: &serde_json::Value| {
            &files[&format!(
                "blobs/sha256/{}",
                d.as_str().unwrap().trim_start_matches("sha256:")
            )]
        };
        let manifest: serde_json::Value = serde_json::from_slice(blob(&m["digest"])).unwrap();
        let config: serde_json::Value =
            serde_json::from_slice(blob(&manifest["config"]["digest"])).unwrap();
        let layer = blob(&manifest["layers"][0]["digest"]);
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            Layer::of(&tree).unwrap().diff_id
        );
        assert_eq!(sha256(layer), manifest["layers"][0]["digest"]);
        assert_eq!(config["os"], "linux");
        assert!(files.contains_key("oci-layout"));
    }
}
