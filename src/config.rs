//! Configuration: the command line and agent-init's own environment, read once.
//!
//! After [`Config::parse`] returns, every flag and `AGENT_INIT_*` knob has
//! been checked (a bad one is exit 64 for flags, 78 for the environment), and
//! the bootstrap token, if any, has been loaded from `LIVEKIT_BOOTSTRAP_TOKEN`
//! or the file `LIVEKIT_BOOTSTRAP_TOKEN_FILE` names and parsed.

use crate::base::error::shown_arg;
use crate::base::error::{Error, Result};
use crate::base::log::Level;
use crate::base::sensitive::{SecretBytes, SecretString};
use crate::protocol::token::Token;
use crate::source::{FetchOptions, SecretsUrl};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default overall deadline for the fetch.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
use crate::protocol::bundle::DEFAULT_MAX_BUNDLE;

/// What agent-init was asked to do.
#[derive(Debug)]
pub enum Action {
    /// Assemble the environment and run the command (exec or supervise).
    Run,
    /// Print what would be injected, run nothing.
    List,
    /// Do everything up to the exec, run nothing.
    Check,
    /// Seal secrets into a bundle file: `seal`'s own arguments.
    Seal(SealArgs),
    Help,
    Version,
}

use crate::local::inputs::Inputs;
use crate::local::seal::{SealArgs, SealOptions};

/// Where the secrets come from: the bundle a bootstrap token opens, or the
/// local inputs. The token exists only in production, so nothing needs to
/// check that the two are not mixed, and it drops with its arm.
#[derive(Debug)]
pub enum Mode {
    /// A bootstrap token and the bundle it fetches and opens.
    Production {
        token: Token,
        fetch: FetchOptions,
        /// `--watch`: roll the agent when the bundle changes.
        watch: Option<WatchConfig>,
    },
    /// No token: dotenv files, `--secrets` and `--secret-mount`. For `seal`,
    /// `--help` and `--version` this is empty (seal's inputs are in its
    /// [`SealArgs`]).
    Local {
        inputs: Inputs,
        /// `PYTHON_DOTENV_DISABLED` is true: `.env` and `.env.local` are not
        /// read by default (an explicit `--secrets-file` still is).
        dotenv_disabled: bool,
    },
}

impl Mode {
    /// Production: the three `LIVEKIT_*` must come from the bundle.
    pub fn is_production(&self) -> bool {
        matches!(self, Mode::Production { .. })
    }
}

/// Everything agent-init needs to know, from flags and environment.
#[derive(Debug)]
pub struct Config {
    pub action: Action,
    pub command: Vec<OsString>,
    pub supervise: bool,
    /// Forward signals to the child alone, not its process group.
    pub signal_child_only: bool,
    pub require: Vec<String>,
    pub mode: Mode,
    /// `AGENT_INIT_SECRETS_DIR`: where file secrets go (see [`crate::files`]).
    pub secrets_dir: Option<OsString>,
    pub log_level: Level,
    /// agent-init's environment, minus the variables it never passes on.
    pub inherited: Vec<(OsString, SecretBytes)>,
}

/// How a running agent is replaced when its bundle changes (`--on-update`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUpdate {
    /// Drain the agent (one SIGTERM, then SIGKILL after the drain timeout),
    /// then start it again with the new environment.
    Restart,
    /// Drain the agent, then exit (status [`crate::launch::EXIT_UPDATED`]).
    Exit,
    /// Start the new generation, wait until it is ready, then drain the old one.
    Overlap,
}

/// The knobs of `--watch`.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// How often the source is checked (at least [`MIN_WATCH`]), plus jitter.
    pub every: Duration,
    pub on_update: OnUpdate,
    /// A roll starts after a random delay in `[0, spread]`.
    pub spread: Duration,
    /// How long a draining generation may take before it is killed.
    pub drain: Duration,
    /// `overlap`: the health ports the generations take turns on (`port`, `port + 1`).
    pub health_port: u16,
    /// `overlap`: how long after the new generation's first 200 the old one is stopped.
    pub settle: Duration,
    /// The token is read again from here at each check; never kept.
    pub token_file: PathBuf,
}

/// The flags of `--watch`, in the order of their `AGENT_INIT_*` variables.
const WATCH_FLAGS: [&str; 6] = [
    "--watch",
    "--on-update",
    "--rollout-spread",
    "--drain-timeout",
    "--health-port",
    "--overlap-settle",
];

/// The shortest `--watch` interval (PROTOCOL.md §4).
pub const MIN_WATCH: Duration = Duration::from_secs(5);
/// LiveKit's own drain timeout, in both SDKs.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(3600);

pub const USAGE: &str = "\
agent-init: the entrypoint of LiveKit agent containers

Fetches the agent's sealed secrets with a bootstrap token, opens and checks
them, merges in LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET, and
execs the command with the assembled environment. Without a token (local
development) it reads dotenv files and --secrets flags instead.

Usage:
  agent-init [OPTIONS] [--] COMMAND [ARGS...]
  agent-init --list | --check [OPTIONS] [[--] COMMAND [ARGS...]]
  agent-init seal [--secrets-file FILE]... [--secrets KEY=VALUE]... [--secret-mount [VAR=]PATH]...
                  [--token-file FILE] [--overwrite] [--remove NAME]... [--list [--json]] --out BUNDLE
  agent-init health [--port N]... [--timeout SECONDS]

