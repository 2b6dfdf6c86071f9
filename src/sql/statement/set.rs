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

/// A setting's value as PostgreSQL shows it: list items separated by ", ".
fn setting_value(parts: &[String]) -> String {
    parts.iter().map(|p| if p == "," { ", ".to_string() } else { p.clone() }).collect()
}

impl SetVar {
    /// Parses `SET ...` or `RESET ...`; the parser is at the first keyword.
    /// Names may be dotted (`SET myapp.tenant = 'x'`), as custom settings are.
    pub fn parse(parser: &mut Parser) -> Result<Self, SqlError> {
        let parts = rest_of_statement(parser);
        let lower: Vec<String> = parts.iter().map(|p| p.to_lowercase()).collect();
        let words: Vec<&str> = lower.iter().map(String::as_str).collect();
        match words.as_slice() {
            ["reset", "all"] => Ok(Self { name: "all".into(), value: None }),
            ["reset", name @ ..] if !name.is_empty() => Ok(Self { name: name.concat(), value: None }),
            ["set", rest @ ..] => {
                let skip = usize::from(matches!(rest.first(), Some(&"session") | Some(&"local")));
                let rest = &parts[1 + skip..];
                let lower_rest = &words[1 + skip..];
                match lower_rest {
                    ["time", "zone", ..] => {
                        Ok(Self { name: "timezone".into(), value: Some(setting_value(&rest[2..])) })
                    }
                    ["names", ..] => {
                        Ok(Self { name: "client_encoding".into(), value: Some(setting_value(&rest[1..])) })
                    }
                    // pgjdbc's setTransactionIsolation (Metabase sends it): recorded
                    // as PostgreSQL's defaults; every statement applies when it runs.
                    ["characteristics", "as", "transaction", "isolation", "level", level @ ..] if !level.is_empty() => {
                        Ok(Self { name: "default_transaction_isolation".into(), value: Some(level.join(" ")) })
                    }
                    ["characteristics", "as", "transaction", "read", mode] if *mode == "only" || *mode == "write" => {
                        let value = if *mode == "only" { "on" } else { "off" };
                        Ok(Self { name: "default_transaction_read_only".into(), value: Some(value.into()) })
                    }
                    _ => match lower_rest.iter().position(|w| *w == "to" || *w == "=") {
                        Some(at) if at > 0 => {
                            Ok(Self { name: lower_rest[..at].concat(), value: Some(setting_value(&rest[at + 1..])) })
                        }
                        _ => Err(SqlError::Syntax(format!("expected SET name TO value, found: {}", parts.join(" ")))),
                    },
                }
            }
            _ => Err(SqlError::Syntax(format!("expected SET or RESET, found: {}", parts.join(" ")))),
        }
    }

    /// Records the setting for the session.
    pub fn execute(self, session: &Session) -> Result<Reply> {
        let tag = if self.value.is_some() { "SET" } else { "RESET" };
        session.set_setting(&self.name, self.value)?;
        Ok(Reply::Tag(tag.into()))
    }
}
