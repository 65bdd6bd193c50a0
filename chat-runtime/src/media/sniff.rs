//! What an upload really is: its kind and content type, decided from its
//! first bytes (magic numbers), never from the uploader's `Content-Type`.

use crate::model::MediaKind;

use super::MediaError;

/// Bytes read before deciding; enough for every signature we accept.
pub const SNIFF_BYTES: usize = 8 * 1024;

/// Content types accepted per media kind. Images are limited to what the
/// server can decode for thumbnails.
const IMAGES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];
const VIDEOS: &[&str] = &[
    "video/mp4",
    "video/webm",
    "video/quicktime",
    "video/x-matroska",
    "video/3gpp",
];
const AUDIO: &[&str] = &[
    "audio/mpeg",
    "audio/ogg",
    "audio/opus",
    "audio/m4a",
    "audio/aac",
    "audio/x-wav",
    "audio/x-flac",
    "audio/amr",
];
/// Served for files whose bytes match no known signature.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// The outcome of sniffing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sniffed {
    pub kind: MediaKind,
    pub content_type: String,
}

/// The kind a `Content-Type` header claims.
pub fn declared_kind(content_type: &str) -> MediaKind {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    match essence.split('/').next().unwrap_or("") {
        "image" => MediaKind::Image,
        "video" => MediaKind::Video,
        "audio" => MediaKind::Audio,
        _ => MediaKind::File,
    }
}

fn allowed(kind: MediaKind) -> &'static [&'static str] {
    match kind {
        MediaKind::Image => IMAGES,
        MediaKind::Video => VIDEOS,
        MediaKind::Audio => AUDIO,
        MediaKind::File => &[],
    }
}

/// Decides what `head` (the first [`SNIFF_BYTES`] of an upload, or all of a
/// shorter one) is, given the header's claim. A photo, video or voice note
/// must be what it claims and of an accepted type; a file may be anything
/// and is served with the type its bytes show (or as an octet stream).
pub fn sniff(head: &[u8], declared: &str) -> Result<Sniffed, MediaError> {
    let kind = declared_kind(declared);
    let actual = infer::get(head).map(|t| t.mime_type());
    if kind == MediaKind::File {
        return Ok(Sniffed {
            kind,
            content_type: actual.unwrap_or(OCTET_STREAM).to_owned(),
        });
    }
    match actual {
        Some(t) if allowed(kind).contains(&t) => Ok(Sniffed {
            kind,
            content_type: t.to_owned(),
        }),
        _ => Err(MediaError::UnsupportedType {
            declared: declared.to_owned(),
            actual: actual.unwrap_or("unrecognized bytes").to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::fixtures;

    #[test]
    fn media_is_what_its_bytes_say() {
        let png = fixtures::png(64, 48);
        let s = sniff(&png, "image/png").unwrap();
        assert_eq!(
            (s.kind, s.content_type.as_str()),
            (MediaKind::Image, "image/png")
        );
        // A wrong but same-kind header is corrected from the bytes.
        let s = sniff(&png, "image/jpeg").unwrap();
        assert_eq!(s.content_type, "image/png");
    }

    #[test]
    fn a_header_that_lies_is_refused() {
        let zip = b"PK\x03\x04\x14\x00\x00\x00\x08\x00rest of a zip archive";
        let e = sniff(zip, "image/png").unwrap_err();
        assert!(
            matches!(e, MediaError::UnsupportedType { ref actual, .. } if actual == "application/zip")
        );
        let e = sniff(b"just some text", "video/mp4").unwrap_err();
        assert!(
            matches!(e, MediaError::UnsupportedType { ref actual, .. } if actual == "unrecognized bytes")
        );
        // An image type the server cannot decode is not a photo.
        let bmp = b"BM\x36\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00";
        assert!(sniff(bmp, "image/bmp").is_err());
    }

    #[test]
    fn files_take_the_type_their_bytes_show() {
        let pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj";
        let s = sniff(pdf, "application/octet-stream").unwrap();
        assert_eq!(
            (s.kind, s.content_type.as_str()),
            (MediaKind::File, "application/pdf")
        );
        let s = sniff(b"plain notes", "text/html").unwrap();
        assert_eq!(
            s.content_type, OCTET_STREAM,
            "never served as the claimed html"
        );
        assert_eq!(declared_kind("audio/ogg; codecs=opus"), MediaKind::Audio);
        assert_eq!(declared_kind(""), MediaKind::File);
    }
}
