//! confab-operator entry point.

fn main() {
    println!("confab-operator: not yet implemented");
}
