//! Sample data for the media layer's tests and the bench: real encoded
//! images, decompression bombs and sample records.

use std::io::Cursor;

use crate::model::{Attachment, MediaFacts, MediaKind, MediaRecord, MediaState};

/// A `width`×`height` PNG with a gradient (so thumbnails are not trivial).
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("encoding a PNG in memory");
    out
}

/// The signature and header chunk of a PNG claiming `width`×`height`, with no pixels.
pub fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(13u32.to_be_bytes());
    out.extend(&ihdr);
    out.extend(crc32(&ihdr).to_be_bytes());
    out
}

/// A GIF of a few dozen bytes declaring a `width`×`height` frame of one
/// colour (a decompression bomb when large).
pub fn gif_bomb(width: u16, height: u16) -> Vec<u8> {
    let mut out = b"GIF89a".to_vec();
    out.extend(width.to_le_bytes());
    out.extend(height.to_le_bytes());
    // Global colour table of 2 entries, black and white.
    out.extend([0x80, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff]);
    // Image descriptor covering the whole screen.
    out.push(0x2c);
    out.extend([0, 0, 0, 0]);
    out.extend(width.to_le_bytes());
    out.extend(height.to_le_bytes());
    out.push(0);
    // LZW data: minimum code size 2, one sub-block (clear, 0, end), end.
    out.extend([2, 2, 0x44, 0x01, 0]);
    out.push(0x3b);
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A live video record with id `id`.
pub fn record(id: &str) -> MediaRecord {
    MediaRecord {
        id: id.to_owned(),
        bucket: "media".into(),
        kind: MediaKind::Video,
        facts: MediaFacts {
            content_type: "video/mp4".into(),
            size: 1234,
            width: None,
            height: None,
            blurhash: None,
            thumbnail: false,
            name: Some("clip.mp4".into()),
        },
        uploaders: vec![uuid::Uuid::new_v4()],
        shares: Vec::new(),
        downloads: Vec::new(),
        state: MediaState::Live,
        created_at: 1,
        touched_at: 1,
        version: 1,
    }
}

/// The attachment of [`record`], sent as a video.
pub fn attachment() -> Attachment {
    super::record::attachment(&record(&"ab".repeat(32)), MediaKind::Video, "look".into())
}
