//! The vocabulary every layer shares: names, kinds, reason codes, networks,
//! the rows the store reads, and the validation of every field. A leaf
//! module: nothing here imports another module of playgate, so the store,
//! the configuration and the decision can all depend on it.

pub mod access_rule;
pub mod error_chain;
pub mod geo;
pub mod glob;
pub mod login;
pub mod modes;
pub mod network;
pub mod reason;
pub mod records;
pub mod redact;
pub mod token;
pub mod validate;

pub use error_chain::ErrorChain;
pub use geo::Geo;
pub use glob::{glob_matches, Glob};
pub use login::Login;
pub use modes::{HlsContinuation, LimitPolicy, OnDbError, SessionCommit, Zapping};
pub use network::{canonical_ip, canonical_network, parse_network};
pub use reason::Reason;
pub use records::{
    IpRuleRecord, PackageRecord, PolicyRecords, RuleAction, SigningKeyRecord, TokenRecord,
    TokenScope, UserKind, UserRecord,
};
pub use redact::{redact_database_url, redact_url};
pub use token::hash_token;
pub use validate::ValidationError;
