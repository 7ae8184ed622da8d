//! `/api/v1/ip-rules` and `/api/v1/ip-rules/{id}`.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::auth::{AdminJson, AdminUser, ObserverUser};
use super::{audited, page_bounds, Audit, Page};
use crate::domain::validate;
use crate::http::ApiError;
use crate::http::AppState;
use crate::http::ErrorBody;
use crate::import::user_input::present;

use crate::store::ip_rules::{self, IpRuleRow};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IpRuleInput {
    /// IPv4 or IPv6 address or CIDR network; stored normalised.
    pub network: Option<String>,
    /// `allow` (may watch without credentials) or `deny` (may never watch).
    pub action: Option<String>,
    pub comment: Option<String>,
    /// RFC 3339, in the future: the rule stops applying then (a temporary
    /// ban). Absent or `null` = for good.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Option<String>>,
}

/// `PATCH /api/v1/ip-rules/{id}`: what can change in place. `network` and
/// `action` are what the rule is; they are refused (422), not ignored.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IpRulePatch {
    #[schema(value_type = Option<String>)]
    pub network: Option<serde_json::Value>,
    #[schema(value_type = Option<String>)]
    pub action: Option<serde_json::Value>,
    pub comment: Option<String>,
    /// RFC 3339, in the future; `null` = for good; absent = unchanged.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Option<String>>,
}

/// A given expiry: an RFC 3339 time still to come (a ban that has
/// already ended would be stored and never apply).
fn expiry(value: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let at = validate::time("expires_at", value)?;
    if at <= Utc::now() {
        return Err(ApiError::invalid(
            "expires_at",
            "must be in the future (null: for good)",
        ));
    }
    Ok(Some(at))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IpRuleQuery {
    /// `allow` or `deny`.
    pub action: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

fn rule_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::no_such("ip rule", id))
}

#[utoipa::path(get, path = "/api/v1/ip-rules", tag = "ip-rules", params(IpRuleQuery),
    responses((status = 200, body = Page<IpRuleRow>), (status = 401), (status = 403), (status = 422, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn list(
    _caller: ObserverUser,
    state: web::Data<AppState>,
    query: web::Query<IpRuleQuery>,
) -> Result<HttpResponse, ApiError> {
    let (limit, offset) = page_bounds(query.limit, query.offset)?;
    if let Some(action) = &query.action {
        validate::action(action)?;
    }
    let client = state.pool.get().await?;
    let (items, total) = ip_rules::list(&client, query.action.as_deref(), limit, offset).await?;
    Ok(HttpResponse::Ok().json(Page { items, total }))
}

#[utoipa::path(post, path = "/api/v1/ip-rules", tag = "ip-rules", request_body = IpRuleInput,
    responses((status = 201, body = IpRuleRow), (status = 400, body = ErrorBody), (status = 401), (status = 403),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn create(
    AdminJson(caller, input): AdminJson<IpRuleInput>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let network = input
        .network
        .as_deref()
        .ok_or_else(|| ApiError::invalid("network", "network is required"))
        .and_then(|n| Ok(validate::network("network", n)?))?;
    let action = input
        .action
        .as_deref()
        .ok_or_else(|| ApiError::invalid("action", "action is required (allow or deny)"))
        .and_then(|a| Ok(validate::action(a)?))?;
    let comment = validate::text("comment", input.comment.as_deref().unwrap_or(""))?;
    let expires_at = expiry(input.expires_at.flatten().as_deref())?;
    let row = audited(&state, &caller, async |transaction| {
        let row = ip_rules::insert(transaction, network, action, &comment, expires_at).await?;
        let changes = json!({"network": row.network, "action": row.action, "comment": row.comment,
                             "expires_at": row.expires_at});
        let entry = Audit::policy("create", "ip_rule", row.id.to_string(), changes);
        Ok((row, entry))
    })
    .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/ip-rules/{}", row.id)))
        .json(row))
}

#[utoipa::path(get, path = "/api/v1/ip-rules/{id}", tag = "ip-rules", params(("id" = i64, Path)),
    responses((status = 200, body = IpRuleRow), (status = 401), (status = 403), (status = 404, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn get(
    _caller: ObserverUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rule = rule_id(&id)?;
    let client = state.pool.get().await?;
    let row = ip_rules::get(&client, rule)
        .await?
        .ok_or_else(|| ApiError::no_such("ip rule", &id))?;
    Ok(HttpResponse::Ok().json(row))
}

#[utoipa::path(patch, path = "/api/v1/ip-rules/{id}", tag = "ip-rules", params(("id" = i64, Path)),
    request_body = IpRulePatch,
    description = "Changes the comment or the expiry in place (a ban made temporary, extended or made permanent). The network and the action are the rule itself: another pair is another rule (POST).",
    responses((status = 200, body = IpRuleRow), (status = 400, body = ErrorBody), (status = 401), (status = 403),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn update(
    AdminJson(caller, input): AdminJson<IpRulePatch>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rule = rule_id(&id)?;
    for (field, given) in [("network", &input.network), ("action", &input.action)] {
        if given.is_some() {
            return Err(ApiError::invalid(
                field,
                "cannot be changed in place: create a rule for it and delete this one",
            ));
        }
    }
    let comment = input
        .comment
        .as_deref()
        .map(|comment| validate::text("comment", comment))
        .transpose()?;
    let expires_at = input
        .expires_at
        .map(|given| expiry(given.as_deref()))
        .transpose()?;
    let row = audited(&state, &caller, async |transaction| {
        let before = ip_rules::get_for_update(transaction, rule)
            .await?
            .ok_or_else(|| ApiError::no_such("ip rule", &id))?;
        let row = ip_rules::update(
            transaction,
            rule,
            comment.as_deref().unwrap_or(&before.comment),
            expires_at.unwrap_or(before.expires_at),
        )
        .await?
        .ok_or_else(|| ApiError::no_such("ip rule", &id))?;
        let changes = json!({
            "network": row.network,
            "action": row.action,
            "before": {"comment": before.comment, "expires_at": before.expires_at},
            "after": {"comment": row.comment, "expires_at": row.expires_at},
        });
        Ok((
            row,
            Audit::policy("update", "ip_rule", id.as_str(), changes),
        ))
    })
    .await?;
    Ok(HttpResponse::Ok().json(row))
}

#[utoipa::path(delete, path = "/api/v1/ip-rules/{id}", tag = "ip-rules", params(("id" = i64, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn delete(
    caller: AdminUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rule = rule_id(&id)?;
    audited(&state, &caller, async |transaction| {
        let row = ip_rules::delete(transaction, rule)
            .await?
            .ok_or_else(|| ApiError::no_such("ip rule", &id))?;
        let changes = json!({"network": row.network, "action": row.action});
        Ok(((), Audit::policy("delete", "ip_rule", id.as_str(), changes)))
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
