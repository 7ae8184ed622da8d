//! An error and every cause behind it, on one line.
//!
//! tokio-postgres's `Display` of a server error is only "db error": the
//! server's message is in `source()`. Whoever logs an error logs it with
//! its whole chain, or the log tells nobody anything.

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
        f.write_str(&written)
    }
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
}