Options:
  --supervise             stay as PID 1: forward signals, reap zombies (AGENT_INIT_SUPERVISE=1)
  --signal-child          with --supervise, signal the child alone, not its process group
                          (AGENT_INIT_SIGNAL_CHILD=1)
  --require NAME          NAME must be set and non-empty (repeatable; AGENT_INIT_REQUIRE=A,B)
  --secrets-file FILE     local mode: load a dotenv file (repeatable; later files win);
                          default: .env then .env.local from the working directory, when they
                          exist and PYTHON_DOTENV_DISABLED is not true (1, true, t, yes, y)
  --secrets KEY=VALUE     local mode: add one secret (repeatable; beats inherited variables and files)
  --secret-mount [VAR=]PATH
                          local mode: give the command this file as a file secret, as production
                          would: same name (the file's base name), VAR set to its path; at most
                          1 MiB (repeatable)
  --list                  print NAME<TAB>ORIGIN[<TAB>UPDATED_AT] for each variable the command
                          would get, never a value; run nothing
  --check                 do everything up to the exec, print a one-line summary, run nothing
  --watch S               supervise mode, token from a file: check the bundle every S seconds
                          (>= 5) and roll the agent when it changes (AGENT_INIT_WATCH)
  --on-update P           restart (default) | exit (drain, exit 75) | overlap (AGENT_INIT_ON_UPDATE)
  --rollout-spread S      random delay before a roll, 0..S s (AGENT_INIT_ROLLOUT_SPREAD)
  --drain-timeout S       SIGKILL a draining agent after S s (AGENT_INIT_DRAIN_TIMEOUT; 3600)
  --health-port N         overlap: AGENT_HTTP_PORT=N, N+1 in turn (AGENT_INIT_HEALTH_PORT; 8081)
  --overlap-settle S      overlap: wait S s after the first 200 (AGENT_INIT_OVERLAP_SETTLE; 0)
  -h, --help              this text
  -V, --version           the version

Local mode precedence, highest first: --secrets flags; inherited variables (docker run -e);
dotenv files, later over earlier. LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET
from files are used as the platform values. Dotenv syntax is python-dotenv's; a line
that is not an assignment, a comment or blank refuses the file (exit 65).

seal: seal the local inputs (--secrets-file files, --secrets over them, --secret-mount
files; not the inherited environment, which ${VAR} does not see either) into a bundle
for LIVEKIT_SECRETS_URL=file:///path, print its token, only the token, on stdout, then
write the bundle. With no input flag it reads .env, .env.local and .env.production
(later over earlier) from the working directory, and refuses to seal nothing (64).
With a token and an existing BUNDLE it updates it, as lk agent update-secrets does:
the given secrets are added or updated, every other one is kept with its dates.
  --out BUNDLE            where to write it (atomically, mode 0600; a new path or a file).
                          Without a token an existing BUNDLE is replaced only with --overwrite
  --token-file FILE       seal for (and update the bundle of) the token in FILE, not a fresh
                          one (or LIVEKIT_BOOTSTRAP_TOKEN / LIVEKIT_BOOTSTRAP_TOKEN_FILE)
  --token TOKEN           the same from the command line (visible to others; prefer a file)
  --secret-mount [VAR=]PATH
                          add the file as a file secret named by its base name (at most 1 MiB);
                          VAR receives its path where the agent runs (repeatable)
  --overwrite             replace all secrets with the given ones
  --remove NAME           delete this secret from the bundle (repeatable)
  --list                  print NAME<TAB>KIND<TAB>ORIGIN<TAB>CREATED_AT<TAB>UPDATED_AT for each
                          secret of the result, never a value; write nothing, print no token.
                          With a token, an existing BUNDLE and no input flag: the bundle as it is
  --json                  with --list: the same as JSON

health: GET http://127.0.0.1:PORT/ (a LiveKit worker's health server) for HEALTHCHECK
and exec probes; exit 0 when a port answers 200, 1 otherwise; one line on stderr.
  --port N                the port (repeatable: the first 200 wins; default 8081)
  --timeout SECONDS       the whole probe's deadline (default 2)

Environment:
  LIVEKIT_BOOTSTRAP_TOKEN       the bootstrap token (lkbt1.ID.KEY); never passed on
  LIVEKIT_BOOTSTRAP_TOKEN_FILE  a file holding the token; never passed on
  LIVEKIT_SECRETS_URL           https://..., http://loopback/..., or file:///path/to/bundle.json;
                                never passed on
  LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET
                                passed on; the bundle's livekit member overrides them
  AGENT_INIT_CA_FILE            extra trusted CA certificates (PEM), added to the built-in roots
  AGENT_INIT_TIMEOUT            overall fetch deadline in seconds (default 60)
  AGENT_INIT_MAX_BUNDLE         largest bundle in bytes (default 8388608)
  AGENT_INIT_LOG                error | warn | info (default) | debug
  AGENT_INIT_REQUIRE            comma-separated names that must be set
  AGENT_INIT_SECRETS_DIR        where file secrets are written (default /dev/shm/agent-init-UID;
                                outside a memory file system only when set here)
  AGENT_INIT_SUPERVISE          1 to supervise (see --supervise)
  AGENT_INIT_SIGNAL_CHILD       1 to signal the child alone (see --signal-child)
  HTTPS_PROXY, ALL_PROXY, NO_PROXY   honoured for the fetch, as curl does
  AGENT_INIT_* variables are never passed on.

Exit codes: 64 usage, 65 bundle or secrets refused, 69 service unavailable,
77 token refused, 78 configuration, 126 command not executable, 127 command
not found; otherwise the command's own status.
";

/// Seconds from a flag or variable: a number in `[min, 31 days]`.
fn seconds(what: &str, v: &OsString, min: f64) -> Result<Duration> {
    v.to_string_lossy()
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= min && *s <= 2_678_400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            Error::Usage(format!(
                "{what} must be a number of seconds, at least {min}"
            ))
        })
}

fn usage(msg: String) -> Error {
    Error::Usage(format!("{msg} (see agent-init --help)"))
}

/// An on/off variable such as `AGENT_INIT_SUPERVISE`: `1`, `true`, `yes`,
/// `on` turn it on, `0`, `false`, `no`, `off` or empty (or unset) leave it
/// off, in any ASCII case. Anything else is a 78 naming the variable, as an
/// unknown `AGENT_INIT_LOG` level is, rather than a silent "off".
fn switch(name: &str, v: Option<&OsString>) -> Result<bool> {
    let Some(v) = v else { return Ok(false) };
    let v = v.as_bytes().to_ascii_lowercase();
    match v.as_slice() {
        b"1" | b"true" | b"yes" | b"on" => Ok(true),
        b"" | b"0" | b"false" | b"no" | b"off" => Ok(false),
        _ => Err(Error::Config(format!(
            "{name} must be 1, true, yes or on, or 0, false, no or off"
        ))),
    }
}

