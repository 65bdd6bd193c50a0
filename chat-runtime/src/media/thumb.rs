//! Previews of images, made once at upload: the image's dimensions, a small
//! JPEG thumbnail and a BlurHash placeholder (a ~30-character string a client
//! paints instantly). Decoding is bounded so a crafted image cannot exhaust
//! memory ("decompression bombs").

use std::io::Cursor;

use image::{ImageFormat, ImageReader, Limits};

use super::MediaError;

/// Longest side of a thumbnail, in pixels.
pub const THUMB_SIDE: u32 = 320;
/// Images with a side above this are refused.
const MAX_SIDE: u32 = 16_384;
/// Images of more pixels than this (40 MP: a 48 MP phone photo is 8000×6000,
/// most are 12 MP) are refused before decoding; decoded, one is ~160 MB.
pub const MAX_PIXELS: u64 = 40_000_000;
/// Most memory the decoder may allocate: one image at the pixel cap.
const MAX_ALLOC: u64 = 192 << 20;

/// What an upload's preview holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Preview {
    pub width: u32,
    pub height: u32,
    /// JPEG bytes, at most [`THUMB_SIDE`] on the longer side.
    pub jpeg: Vec<u8>,
    pub blurhash: String,
}

/// Decodes `bytes` (an image whose type was already sniffed) and makes its
/// preview. CPU-bound: run it on a blocking thread.
pub fn preview(bytes: &[u8]) -> Result<Preview, MediaError> {
    let undecodable = |e: image::ImageError| MediaError::Undecodable(e.to_string());
    let reader = || {
        ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| MediaError::Undecodable(e.to_string()))
    };
    // The header says what decoding would cost: refuse before paying it.
    let (width, height) = reader()?.into_dimensions().map_err(undecodable)?;
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(MediaError::TooManyPixels { width, height });
    }
    let mut reader = reader()?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let image = reader.decode().map_err(undecodable)?;
    let (width, height) = (image.width(), image.height());
    let thumb = image.thumbnail(THUMB_SIDE, THUMB_SIDE).to_rgb8();
    let mut jpeg = Vec::new();
    thumb
        .write_to(&mut Cursor::new(&mut jpeg), ImageFormat::Jpeg)
        .map_err(undecodable)?;
    // BlurHash from a tiny copy: the placeholder has 4×3 components anyway.
    let tiny = image.thumbnail(32, 32).to_rgba8();
    let blurhash = blurhash::encode(4, 3, tiny.width(), tiny.height(), tiny.as_raw())
        .map_err(|e| MediaError::Undecodable(e.to_string()))?;
    Ok(Preview {
        width,
        height,
        jpeg,
        blurhash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::fixtures;

    #[test]
    fn a_photo_gets_its_size_a_small_jpeg_and_a_placeholder() {
        let p = preview(&fixtures::png(1280, 720)).unwrap();
        assert_eq!((p.width, p.height), (1280, 720));
        let thumb = image::load_from_memory(&p.jpeg).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (320, 180));
        assert_eq!(&p.jpeg[..2], b"\xff\xd8", "a JPEG");
        assert!((6..=40).contains(&p.blurhash.len()), "{}", p.blurhash);
    }

    #[test]
    fn a_truncated_or_oversized_image_is_refused() {
        let png = fixtures::png(64, 64);
        assert!(matches!(
            preview(&png[..png.len() / 2]),
            Err(MediaError::Undecodable(_))
        ));
        // A PNG header claiming 100 000 × 100 000 pixels: refused before allocating.
        let bomb = fixtures::png_header(100_000, 100_000);
        assert!(matches!(
            preview(&bomb),
            Err(MediaError::TooManyPixels { .. } | MediaError::Undecodable(_))
        ));
    }

    #[test]
    fn a_tiny_gif_declaring_128_megapixels_is_refused_before_decoding() {
        // 16000×8000 in a few dozen bytes: decoded it would take ~500 MB.
        let bomb = fixtures::gif_bomb(16_000, 8_000);
        assert!(bomb.len() < 64, "{} bytes", bomb.len());
        assert!(matches!(
            preview(&bomb),
            Err(MediaError::TooManyPixels {
                width: 16_000,
                height: 8_000
            })
        ));
        // Under the cap the same bytes reach the decoder (which finds the
        // frame's data cut short).
        assert!(matches!(
            preview(&fixtures::gif_bomb(400, 300)),
            Err(MediaError::Undecodable(_))
        ));
    }
}
