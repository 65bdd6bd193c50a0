//! Container images without Docker or a registry, built from a Dockerfile's
//! final stage and binaries compiled on this machine, for containerd's
//! `ctr images import` (the kubelet node of the e2e scenarios).
//!
//! The Dockerfiles stay the one source of truth: `confab-image` reads the
//! final stage (base, copies, user, ports, entrypoint…) and refuses what it
//! would not reproduce. The build stage's compile is replaced by files given
//! on the command line for its `/out/...` outputs; the distroless base by a
//! stand-in made from the host (Debian 12, as the base is): its users, `/tmp`,
//! CA certificates, and the shared libraries the binaries load.
//!
//! # Layout
//! - [`dockerfile`]: the final stage as a typed [`FinalStage`]; the drift guard.
//! - this module: known bases ([`Base`]), the app layer's tree
//!   ([`app_tree`]) and the image config ([`config`]) — plain functions.
//! - [`layer`]: in-memory file trees and their deterministic layer tars.
//! - [`layout`]: references normalised like the CRI, the OCI layout tar.
//! - [`host`]: the only part that reads the host (files, `ldd`).

pub mod dockerfile;
pub mod host;
pub mod layer;
pub mod layout;

use std::collections::BTreeMap;

use serde_json::json;

pub use dockerfile::{DockerfileError, FinalStage};
use layer::{Node, Tree};

/// A base image this builder knows how to stand in for.
#[derive(Debug)]
pub struct Base {
    /// As the final stage's `FROM` names it.
    pub image: &'static str,
    /// The config the base image brings, which the final stage may override.
    pub user: &'static str,
    pub workdir: &'static str,
    pub env: &'static [(&'static str, &'static str)],
    /// Whether it is a filesystem (users, `/tmp`, CA certificates, the
    /// binaries' shared libraries) or empty, as `scratch` is.
    pub filesystem: bool,
}

/// `gcr.io/distroless/cc-debian12:nonroot`: glibc and libgcc from Debian 12,
/// CA certificates, users root and nonroot (65532), running as nonroot in
/// its home.
pub const DISTROLESS_CC_NONROOT: Base = Base {
    image: "gcr.io/distroless/cc-debian12:nonroot",
    user: "65532",
    workdir: "/home/nonroot",
    env: &[
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ),
        ("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"),
    ],
    filesystem: true,
};

/// `scratch`: nothing at all, for static binaries (the test node's pause
/// image).
pub const SCRATCH: Base = Base {
    image: "scratch",
    user: "",
    workdir: "/",
    env: &[],
    filesystem: false,
};

/// The OCI name of this machine's architecture, which the binaries and the
/// host libraries in an image are built for.
#[cfg(target_arch = "x86_64")]
pub const ARCH: &str = "amd64";
#[cfg(target_arch = "aarch64")]
pub const ARCH: &str = "arm64";

/// The user the stand-in base runs as, and owns its home to.
pub const NONROOT: u32 = 65532;

/// Why an image cannot be assembled from a parsed final stage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error(
        "FROM {0}: confab-image only stands in for {base} and scratch; add a Base for it in e2e/src/oci/mod.rs",
        base = DISTROLESS_CC_NONROOT.image
    )]
    UnsupportedBase(String),
    #[error("line {line}: COPY {src}: only files the build stage puts under /out/ can be copied")]
    NotFromOut { line: usize, src: String },
    #[error(
        "line {line}: COPY /out/{name}: give its host file with --out {name}=PATH \
         (the build stage does not `install -d` it as a folder)"
    )]
    UnknownOutSource { line: usize, name: String },
    #[error("--out {0}=...: the final stage copies no /out/{0}")]
    UnusedOut(String),
}