/// Splits `KEY=VALUE` from a `--secrets` flag, checking the name and value
/// (§6). agent-secrets parses its own `--secrets` with it: one rule, one message.
pub fn secret_flag(arg: OsString) -> Result<(String, SecretBytes)> {
    secret_arg(&SecretBytes::new(arg.into_vec()))
}

/// [`secret_flag`] on an argument already in its zeroizing buffer.
fn secret_arg(bytes: &SecretBytes) -> Result<(String, SecretBytes)> {
    let b = bytes.expose();
    let eq = b
        .iter()
        .position(|&c| c == b'=')
        .ok_or_else(|| usage("--secrets takes KEY=VALUE".into()))?;
    let name = std::str::from_utf8(&b[..eq])
        .ok()
        .filter(|n| crate::protocol::rules::check_name(n).is_ok())
        .ok_or_else(|| {
            usage("--secrets: the name must be 1 to 70 ASCII letters, digits and _".into())
        })?
        .to_string();
    let value = std::str::from_utf8(&b[eq + 1..])
        .map_err(|_| Error::Refused(format!("--secrets {name}: value is not UTF-8")))?;
    crate::protocol::rules::check_value(value)
        .map_err(|why| Error::Refused(format!("--secrets {name}: {why}")))?;
    Ok((name, SecretBytes::new(value.as_bytes().to_vec())))
}

/// The token of `LIVEKIT_BOOTSTRAP_TOKEN` or of the file
/// `LIVEKIT_BOOTSTRAP_TOKEN_FILE` names, not yet parsed.
fn token_from_env(
    env: &[(OsString, SecretBytes)],
    env_get: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Option<SecretString>> {
    // The token goes from its zeroizing copy of the environment straight into
    // a `SecretString`, never through an `OsString` like the knobs.
    let token_env = env
        .iter()
        .find(|(n, v)| n.as_bytes() == b"LIVEKIT_BOOTSTRAP_TOKEN" && !v.is_empty())
        .map(|(_, v)| v);
    let token_file = env_get("LIVEKIT_BOOTSTRAP_TOKEN_FILE").filter(|v| !v.is_empty());
    match (token_env, token_file) {
        (Some(_), Some(_)) => Err(Error::Config(
            "both LIVEKIT_BOOTSTRAP_TOKEN and LIVEKIT_BOOTSTRAP_TOKEN_FILE are set; set one".into(),
        )),
        (Some(v), None) => Ok(Some(SecretString::new(
            String::from_utf8(v.expose().to_vec()).map_err(|_| {
                Error::Config("bootstrap token is malformed: it is not ASCII".into())
            })?,
        ))),
        (None, Some(path)) => read_token_file(
            "LIVEKIT_BOOTSTRAP_TOKEN_FILE",
            Path::new(&path),
            fetch_timeout(env_get)?,
        )
        .map(Some),
        (None, None) => Ok(None),
    }
}

/// Reads a token file (`what` names the variable or flag that gave it): at
/// most [`crate::protocol::token::MAX_TOKEN_FILE`] bytes, within `timeout` (a FIFO
/// with no writer or a hung mount is 78 once it passes).
/// Like ssh for a private key, warns when other users may read or write it;
/// group access is fine (Kubernetes mounts secrets for an `fsGroup`).
pub(crate) fn read_token_file(what: &str, path: &Path, timeout: Duration) -> Result<SecretString> {
    let (bytes, mode) =
        crate::source::read_config(what, path, crate::protocol::token::MAX_TOKEN_FILE, timeout)?;
    // Once per process: `--watch` re-reads the file at every check, and the
    // same line every few seconds would bury the log.
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if mode & 0o006 != 0 && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        let how = match mode & 0o006 {
            0o004 => "readable",
            0o002 => "writable",
            _ => "readable and writable",
        };
        crate::warn!(
            "{what} {}: the token file is {how} by other users (mode {:04o})",
            path.display(),
            mode & 0o7777
        );
    }
    let text = std::str::from_utf8(bytes.expose())
        .map_err(|_| Error::Config("bootstrap token is malformed: it is not ASCII".into()))?;
    Ok(SecretString::new(text.to_string()))
}

/// `AGENT_INIT_TIMEOUT`: the fetch deadline, which the token file's read is
/// held to as well.
fn fetch_timeout(env_get: &dyn Fn(&str) -> Option<OsString>) -> Result<Duration> {
    match env_get("AGENT_INIT_TIMEOUT") {
        None => Ok(DEFAULT_TIMEOUT),
        Some(v) => v
            .to_string_lossy()
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| {
                Error::Config("AGENT_INIT_TIMEOUT must be a number of seconds above 0".into())
            }),
    }
}

