//! `/api/v1/access-rules` and `/api/v1/access-rules/{id}` (SPEC §10).

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{AdminJson, AdminUser, ObserverUser};
use super::{audited, page_bounds, Audit, Page, PageQuery};
use crate::domain::access_rule::{self, RawConditions};
use crate::domain::validate;
use crate::http::ApiError;
use crate::http::AppState;
use crate::http::ErrorBody;
use crate::store::access_rules::{self, AccessRuleRow, RuleWrite};

/// A rule to create, or the fields of one to change (PATCH: absent fields
/// stay as they are; a condition given as `[]` is removed).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessRuleInput {
    /// 1-based place in the list; the rules from there on move down one.
    /// Default (POST): last. Values past the end mean last.
    pub position: Option<i32>,
    /// `allow` (no later rule applies) or `deny` (`rule_denied`). Required on POST.
    pub action: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
    pub comment: Option<String>,
    /// Addresses or CIDR networks.
    pub networks: Option<Vec<String>>,
    /// ISO 3166-1 alpha-2 codes, `XX` = unknown (no GeoIP entry).
    pub countries: Option<Vec<String>>,
    /// AS numbers (0 = unknown).
    pub asns: Option<Vec<i64>>,
    /// Case-insensitive globs (`*`); `""` = no user agent sent.
    pub user_agents: Option<Vec<String>>,
    /// Referer hosts (`example.com`, `*.example.com`); `""` = no referer.
    /// A rule with referers applies to starts only.
    pub referers: Option<Vec<String>>,
    /// Stream names or globs (`*`).
    pub streams: Option<Vec<String>>,
    /// `hls`, `rtmp`, `dash`, … as the hooks report them.
    pub protocols: Option<Vec<String>>,
    /// `decide`, `astra`, `flussonic`, `nginx-rtmp`, `srs`, `mediamtx`,
    /// `ovenmediaengine`, `forward-auth`.
    pub dialects: Option<Vec<String>>,
    /// Conditions (of those the rule has) that match when none of their values does.
    pub negate: Option<Vec<String>>,
}

impl AccessRuleInput {
    /// The conditions after this input: `base`'s, with each given one replaced.
    fn conditions_over(&self, base: RawConditions) -> RawConditions {
        let pick = |given: &Option<Vec<String>>, old: Vec<String>| given.clone().unwrap_or(old);
        RawConditions {
            networks: pick(&self.networks, base.networks),
            countries: pick(&self.countries, base.countries),
            asns: self.asns.clone().unwrap_or(base.asns),
            user_agents: pick(&self.user_agents, base.user_agents),
            referers: pick(&self.referers, base.referers),
            streams: pick(&self.streams, base.streams),
            protocols: pick(&self.protocols, base.protocols),
            dialects: pick(&self.dialects, base.dialects),
            negate: pick(&self.negate, base.negate),
        }
    }
}

fn rule_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::no_such("access rule", id))
}

fn position(value: Option<i32>) -> Result<Option<i32>, ApiError> {
    match value {
        Some(p) if p < 1 => Err(ApiError::invalid(
            "position",
            "position is 1-based: 1 is the first rule",
        )),
        other => Ok(other),
    }
}

/// The audit entry's account of a rule: what it does, not its timestamps.
fn described(row: &AccessRuleRow) -> Value {
    let mut value = json!({
        "position": row.position,
        "action": row.action,
        "enabled": row.enabled,
        "comment": row.comment,
    });
    let conditions = [
        ("networks", json!(row.networks)),
        ("countries", json!(row.countries)),
        ("asns", json!(row.asns)),
        ("user_agents", json!(row.user_agents)),
        ("referers", json!(row.referers)),
        ("streams", json!(row.streams)),
        ("protocols", json!(row.protocols)),
        ("dialects", json!(row.dialects)),
        ("negate", json!(row.negate)),
    ];
    for (name, values) in conditions {
        if values.as_array().is_some_and(|v| !v.is_empty()) {
            value[name] = values;
        }
    }
    value
}

