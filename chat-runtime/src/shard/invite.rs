//! Group invite codes: what a user must present to `join` a group, and the
//! ban that outranks them.
//!
//! A code is 16 random bytes in unpadded base64url (22 characters), kept per
//! group in the store and shown only to its admins. It is not derived from the
//! chat id, so knowing the id grants nothing, and an admin can replace it at
//! any time. No I/O here.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::ApiError;
use crate::protocol::ErrorCode;

/// A fresh random code.
pub fn new_code() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

/// Whether `given` is `code`, in time that does not depend on where they differ.
pub fn matches(code: &str, given: &str) -> bool {
    code.len() == given.len()
        && code
            .bytes()
            .zip(given.bytes())
            .fold(0, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// Admits a joiner who presents `given` when the group's code is `current`
/// (`None`: no code was ever made, so nobody joins).
pub fn admit(current: Option<&str>, given: &str) -> Result<(), ApiError> {
    if current.is_none_or(|c| !matches(c, given)) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "this invite is not valid: ask an admin for the current one",
        ));
    }
    Ok(())
}

/// Refuses a joiner an admin removed: even the current code does not let
/// them back.
pub fn unbanned(banned: bool) -> Result<(), ApiError> {
    if banned {
        return Err(ApiError::new(
            ErrorCode::Banned,
            "an admin removed you from this group; only an admin can add you back",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_22_url_safe_characters_and_differ() {
        let (a, b) = (new_code(), new_code());
        assert_eq!(a.len(), 22);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(a, b);
    }

    #[test]
    fn only_the_same_code_matches() {
        let code = new_code();
        assert!(matches(&code, &code.clone()));
        assert!(!matches(&code, &new_code()));
        assert!(!matches(&code, &code[..21]));
        assert!(!matches(&code, ""));
    }

    #[test]
    fn only_the_current_code_admits_and_a_ban_outranks_it() {
        let code = new_code();
        assert_eq!(admit(Some(&code), &code), Ok(()));
        for (current, given) in [(Some(code.as_str()), new_code()), (None, code.clone())] {
            let e = admit(current, &given).unwrap_err();
            assert_eq!(e.code, ErrorCode::Forbidden);
        }
        assert_eq!(unbanned(false), Ok(()));
        assert_eq!(unbanned(true).unwrap_err().code, ErrorCode::Banned);
    }
}