impl Base {
    pub fn for_image(image: &str) -> Result<&'static Base, ImageError> {
        [&DISTROLESS_CC_NONROOT, &SCRATCH]
            .into_iter()
            .find(|b| b.image == image)
            .ok_or_else(|| ImageError::UnsupportedBase(image.to_string()))
    }

    /// The base's own files, apart from what comes from the host: users and
    /// groups, their homes, `/tmp`.
    pub fn skeleton(&self) -> Tree {
        let mut t = Tree::default();
        if !self.filesystem {
            return t;
        }
        let text = |s: &str| Node::File {
            mode: 0o644,
            owner: (0, 0),
            bytes: s.as_bytes().to_vec(),
        };
        t.insert(
            "etc/passwd",
            text(
                "root:x:0:0:root:/root:/sbin/nologin\n\
                 nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n\
                 nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
            ),
        );
        t.insert(
            "etc/group",
            text("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"),
        );
        let dir = |mode, uid| Node::Dir {
            mode,
            owner: (uid, uid),
        };
        t.insert("root", dir(0o700, 0));
        t.insert("home/nonroot", dir(0o700, NONROOT));
        t.insert("tmp", dir(0o1777, 0));
        t
    }
}

/// True for an ELF file (whose shared libraries the base must hold).
pub fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF")
}

/// The app layer: each `COPY --from=<stage> /out/<name> DEST` of `stage`,
/// with `outs[name]` as the file (mode 0755, as the build stage's `install`
/// leaves it) or, for a folder the build stage `install -d`s, an empty folder;
/// owned by `--chown` or root.
pub fn app_tree(stage: &FinalStage, outs: &BTreeMap<String, Vec<u8>>) -> Result<Tree, ImageError> {
    let mut tree = Tree::default();
    let mut used = std::collections::BTreeSet::new();
    for c in &stage.copies {
        let name = c
            .src
            .strip_prefix("/out/")
            .map(|n| n.trim_end_matches('/'))
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ImageError::NotFromOut {
                line: c.line,
                src: c.src.clone(),
            })?;
        let owner = c.chown.unwrap_or((0, 0));
        let node = match (outs.get(name), stage.out_dirs.contains(name)) {
            (Some(bytes), _) => Node::File {
                mode: 0o755,
                owner,
                bytes: bytes.clone(),
            },
            (None, true) => Node::Dir { mode: 0o755, owner },
            (None, false) => {
                return Err(ImageError::UnknownOutSource {
                    line: c.line,
                    name: name.to_string(),
                });
            }
        };
        let dest = match (&node, c.dest.ends_with('/')) {
            (Node::File { .. }, true) => {
                format!("{}{}", c.dest, name.rsplit('/').next().unwrap_or(name))
            }
            _ => c.dest.clone(),
        };
        used.insert(name);
        tree.insert(&dest, node);
    }
    match outs.keys().find(|k| !used.contains(k.as_str())) {
        Some(unused) => Err(ImageError::UnusedOut(unused.clone())),
        None => Ok(tree),
    }
}

/// The image config (without `rootfs`, which the layout adds): the base's
/// settings overridden by the final stage's, for linux on this [`ARCH`].
pub fn config(base: &Base, stage: &FinalStage) -> serde_json::Value {
    let mut env: Vec<(String, String)> = base
        .env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (k, v) in &stage.env {
        match env.iter_mut().find(|(name, _)| name == k) {
            Some(slot) => slot.1 = v.clone(),
            None => env.push((k.clone(), v.clone())),
        }
    }
    let mut config = json!({
        "User": stage.user.as_deref().unwrap_or(base.user),
        "Env": env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        "WorkingDir": stage.workdir.as_deref().unwrap_or(base.workdir),
    });
    if !stage.exposed.is_empty() {
        let ports: serde_json::Map<_, _> = stage
            .exposed
            .iter()
            .map(|p| (p.clone(), json!({})))
            .collect();
        config["ExposedPorts"] = ports.into();
    }
    if let Some(e) = &stage.entrypoint {
        config["Entrypoint"] = json!(e);
    }
    if let Some(c) = &stage.cmd {
        config["Cmd"] = json!(c);
    }
    json!({ "architecture": ARCH, "os": "linux", "config": config })
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
