//! An upload's path through the media layer without a bucket: sniffing its
//! first bytes against the declared type, then, for photos, the bounded
//! decode that makes the preview. The first byte picks the declared type
//! (`a` image, `b` video, `c` audio, `d` anything else). A decode bomb shows
//! as a timeout or out-of-memory; a preview must respect the pixel cap.
#![no_main]

use chat_runtime::media::sniff::{SNIFF_BYTES, sniff};
use chat_runtime::media::thumb::{MAX_PIXELS, THUMB_SIDE, preview};
use chat_runtime::model::MediaKind;
use libfuzzer_sys::fuzz_target;

const DECLARED: [&str; 4] = [
    "image/jpeg",
    "video/mp4",
    "audio/mpeg",
    "application/octet-stream",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let declared = DECLARED[usize::from(pick.wrapping_sub(b'a')) % DECLARED.len()];
    let head = &bytes[..bytes.len().min(SNIFF_BYTES)];
    let Ok(sniffed) = sniff(head, declared) else {
        return;
    };
    if sniffed.kind != MediaKind::Image {
        return;
    }
    if let Ok(p) = preview(bytes) {
        assert!(u64::from(p.width) * u64::from(p.height) <= MAX_PIXELS);
        let thumb = image::load_from_memory(&p.jpeg).expect("the thumbnail is a JPEG");
        assert!(thumb.width().max(thumb.height()) <= THUMB_SIDE);
    }
});