#[utoipa::path(get, path = "/api/v1/access-rules", tag = "access-rules", params(PageQuery),
    responses((status = 200, body = Page<AccessRuleRow>, description = "in position order"),
              (status = 401), (status = 403), (status = 422, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn list(
    _caller: ObserverUser,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (limit, offset) = page_bounds(query.limit, query.offset)?;
    let client = state.pool.get().await?;
    let (items, total) = access_rules::list(&client, limit, offset).await?;
    Ok(HttpResponse::Ok().json(Page { items, total }))
}

#[utoipa::path(post, path = "/api/v1/access-rules", tag = "access-rules", request_body = AccessRuleInput,
    responses((status = 201, body = AccessRuleRow, description = "in force on every replica within a second"),
              (status = 400, body = ErrorBody), (status = 401), (status = 403),
              (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn create(
    AdminJson(caller, input): AdminJson<AccessRuleInput>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let action = input
        .action
        .as_deref()
        .ok_or_else(|| ApiError::invalid("action", "action is required (allow or deny)"))
        .and_then(|a| Ok(validate::action(a)?))?;
    let place = position(input.position)?;
    let comment = validate::text("comment", input.comment.as_deref().unwrap_or(""))?;
    let conditions = access_rule::conditions(&input.conditions_over(RawConditions::default()))?;
    let write = RuleWrite {
        action,
        enabled: input.enabled.unwrap_or(true),
        comment: &comment,
        conditions: &conditions,
    };
    let row = audited(&state, &caller, async |transaction| {
        let row = access_rules::insert(transaction, place, &write).await?;
        let entry = Audit::policy("create", "access_rule", row.id.to_string(), described(&row));
        Ok((row, entry))
    })
    .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/access-rules/{}", row.id)))
        .json(row))
}

#[utoipa::path(get, path = "/api/v1/access-rules/{id}", tag = "access-rules", params(("id" = i64, Path)),
    responses((status = 200, body = AccessRuleRow), (status = 401), (status = 403), (status = 404, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn get(
    _caller: ObserverUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rule = rule_id(&id)?;
    let client = state.pool.get().await?;
    let row = access_rules::get(&client, rule)
        .await?
        .ok_or_else(|| ApiError::no_such("access rule", &id))?;
    Ok(HttpResponse::Ok().json(row))
}

#[utoipa::path(patch, path = "/api/v1/access-rules/{id}", tag = "access-rules", params(("id" = i64, Path)),
    request_body = AccessRuleInput,
    responses((status = 200, body = AccessRuleRow), (status = 400, body = ErrorBody), (status = 401), (status = 403),
              (status = 404, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn update(
    AdminJson(caller, input): AdminJson<AccessRuleInput>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rule = rule_id(&id)?;
    let place = position(input.position)?;
    let action = match input.action.as_deref() {
        Some(action) => Some(validate::action(action)?),
        None => None,
    };
    let comment = match input.comment.as_deref() {
        Some(comment) => Some(validate::text("comment", comment)?),
        None => None,
    };
    let row = audited(&state, &caller, async |transaction| {
        // Read under the list's lock (the write below takes it again, a no-op).
        let before = access_rules::get_for_update(transaction, rule)
            .await?
            .ok_or_else(|| ApiError::no_such("access rule", &id))?;
        // The merged rule is validated whole: a negated condition must
        // still be there, and a rule must keep one condition.
        let conditions = access_rule::conditions(&input.conditions_over(before.raw_conditions()))?;
        let write = RuleWrite {
            action: match action {
                Some(action) => action,
                None => validate::action(&before.action)?,
            },
            enabled: input.enabled.unwrap_or(before.enabled),
            comment: comment.as_deref().unwrap_or(&before.comment),
            conditions: &conditions,
        };
        let row = access_rules::update(transaction, rule, place, &write)
            .await?
            .ok_or_else(|| ApiError::no_such("access rule", &id))?;
        let changes = json!({"before": described(&before), "after": described(&row)});
        Ok((
            row,
            Audit::policy("update", "access_rule", id.as_str(), changes),
        ))
    })
    .await?;
    Ok(HttpResponse::Ok().json(row))
}

#[utoipa::path(delete, path = "/api/v1/access-rules/{id}", tag = "access-rules", params(("id" = i64, Path)),
    responses((status = 204, description = "deleted; the rules after it move up one"),
              (status = 401), (status = 403), (status = 404, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn delete(
    caller: AdminUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rule = rule_id(&id)?;
    audited(&state, &caller, async |transaction| {
        let row = access_rules::delete(transaction, rule)
            .await?
            .ok_or_else(|| ApiError::no_such("access rule", &id))?;
        Ok((
            (),
            Audit::policy("delete", "access_rule", id.as_str(), described(&row)),
        ))
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
