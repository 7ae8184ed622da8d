//! An error and every cause behind it, on one line.
//!
//! tokio-postgres's `Display` of a server error is only "db error": the
//! server's message is in `source()`. Whoever logs an error logs it with
//! its whole chain, or the log tells nobody anything.
//!
//! PostgreSQL's DETAIL of a constraint violation quotes the row or the key
//! (`Failing row contains (…, $2b$12$…, …)`, `Key (hash)=(\x…)`): a
//! password hash or a token digest. Those values are left out.

use std::error::Error;
use std::fmt;

pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut written = self.0.to_string();
        let mut cause = self.0.source();
        while let Some(error) = cause {
            let text = error.to_string();
            // Some errors already print their cause: say it once.
            if !written.contains(&text) {
                written.push_str(": ");
                written.push_str(&text);
            }
            cause = error.source();
        }
        f.write_str(&without_row_values(&written))
    }
}

/// DETAIL lines with the values of the row or key they quote left out.
fn without_row_values(text: &str) -> String {
    if !text.contains("DETAIL:") {
        return text.to_string();
    }
    text.split('\n')
        .map(|line| {
            let Some(detail_at) = line.find("DETAIL:") else {
                return line.to_string();
            };
            let detail = &line[detail_at..];
            if let Some(at) = detail.find("Failing row contains (") {
                return format!("{}Failing row contains (…).", &line[..detail_at + at]);
            }
            // Key (columns)=(values) already exists / is not present in …
            if let (Some(key_at), Some(values_at), Some(close)) =
                (detail.find("Key ("), detail.find(")=("), detail.rfind(')'))
            {
                if key_at < values_at && values_at + 2 < close {
                    let start = detail_at + values_at + 3;
                    let end = detail_at + close;
                    return format!("{}…{}", &line[..start], &line[end..]);
                }
            }
            line.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("db error")
        }
    }
    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn every_cause_once() {
        let error = Outer(std::io::Error::other("relation \"nope\" does not exist"));
        assert_eq!(
            ErrorChain(&error).to_string(),
            "db error: relation \"nope\" does not exist"
        );
        let plain = std::io::Error::other("plain");
        assert_eq!(ErrorChain(&plain).to_string(), "plain");
    }

    #[test]
    fn row_and_key_values_are_left_out() {
        for (server, shown) in [
            (
                "ERROR: new row violates check constraint \"users_max_sessions_check\"\nDETAIL: Failing row contains (7, alice, $2b$12$abcdefghijklmnopqrstuv, -1).",
                "db error: ERROR: new row violates check constraint \"users_max_sessions_check\"\nDETAIL: Failing row contains (…).",
            ),
            (
                "ERROR: duplicate key value violates unique constraint \"x\"\nDETAIL: Key (hash)=(\\x0a1b2c) already exists.",
                "db error: ERROR: duplicate key value violates unique constraint \"x\"\nDETAIL: Key (hash)=(…) already exists.",
            ),
            (
                "ERROR: relation \"nope\" does not exist",
                "db error: ERROR: relation \"nope\" does not exist",
            ),
        ] {
            let error = Outer(std::io::Error::other(server));
            assert_eq!(ErrorChain(&error).to_string(), shown);
        }
    }
}
