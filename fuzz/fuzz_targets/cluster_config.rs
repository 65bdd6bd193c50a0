//! The cluster config file every runtime pod reads at start-up
//! (`ClusterConfig::from_json`): any text gives a config or an error, never
//! a panic or an unbounded ring; a config that reads, written back, reads
//! as itself; and what the runtime derives from it at start-up (shard
//! addresses, placements, the device policy) is computed without a panic.
#![no_main]

use chat_runtime::push::DevicePolicy;
use confab_api::config::ClusterConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = ClusterConfig::from_json(text) else {
        return;
    };
    let written = serde_json::to_string(&config).expect("configs serialize");
    let read = ClusterConfig::from_json(&written).expect("a written config reads back");
    assert_eq!(read, config);
    let _ = config.shard_control_address(u32::MAX);
    let owner = config.ring.owner(uuid::Uuid::nil());
    assert!(config.ring.contains(owner));
    let _ = DevicePolicy::from_config(&config.push);
});
