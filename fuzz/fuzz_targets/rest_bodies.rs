//! The REST API's JSON bodies and queries (`gateway::bodies::decode`): the
//! first byte picks the route (`a` register, `b` login, ... `j` the phone
//! query, `k` a group join), the rest is what the client sent. Any bytes
//! give a typed refusal or nothing, never a panic.
#![no_main]

use chat_runtime::gateway::bodies::{Input, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let input = Input::ALL[usize::from(pick.wrapping_sub(b'a')) % Input::ALL.len()];
    let _ = decode(input, bytes);
});
