//! Users from elsewhere: a JSON array (`POST /api/v1/import`) and an Astra
//! configuration file (`playgate import-astra`).

pub mod astra;
pub mod user_input;
