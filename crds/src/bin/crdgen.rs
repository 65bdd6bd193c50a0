//! Prints the ChatCluster CustomResourceDefinition as YAML.
//!
//! `cargo run -p confab-api --bin crdgen | tee crds/chatcluster.yaml >
//! charts/confab-operator/crds/chatcluster.yaml`; the test suite
//! (`e2e/scripts/check-crds.sh`) fails when either committed copy differs
//! from this output.

use confab_api::cluster::ChatCluster;
use kube::CustomResourceExt;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    print!("{}", serde_saphyr::to_string(&ChatCluster::crd())?);
    Ok(())
}
