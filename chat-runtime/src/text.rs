//! Names people see: display names and group titles, cleaned so one cannot
//! pose as another. Control characters (NUL, newlines) and invisible format
//! characters (zero-width spaces, bidi overrides such as U+202E) are
//! removed, surrounding space is trimmed, and the rest is put in Unicode
//! NFC, so "Al\u{200b}ice" and a decomposed "é" read as what they show.
//! Joiners inside emoji (👨‍👩‍👧, subdivision flags) are kept. Pure.

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

const ZERO_WIDTH_JOINER: char = '\u{200d}';

/// Whether `c` may end an emoji that a joiner continues: a pictograph or
/// modifier symbol (skin tones), a variation selector or a tag. None of these
/// composes or decomposes under NFC, so the decision holds once the text is
/// composed again.
fn ends_emoji(c: char) -> bool {
    let symbol = matches!(
        c.general_category(),
        GeneralCategory::OtherSymbol | GeneralCategory::ModifierSymbol
    );
    (symbol && !c.is_ascii()) || matches!(c, '\u{fe00}'..='\u{fe0f}' | '\u{e0020}'..='\u{e007f}')
}

/// Whether `c` may stay after `prev` (the last character kept).
fn keep(c: char, prev: Option<char>) -> bool {
    match c.general_category() {
        GeneralCategory::Control => false,
        GeneralCategory::Format => {
            // Emoji sequences join pictographs with ZWJ or tag characters.
            let joins_emoji = c == ZERO_WIDTH_JOINER || ('\u{e0020}'..='\u{e007f}').contains(&c);
            joins_emoji && prev.is_some_and(ends_emoji)
        }
        _ => true,
    }
}

/// `raw` without control and format characters, trimmed, in NFC. Cleaning
/// clean text changes nothing.
pub fn clean(raw: &str) -> String {
    let mut kept = String::with_capacity(raw.len());
    for c in raw.nfc() {
        if keep(c, kept.chars().next_back()) {
            kept.push(c);
        }
    }
    // What was between a letter and its accent is gone: compose them.
    kept.nfc().collect::<String>().trim().to_string()
}

/// A display name: cleaned, 1 to 64 bytes.
pub fn display_name(raw: &str) -> Result<String, &'static str> {
    within(
        clean(raw),
        64,
        "display_name must be 1 to 64 bytes of visible text",
    )
}

/// A group title: cleaned, 1 to 128 bytes.
pub fn group_title(raw: &str) -> Result<String, &'static str> {
    within(
        clean(raw),
        128,
        "title must be 1 to 128 bytes of visible text",
    )
}

fn within(s: String, max: usize, refusal: &'static str) -> Result<String, &'static str> {
    if s.is_empty() || s.len() > max {
        Err(refusal)
    } else {
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_characters_cannot_make_a_lookalike() {
        assert_eq!(clean("Al\u{200b}ice"), "Alice");
        assert_eq!(clean("Al\u{200d}ice"), "Alice", "a joiner between letters");
        assert_eq!(clean("\u{202e}ecilA"), "ecilA", "right-to-left override");
        assert_eq!(clean("Bob\u{0}\n\t"), "Bob");
        assert_eq!(clean("\u{feff}Eve\u{2066}"), "Eve");
    }

    #[test]
    fn text_is_composed_and_trimmed() {
        assert_eq!(clean("  Jose\u{301}  "), "Jos\u{e9}");
        assert_eq!(clean("Ünal"), "Ünal");
        assert_eq!(clean("李小龙"), "李小龙");
        assert_eq!(clean("שלום"), "שלום", "right-to-left scripts stay");
    }

    #[test]
    fn a_letter_and_its_accent_split_by_an_invisible_character_are_composed() {
        // Found by the frame fuzz target: the stored title was not NFC and a
        // joiner between letters survived, so a second cleaning changed it.
        assert_eq!(clean("Jose\u{200b}\u{301}"), "Jos\u{e9}");
        assert_eq!(clean("Jose\u{200b}\u{301}\u{200d}x"), "Jos\u{e9}x");
        for raw in [
            "Jose\u{200b}\u{301}\u{200d}x",
            "a\u{301}\u{200d}\u{1f525}",
            "\u{1d15e}\u{200d}\u{2764}",
            " \u{200b} \u{301}e",
        ] {
            assert_eq!(clean(&clean(raw)), clean(raw), "{raw:?}");
        }
    }

    #[test]
    fn emoji_sequences_keep_their_joiners() {
        let fire_heart = "\u{2764}\u{fe0f}\u{200d}\u{1f525}";
        assert_eq!(clean(fire_heart), fire_heart);
        let waving = "\u{1f44b}\u{1f3fd}\u{200d}";
        assert_eq!(clean(waving), waving, "after a skin tone");
        assert_eq!(clean("^\u{200d}x"), "^x", "not after ASCII symbols");
        let family = "👨\u{200d}👩\u{200d}👧";
        assert_eq!(clean(family), family);
        let wales = "🏴\u{e0067}\u{e0062}\u{e0077}\u{e006c}\u{e0073}\u{e007f}";
        assert_eq!(clean(wales), wales);
    }

    #[test]
    fn names_and_titles_must_keep_something_visible() {
        assert_eq!(
            display_name("\u{200b}\u{200b}"),
            Err("display_name must be 1 to 64 bytes of visible text")
        );
        assert_eq!(display_name(" Ann "), Ok("Ann".to_string()));
        assert!(group_title(&"x".repeat(129)).is_err());
        assert_eq!(group_title("Trip\u{202e}"), Ok("Trip".to_string()));
    }
}
