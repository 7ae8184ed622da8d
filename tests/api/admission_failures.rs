//! Admission when the database refuses a statement rather than being away
//! (issue 15, item 6): a 3 KB stream + user agent once broke the session
//! INSERT (`index row size exceeds btree maximum`), and with
//! `PLAYGATE_ON_DB_ERROR=allow` a user limited to one session played three
//! at once with none recorded.

use playgate::config::OnDbError;
use rand::Rng;
use serde_json::json;

use crate::helpers::*;

/// Text that no compression shrinks: `len` characters drawn at random from
/// CJK Extension B (4 bytes each in UTF-8), or ASCII alphanumerics.
fn incompressible(len: usize, wide: bool) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| {
            if wide {
                char::from_u32(rng.random_range(0x20000..0x2A6DF)).unwrap()
            } else {
                let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
                alphabet[rng.random_range(0..alphabet.len())] as char
            }
        })
        .collect()
}

#[tokio::test]
async fn an_oversized_stream_and_user_agent_still_keep_the_limit() {
    let app = spawn_app_with(|settings| settings.on_db_error = OnDbError::Allow).await;
    app.create(user("alice").token("t").limit(1)).await;
    let stream = incompressible(1000, false);
    let user_agent = incompressible(600, true);
    assert!(stream.len() + user_agent.len() > 3000);

    let mut reasons = Vec::new();
    for session in ["one", "two", "three"] {
        let decision = app
            .decide(json!({"stream": stream, "ip": "192.0.2.1", "token": "t",
                           "session": session, "user_agent": user_agent,
                           "referer": user_agent, "protocol": user_agent}))
            .await;
        reasons.push(reason(&decision).to_string());
    }
    assert_eq!(reasons, ["ok", "session_limit", "session_limit"]);
    assert_eq!(app.active_sessions("alice").await, 1);

    // What was recorded is the start of what was sent, cut to 256 bytes on a
    // character boundary (64 four-byte characters).
    let row = app
        .db()
        .await
        .query_one(
            "SELECT stream, user_agent, protocol FROM sessions WHERE login = 'alice'",
            &[],
        )
        .await
        .unwrap();
    let (stored_stream, stored_agent, stored_protocol): (String, String, String) =
        (row.get(0), row.get(1), row.get(2));
    assert_eq!(stored_stream, stream);
    assert_eq!(stored_agent.len(), 256);
    assert!(user_agent.starts_with(&stored_agent));
    assert_eq!(stored_protocol, stored_agent);
}

/// A statement the database refuses is a deny even under
/// `PLAYGATE_ON_DB_ERROR=allow`, which is about the database being away.
#[tokio::test]
async fn a_refused_statement_denies_whatever_on_db_error_says() {
    let app = spawn_app_with(|settings| settings.on_db_error = OnDbError::Allow).await;
    app.create(user("alice").token("t").limit(1)).await;
    app.db()
        .await
        .batch_execute("ALTER FUNCTION playgate_admit_batch_v20 RENAME TO playgate_admit_elsewhere")
        .await
        .unwrap();
    for session in ["one", "two"] {
        let decision = app
            .decide(with(
                play("news", "192.0.2.1"),
                json!({"token": "t", "session": session}),
            ))
            .await;
        assert_eq!(
            (decision["allow"].clone(), reason(&decision)),
            (json!(false), "db_unavailable"),
            "{decision}"
        );
    }
    // An allow-listed viewer needs a session row too.
    app.ip_rule("203.0.113.0/24", playgate::domain::RuleAction::Allow)
        .await;
    let anonymous = app.decide(play("news", "203.0.113.5")).await;
    assert_eq!(reason(&anonymous), "db_unavailable", "{anonymous}");
}
