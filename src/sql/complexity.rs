//! Refusing statements too complex to plan safely, before they are parsed.
//!
//! Two shapes hurt. A long chain of operators (`1 + 1 + ... + 1`) parses
//! into a tree as deep as the chain is long, and every recursive pass over
//! it (cloning, planning, dropping) can overflow a thread's stack and abort
//! the whole server. Deep nesting (`coalesce(coalesce(...))`) costs
//! sqlparser time exponential in the depth, because it backtracks at each
//! level. Both are measured here on the tokens, in one linear pass that
//! cannot itself recurse, and refused with 54001 `statement_too_complex`.

use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};

use super::SqlError;

/// The deepest an expression's chain of operators may grow at one level of
/// parentheses.
pub const MAX_CHAIN: usize = 1000;
/// The deepest nesting of parentheses and brackets.
pub const MAX_NESTING: usize = 16;

/// Precedence classes, lowest first (OR, AND, comparisons, other
/// operators, + and -, * / %, ^, ::, .).
const CLASSES: usize = 9;

/// The operators open at one level of parentheses: how many of each
/// precedence class the current expression has chained so far.
#[derive(Default)]
struct Level([usize; CLASSES]);

impl Level {
    /// Adds an operator of class `c`. Operators that bind tighter start a
    /// new operand on its right, so their chains end; the sum left is how
    /// deep the expression's left spine has grown.
    fn chain(&mut self, c: usize) -> usize {
        self.0[c] += 1;
        self.0[c + 1..].iter_mut().for_each(|n| *n = 0);
        self.0.iter().sum()
    }
}

/// Fails with [`SqlError::TooComplex`] if `tokens` chain or nest too far.
pub fn check(tokens: &[TokenWithSpan]) -> Result<(), SqlError> {
    let mut levels: Vec<Level> = vec![Level::default()];
    for t in tokens {
        match &t.token {
            Token::LParen | Token::LBracket => {
                levels.push(Level::default());
                if levels.len() > MAX_NESTING + 1 {
                    return Err(SqlError::TooComplex(format!(
                        "parentheses nest more than {MAX_NESTING} deep; flatten the expression or split the statement"
                    )));
                }
            }
            Token::RParen | Token::RBracket => {
                if levels.len() > 1 {
                    levels.pop();
                }
            }
            token if separates(token) => {
                if let Some(level) = levels.last_mut() {
                    *level = Level::default();
                }
            }
            token => {
                let (Some(class), Some(level)) = (class(token), levels.last_mut()) else { continue };
                if level.chain(class) > MAX_CHAIN {
                    return Err(SqlError::TooComplex(format!(
                        "an expression chains more than {MAX_CHAIN} operators; split it, or compare with \
                         IN (...) or = ANY(array) instead of a chain of OR"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Tokens that end one expression and start another at the same level.
fn separates(token: &Token) -> bool {
    match token {
        Token::Comma | Token::SemiColon => true,
        Token::Word(w) => matches!(
            w.keyword,
            Keyword::SELECT
                | Keyword::FROM
                | Keyword::WHERE
                | Keyword::GROUP
                | Keyword::HAVING
                | Keyword::ORDER
                | Keyword::LIMIT
                | Keyword::OFFSET
                | Keyword::VALUES
                | Keyword::SET
                | Keyword::WHEN
                | Keyword::THEN
                | Keyword::ELSE
                | Keyword::ON
                | Keyword::UNION
        ),
        _ => false,
    }
}

/// The precedence class of a binary operator token; `None` for operands
/// and punctuation.
fn class(token: &Token) -> Option<usize> {
    Some(match token {
        Token::Word(w) => match w.keyword {
            Keyword::OR => 0,
            Keyword::AND => 1,
            Keyword::IS | Keyword::LIKE | Keyword::ILIKE | Keyword::BETWEEN | Keyword::IN => 2,
            _ => return None,
        },
        Token::Eq | Token::Neq | Token::Lt | Token::Gt | Token::LtEq | Token::GtEq => 2,
        Token::Plus | Token::Minus => 4,
        Token::Mul | Token::Div | Token::Mod => 5,
        Token::Caret => 6,
        Token::DoubleColon => 7,
        Token::Period => 8,
        Token::Number(..)
        | Token::Char(_)
        | Token::SingleQuotedString(_)
        | Token::DoubleQuotedString(_)
        | Token::NationalStringLiteral(_)
        | Token::EscapedStringLiteral(_)
        | Token::HexStringLiteral(_)
        | Token::Placeholder(_)
        | Token::Whitespace(_)
        | Token::EOF => return None,
        _ => 3, // every other operator: ||, ->, @>, and the like
    })
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::tokenizer::Tokenizer;

    use super::*;

    fn checked(sql: &str) -> Result<(), SqlError> {
        check(&Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location().unwrap())
    }

    #[test]
    fn long_chains_and_deep_nesting_are_refused_wide_statements_are_not() {
        let chain = |n: usize| format!("SELECT {}", vec!["1"; n].join(" + "));
        assert!(checked(&chain(MAX_CHAIN)).is_ok());
        assert!(matches!(checked(&chain(MAX_CHAIN + 2)), Err(SqlError::TooComplex(_))));
        let nested = |n: usize| format!("SELECT {}1{}", "coalesce(".repeat(n), ", 1)".repeat(n));
        assert!(checked(&nested(MAX_NESTING)).is_ok());
        assert!(matches!(checked(&nested(MAX_NESTING + 1)), Err(SqlError::TooComplex(_))));
        // Many short expressions are wide, not deep.
        let rows: Vec<String> = (0..5000).map(|i| format!("({i}, -{i}, 'a' || 'b')")).collect();
        assert!(checked(&format!("INSERT INTO s VALUES {}", rows.join(", "))).is_ok());
        let columns: Vec<String> = (0..3000).map(|i| format!("a + {i}")).collect();
        assert!(checked(&format!("SELECT {} FROM t", columns.join(", "))).is_ok());
        // An ORM's long OR of comparisons is as deep as its ORs, not twice that.
        let conditions: Vec<String> = (0..MAX_CHAIN - 5).map(|i| format!("x = {i} AND y = -{i}")).collect();
        assert!(checked(&format!("SELECT * FROM t WHERE {}", conditions.join(" OR "))).is_ok());
        let conditions: Vec<String> = (0..MAX_CHAIN + 2).map(|i| format!("x = {i}")).collect();
        assert!(checked(&format!("SELECT * FROM t WHERE {}", conditions.join(" OR "))).is_err());
    }
}
