//! `GET /api/v1/openapi.json` describes exactly the routes the server has:
//! the routes are read from the real router (actix's resource map), their
//! methods found by asking the running server.

use std::collections::BTreeSet;

use actix_web::{web, App, HttpRequest, HttpResponse};
use serde_json::Value;

use crate::helpers::*;

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Every route pattern of `playgate::app::routes`, scopes resolved
/// (`/api/v1/users/{login}`), from the Debug form of actix's resource map.
async fn registered_patterns() -> BTreeSet<String> {
    let service = actix_web::test::init_service(
        App::new()
            .route(
                "/__resource_map",
                web::get().to(|request: HttpRequest| async move {
                    HttpResponse::Ok().body(format!("{:?}", request.resource_map()))
                }),
            )
            .configure(playgate::app::routes),
    )
    .await;
    let request = actix_web::test::TestRequest::get()
        .uri("/__resource_map")
        .to_request();
    let map = String::from_utf8(
        actix_web::test::call_and_read_body(&service, request)
            .await
            .to_vec(),
    )
    .unwrap();

    // Walk the text: `patterns: Single("…")` names a node; `nodes: Some([` opens
    // its children, which end when the bracket depth falls back.
    let mut patterns = Vec::new();
    let mut prefixes: Vec<(usize, String)> = Vec::new();
    let mut last_full = String::new();
    let mut prefix_nodes = BTreeSet::new();
    let mut depth = 0usize;
    let mut rest = map.as_str();
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("patterns: Single(\"") {
            let end = after.find('"').unwrap();
            let prefix = prefixes.last().map(|(_, p)| p.as_str()).unwrap_or("");
            last_full = format!("{prefix}{}", &after[..end]);
            patterns.push(last_full.clone());
            rest = &after[end..];
            continue;
        }
        assert!(
            !rest.starts_with("patterns: List("),
            "multi-pattern resources are not handled here"
        );
        if let Some(after) = rest.strip_prefix("nodes: Some([") {
            depth += 1;
            prefixes.push((depth, last_full.clone()));
            prefix_nodes.insert(last_full.clone());
            rest = after;
            continue;
        }
        match c {
            '[' => depth += 1,
            ']' => {
                if prefixes.last().is_some_and(|(d, _)| *d == depth) {
                    prefixes.pop();
                }
                depth -= 1;
            }
            _ => {}
        }
        rest = &rest[c.len_utf8()..];
    }
    let leaves: BTreeSet<String> = patterns
        .into_iter()
        .filter(|p| !prefix_nodes.contains(p) && p != "/__resource_map")
        .collect();
    assert!(
        leaves.contains("/hook/decide") && leaves.contains("/api/v1/users/{login}"),
        "{leaves:?}\n{map}"
    );
    leaves
}

#[tokio::test]
async fn every_registered_route_is_described() {
    let app = spawn_app().await;
    let answer = app
        .api("GET", "/api/v1/openapi.json", Auth::None, None)
        .await;
    assert_eq!(answer.status, 200);
    let document = answer.body;
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let mut described = BTreeSet::new();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            if METHODS.iter().any(|m| m.eq_ignore_ascii_case(method)) {
                described.insert((method.to_uppercase(), path.clone()));
            }
        }
    }

    // Which (method, route) pairs the server really answers: anything but the
    // catch-all 404 or a 405 (admin routes answer 401 without credentials, hooks 400
    // on an empty body, …).
    let mut registered = BTreeSet::new();
    for pattern in registered_patterns().await {
        let path = pattern
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "0"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for method in METHODS {
            let answer = app.api(method, &path, Auth::None, None).await;
            // The catch-all 404, or a resource's 405 for a method it lacks.
            let catch_all = answer.status == 405
                || (answer.status == 404
                    && answer.body == serde_json::json!({"error": "not found"}));
            if !catch_all {
                registered.insert((method.to_string(), pattern.clone()));
            }
        }
    }
    assert!(registered.len() >= 27, "{registered:?}");
    let undocumented: Vec<_> = registered.difference(&described).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from openapi.json: {undocumented:?}"
    );
    let unregistered: Vec<_> = described.difference(&registered).collect();
    assert!(
        unregistered.is_empty(),
        "openapi.json describes routes the server lacks: {unregistered:?}"
    );

    // Schemas are there and referenced.
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for schema in [
        "UserInput",
        "UserRow",
        "TokenRow",
        "PackageRow",
        "IpRuleRow",
        "Session",
        "AuditRow",
        "ErrorBody",
        "Decision",
        "DecideRequest",
    ] {
        assert!(schemas.contains_key(schema), "schema {schema} missing");
    }
    let security = document["components"]["securitySchemes"]
        .as_object()
        .unwrap();
    assert!(security.contains_key("basic") && security.contains_key("bearer"));
    let _: &Value = &document["paths"]["/api/v1/users"]["post"]["requestBody"];
}
