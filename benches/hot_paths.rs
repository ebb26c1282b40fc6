//! In-process benchmarks of agent-init's hot paths, below the process
//! start-up floor that `bench/run.sh` measures: token derivation, bundle
//! open, dotenv parsing, environment assembly, and the TLS root store that
//! each HTTPS run builds. Run with `cargo bench --bench hot_paths`.
//!
//! They use the binary's wiping allocator, so every free costs what it costs
//! in production.

use agent_init::base::sensitive::{SecretBytes, SecretString};
use agent_init::env::Environment;
use agent_init::protocol::bundle;
use agent_init::protocol::secrets::{self, LiveKit, Plaintext, Secret};
use agent_init::protocol::token::Token;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use std::ffi::OsString;
use std::hint::black_box;
use std::time::Duration;

#[global_allocator]
static ALLOC: agent_init::sys::WipingAlloc = agent_init::sys::WipingAlloc;

/// The known-answer token of testdata/lkbt1.json.
const TOKEN: &str = "lkbt1.oKGio6SlpqeoqaqrrK2urw.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

/// Deterministic base64url text of `len` bytes.
fn text(seed: u64, len: usize) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            A[(x >> 58) as usize] as char
        })
        .collect()
}

/// A bundle plaintext of `n` secrets of `bytes` each, with the livekit member.
fn plaintext(n: usize, bytes: usize) -> Vec<u8> {
    let list: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "name": format!("BENCH_SECRET_{i:04}"),
                "value": text(i as u64 + 7, bytes),
                "updated_at": "2026-01-01T00:00:00Z",
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "secrets": list,
        "livekit": {"url": "wss://bench.livekit.invalid", "api_key": "APIkey", "api_secret": "s3cret"},
    }))
    .unwrap()
}

fn token(c: &mut Criterion) {
    let mut g = c.benchmark_group("token");
    g.bench_function("parse", |b| {
        b.iter(|| Token::parse(black_box(TOKEN)).unwrap())
    });
    let t = Token::parse(TOKEN).unwrap();
    g.bench_function("seal_key", |b| b.iter(|| black_box(&t).seal_key()));
    g.bench_function("authorization", |b| {
        b.iter(|| black_box(&t).authorization())
    });
    g.finish();
}

fn bundle_open(c: &mut Criterion) {
    let t = Token::parse(TOKEN).unwrap();
    let mut g = c.benchmark_group("bundle");
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    for n in [1usize, 500] {
        let sealed = bundle::seal_with_nonce(&t, &plaintext(n, 16 * 1024), [7; 12]);
        g.throughput(Throughput::Bytes(sealed.len() as u64));
        g.bench_with_input(BenchmarkId::new("open", n), &sealed, |b, s| {
            b.iter(|| bundle::open(&t, s.as_bytes()).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("open_and_check", n), &sealed, |b, s| {
            b.iter(|| {
                let plain = bundle::open(&t, s.as_bytes()).unwrap();
                secrets::parse(plain.expose()).unwrap()
            })
        });
    }
    g.finish();
}

/// A 1,000-line dotenv file in the shapes python-dotenv reads: plain,
/// `export`, double- and single-quoted values, interpolation, comments and
/// blank lines.
fn dotenv_text() -> String {
    let mut s = String::new();
    for i in 0..1000 {
        let v = text(i as u64 + 11, 40);
        match i % 10 {
            0 => s.push_str(&format!("# section {i}\n")),
            1 => s.push('\n'),
            2 => s.push_str(&format!("export VAR_{i}={v}\n")),
            3 => s.push_str(&format!("VAR_{i}=\"{v} with spaces\\n\"\n")),
            4 => s.push_str(&format!("VAR_{i}='{v}'\n")),
            5 => s.push_str(&format!("VAR_{i}=${{VAR_{}}}/suffix\n", i - 3)),
            6 => s.push_str(&format!("VAR_{i}={v} # trailing comment\n")),
            _ => s.push_str(&format!("VAR_{i}={v}\n")),
        }
    }
    s
}

fn dotenv(c: &mut Criterion) {
    let text = dotenv_text();
    let lookup = |_: &str| -> Option<SecretString> { None };
    if let Err(e) = agent_init::local::dotenv::parse(&text, "bench.env", &lookup) {
        eprintln!("note: dotenv::parse returned an error, so this measures its error path: {e}");
    }
    let mut g = c.benchmark_group("dotenv");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("parse_1000_lines", |b| {
        b.iter(|| agent_init::local::dotenv::parse(black_box(&text), "bench.env", &lookup))
    });
    g.finish();
}

/// agent-init's own environment as a container gives it: about 30 variables.
fn inherited() -> Vec<(OsString, SecretBytes)> {
    let mut v: Vec<(OsString, SecretBytes)> = (0..27)
        .map(|i| {
            (
                OsString::from(format!("INHERITED_{i:02}")),
                SecretBytes::new(text(i + 100, 48).into_bytes()),
            )
        })
        .collect();
    v.push((
        "PATH".into(),
        SecretBytes::new(b"/usr/local/bin:/usr/bin:/bin".to_vec()),
    ));
    v.push(("HOME".into(), SecretBytes::new(b"/root".to_vec())));
    v.push((
        "LIVEKIT_BOOTSTRAP_TOKEN".into(),
        SecretBytes::new(TOKEN.into()),
    ));
    v
}

fn environment(c: &mut Criterion) {
    let secrets = Plaintext {
        secrets: (0..20)
            .map(|i| Secret {
                name: format!("BENCH_SECRET_{i:04}"),
                value: SecretString::new(text(i + 1, 64)),
                created_at: Some("2026-01-01T00:00:00Z".into()),
                updated_at: Some("2026-01-01T00:00:00Z".into()),
            })
            .collect(),
        livekit: LiveKit {
            url: Some(SecretString::new("wss://bench.livekit.invalid".into())),
            api_key: Some(SecretString::new("APIkey".into())),
            api_secret: Some(SecretString::new("s3cret".into())),
        },
        files: Vec::new(),
    };
    let files: agent_init::env::FileVars = vec![(
        ".env".into(),
        secrets
            .secrets
            .iter()
            .map(|s| (s.name.clone(), SecretBytes::new(s.value.expose().into())))
            .collect(),
    )];
    let required: Vec<String> = agent_init::protocol::rules::LIVEKIT_NAMES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let argv: Vec<OsString> = vec!["/app/agent".into(), "start".into()];
    let mut g = c.benchmark_group("env");
    g.bench_function("production_20_secrets", |b| {
        b.iter_batched(
            || (inherited(), secrets.clone()),
            |(inh, s)| {
                let env = Environment::production(inh, s);
                env.check(&required, &argv, 2 << 20).unwrap();
                env.into_block()
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("local_20_vars", |b| {
        b.iter_batched(
            || (inherited(), files.clone()),
            |(inh, f)| {
                let env = Environment::local(inh, f, Vec::new());
                env.check(&[], &argv, 2 << 20).unwrap();
                env.into_block()
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// What every HTTPS run pays before its handshake: the built-in trust
/// anchors copied into a rustls root store (src/source/tls.rs, `root_store`).
fn tls_roots(c: &mut Criterion) {
    let mut g = c.benchmark_group("tls");
    g.bench_function("root_store_from_webpki_anchors", |b| {
        b.iter(|| rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
    });
    g.finish();
}

criterion_group!(benches, token, bundle_open, dotenv, environment, tls_roots);
criterion_main!(benches);
