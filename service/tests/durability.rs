//! What the store promises under concurrency and crashes: of concurrent
//! `If-Match` updates of one version exactly one wins, across processes on
//! one PostgreSQL; an acknowledged PUT survives `kill -9` of the server, and
//! nothing is ever half-written.

mod support;

use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};
use support::*;

/// A body for version `v` of `t`: the plaintext and the manifest both name
/// `v`, so a row that mixed two PUTs would show.
fn versioned_body(t: &TestToken, v: i64) -> Vec<u8> {
    t.put_body(
        &format!(r#"{{"secrets":[{{"name":"V{v}","value":"value-{v}"}}]}}"#),
        &[&format!("V{v}")],
    )
}

fn nonce_of(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["bundle"]["nonce"].as_str().unwrap().to_string()
}

/// Rounds of `writers` simultaneous `If-Match` PUTs against the current
/// version, spread over `servers`: each round exactly one 200, the rest 412,
/// and every server then serves the winner's bundle.
fn exactly_one_winner_per_version(servers: &[Arc<Server>], writers: usize, rounds: i64) {
    let t = Arc::new(TestToken::new());
    let path = format!("/v1/tokens/{}", t.id);
    let created = servers[0].admin(
        "PUT",
        &path,
        &[("If-None-Match", "*")],
        &versioned_body(&t, 1),
    );
    assert_eq!(created.status, 201);
    let mut etag = created.json()["etag"].as_str().unwrap().to_string();
    for round in 0..rounds {
        let barrier = Arc::new(Barrier::new(writers));
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let (server, t, barrier, etag, path) = (
                    servers[w % servers.len()].clone(),
                    t.clone(),
                    barrier.clone(),
                    etag.clone(),
                    path.clone(),
                );
                std::thread::spawn(move || {
                    let body = versioned_body(&t, round + 2);
                    barrier.wait();
                    let r = server.admin("PUT", &path, &[("If-Match", &etag)], &body);
                    (r, nonce_of(&body))
                })
            })
            .collect();
        let results: Vec<(Resp, String)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners: Vec<&(Resp, String)> =
            results.iter().filter(|(r, _)| r.status == 200).collect();
        let statuses: Vec<u16> = results.iter().map(|(r, _)| r.status).collect();
        assert_eq!(winners.len(), 1, "round {round}: statuses {statuses:?}");
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 412),
            "round {round}: statuses {statuses:?}"
        );
        let (win, nonce) = winners[0];
        assert_eq!(win.json()["version"], round + 2);
        etag = win.json()["etag"].as_str().unwrap().to_string();
        for s in servers {
            let stored = s.admin("GET", &path, &[], b"").json();
            assert_eq!(stored["version"], round + 2);
            assert_eq!(
                stored["bundle"]["nonce"],
                nonce.as_str(),
                "the winner's bundle is stored"
            );
        }
    }
}

#[test]
fn concurrent_if_match_updates_on_sqlite_have_exactly_one_winner_per_version() {
    let dir = scratch("cas-sqlite");
    let server = Arc::new(Server::start(&dir, &Options::sqlite()));
    exactly_one_winner_per_version(&[server], 8, 15);
}

#[test]
#[ignore = "needs PostgreSQL (scripts/test.sh starts a throwaway cluster)"]
fn two_replicas_on_one_postgres_have_exactly_one_winner_per_version() {
    let dir = scratch("cas-pg");
    let opts = Options::on(Db::postgres(), &dir);
    let a = Arc::new(Server::start(&dir, &opts));
    let b = Arc::new(Server::start(&dir, &opts));
    exactly_one_winner_per_version(&[a, b], 8, 15);
}

/// Per token: the last version acknowledged, and the nonce sent for each
/// version tried.
type Progress = (i64, HashMap<i64, String>);

