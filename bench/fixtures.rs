//! Writes the benchmark fixtures (built as the example `bench-fixtures`).
//!
//! ```text
//! bench-fixtures bundle N BYTES OUT   sealed bundle of N secrets of BYTES each; prints its token
//! bench-fixtures dotenv N BYTES OUT   the same N secrets as a dotenv file
//! ```
//!
//! Both carry the three `LIVEKIT_*` values (the bundle in its `livekit`
//! member), so production mode's required names are present. Values are
//! deterministic base64url text: the same N gives the same names and values.

use agent_init::protocol::{bundle, token::Token};
use std::process::ExitCode;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// `n` secrets named `BENCH_SECRET_0001`..., each `bytes` long.
fn secrets(n: usize, bytes: usize) -> Vec<(String, String)> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (1..=n)
        .map(|i| {
            let value = (0..bytes)
                .map(|_| {
                    // xorshift64: cheap, deterministic, incompressible enough.
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    ALPHABET[(x >> 58) as usize] as char
                })
                .collect();
            (format!("BENCH_SECRET_{i:04}"), value)
        })
        .collect()
}

const LIVEKIT: [(&str, &str, &str); 3] = [
    ("url", "LIVEKIT_URL", "wss://bench.livekit.invalid"),
    ("api_key", "LIVEKIT_API_KEY", "APIbenchKey0000"),
    (
        "api_secret",
        "LIVEKIT_API_SECRET",
        "benchSecret0000000000000000000000000000000",
    ),
];

fn run(args: &[String]) -> Result<(), String> {
    let [kind, n, bytes, out] = args else {
        return Err("usage: bench-fixtures bundle|dotenv N BYTES OUT".into());
    };
    let n: usize = n.parse().map_err(|_| "N is not a number")?;
    let bytes: usize = bytes.parse().map_err(|_| "BYTES is not a number")?;
    let secrets = secrets(n, bytes);
    match kind.as_str() {
        "bundle" => {
            let list: Vec<serde_json::Value> = secrets
                .iter()
                .map(|(name, value)| {
                    serde_json::json!({
                        "name": name,
                        "value": value,
                        "created_at": "2026-01-01T00:00:00Z",
                        "updated_at": "2026-01-01T00:00:00Z",
                    })
                })
                .collect();
            let livekit: serde_json::Map<String, serde_json::Value> = LIVEKIT
                .iter()
                .map(|(k, _, v)| (k.to_string(), (*v).into()))
                .collect();
            let plain = serde_json::to_vec(&serde_json::json!({
                "secrets": list,
                "livekit": livekit,
            }))
            .map_err(|e| e.to_string())?;
            let token = Token::generate().map_err(|e| e.to_string())?;
            let sealed = bundle::seal(&token, &plain).map_err(|e| e.to_string())?;
            std::fs::write(out, sealed).map_err(|e| format!("{out}: {e}"))?;
            println!("{}", token.encode().expose());
        }
        "dotenv" => {
            let mut text = String::from("# agent-init benchmark fixture\n");
            for (_, name, value) in LIVEKIT {
                text.push_str(&format!("{name}={value}\n"));
            }
            for (name, value) in &secrets {
                text.push_str(&format!("{name}={value}\n"));
            }
            std::fs::write(out, text).map_err(|e| format!("{out}: {e}"))?;
        }
        other => return Err(format!("unknown fixture kind {other:?}")),
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-fixtures: {e}");
            ExitCode::from(2)
        }
    }
}
