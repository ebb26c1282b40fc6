//! A load generator for the fetch benchmark (bench/service.sh): THREADS
//! loops, each doing what a freshly started agent-init does, again and
//! again: a new client (so a new TCP connection and a full TLS handshake,
//! no session resumption), `GET URL` with the token's `Authorization`, the
//! whole body read, and the bundle opened with the token (a body that does
//! not open counts as an error). After WARMUP seconds it counts fetches for
//! SECONDS and prints one JSON line: fetches, errors, fetches/s and latency
//! percentiles.
//!
//! Usage: fetch-load --url URL --token-file FILE --ca-file PEM
//!                   [--threads 4] [--seconds 10] [--warmup 1]

use agent_init::protocol::token::Token;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let need = |name: &str| get(name).unwrap_or_else(|| panic!("fetch-load needs {name}"));
    let url = need("--url");
    let token = Token::parse(&std::fs::read_to_string(need("--token-file")).unwrap()).unwrap();
    let pem = std::fs::read(need("--ca-file")).unwrap();
    let threads: usize = get("--threads").map_or(4, |t| t.parse().unwrap());
    let seconds: f64 = get("--seconds").map_or(10.0, |t| t.parse().unwrap());
    let warmup: f64 = get("--warmup").map_or(1.0, |t| t.parse().unwrap());
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|i| match i.unwrap() {
            ureq::tls::PemItem::Certificate(c) => Some(c.to_owned()),
            _ => None,
        })
        .collect();
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)))
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .build();
    let auth = token.authorization();
    let token = Arc::new(token);
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (url, tls, auth) = (url.clone(), tls.clone(), auth.expose().to_string());
            let (token, counting, stop) = (token.clone(), counting.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut lat, mut errors) = (Vec::new(), 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    // A new agent: a new connection, a new TLS session cache.
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .proxy(None)
                        .max_idle_connections(0)
                        .tls_config(tls.clone())
                        .timeout_global(Some(Duration::from_secs(10)))
                        .build()
                        .into();
                    let ok = agent
                        .get(&url)
                        .header("Authorization", &auth)
                        .call()
                        .ok()
                        .filter(|r| r.status() == 200)
                        .and_then(|mut r| r.body_mut().read_to_vec().ok())
                        .is_some_and(|b| agent_init::protocol::bundle::open(&token, &b).is_ok());
                    if counting.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                        if ok {
                            lat.push(t.elapsed());
                        } else {
                            errors += 1;
                        }
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(warmup));
    counting.store(true, Ordering::Relaxed);
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let (mut lat, mut errors) = (Vec::new(), 0);
    for w in workers {
        let (l, e) = w.join().unwrap();
        lat.extend(l);
        errors += e;
    }
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{{\"url\":{:?},\"threads\":{threads},\"seconds\":{elapsed:.3},\"fetches\":{},\"errors\":{errors},\"per_s\":{:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3}}}",
        url,
        lat.len(),
        lat.len() as f64 / elapsed,
        pct(0.5),
        pct(0.99)
    );
}
