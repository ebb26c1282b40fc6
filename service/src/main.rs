//! The `agent-secrets` binary: dispatch to `serve` or a CLI verb, map the
//! error to its exit code (the classes of PROTOCOL.md §8).

use std::process::ExitCode;

const USAGE: &str = "\
usage: agent-secrets serve [--listen ADDR:PORT] [--data DIR] [--database URL]
                           [--tls-cert PEM --tls-key PEM] [--admin-key-file FILE]
                           [--concurrency N] [--queue N]
       agent-secrets create|update-secrets|secrets|list|revoke [options]
       agent-secrets --help | --version
";

fn main() -> ExitCode {
    let args: Vec<String> = match std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect::<Result<_, _>>()
    {
        Ok(a) => a,
        Err(_) => {
            return fail(agent_secrets::Error::Usage(
                "an argument is not UTF-8".into(),
            ))
        }
    };
    let result = match args.first().map(String::as_str) {
        Some("serve") => agent_secrets::serve::main(&args[1..]),
        Some(verb) if agent_secrets::cli::VERBS.contains(&verb) => {
            agent_secrets::cli::main(verb, &args[1..])
        }
        Some("-h" | "--help") => {
            print!("{USAGE}");
            Ok(0)
        }
        Some("-V" | "--version") => {
            println!("agent-secrets {}", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
        Some(other) => Err(agent_secrets::Error::Usage(format!(
            "unknown command {other:?}\n{USAGE}"
        ))),
        None => Err(agent_secrets::Error::Usage(format!("no command\n{USAGE}"))),
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(70)),
        Err(e) => fail(e),
    }
}

fn fail(e: agent_secrets::Error) -> ExitCode {
    eprintln!("agent-secrets: error: {e}");
    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(70))
}
