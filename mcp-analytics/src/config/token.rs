//! The write token: kept out of every `Debug`, error and diagnostic.

use std::fmt;

/// A write token. It is never printed: not by `Debug`, not in errors, not in diagnostics.
#[derive(Clone)]
pub(crate) struct Token(String);

impl Token {
    /// Takes a token that an HTTP header can carry: not empty, no whitespace or control
    /// characters.
    pub(crate) fn new(token: String) -> Result<Self, crate::error::Error> {
        if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(crate::error::Error::InvalidToken);
        }
        Ok(Self(token))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_that_a_header_cannot_carry_are_refused_and_none_is_shown() {
        assert!(matches!(
            Token::new("p.abc def".into()),
            Err(crate::error::Error::InvalidToken)
        ));
        assert!(matches!(
            Token::new(String::new()),
            Err(crate::error::Error::InvalidToken)
        ));
        let token = Token::new("p.secret".into()).unwrap();
        assert_eq!(token.expose(), "p.secret");
        assert!(!format!("{token:?}").contains("secret"));
    }
}
