//! RisingWave's spelling of a lookup join, `JOIN t FOR SYSTEM_TIME AS OF
//! PROCTIME()`, accepted and read as a plain join.
//!
//! A continuous view over a stream already joins each event with the table
//! as it is when the event is processed (see `crate::planner`), so the
//! clause changes nothing; sqlparser's PostgreSQL dialect does not parse
//! it, so its tokens are taken out before parsing. Any other `FOR
//! SYSTEM_TIME AS OF` is left for the parser to refuse.

use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};

/// The words of the clause, then `(` `)`.
const CLAUSE: [&str; 5] = ["for", "system_time", "as", "of", "proctime"];

/// `tokens` without any `FOR SYSTEM_TIME AS OF PROCTIME()`.
pub fn strip_proctime(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        match clause_end(&tokens, i) {
            Some(end) => i = end,
            None => {
                out.push(tokens[i].clone());
                i += 1;
            }
        }
    }
    out
}

/// If the clause starts at `start`, the index just after it.
fn clause_end(tokens: &[TokenWithSpan], start: usize) -> Option<usize> {
    let mut at = start;
    for (n, word) in CLAUSE.iter().enumerate() {
        if n > 0 {
            at = significant(tokens, at + 1)?;
        }
        match &tokens.get(at)?.token {
            Token::Word(w) if w.value.eq_ignore_ascii_case(word) => {}
            _ => return None,
        }
    }
    let open = significant(tokens, at + 1)?;
    let close = significant(tokens, open + 1)?;
    (tokens[open].token == Token::LParen && tokens[close].token == Token::RParen).then_some(close + 1)
}

/// The first token from `from` on that is not whitespace.
fn significant(tokens: &[TokenWithSpan], from: usize) -> Option<usize> {
    (from..tokens.len()).find(|&n| !matches!(tokens[n].token, Token::Whitespace(_)))
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::tokenizer::Tokenizer;

    use super::*;

    fn strip(sql: &str) -> String {
        let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location().unwrap();
        strip_proctime(tokens).iter().map(|t| t.token.to_string()).collect()
    }

    #[test]
    fn takes_out_the_clause_in_any_case_and_spacing() {
        assert_eq!(
            strip("SELECT 1 FROM s JOIN t FOR SYSTEM_TIME AS OF PROCTIME() ON s.a = t.a"),
            "SELECT 1 FROM s JOIN t  ON s.a = t.a"
        );
        assert_eq!(strip("FROM s join t for  system_time as of proctime ( ) x"), "FROM s join t  x");
    }

    #[test]
    fn leaves_other_versions_alone() {
        let sql = "SELECT 1 FROM t FOR SYSTEM_TIME AS OF now()";
        assert_eq!(strip(sql), sql);
    }
}
