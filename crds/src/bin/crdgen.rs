//! Prints the ChatCluster CustomResourceDefinition as YAML.
//!
//! `cargo run -p confab-api --bin crdgen > crds/chatcluster.yaml`; the test
//! suite fails when the committed file differs from this output.

use confab_api::cluster::ChatCluster;
use kube::CustomResourceExt;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    print!("{}", serde_saphyr::to_string(&ChatCluster::crd())?);
    Ok(())
}
