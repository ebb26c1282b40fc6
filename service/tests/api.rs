//! The management API (PROTOCOL.md §10) and the fetch (§4) of the real
//! `agent-secrets serve`, spoken by a client written from the spec (not the
//! CLI), with the same suite on SQLite and on a real PostgreSQL server.

mod support;

use serde_json::Value;
use support::*;

/// Every status of §4 and §10 (and the refusals around them) on `db`.
fn every_status_of_the_protocol(db: Db, name: &str) {
    let dir = scratch(name);
    let server = Server::start(&dir, &Options::on(db, &dir));
    let t = TestToken::new();
    let path = format!("/v1/tokens/{}", t.id);
    let body1 = t.put_body(r#"{"secrets":[{"name":"A","value":"one"}]}"#, &["A"]);

    // 401: no admin key, a wrong one, a token's auth header; the same bytes
    // for every route, revealing nothing.
    let unauth: Vec<Resp> = vec![
        server.request("GET", "/v1/tokens", &[], b""),
        server.request(
            "GET",
            "/v1/tokens",
            &[("Authorization", "Bearer wrong-admin-key-0123456789")],
            b"",
        ),
        server.request("PUT", &path, &[("Authorization", "Bearer x")], &body1),
        server.request("GET", &path, &[("Authorization", &t.authorization())], b""),
        server.request(
            "DELETE",
            &path,
            &[("Authorization", &format!("Bearer {}x", server.admin_key))],
            b"",
        ),
        server.request("GET", "/v1/tokens/not-an-id", &[], b""),
    ];
    for r in &unauth {
        assert_eq!(r.status, 401);
        assert_eq!(r.body, unauth[0].body, "every 401 says the same");
    }

    // 404: unknown token, unknown path.
    assert_eq!(server.admin("GET", &path, &[], b"").status, 404);
    assert_eq!(server.admin("DELETE", &path, &[], b"").status, 404);
    assert_eq!(server.admin("GET", "/v2/anything", &[], b"").status, 404);

    // 400 with a reason: bad ID, malformed JSON, missing member, bad hash,
    // bad bundle, both preconditions.
    let bad = |p: &str, headers: &[(&str, &str)], body: &[u8], says: &str| {
        let r = server.admin("PUT", p, headers, body);
        assert_eq!(
            r.status,
            400,
            "{says}: {:?}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(
            r.reason().contains(says),
            "{:?} should say {says:?}",
            r.reason()
        );
    };
    bad("/v1/tokens/short", &[], &body1, "token ID");
    bad(&path, &[], b"{not json", "not JSON");
    bad(&path, &[], br#"{"bundle": {}}"#, "missing field");
    // body1 with one member changed.
    let edited = |edit: &dyn Fn(&mut Value)| {
        let mut v: Value = serde_json::from_slice(&body1).unwrap();
        edit(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let hash = edited(&|v| v["auth_key_sha256"] = "abc".into());
    bad(&path, &[], &hash, "auth_key_sha256");
    // §10's manifest entries carry both dates (agent-init's Manifest type
    // allows them absent; the service does not).
    let one_date = edited(&|v| {
        v["manifest"]["secrets"] = serde_json::json!([
            {"name": "A", "kind": "env", "created_at": "2026-12-01T10:00:00Z"}
        ])
    });
    bad(
        &path,
        &[],
        &one_date,
        "created_at and updated_at are required",
    );
    let format = edited(&|v| v["bundle"]["format"] = "lkbt2".into());
    bad(&path, &[], &format, "format");
    bad(
        &path,
        &[("If-Match", "\"1\""), ("If-None-Match", "*")],
        &body1,
        "not both",
    );
    assert_eq!(
        server.admin("GET", "/v1/tokens/short", &[], b"").status,
        400
    );

    // 412: If-Match on a token that does not exist.
    assert_eq!(
        server
            .admin("PUT", &path, &[("If-Match", "\"1-x\"")], &body1)
            .status,
        412
    );

    // 201: create only.
    let created = server.admin("PUT", &path, &[("If-None-Match", "*")], &body1);
    assert_eq!(
        created.status,
        201,
        "{:?}",
        String::from_utf8_lossy(&created.body)
    );
    let c = created.json();
    assert_eq!(c["id"], t.id.as_str());
    assert_eq!(c["version"], 1);
    let etag1 = c["etag"].as_str().unwrap().to_string();
    assert_eq!(created.header("etag"), Some(etag1.as_str()));
    assert!(c["created_at"].as_str().unwrap().ends_with('Z'));

    // 412: create again.
    assert_eq!(
        server
            .admin("PUT", &path, &[("If-None-Match", "*")], &body1)
            .status,
        412
    );

    // §4: 200 with the bundle as uploaded and the same ETag; 304 on it.
    let fetched = server.fetch(&t.authorization(), &[]);
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.header("etag"), Some(etag1.as_str()));
    let uploaded: Value = serde_json::from_slice(&body1).unwrap();
    assert_eq!(fetched.json(), uploaded["bundle"]);
    let plain = agent_init::protocol::bundle::open(&t.token, &fetched.body).unwrap();
    assert_eq!(
        plain.expose(),
        br#"{"secrets":[{"name":"A","value":"one"}]}"#
    );
    let not_modified = server.fetch(&t.authorization(), &[("If-None-Match", &etag1)]);
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty());
    let other = server.fetch(&t.authorization(), &[("If-None-Match", "\"0-other\"")]);
    assert_eq!(other.status, 200);

    // §4 401: an unknown ID and a wrong auth_key get the same answer.
    let stranger = TestToken::new();
    let unknown = server.fetch(&stranger.authorization(), &[]);
    let wrong_key = format!(
        "Bearer lkbt1.{}.{}",
        t.id,
        b64u(&stranger.token.auth_key()[..])
    );
    let wrong = server.fetch(&wrong_key, &[]);
    let garbage = server.fetch("Bearer lkbt1.x.y", &[]);
    for r in [&unknown, &wrong, &garbage] {
        assert_eq!((r.status, &r.body), (401, &unauth[0].body));
    }

    // 409: another auth_key for the same ID.
    let mut v: Value = serde_json::from_slice(&body1).unwrap();
    v["auth_key_sha256"] = stranger.auth_key_sha256().into();
    let conflict = server.admin(
        "PUT",
        &path,
        &[("If-Match", &etag1)],
        &serde_json::to_vec(&v).unwrap(),
    );
    assert_eq!(conflict.status, 409);

    // 200: update on the current ETag; a stale ETag then gets 412.
    let body2 = t.put_body(
        r#"{"secrets":[{"name":"A","value":"two"},{"name":"B","value":"b"}]}"#,
        &["A", "B"],
    );
    let updated = server.admin("PUT", &path, &[("If-Match", &etag1)], &body2);
    assert_eq!(updated.status, 200);
    let u = updated.json();
    assert_eq!(u["version"], 2);
    assert_eq!(u["created_at"], c["created_at"]);
    let etag2 = u["etag"].as_str().unwrap().to_string();
    assert_ne!(etag1, etag2);
    assert_eq!(
        server
            .admin("PUT", &path, &[("If-Match", &etag1)], &body1)
            .status,
        412
    );
    let refetched = server.fetch(&t.authorization(), &[("If-None-Match", &etag1)]);
    assert_eq!(
        (refetched.status, refetched.header("etag")),
        (200, Some(etag2.as_str()))
    );

    // GET one: every member of §10, the manifest and bundle as uploaded.
    let one = server.admin("GET", &path, &[], b"");
    assert_eq!(one.status, 200);
    let o = one.json();
    let up2: Value = serde_json::from_slice(&body2).unwrap();
    assert_eq!(o["id"], t.id.as_str());
    assert_eq!(o["version"], 2);
    assert_eq!(o["etag"], etag2.as_str());
    assert_eq!(o["revoked"], false);
    assert_eq!(o["manifest"], up2["manifest"]);
    assert_eq!(o["bundle"], up2["bundle"]);
    assert_eq!(o["created_at"], c["created_at"]);

    // GET list: this token with its version and count.
    let list = server.admin("GET", "/v1/tokens", &[], b"");
    assert_eq!(list.status, 200);
    let entry = list.json()["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == t.id.as_str())
        .cloned()
        .expect("the token is listed");
    assert_eq!(entry["version"], 2);
    assert_eq!(entry["secrets"], 2);
    assert_eq!(entry["revoked"], false);

    // 204: revoke; then the fetch gets 401 (the same as an unknown token),
    // the bundle is gone, and the ID cannot be filled again.
    let deleted = server.admin("DELETE", &path, &[], b"");
    assert_eq!(deleted.status, 204);
    assert!(deleted.body.is_empty());
    let after = server.fetch(&t.authorization(), &[]);
    assert_eq!((after.status, &after.body), (401, &unauth[0].body));
    let o = server.admin("GET", &path, &[], b"").json();
    assert_eq!(o["revoked"], true);
    assert_eq!(o["bundle"], Value::Null);
    assert_eq!(server.admin("PUT", &path, &[], &body2).status, 409);
    assert_eq!(server.admin("DELETE", &path, &[], b"").status, 204);

    // 405 and 413.
    assert_eq!(server.admin("POST", "/v1/tokens", &[], b"").status, 405);
    assert_eq!(server.request("PUT", "/v1/bundle", &[], b"").status, 405);
    let huge = vec![b'x'; 10 << 20];
    assert_eq!(server.admin("PUT", &path, &[], &huge).status, 413);

    // The log names IDs, versions and statuses, never a key.
    let log = server.log_text();
    assert!(
        log.contains(&format!("id={} version=2 -> 200", t.id)),
        "{log}"
    );
    for secret in [server.admin_key.clone(), b64u(&t.token.auth_key()[..])] {
        assert!(!log.contains(&secret), "the log shows a key");
    }
}

on_both_databases! {
    |db| every_status_of_the_protocol(db, "status") => every_status_of_the_protocol_on_sqlite, every_status_of_the_protocol_on_postgres;
}
