//! `SET name TO value`, `SET TIME ZONE ...` and `RESET`: session settings.
//!
//! Clients set many PostgreSQL settings on connect (DateStyle,
//! client_encoding, extra_float_digits, ...). Eddy records them so `SHOW`
//! answers with what was set.

use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use super::Reply;
use crate::error::Result;
use crate::server::Session;
use crate::sql::SqlError;

/// A SET or RESET.
#[derive(Debug, Clone)]
pub struct SetVar {
    /// The setting's name, lower case (`timezone` for `SET TIME ZONE`).
    pub name: String,
    /// The new value; `None` resets to the default.
    pub value: Option<String>,
}

/// Consumes tokens up to the end of the statement and returns them as text pieces.
pub(crate) fn rest_of_statement(parser: &mut Parser) -> Vec<String> {
    let mut parts = Vec::new();
    loop {
        let tok = parser.peek_token_ref().token.clone();
        match tok {
            Token::EOF | Token::SemiColon => break,
            Token::Whitespace(_) => {}
            Token::SingleQuotedString(s) => parts.push(s),
            Token::Word(w) => parts.push(w.value),
            other => parts.push(other.to_string()),
        }
        parser.next_token();
    }
    parts
}

impl SetVar {
    /// Parses `SET ...` or `RESET ...`; the parser is at the first keyword.
    pub fn parse(parser: &mut Parser) -> Result<Self, SqlError> {
        let parts = rest_of_statement(parser);
        let lower: Vec<String> = parts.iter().map(|p| p.to_lowercase()).collect();
        let words: Vec<&str> = lower.iter().map(String::as_str).collect();
        match words.as_slice() {
            ["reset", "all"] => Ok(Self {
                name: "all".into(),
                value: None,
            }),
            ["reset", name] => Ok(Self {
                name: name.to_string(),
                value: None,
            }),
            ["set", rest @ ..] => {
                let skip = usize::from(matches!(rest.first(), Some(&"session") | Some(&"local")));
                let rest = &parts[1 + skip..];
                let lower_rest = &words[1 + skip..];
                match lower_rest {
                    ["time", "zone", ..] => Ok(Self {
                        name: "timezone".into(),
                        value: Some(rest[2..].join(" ")),
                    }),
                    ["names", ..] => Ok(Self {
                        name: "client_encoding".into(),
                        value: Some(rest[1..].join(" ")),
                    }),
                    [name, "to" | "=", ..] => Ok(Self {
                        name: name.to_string(),
                        value: Some(rest[2..].join("")),
                    }),
                    _ => Err(SqlError::Syntax(format!(
                        "expected SET name TO value, found: {}",
                        parts.join(" ")
                    ))),
                }
            }
            _ => Err(SqlError::Syntax(format!(
                "expected SET or RESET, found: {}",
                parts.join(" ")
            ))),
        }
    }

    /// Records the setting for the session.
    pub fn execute(self, session: &Session) -> Result<Reply> {
        let tag = if self.value.is_some() { "SET" } else { "RESET" };
        session.set_setting(&self.name, self.value)?;
        Ok(Reply::Tag(tag.into()))
    }
}
