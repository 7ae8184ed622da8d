//! `/hook/ovenmediaengine` contract: OvenMediaEngine AdmissionWebhooks
//! (`admission-webhooks.md`), with and without `X-OME-Signature`.

use base64::Engine as _;
use hmac::{Hmac, Mac};

use crate::helpers::*;

fn admission(direction: &str, status: &str, url: &str) -> String {
    format!(
        r#"{{"client":{{"address":"211.233.58.86","port":29291,"real_ip":"192.0.2.9","user_agent":"Mozilla/5.0 (Windows NT 10.0)"}},
            "request":{{"direction":"{direction}","protocol":"webrtc","status":"{status}",
            "url":"{url}","time":"2021-05-12T13:45:00.000Z"}}}}"#
    )
}

const PLAY_URL: &str = "wss://ome.example.com:3333/app/stream?token=t1";

#[tokio::test]
async fn opening_closing_and_deny() {
    let app = spawn_app().await;
    app.create(user("alice").token("t1")).await;
    let opened = app
        .hook_post_json(
            "/hook/ovenmediaengine",
            &admission("outgoing", "opening", PLAY_URL),
        )
        .await;
    assert_eq!(opened.status, 200);
    let body = opened.json();
    assert_eq!(body["allowed"], true);
    assert_eq!(body["lifetime"], 60_000, "milliseconds");

    let closed = app
        .hook_post_json(
            "/hook/ovenmediaengine",
            &admission("outgoing", "closing", PLAY_URL),
        )
        .await;
    assert_eq!((closed.status, closed.json()), (200, serde_json::json!({})));
    assert_eq!(
        app.sessions_of_dialect("ovenmediaengine").await,
        vec![(Some("alice".into()), true, Some("stopped".into()))]
    );

    let denied = app
        .hook_post_json(
            "/hook/ovenmediaengine",
            &admission("outgoing", "opening", "wss://ome:3333/app/stream?token=bad"),
        )
        .await;
    assert_eq!(denied.status, 200);
    assert_eq!(denied.json()["allowed"], false);
    assert_eq!(denied.json()["reason"], "unknown_token");
}

#[tokio::test]
async fn publishing() {
    let app = spawn_app().await;
    let url = "rtmp://ome.example.com:1935/app/stream";
    let opening = app
        .hook_post_json(
            "/hook/ovenmediaengine",
            &admission("incoming", "opening", url),
        )
        .await;
    assert_eq!(opening.json()["allowed"], false);
    assert_eq!(opening.json()["reason"], "publish_not_allowed");
    let closing = app
        .hook_post_json(
            "/hook/ovenmediaengine",
            &admission("incoming", "closing", url),
        )
        .await;
    assert_eq!(
        (closing.status, closing.json()),
        (200, serde_json::json!({}))
    );
    assert_eq!(
        app.decision_count("ovenmediaengine", "deny", "publish_not_allowed")
            .await,
        1.0
    );
    assert!(app.sessions_of_dialect("ovenmediaengine").await.is_empty());
}

fn sign(secret: &str, body: &str) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn signature_is_verified_when_a_secret_is_set() {
    let app = spawn_app_with(|s| s.ome_secret = Some("1234".into())).await;
    app.create(user("alice").token("t1")).await;
    let body = admission("outgoing", "opening", PLAY_URL);
    let post = |signature: Option<String>| {
        let mut request = app
            .http
            .post(format!("{}/hook/ovenmediaengine", app.address))
            .header("Content-Type", "application/json")
            .body(body.clone());
        if let Some(signature) = signature {
            request = request.header("X-OME-Signature", signature);
        }
        app.hook(request)
    };
    let signed = post(Some(sign("1234", &body))).await;
    assert_eq!(
        (signed.status, signed.json()["allowed"].clone()),
        (200, true.into())
    );
    assert_eq!(post(None).await.status, 403);
    assert_eq!(post(Some(sign("other", &body))).await.status, 403);
    assert_eq!(post(Some("not base64 !".into())).await.status, 403);
    assert_eq!(
        app.decision_count("ovenmediaengine", "deny", "bad_request")
            .await,
        3.0
    );
}

#[tokio::test]
async fn malformed_is_400() {
    let app = spawn_app().await;
    for body in [
        "{".to_string(),
        admission("sideways", "opening", PLAY_URL),
        admission("outgoing", "paused", PLAY_URL),
        admission("outgoing", "opening", "not a url"),
        admission("outgoing", "opening", "wss://host:3333/onlyapp"),
    ] {
        let answer = app.hook_post_json("/hook/ovenmediaengine", &body).await;
        assert_eq!(answer.status, 400, "{body}");
    }
}
