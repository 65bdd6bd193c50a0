//! The host side of the stand-in base: the files it takes from this machine.
//!
//! Owns: the shared libraries (and dynamic loader) the copied binaries load,
//! found with `ldd`, and any host path copied into a [`Tree`] at the same
//! path with every symlink on the way kept as a symlink and its target
//! copied too (`/lib64/ld-linux-x86-64.so.2` → `/lib/x86_64-linux-gnu/…` →
//! `/usr/lib/…` on a merged-/usr Debian), so the loader finds what it looks
//! for whichever way it spells the path. Everything it copies is root-owned,
//! keeping the host's permission bits. Reads only; never writes the host.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use super::Base;
use super::layer::{Node, Tree};

/// The CA bundle the distroless base ships (and `SSL_CERT_FILE` names).
pub const CA_CERTIFICATES: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Symlinks followed for one path before giving up (the kernel's limit).
const MAX_SYMLINKS: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ldd {binary}: {why}")]
    Ldd { binary: PathBuf, why: String },
    #[error("{0}: more than {MAX_SYMLINKS} symlinks (a loop?)")]
    SymlinkLoop(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HostError + '_ {
    move |source| HostError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a file given with `--out`.
pub fn read(path: &Path) -> Result<Vec<u8>, HostError> {
    std::fs::read(path).map_err(io(path))
}

/// The stand-in base layer: `base`'s skeleton, the host's CA certificates
/// (when it has them), and the libraries each ELF binary in `binaries`
/// (see [`super::is_elf`]) loads; nothing for an empty base (`scratch`),
/// whose binaries must be static.
pub fn base_tree(base: &Base, binaries: &[&Path]) -> Result<Tree, HostError> {
    let mut tree = base.skeleton();
    if !base.filesystem {
        return Ok(tree);
    }
    if Path::new(CA_CERTIFICATES).exists() {
        add_path(&mut tree, Path::new(CA_CERTIFICATES))?;
    }
    for binary in binaries {
        for lib in shared_libraries(binary)? {
            add_path(&mut tree, &lib)?;
        }
    }
    Ok(tree)
}

/// The libraries and loader `binary` needs, as `ldd` resolves them here.
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, HostError> {
    let out = std::process::Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| HostError::Ldd {
            binary: binary.into(),
            why: format!("cannot run ldd (is libc-bin installed?): {e}"),
        })?;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    if [&stdout, &stderr]
        .iter()
        .any(|s| s.contains("not a dynamic executable") || s.contains("statically linked"))
    {
        return Ok(Vec::new());
    }
    if !out.status.success() {
        return Err(HostError::Ldd {
            binary: binary.into(),
            why: format!("{}: {}", out.status, stderr.trim()),
        });
    }
    parse_ldd(&stdout).map_err(|why| HostError::Ldd {
        binary: binary.into(),
        why,
    })
}

/// Paths in `ldd` output: `libc.so.6 => /lib/…/libc.so.6 (0x…)` and the
/// loader's `/lib64/ld-linux-x86-64.so.2 (0x…)`; the vDSO has no file.
pub fn parse_ldd(stdout: &str) -> Result<Vec<PathBuf>, String> {
    let mut paths = Vec::new();
    for line in stdout.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (name, resolved) = match line.split_once("=>") {
            Some((name, rest)) => (name.trim(), rest.trim()),
            None => (line, line),
        };
        if resolved.starts_with("not found") {
            return Err(format!("{name} not found"));
        }
        let path = resolved.split(" (").next().unwrap_or(resolved).trim();
        if path.starts_with('/') {
            paths.push(PathBuf::from(path));
        } else if !name.starts_with("linux-vdso") && !name.starts_with("linux-gate") {
            return Err(format!("cannot read the line {line:?}"));
        }
    }
    Ok(paths)
}

/// Copies the host's `path` into `tree` at the same place: each folder on the
/// way as a folder, each symlink as a symlink (and then what it points to,
/// however many hops), the file at the end with its bytes.
pub fn add_path(tree: &mut Tree, path: &Path) -> Result<(), HostError> {
    let mut pending: VecDeque<OsString> = components(path);
    // A host folder with no symlink in its path: `..` can be taken literally.
    let mut real = PathBuf::from("/");
    let mut hops = 0;
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            real.pop();
            continue;
        }
        let here = real.join(&part);
        let meta = std::fs::symlink_metadata(&here).map_err(io(&here))?;
        let key = here.to_string_lossy();
        if meta.is_symlink() {
            hops += 1;
            if hops > MAX_SYMLINKS {
                return Err(HostError::SymlinkLoop(path.into()));
            }
            let target = std::fs::read_link(&here).map_err(io(&here))?;
            tree.insert(
                &key,
                Node::Symlink {
                    target: target.to_string_lossy().into_owned(),
                },
            );
            if target.is_absolute() {
                real = PathBuf::from("/");
            }
            for c in components(&target).into_iter().rev() {
                pending.push_front(c);
            }
        } else if meta.is_dir() {
            if !matches!(tree.get(&key), Some(Node::Dir { .. })) {
                tree.insert(
                    &key,
                    Node::Dir {
                        mode: mode(&meta),
                        owner: (0, 0),
                    },
                );
            }
            real = here;
        } else {
            let bytes = std::fs::read(&here).map_err(io(&here))?;
            tree.insert(
                &key,
                Node::File {
                    mode: mode(&meta),
                    owner: (0, 0),
                    bytes,
                },
            );
            if !pending.is_empty() {
                return Err(io(&here)(std::io::Error::from(
                    std::io::ErrorKind::NotADirectory,
                )));
            }
        }
    }
    Ok(())
}

/// Normal and `..` components (`/` and `.` dropped).
fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

fn mode(meta: &std::fs::Metadata) -> u32 {
    meta.permissions().mode() & 0o7777
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f2)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f3)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f4)\n";
        assert_eq!(
            parse_ldd(out).unwrap(),
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
        let err = parse_ldd("\tlibssl.so.3 => not found\n").unwrap_err();
        assert_eq!(err, "libssl.so.3 not found");
    }

    #[test]
    fn symlinks_on_the_way_are_kept_and_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::write(root.join("usr/lib/libx.so.1.2"), b"lib").unwrap();
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        std::os::unix::fs::symlink("libx.so.1.2", root.join("usr/lib/libx.so.1")).unwrap();
        std::os::unix::fs::symlink("../lib/libx.so.1", root.join("usr/libx")).unwrap();
        let mut tree = Tree::default();
        add_path(&mut tree, &root.join("usr/libx")).unwrap();
        let at = |p: &str| tree.get(&root.join(p).to_string_lossy()).cloned();
        let link = |t: &str| Some(Node::Symlink { target: t.into() });
        assert_eq!(at("usr/libx"), link("../lib/libx.so.1"));
        assert_eq!(at("lib"), link("usr/lib"));
        assert_eq!(at("usr/lib/libx.so.1"), link("libx.so.1.2"));
        assert!(
            matches!(at("usr/lib/libx.so.1.2"), Some(Node::File { bytes, .. }) if bytes == b"lib")
        );
    }
}
