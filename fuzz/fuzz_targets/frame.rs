//! The WebSocket frame decoder (`protocol::decode`): any bytes give a frame
//! or a typed refusal, and a frame the server accepted, encoded again,
//! decodes to the same frame (cleaning and validation are idempotent).
#![no_main]

use chat_runtime::protocol::{MAX_FRAME_BYTES, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = decode(data) else { return };
    let again = serde_json::to_vec(&frame).expect("client frames serialize");
    // Defaults written out may push a frame near the limit over it.
    if again.len() <= MAX_FRAME_BYTES {
        assert_eq!(decode(&again), Ok(frame));
    }
});
