//! `confab-image`: builds a container image from a Dockerfile's final stage
//! and binaries built on this machine, as an OCI layout tar for
//! `ctr -n k8s.io images import` — no Docker, no registry
//! (see `confab_e2e::oci`; `e2e/scripts/images.sh` runs it for both images):
//!
//! ```sh
//! cargo run -p confab-e2e --bin confab-image -- --dockerfile chat-runtime/Dockerfile \
//!   --out chat-runtime=target/release/chat-runtime \
//!   --tag confab/chat-runtime:0.1.0 --output chat-runtime.tar
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Parser;
use confab_e2e::oci::{self, Base, FinalStage, host, layout};

/// Builds an image archive from a Dockerfile's final stage.
#[derive(Parser, Debug)]
struct Args {
    /// The Dockerfile whose final stage describes the image.
    #[arg(long)]
    dockerfile: PathBuf,
    /// NAME=FILE: the host file standing in for the build stage's /out/NAME
    /// (repeat for each file the final stage copies).
    #[arg(long = "out", value_name = "NAME=FILE", value_parser = parse_out)]
    outs: Vec<(String, PathBuf)>,
    /// Image reference; short names are normalised (`confab/x:1` is
    /// `docker.io/confab/x:1`).
    #[arg(long)]
    tag: String,
    /// The archive to write.
    #[arg(long)]
    output: PathBuf,
}

fn parse_out(s: &str) -> Result<(String, PathBuf), String> {
    let (name, file) = s.split_once('=').ok_or("expected NAME=FILE")?;
    Ok((name.trim_matches('/').to_string(), file.into()))
}

fn main() -> Result<()> {
    let Args {
        dockerfile,
        outs,
        tag,
        output,
    } = Args::parse();
    let text = std::fs::read_to_string(&dockerfile)
        .with_context(|| format!("reading {}", dockerfile.display()))?;
    let stage = FinalStage::parse(&text).with_context(|| dockerfile.display().to_string())?;
    let base = Base::for_image(&stage.base).with_context(|| dockerfile.display().to_string())?;
    let reference = layout::Reference::parse(&tag)?;

    let mut files = BTreeMap::new();
    for (name, file) in &outs {
        files.insert(name.clone(), host::read(file)?);
    }
    let app = oci::app_tree(&stage, &files).with_context(|| dockerfile.display().to_string())?;
    let binaries: Vec<&Path> = outs
        .iter()
        .filter(|(name, _)| oci::is_elf(&files[name]))
        .map(|(_, f)| f.as_path())
        .collect();
    let base_layer = host::base_tree(base, &binaries)?;
    let (archive, digest) =
        layout::archive(&reference, oci::config(base, &stage), &[&base_layer, &app])?;

    let partial = output.with_extension("tar.partial");
    std::fs::write(&partial, &archive).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, &output).with_context(|| format!("writing {}", output.display()))?;
    println!(
        "{} {digest} {:.1} MB -> {}",
        reference.full(),
        archive.len() as f64 / 1e6,
        output.display()
    );
    Ok(())
}