/// Writers update their own tokens as fast as they can while the server is
/// killed with SIGKILL; after a restart every token holds the last version
/// acknowledged to its writer (or the one in flight when the server died),
/// whole: the bundle opens, and its plaintext and the manifest both name
/// the stored version.
fn acknowledged_puts_survive_kill_9(db: Db, name: &str) {
    let dir = scratch(name);
    let server = Arc::new(Server::start(&dir, &Options::on(db, &dir)));
    let tokens: Vec<Arc<TestToken>> = (0..6).map(|_| Arc::new(TestToken::new())).collect();
    let state: Arc<Mutex<HashMap<String, Progress>>> = Arc::default();
    let handles: Vec<_> = tokens
        .iter()
        .map(|t| {
            let (t, state, s) = (t.clone(), state.clone(), server.clone());
            std::thread::spawn(move || {
                let path = format!("/v1/tokens/{}", t.id);
                let mut etag: Option<String> = None;
                let mut v = 1i64;
                loop {
                    let body = versioned_body(&t, v);
                    state
                        .lock()
                        .unwrap()
                        .entry(t.id.clone())
                        .or_default()
                        .1
                        .insert(v, nonce_of(&body));
                    let pre = match &etag {
                        None => ("If-None-Match", "*".to_string()),
                        Some(e) => ("If-Match", e.clone()),
                    };
                    let auth = s.admin_authorization();
                    let headers = [("Authorization", auth.as_str()), (pre.0, &pre.1)];
                    match s.try_request("PUT", &path, &headers, &body) {
                        Ok(r) if r.status == 200 || r.status == 201 => {
                            assert_eq!(r.json()["version"], v);
                            state.lock().unwrap().get_mut(&t.id).unwrap().0 = v;
                            etag = Some(r.json()["etag"].as_str().unwrap().to_string());
                            v += 1;
                        }
                        Ok(r) => panic!("PUT answered {}: {}", r.status, r.reason()),
                        Err(_) => return, // the server is gone
                    }
                }
            })
        })
        .collect();
    // Let the burst run, then kill the server in the middle of it.
    let start = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let acked: i64 = state.lock().unwrap().values().map(|(v, _)| *v).sum();
        if acked >= 200 || start.elapsed() > Duration::from_secs(30) {
            break;
        }
    }
    let pid = server.pid();
    assert!(std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    for h in handles {
        h.join().unwrap();
    }
    let acked_total: i64 = state.lock().unwrap().values().map(|(v, _)| *v).sum();
    assert!(
        acked_total >= 6,
        "the burst acknowledged writes before the kill"
    );
    eprintln!("{acked_total} PUTs acknowledged before kill -9");

    let restarted = server.restart(&dir);
    let state = state.lock().unwrap();
    for t in &tokens {
        let (acked, sent) = &state[&t.id];
        let r = restarted.admin("GET", &format!("/v1/tokens/{}", t.id), &[], b"");
        if *acked == 0 {
            // The create itself may have been in flight.
            assert!(r.status == 404 || r.json()["version"] == 1);
            continue;
        }
        assert_eq!(r.status, 200);
        let row = r.json();
        let v = row["version"].as_i64().unwrap();
        assert!(
            v == *acked || v == acked + 1,
            "token {}: acknowledged version {acked}, stored {v}",
            t.id
        );
        assert_eq!(
            row["bundle"]["nonce"],
            sent[&v].as_str(),
            "the stored bundle is version {v}'s"
        );
        assert_eq!(row["manifest"]["secrets"][0]["name"], format!("V{v}"));
        let fetched = restarted.fetch(&t.authorization(), &[]);
        assert_eq!(fetched.status, 200);
        let plain = agent_init::protocol::bundle::open(&t.token, &fetched.body)
            .expect("the bundle is whole");
        let plain: Value = serde_json::from_slice(plain.expose()).unwrap();
        assert_eq!(plain["secrets"][0]["value"], format!("value-{v}"));
    }
}

on_both_databases! {
    |db| acknowledged_puts_survive_kill_9(db, "crash") => acknowledged_puts_survive_kill_9_on_sqlite, acknowledged_puts_survive_kill_9_on_postgres;
}
