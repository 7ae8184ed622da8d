//! The reason codes of a decision (SPEC §2).

use serde::Serialize;

/// The reason codes of SPEC §2, the complete set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Ok,
    IpAllowed,
    IpDenied,
    UnknownToken,
    TokenExpired,
    BadCredentials,
    NoCredentials,
    UserDisabled,
    UserExpired,
    IpMismatch,
    StreamNotAllowed,
    SessionKicked,
    SessionLimit,
    PublishNotAllowed,
    RateLimited,
    UpstreamUnavailable,
    DbUnavailable,
    BadRequest,
    StreamFull,
    DeviceLimit,
    LinkInvalid,
    LinkExpired,
    LinkUsed,
    RuleDenied,
    CountryMismatch,
}

impl Reason {
    pub const ALL: [Reason; 25] = [
        Reason::Ok,
        Reason::IpAllowed,
        Reason::IpDenied,
        Reason::UnknownToken,
        Reason::TokenExpired,
        Reason::BadCredentials,
        Reason::NoCredentials,
        Reason::UserDisabled,
        Reason::UserExpired,
        Reason::IpMismatch,
        Reason::StreamNotAllowed,
        Reason::SessionKicked,
        Reason::SessionLimit,
        Reason::PublishNotAllowed,
        Reason::RateLimited,
        Reason::UpstreamUnavailable,
        Reason::DbUnavailable,
        Reason::BadRequest,
        Reason::StreamFull,
        Reason::DeviceLimit,
        Reason::LinkInvalid,
        Reason::LinkExpired,
        Reason::LinkUsed,
        Reason::RuleDenied,
        Reason::CountryMismatch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::IpAllowed => "ip_allowed",
            Reason::IpDenied => "ip_denied",
            Reason::UnknownToken => "unknown_token",
            Reason::TokenExpired => "token_expired",
            Reason::BadCredentials => "bad_credentials",
            Reason::NoCredentials => "no_credentials",
            Reason::UserDisabled => "user_disabled",
            Reason::UserExpired => "user_expired",
            Reason::IpMismatch => "ip_mismatch",
            Reason::StreamNotAllowed => "stream_not_allowed",
            Reason::SessionKicked => "session_kicked",
            Reason::SessionLimit => "session_limit",
            Reason::PublishNotAllowed => "publish_not_allowed",
            Reason::RateLimited => "rate_limited",
            Reason::UpstreamUnavailable => "upstream_unavailable",
            Reason::DbUnavailable => "db_unavailable",
            Reason::BadRequest => "bad_request",
            Reason::StreamFull => "stream_full",
            Reason::DeviceLimit => "device_limit",
            Reason::LinkInvalid => "link_invalid",
            Reason::LinkExpired => "link_expired",
            Reason::LinkUsed => "link_used",
            Reason::RuleDenied => "rule_denied",
            Reason::CountryMismatch => "country_mismatch",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_names_match_serde() {
        for reason in Reason::ALL {
            assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
        }
    }
}