impl Config {
    /// Reads flags (without `argv[0]`) and the environment, both as `main`
    /// and [`crate::sys::read_environ`] give them: in zeroizing buffers.
    /// Only what is not secret leaves them as `OsString` (the command, file
    /// names, knob values); `--secrets` and `--token` values never do.
    pub fn parse(args: Vec<SecretBytes>, env: Vec<(OsString, SecretBytes)>) -> Result<Config> {
        let plain = |v: &SecretBytes| OsString::from_vec(v.expose().to_vec());
        // Knobs are read as `OsString` copies; the token never is (see
        // `token_from_env`).
        let env_get = |name: &str| -> Option<OsString> {
            env.iter()
                .find(|(n, _)| n.as_bytes() == name.as_bytes())
                .map(|(_, v)| OsString::from_vec(v.expose().to_vec()))
        };
        let level = match env_get("AGENT_INIT_LOG") {
            None => Level::Info,
            Some(v) => Level::parse(&v.to_string_lossy()).ok_or_else(|| {
                Error::Config("AGENT_INIT_LOG must be error, warn, info or debug".into())
            })?,
        };
        crate::base::log::set_level(level);

        let mut action = Action::Run;
        let mut supervise = switch(
            "AGENT_INIT_SUPERVISE",
            env_get("AGENT_INIT_SUPERVISE").as_ref(),
        )?;
        let mut signal_child_only = switch(
            "AGENT_INIT_SIGNAL_CHILD",
            env_get("AGENT_INIT_SIGNAL_CHILD").as_ref(),
        )?;
        let mut require: Vec<String> = env_get("AGENT_INIT_REQUIRE")
            .map(|v| {
                v.to_string_lossy()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        if let Some(bad) = require
            .iter()
            .find(|n| crate::protocol::rules::check_name(n).is_err())
        {
            return Err(Error::Config(format!(
                "AGENT_INIT_REQUIRE: {} is not a valid variable name",
                shown_arg(bad.as_bytes())
            )));
        }
        let dotenv_disabled = env_get("PYTHON_DOTENV_DISABLED")
            .is_some_and(|v| crate::local::dotenv::disabled_by(v.as_bytes()));
        // The watch knobs: flags over variables, checked once all are known.
        let mut knobs: Vec<(&str, Option<OsString>)> = [
            "AGENT_INIT_WATCH",
            "AGENT_INIT_ON_UPDATE",
            "AGENT_INIT_ROLLOUT_SPREAD",
            "AGENT_INIT_DRAIN_TIMEOUT",
            "AGENT_INIT_HEALTH_PORT",
            "AGENT_INIT_OVERLAP_SETTLE",
        ]
        .iter()
        .map(|n| (*n, env_get(n).filter(|v| !v.is_empty())))
        .collect();
        let mut secrets_files = Vec::new();
        let mut secrets_flags = Vec::new();
        let mut secret_mounts = Vec::new();
        let mut seal = SealOptions::default();
        let mut out = None;
        let mut seal_token = None;
        let mut seal_token_file = None;
        let mut command = Vec::new();

        let mut it = args.into_iter().peekable();
        let sealing = it.peek().is_some_and(|a| a.expose() == b"seal");
        if sealing {
            it.next();
        }
        while let Some(arg) = it.next() {
            let bytes = arg.expose();
            if bytes == b"--" {
                command.extend(it.by_ref().map(|a| plain(&a)));
                break;
            }
            if !bytes.starts_with(b"-") || bytes == b"-" {
                if sealing {
                    return Err(usage(format!(
                        "seal: unexpected argument {}",
                        shown_arg(bytes)
                    )));
                }
                command.push(plain(&arg));
                command.extend(it.by_ref().map(|a| plain(&a)));
                break;
            }
            // `--flag=value` and `--flag value`, split on bytes: an argument
            // need not be UTF-8.
            let (flag, inline) = match bytes.iter().position(|&b| b == b'=') {
                Some(eq) if bytes.starts_with(b"--") => (&bytes[..eq], Some(&bytes[eq + 1..])),
                _ => (bytes, None),
            };
            let flag = match std::str::from_utf8(flag) {
                Ok(f) => f,
                Err(_) => return Err(usage(format!("unknown option {}", shown_arg(flag)))),
            };
            type Args = std::iter::Peekable<std::vec::IntoIter<SecretBytes>>;
            // A flag's value, still in its zeroizing buffer; `value` for the
            // flags whose values are not secret.
            let secret_value = |it: &mut Args| -> Result<SecretBytes> {
                match inline {
                    Some(v) => Ok(SecretBytes::new(v.to_vec())),
                    None => it
                        .next()
                        .ok_or_else(|| usage(format!("{flag} needs a value"))),
                }
            };
            let value = |it: &mut Args| -> Result<OsString> { secret_value(it).map(|v| plain(&v)) };
            let switch = matches!(
                flag,
                "-h" | "--help"
                    | "-V"
                    | "--version"
                    | "--supervise"
                    | "--signal-child"
                    | "--list"
                    | "--check"
                    | "--overwrite"
                    | "--json"
            );
            if switch && inline.is_some() {
                return Err(usage(format!("{flag} takes no value")));
            }
            match flag {
                "-h" | "--help" => action = Action::Help,
                "-V" | "--version" => action = Action::Version,
                "--supervise" if !sealing => supervise = true,
                "--signal-child" if !sealing => signal_child_only = true,
                "--list" if sealing => seal.list = true,
                "--json" if sealing => seal.json = true,
                "--overwrite" if sealing => seal.overwrite = true,
                "--remove" if sealing => {
                    let n = value(&mut it)?;
                    let n = n
                        .to_str()
                        .filter(|n| crate::protocol::rules::check_file_name(n).is_ok())
                        .ok_or_else(|| {
                            usage(format!(
                                "--remove {} is not a secret's name",
                                shown_arg(n.as_bytes())
                            ))
                        })?;
                    seal.remove.push(n.to_string());
                }
                "--list" | "--check" if !sealing => {
                    let asked = if flag == "--list" {
                        Action::List
                    } else {
                        Action::Check
                    };
                    let other = matches!(
                        (&action, &asked),
                        (Action::List, Action::Check) | (Action::Check, Action::List)
                    );
                    if other {
                        return Err(usage("--list and --check exclude each other".into()));
                    }
                    action = asked;
                }
                "--require" if !sealing => {
                    let n = value(&mut it)?;
                    let n = n
                        .to_str()
                        .filter(|n| crate::protocol::rules::check_name(n).is_ok())
                        .ok_or_else(|| {
                            usage(format!(
                                "--require {} is not a valid variable name",
                                shown_arg(n.as_bytes())
                            ))
                        })?;
                    require.push(n.to_string());
                }
                "--secrets-file" => {
                    let file = value(&mut it)?;
                    if file.is_empty() {
                        return Err(usage("--secrets-file needs a file name".into()));
                    }
                    secrets_files.push(PathBuf::from(file));
                }
                "--secrets" => secrets_flags.push(secret_arg(&secret_value(&mut it)?)?),
                "--secret-mount" => {
                    secret_mounts.push(crate::local::inputs::parse_mount(&value(&mut it)?)?)
                }
                f if !sealing && WATCH_FLAGS.contains(&f) => {
                    let i = WATCH_FLAGS.iter().position(|f| *f == flag).unwrap_or(0);
                    knobs[i].0 = WATCH_FLAGS[i];
                    knobs[i].1 = Some(value(&mut it)?);
                }
                "--out" if sealing => out = Some(PathBuf::from(value(&mut it)?)),
                "--token" if sealing => {
                    let t = secret_value(&mut it)?;
                    let t = std::str::from_utf8(t.expose()).map_err(|_| {
                        Error::Config("bootstrap token is malformed: it is not ASCII".into())
                    })?;
                    seal_token = Some(SecretString::new(t.to_string()));
                }
                "--token-file" if sealing => {
                    let file = value(&mut it)?;
                    if file.is_empty() {
                        return Err(usage("--token-file needs a file name".into()));
                    }
                    seal_token_file = Some(PathBuf::from(file));
                }
                _ => {
                    return Err(usage(format!(
                        "unknown option {}",
                        shown_arg(flag.as_bytes())
                    )))
                }
            }
        }
        // The token: for `seal`, --token or --token-file, else the
        // environment as for a run; `seal` keeps it in its action.
        let token_text = match (seal_token, seal_token_file) {
            (Some(_), Some(_)) => {
                return Err(usage("--token and --token-file exclude each other".into()))
            }
            (Some(t), None) => Some(t),
            (None, Some(path)) => Some(read_token_file(
                "--token-file",
                &path,
                fetch_timeout(&env_get)?,
            )?),
            (None, None) if matches!(action, Action::Help | Action::Version) => None,
            (None, None) => token_from_env(&env, &env_get)?,
        };
        let mut token = None;
        if sealing && !matches!(action, Action::Help | Action::Version) {
            let out = out.ok_or_else(|| usage("seal needs --out BUNDLE".into()))?;
            if seal.json && !seal.list {
                return Err(usage("--json goes with --list".into()));
            }
            action = Action::Seal(SealArgs {
                out,
                token: token_text,
                options: std::mem::take(&mut seal),
                inputs: Inputs {
                    files: std::mem::take(&mut secrets_files),
                    flags: std::mem::take(&mut secrets_flags),
                    mounts: std::mem::take(&mut secret_mounts),
                },
            });
        } else if let Some(t) = token_text {
            token = Some(Token::parse(t.expose())?);
        }
        if matches!(action, Action::Run) && command.is_empty() {
            return Err(usage("no command given".into()));
        }

        let token_env = env
            .iter()
            .any(|(n, v)| n.as_bytes() == b"LIVEKIT_BOOTSTRAP_TOKEN" && !v.is_empty());
        let token_file = env_get("LIVEKIT_BOOTSTRAP_TOKEN_FILE").filter(|v| !v.is_empty());
        let watch = match &knobs[0].1 {
            Some(every) if matches!(action, Action::Run) => {
                let get = |i: usize| knobs[i].1.as_ref();
                let every = seconds(knobs[0].0, every, MIN_WATCH.as_secs_f64())?;
                let on_update = match get(1).map(|v| v.to_string_lossy().trim().to_string()) {
                    None => OnUpdate::Restart,
                    Some(p) if p == "restart" => OnUpdate::Restart,
                    Some(p) if p == "exit" => OnUpdate::Exit,
                    Some(p) if p == "overlap" => OnUpdate::Overlap,
                    Some(_) => {
                        return Err(Error::Usage(format!(
                            "{} must be restart, exit or overlap",
                            knobs[1].0
                        )))
                    }
                };
                let secs = |i: usize, default: Duration| {
                    get(i).map_or(Ok(default), |v| seconds(knobs[i].0, v, 0.0))
                };
                let health_port = match get(4) {
                    None => crate::health::DEFAULT_PORT,
                    Some(v) => v
                        .to_string_lossy()
                        .trim()
                        .parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0 && *p < u16::MAX)
                        .ok_or_else(|| {
                            Error::Usage(format!("{} must be a port number", knobs[4].0))
                        })?,
                };
                if !supervise {
                    return Err(usage(
                        "--watch needs --supervise (AGENT_INIT_SUPERVISE=1)".into(),
                    ));
                }
                if token_env {
                    return Err(Error::Config(
                        "--watch reads the token again at each check, so it must come from LIVEKIT_BOOTSTRAP_TOKEN_FILE, not LIVEKIT_BOOTSTRAP_TOKEN".into(),
                    ));
                }
                let token_file = token_file.clone().ok_or_else(|| {
                    Error::Config(
                        "--watch needs a bundle to watch: LIVEKIT_BOOTSTRAP_TOKEN_FILE and LIVEKIT_SECRETS_URL".into(),
                    )
                })?;
                Some(WatchConfig {
                    every,
                    on_update,
                    spread: secs(2, Duration::ZERO)?,
                    drain: secs(3, DEFAULT_DRAIN)?,
                    health_port,
                    settle: secs(5, Duration::ZERO)?,
                    token_file: PathBuf::from(token_file),
                })
            }
            _ => None,
        };

        let url = env_get("LIVEKIT_SECRETS_URL").filter(|v| !v.is_empty());
        let fetch = match (&token, url) {
            (Some(_), Some(url)) => {
                // A URL is ASCII; mangling a non-UTF-8 byte into U+FFFD would
                // fetch a path nobody named. A file:// path with such bytes is
                // written percent-encoded.
                let url = url.to_str().ok_or_else(|| {
                    Error::Config(
                        "LIVEKIT_SECRETS_URL is not UTF-8 (percent-encode the bytes of a file:// path)"
                            .into(),
                    )
                })?;
                let url = SecretsUrl::parse(url)?;
                let deadline = fetch_timeout(&env_get)?;
                let max_bundle = match env_get("AGENT_INIT_MAX_BUNDLE") {
                    None => DEFAULT_MAX_BUNDLE,
                    Some(v) => v
                        .to_string_lossy()
                        .trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| {
                            Error::Config("AGENT_INIT_MAX_BUNDLE must be a number of bytes above 0".into())
                        })?,
                };
                Some(FetchOptions {
                    url,
                    ca_file: env_get("AGENT_INIT_CA_FILE")
                        .filter(|v| !v.is_empty())
                        .map(PathBuf::from),
                    deadline,
                    max_bundle,
                })
            }
            (Some(_), None) => {
                return Err(Error::Config(
                    "a bootstrap token is set but LIVEKIT_SECRETS_URL is not".into(),
                ))
            }
            (None, Some(_)) if matches!(action, Action::Run | Action::List | Action::Check) => {
                return Err(Error::Config(
                    "LIVEKIT_SECRETS_URL is set but no bootstrap token (LIVEKIT_BOOTSTRAP_TOKEN or LIVEKIT_BOOTSTRAP_TOKEN_FILE)".into(),
                ))
            }
            (None, _) => None,
        };
        if token.is_some()
            && (!secrets_files.is_empty() || !secrets_flags.is_empty() || !secret_mounts.is_empty())
        {
            return Err(usage(
                "--secrets-file, --secrets and --secret-mount are for local mode; with a bootstrap token the bundle is the only source".into(),
            ));
        }
        let secrets_dir = env_get(crate::files::DIR_VAR).filter(|v| !v.is_empty());
        let mode = match (token, fetch) {
            (Some(token), Some(fetch)) => Mode::Production {
                token,
                fetch,
                watch,
            },
            _ => Mode::Local {
                inputs: Inputs {
                    files: secrets_files,
                    flags: secrets_flags,
                    mounts: secret_mounts,
                },
                dotenv_disabled,
            },
        };

        let inherited = env
            .into_iter()
            .filter(|(n, _)| !n.is_empty() && !crate::protocol::rules::is_stripped(n))
            .collect();
        Ok(Config {
            action,
            command,
            supervise,
            signal_child_only,
            require,
            mode,
            secrets_dir,
            log_level: level,
            inherited,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "lkbt1.oKGio6SlpqeoqaqrrK2urw.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }
    fn argv(v: &[&str]) -> Vec<SecretBytes> {
        v.iter()
            .map(|a| SecretBytes::new(a.as_bytes().to_vec()))
            .collect()
    }
    fn envs(v: &[(&str, &str)]) -> Vec<(OsString, SecretBytes)> {
        v.iter()
            .map(|(a, b)| (a.into(), SecretBytes::new(b.as_bytes().to_vec())))
            .collect()
    }
    /// The local inputs of a config that must be in local mode.
    fn local(c: &Config) -> (&Inputs, bool) {
        match &c.mode {
            Mode::Local {
                inputs,
                dotenv_disabled,
            } => (inputs, *dotenv_disabled),
            other => panic!("not local: {other:?}"),
        }
    }
    /// The fetch and watch of a config that must be in production mode.
    fn production(c: Config) -> (FetchOptions, Option<WatchConfig>) {
        match c.mode {
            Mode::Production { fetch, watch, .. } => (fetch, watch),
            other => panic!("not production: {other:?}"),
        }
    }
    fn seal_args(c: Config) -> SealArgs {
        match c.action {
            Action::Seal(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn command_follows_options_or_double_dash() {
        let c = Config::parse(argv(&["--supervise", "python", "-u", "agent.py"]), vec![]).unwrap();
        assert!(c.supervise);
        assert_eq!(c.command, os(&["python", "-u", "agent.py"]));
        let c = Config::parse(argv(&["--", "--weird", "x"]), vec![]).unwrap();
        assert_eq!(c.command, os(&["--weird", "x"]));
    }

    #[test]
    fn on_off_variables_accept_the_usual_spellings_and_refuse_others_with_78() {
        for (name, field) in [
            (
                "AGENT_INIT_SUPERVISE",
                (|c: &Config| c.supervise) as fn(&Config) -> bool,
            ),
            ("AGENT_INIT_SIGNAL_CHILD", |c: &Config| c.signal_child_only),
        ] {
            for (value, on) in [
                ("1", true),
                ("true", true),
                ("Yes", true),
                ("ON", true),
                ("0", false),
                ("FALSE", false),
                ("no", false),
                ("Off", false),
                ("", false),
            ] {
                let c = Config::parse(argv(&["true"]), envs(&[(name, value)])).unwrap();
                assert_eq!(field(&c), on, "{name}={value}");
            }
            for value in ["maybe", "2", "enabled", "1 "] {
                let e = Config::parse(argv(&["true"]), envs(&[(name, value)])).unwrap_err();
                assert_eq!(e.exit_code(), 78, "{name}={value}: {e}");
                assert!(e.to_string().contains(name), "{e}");
                assert!(!e.to_string().contains(value), "{e}");
            }
        }
    }

    #[test]
    fn bad_command_lines_exit_64() {
        for args in [
            &["--bogus", "x"][..],
            &[][..],
            &["--require"][..],
            &["--secrets", "NOEQUALS", "x"][..],
            &["--require", "A-B", "x"][..],
            &["--list=yes"][..],
            &["--supervise=0", "x"][..],
            &["--list", "--check"][..],
            &["--secrets-file=", "x"][..],
            &["seal", "--out", "b.json", "--json"][..],
            &["seal", "--out", "b.json", "--remove", "A B"][..],
            &["seal", "--out", "b.json", "--overwrite=yes"][..],
            &["seal", "--out", "b.json", "cmd"][..],
        ] {
            let e = Config::parse(argv(args), vec![]).unwrap_err();
            assert_eq!(e.exit_code(), 64, "{args:?}");
        }
    }

    #[test]
    fn a_non_utf8_flag_is_a_usage_error_not_a_panic() {
        for arg in [
            &b"--\xff=x"[..],
            b"--\xff\xff\xff\xff=x",
            b"--x\xff",
            b"-\xff",
        ] {
            for seal in [false, true] {
                let mut args = if seal { argv(&["seal"]) } else { vec![] };
                args.push(SecretBytes::new(arg.to_vec()));
                args.extend(argv(&["--", "true"]));
                let e = Config::parse(args, vec![]).unwrap_err();
                assert_eq!(e.exit_code(), 64, "{arg:?}: {e}");
            }
        }
        // A value may be anything: only the flag's name must be UTF-8.
        let c = Config::parse(
            vec![
                SecretBytes::new(b"--secrets-file=\xff.env".to_vec()),
                SecretBytes::new(b"true".to_vec()),
            ],
            vec![],
        )
        .unwrap();
        assert_eq!(local(&c).0.files[0].as_os_str().as_bytes(), b"\xff.env");
    }

    #[test]
    fn messages_show_a_misplaced_name_value_or_token_by_name_or_id_only() {
        for args in [
            &["-sOPENAI_API_KEY=sk-zq-value", "true"][..],
            &["--bogus=sk-zq-value", "true"][..],
            &["--require", "A=sk-zq-value", "true"][..],
            &["seal", "--out", "b", "OPENAI_API_KEY=sk-zq-value"][..],
            &["seal", "--out", "b", TOKEN][..],
        ] {
            let e = Config::parse(argv(args), vec![]).unwrap_err();
            assert_eq!(e.exit_code(), 64, "{args:?}");
            let m = e.to_string();
            assert!(!m.contains("sk-zq-value") && !m.contains("AAECAw"), "{m}");
        }
        let e = Config::parse(argv(&["seal", "--out", "b", TOKEN]), vec![]).unwrap_err();
        assert!(e.to_string().contains("oKGio6SlpqeoqaqrrK2urw"), "{e}");
    }

    #[test]
    fn agent_init_require_names_are_checked_like_require_flags() {
        for bad in ["A-B", "A,B C", "OPENAI_API_KEY=sk-zq-value"] {
            let e =
                Config::parse(argv(&["true"]), envs(&[("AGENT_INIT_REQUIRE", bad)])).unwrap_err();
            assert_eq!(e.exit_code(), 78, "{bad}: {e}");
            assert!(e.to_string().starts_with("AGENT_INIT_REQUIRE: "), "{e}");
            assert!(!e.to_string().contains("sk-zq-value"), "{e}");
        }
    }

    #[test]
    fn python_dotenv_disabled_is_read_from_the_environment() {
        let parse = |v: &str| {
            Config::parse(argv(&["true"]), envs(&[("PYTHON_DOTENV_DISABLED", v)]))
                .map(|c| local(&c).1)
                .unwrap()
        };
        assert!(parse("1") && parse("yes") && parse("TRUE"));
        assert!(!parse("0") && !parse("") && !parse("on"));
        assert!(!local(&Config::parse(argv(&["true"]), vec![]).unwrap()).1);
    }

    #[test]
    fn seal_reads_its_token_from_a_flag_a_file_or_the_environment() {
        let dir = std::env::temp_dir().join(format!("agent-init-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("agent.token");
        std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
        let token_of = |c: Config| seal_args(c).token.map(|t| t.expose().trim().to_string());
        let f = file.to_str().unwrap();
        let c = Config::parse(argv(&["seal", "--token-file", f, "--out", "b"]), vec![]).unwrap();
        assert_eq!(token_of(c).as_deref(), Some(TOKEN));
        let c = Config::parse(
            argv(&["seal", "--out", "b"]),
            envs(&[("LIVEKIT_BOOTSTRAP_TOKEN_FILE", f)]),
        )
        .unwrap();
        assert_eq!(token_of(c).as_deref(), Some(TOKEN));
        let c = Config::parse(
            argv(&["seal", "--out", "b"]),
            envs(&[
                ("LIVEKIT_BOOTSTRAP_TOKEN", TOKEN),
                ("LIVEKIT_SECRETS_URL", "https://x"),
            ]),
        )
        .unwrap();
        // The token is seal's: the config is not in production mode.
        assert!(local(&c).0.is_empty());
        assert_eq!(token_of(c).as_deref(), Some(TOKEN));
        let e = Config::parse(
            argv(&["seal", "--token", TOKEN, "--token-file", f, "--out", "b"]),
            vec![],
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 64);
        let missing = dir.join("missing").to_str().unwrap().to_string();
        let e = Config::parse(
            argv(&["seal", "--token-file", &missing, "--out", "b"]),
            vec![],
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 78);
        assert!(e.to_string().starts_with("--token-file "), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn token_and_url_from_environment_and_are_stripped() {
        let c = Config::parse(
            argv(&["true"]),
            envs(&[
                ("LIVEKIT_BOOTSTRAP_TOKEN", TOKEN),
                ("LIVEKIT_SECRETS_URL", "file:///b.json"),
                ("AGENT_INIT_TIMEOUT", "2.5"),
                ("KEEP", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(c.inherited.len(), 1);
        assert_eq!(c.inherited[0].0, "KEEP");
        let (f, watch) = production(c);
        assert_eq!(f.deadline, Duration::from_millis(2500));
        assert!(watch.is_none());
    }

    #[test]
    fn a_non_utf8_secrets_url_is_a_configuration_error_not_a_mangled_path() {
        let env = vec![
            (
                OsString::from("LIVEKIT_BOOTSTRAP_TOKEN"),
                SecretBytes::new(TOKEN.as_bytes().to_vec()),
            ),
            (
                OsString::from("LIVEKIT_SECRETS_URL"),
                SecretBytes::new(b"file:///b\xff.json".to_vec()),
            ),
        ];
        let e = Config::parse(argv(&["true"]), env).unwrap_err();
        assert_eq!(e.exit_code(), 78);
        assert!(
            e.to_string().contains("LIVEKIT_SECRETS_URL is not UTF-8"),
            "{e}"
        );
    }

    #[test]
    fn configuration_mistakes_exit_78() {
        let cases: Vec<Vec<(&str, &str)>> = vec![
            vec![("LIVEKIT_BOOTSTRAP_TOKEN", TOKEN)],
            vec![("LIVEKIT_SECRETS_URL", "https://x")],
            vec![
                ("LIVEKIT_BOOTSTRAP_TOKEN", "lkbt1.nope"),
                ("LIVEKIT_SECRETS_URL", "https://x"),
            ],
            vec![
                ("LIVEKIT_BOOTSTRAP_TOKEN", TOKEN),
                ("LIVEKIT_SECRETS_URL", "http://example.com"),
            ],
            vec![
                ("LIVEKIT_BOOTSTRAP_TOKEN", TOKEN),
                ("LIVEKIT_BOOTSTRAP_TOKEN_FILE", "/t"),
                ("LIVEKIT_SECRETS_URL", "https://x"),
            ],
            vec![
                ("LIVEKIT_BOOTSTRAP_TOKEN_FILE", "/nonexistent/token"),
                ("LIVEKIT_SECRETS_URL", "https://x"),
            ],
            vec![
                ("LIVEKIT_BOOTSTRAP_TOKEN", TOKEN),
                ("LIVEKIT_SECRETS_URL", "https://x"),
                ("AGENT_INIT_TIMEOUT", "soon"),
            ],
            vec![
                ("LIVEKIT_BOOTSTRAP_TOKEN", TOKEN),
                ("LIVEKIT_SECRETS_URL", "https://x"),
                ("AGENT_INIT_MAX_BUNDLE", "-1"),
            ],
            vec![("AGENT_INIT_LOG", "chatty")],
        ];
        for env in cases {
            let e = Config::parse(argv(&["true"]), envs(&env)).unwrap_err();
            assert_eq!(e.exit_code(), 78, "{env:?}: {e}");
            assert!(!e.to_string().contains("AAECAw"), "{e}");
        }
    }

    #[test]
    fn watch_needs_supervise_and_a_token_file_and_takes_flags_over_variables() {
        let dir = std::env::temp_dir().join(format!("agent-init-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, TOKEN).unwrap();
        let file = file.to_string_lossy().into_owned();
        let base = [
            ("LIVEKIT_BOOTSTRAP_TOKEN_FILE", file.as_str()),
            ("LIVEKIT_SECRETS_URL", "file:///b.json"),
            ("AGENT_INIT_ON_UPDATE", "exit"),
            ("AGENT_INIT_DRAIN_TIMEOUT", "30"),
        ];
        let c = Config::parse(
            argv(&["--supervise", "--watch", "5", "--on-update=overlap", "true"]),
            envs(&base),
        )
        .unwrap();
        let w = production(c).1.unwrap();
        assert_eq!(w.every, Duration::from_secs(5));
        assert_eq!(w.on_update, OnUpdate::Overlap);
        assert_eq!(w.drain, Duration::from_secs(30));
        assert_eq!(w.health_port, 8081);
        assert_eq!(w.spread, Duration::ZERO);

        let mut with_watch = base.to_vec();
        with_watch.push(("AGENT_INIT_WATCH", "60"));
        let c = Config::parse(argv(&["--supervise", "true"]), envs(&with_watch)).unwrap();
        assert_eq!(production(c).1.unwrap().on_update, OnUpdate::Exit);

        // Not without --supervise, never more often than every 5 s, known policies only.
        for args in [
            &["--watch", "5", "true"][..],
            &["--supervise", "--watch", "4.9", "true"][..],
            &[
                "--supervise",
                "--watch",
                "5",
                "--on-update",
                "reload",
                "true",
            ][..],
            &[
                "--supervise",
                "--watch",
                "5",
                "--health-port",
                "65535",
                "true",
            ][..],
        ] {
            let e = Config::parse(argv(args), envs(&base)).unwrap_err();
            assert_eq!(e.exit_code(), 64, "{args:?}: {e}");
        }
        // The token in the environment is wiped at start: it cannot be read again.
        let e = Config::parse(
            argv(&["--supervise", "--watch", "5", "true"]),
            envs(&[
                ("LIVEKIT_BOOTSTRAP_TOKEN", TOKEN),
                ("LIVEKIT_SECRETS_URL", "file:///b.json"),
            ]),
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 78);
        assert!(
            e.to_string().contains("LIVEKIT_BOOTSTRAP_TOKEN_FILE"),
            "{e}"
        );
        // Local mode has no bundle to watch.
        let e = Config::parse(argv(&["--supervise", "--watch", "5", "true"]), vec![]).unwrap_err();
        assert_eq!(e.exit_code(), 78);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn require_comes_from_flag_and_environment() {
        let c = Config::parse(
            argv(&["--require", "A", "--require=B", "true"]),
            envs(&[("AGENT_INIT_REQUIRE", "C, D,")]),
        )
        .unwrap();
        assert_eq!(c.require, ["C", "D", "A", "B"]);
    }

    #[test]
    fn seal_subcommand_takes_its_own_flags() {
        let c = Config::parse(
            argv(&[
                "seal",
                "--secrets",
                "A=b=c",
                "--secrets-file",
                "x.env",
                "--out",
                "b.json",
            ]),
            vec![],
        )
        .unwrap();
        let args = seal_args(c);
        assert_eq!(args.out.as_os_str(), "b.json");
        assert!(args.token.is_none());
        assert_eq!(args.inputs.files, [PathBuf::from("x.env")]);
        assert_eq!(args.inputs.flags[0].0, "A");
        assert_eq!(args.inputs.flags[0].1.expose(), b"b=c");
        assert_eq!(
            Config::parse(argv(&["seal"]), vec![])
                .unwrap_err()
                .exit_code(),
            64
        );
    }

    #[test]
    fn seal_token_flag_is_kept_secret_and_beats_an_inherited_token() {
        let c = Config::parse(
            argv(&["seal", "--token", TOKEN, "--out=b.json"]),
            envs(&[("LIVEKIT_BOOTSTRAP_TOKEN", "lkbt1.other")]),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("AAECAw"));
        assert!(local(&c).0.is_empty());
        let t = seal_args(c).token.unwrap();
        assert_eq!(t.expose(), TOKEN);
    }

    #[test]
    fn list_and_check_need_no_command_and_repeat_harmlessly() {
        let c = Config::parse(argv(&["--list", "--list"]), vec![]).unwrap();
        assert!(matches!(c.action, Action::List), "{:?}", c.action);
        assert!(c.command.is_empty());
        let c = Config::parse(argv(&["--check", "--", "python", "agent.py"]), vec![]).unwrap();
        assert!(matches!(c.action, Action::Check), "{:?}", c.action);
        assert_eq!(c.command, os(&["python", "agent.py"]));
    }

    #[test]
    fn secrets_files_keep_their_order() {
        let c = Config::parse(
            argv(&["--secrets-file", "a.env", "--secrets-file=b.env", "true"]),
            vec![],
        )
        .unwrap();
        assert_eq!(
            local(&c).0.files,
            [PathBuf::from("a.env"), PathBuf::from("b.env")]
        );
    }
}
