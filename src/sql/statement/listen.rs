//! `LISTEN channel`, `UNLISTEN channel | *` and `NOTIFY channel [, 'payload']`,
//! with PostgreSQL's semantics (`crate::push::notify`): a notification
//! reaches every session that listens on its channel, the sender included,
//! and is sent to an idle session at once.
//!
//! Eddy has no transactions to defer them to: a NOTIFY inside `BEGIN`
//! is sent when it runs, not at `COMMIT`.

use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use super::Reply;
use crate::error::Result;
use crate::server::Session;
use crate::sql::{SqlError, normalize_ident};

/// A LISTEN, UNLISTEN or NOTIFY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// `LISTEN channel`.
    Listen(String),
    /// `UNLISTEN channel`, or `UNLISTEN *` (`None`).
    Unlisten(Option<String>),
    /// `NOTIFY channel [, 'payload']`.
    Notify {
        /// The channel.
        channel: String,
        /// The payload ('' when none is given).
        payload: String,
    },
}

impl Listen {
    /// Recognizes the three statements by their first word; other
    /// statements give `None` and consume nothing.
    pub fn parse(parser: &mut Parser) -> Result<Option<Self>, SqlError> {
        let word = match &parser.peek_token_ref().token {
            Token::Word(w) => w.value.to_lowercase(),
            _ => return Ok(None),
        };
        let syntax = |e: datafusion::sql::sqlparser::parser::ParserError| SqlError::Syntax(e.to_string());
        let statement = match word.as_str() {
            "listen" => {
                parser.next_token();
                Listen::Listen(normalize_ident(&parser.parse_identifier().map_err(syntax)?))
            }
            "unlisten" => {
                parser.next_token();
                match parser.consume_token(&Token::Mul) {
                    true => Listen::Unlisten(None),
                    false => Listen::Unlisten(Some(normalize_ident(&parser.parse_identifier().map_err(syntax)?))),
                }
            }
            "notify" => {
                parser.next_token();
                let channel = normalize_ident(&parser.parse_identifier().map_err(syntax)?);
                let payload = match parser.consume_token(&Token::Comma) {
                    true => parser.parse_literal_string().map_err(syntax)?,
                    false => String::new(),
                };
                Listen::Notify { channel, payload }
            }
            _ => return Ok(None),
        };
        Ok(Some(statement))
    }

    /// Applies the statement for `session`.
    pub fn execute(self, session: &Session) -> Result<Reply> {
        let notifier = &session.engine().notifier;
        let tag = match self {
            Listen::Listen(channel) => {
                notifier.listen(&channel, session.mailbox())?;
                "LISTEN"
            }
            Listen::Unlisten(channel) => {
                notifier.unlisten(channel.as_deref(), session.mailbox());
                "UNLISTEN"
            }
            Listen::Notify { channel, payload } => {
                notifier.notify(session.pid(), &channel, &payload)?;
                "NOTIFY"
            }
        };
        Ok(Reply::Tag(tag.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;

    fn parse(sql: &str) -> Option<Listen> {
        let mut parser = Parser::new(&PostgreSqlDialect {}).try_with_sql(sql).unwrap();
        Listen::parse(&mut parser).unwrap()
    }

    #[test]
    fn parses_postgresql_spellings() {
        assert_eq!(parse("LISTEN Orders"), Some(Listen::Listen("orders".into())));
        assert_eq!(parse("listen \"Orders\""), Some(Listen::Listen("Orders".into())));
        assert_eq!(parse("UNLISTEN *"), Some(Listen::Unlisten(None)));
        assert_eq!(parse("UNLISTEN c"), Some(Listen::Unlisten(Some("c".into()))));
        assert_eq!(parse("NOTIFY c"), Some(Listen::Notify { channel: "c".into(), payload: String::new() }));
        assert_eq!(parse("NOTIFY c, 'it''s'"), Some(Listen::Notify { channel: "c".into(), payload: "it's".into() }));
        assert_eq!(parse("SELECT 1"), None);
    }
}
