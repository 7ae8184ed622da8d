//! Statements sent with the types of their parameters: one round trip and no
//! named prepared statement. tokio-postgres prepares a named statement for
//! every `query(&str, ..)` (prepare, then execute: two exchanges), which a
//! pooler in transaction mode may route to two different server connections;
//! `query_typed` parses, binds and runs an unnamed statement in one exchange.
//!
//! `params![&a, &b]` pairs each value with the PostgreSQL type its Rust type
//! is sent as, so a statement's types cannot drift from the values bound.

use tokio_postgres::types::{ToSql, Type};

/// The PostgreSQL type a Rust value is sent as.
pub trait Param {
    const TYPE: Type;
    /// The type of an array of it.
    const ARRAY: Type;
}

macro_rules! param {
    ($rust:ty, $type:ident, $array:ident) => {
        impl Param for $rust {
            const TYPE: Type = Type::$type;
            const ARRAY: Type = Type::$array;
        }
    };
}

param!(bool, BOOL, BOOL_ARRAY);
param!(i16, INT2, INT2_ARRAY);
param!(i32, INT4, INT4_ARRAY);
param!(i64, INT8, INT8_ARRAY);
param!(f64, FLOAT8, FLOAT8_ARRAY);
param!(str, TEXT, TEXT_ARRAY);
param!(String, TEXT, TEXT_ARRAY);
param!(uuid::Uuid, UUID, UUID_ARRAY);
param!(std::net::IpAddr, INET, INET_ARRAY);
param!(
    chrono::DateTime<chrono::Utc>,
    TIMESTAMPTZ,
    TIMESTAMPTZ_ARRAY
);
param!(serde_json::Value, JSONB, JSONB_ARRAY);
param!([u8], BYTEA, BYTEA_ARRAY);
param!(Vec<u8>, BYTEA, BYTEA_ARRAY);
param!([u8; 32], BYTEA, BYTEA_ARRAY);

impl<T: Param + ?Sized> Param for &T {
    const TYPE: Type = T::TYPE;
    const ARRAY: Type = T::ARRAY;
}

impl<T: Param> Param for Option<T> {
    const TYPE: Type = T::TYPE;
    const ARRAY: Type = T::ARRAY;
}

/// PostgreSQL arrays of any dimension share one type.
impl<T: Param> Param for Vec<T> {
    const TYPE: Type = T::ARRAY;
    const ARRAY: Type = T::ARRAY;
}

impl<T: Param> Param for [T] {
    const TYPE: Type = T::ARRAY;
    const ARRAY: Type = T::ARRAY;
}

/// A parameter as `query_typed` takes it.
pub type Typed<'a> = (&'a (dyn ToSql + Sync), Type);

pub fn typed<T: ToSql + Sync + Param>(value: &T) -> Typed<'_> {
    (value, T::TYPE)
}

/// `params![&a, &b]`: the values of a statement, each with its type.
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        &[$($crate::store::sql::typed($value)),*]
    };
}
pub(crate) use params;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_follow_the_rust_types() {
        let login = "alice";
        let logins = vec![String::from("a")];
        let max: Option<i32> = None;
        let hashes: Vec<Vec<u8>> = vec![vec![1]];
        let ids: &[i64] = &[1];
        let types: Vec<Type> = params![&login, &logins, &max, &hashes, &ids]
            .iter()
            .map(|(_, t)| t.clone())
            .collect();
        assert_eq!(
            types,
            [
                Type::TEXT,
                Type::TEXT_ARRAY,
                Type::INT4,
                Type::BYTEA_ARRAY,
                Type::INT8_ARRAY
            ]
        );
    }
}
