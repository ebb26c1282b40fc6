//! Configuration: the command line and agent-init's own environment, read once.
//!
//! After [`Invocation::parse`] returns, every flag and `AGENT_INIT_*` knob
//! has been checked (a bad one is exit 64 for flags, 78 for the
//! environment), and the bootstrap token, if any, has been loaded from
//! `LIVEKIT_BOOTSTRAP_TOKEN` or the file `LIVEKIT_BOOTSTRAP_TOKEN_FILE` names
//! and parsed. The [`Invocation`] says what the command line carries: a run,
//! `--list` or `--check` its [`Config`] (mode and inherited environment),
//! `seal` its [`SealArgs`], `--help` and `--version` nothing.
//!
//! The parse is small steps, each a function with its own tests: the
//! `AGENT_INIT_*` knobs ([`Knobs::from_env`]), the command line against the
//! one option table [`OPTIONS`] ([`Flags::parse`], no environment), the
//! token, and the [`Mode`] with its checks ([`Invocation::new`]). The same table
//! prints `--help` ([`usage`]) and finds the secret values that are wiped
//! from the argument block ([`secret_arg_tails`]). `AGENT_INIT_LOG` is read
//! by [`log_level`], which `run` calls first: parsing sets nothing global.

use crate::base::error::shown_arg;
use crate::base::error::{Error, Result};
use crate::base::log::Level;
use crate::base::sensitive::{SecretBytes, SecretString};
use crate::base::time::parse_seconds;
use crate::health::Probe;
use crate::launch::{OnUpdate, WatchConfig, DEFAULT_DRAIN, MIN_WATCH};
use crate::local::inputs::Inputs;
use crate::local::seal::{SealArgs, SealOptions};
use crate::protocol::bundle::DEFAULT_MAX_BUNDLE;
use crate::protocol::token::Token;
use crate::source::{read_token_file, token_text, FetchOptions, SecretsUrl};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default overall deadline for the fetch.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// What a command line asks for. Only a run, `--list` and `--check` read
/// the mode and keep the inherited environment ([`Config`]); `seal` has its
/// own arguments, and `--help` and `--version` carry nothing.
#[derive(Debug)]
pub enum Invocation {
    Help,
    Version,
    /// Seal secrets into a bundle file: `seal`'s own arguments.
    Seal(SealArgs),
    /// A run, `--list` or `--check`.
    Run(Config),
}

/// What a [`Config`] is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Assemble the environment and run the command (exec or supervise).
    Run,
    /// Print what would be injected, run nothing.
    List,
    /// Do everything up to the exec, run nothing.
    Check,
}

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
    /// No token: dotenv files, `--secrets` and `--secret-mount`.
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

/// A run, `--list` or `--check`: everything it needs to know, from flags
/// and environment.
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
    /// agent-init's environment, minus the variables it never passes on.
    pub inherited: Vec<(OsString, SecretBytes)>,
}

// ---------------------------------------------------------------------------
// The option table

/// Which command line an option belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum For {
    Run,
    Seal,
    /// A run and `seal`.
    Both,
    /// `agent-init health`, which shares none of the others' options.
    Health,
}

impl Opt {
    fn is(&self, name: &str) -> bool {
        self.name == name
            || matches!((name.as_bytes(), self.short), ([b'-', c], Some(s)) if char::from(*c) == s)
    }
}

impl For {
    fn has(self, command: For) -> bool {
        self == For::Both || self == command
    }
}

/// What follows an option's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takes {
    /// A switch: `--flag`, never `--flag=value`.
    Nothing,
    /// A value that is no secret: a name, a file, a number.
    Value,
    /// A secret value, wiped whole from the argument block (`--token`).
    Secret,
    /// `NAME=VALUE` with a secret VALUE; the name stays (`--secrets`).
    NamedSecret,
}

/// The `--watch` knobs, in the order of [`WatchKnobs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Knob {
    Every,
    OnUpdate,
    Spread,
    Drain,
    HealthPort,
    Settle,
}

/// What the parser does with an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flag {
    Help,
    Version,
    Supervise,
    SignalChild,
    Require,
    SecretsFile,
    Secrets,
    SecretMount,
    List,
    Check,
    Watch(Knob),
    Out,
    TokenFile,
    Token,
    Overwrite,
    Remove,
    SealList,
    Json,
    Port,
    ProbeTimeout,
}

/// One option: its names, what follows it, where it is accepted, the
/// variable that sets it too, and its `--help` text (continuation lines
/// after `\n`; empty: not listed in that command's part of the help).
#[derive(Debug)]
struct Opt {
    /// Its name, and a one-letter one (`-h` for `--help`).
    name: &'static str,
    short: Option<char>,
    /// The value's name in `--help` (`FILE`); empty for a switch.
    value: &'static str,
    takes: Takes,
    commands: For,
    env: Option<&'static str>,
    help: &'static str,
    flag: Flag,
}

/// Every option agent-init takes, in `--help` order: those of a run (and the
/// ones it shares with `seal`) under "Options:", then `seal`'s own.
const OPTIONS: &[Opt] = &[
    Opt {
        name: "--supervise",
        short: None,
        value: "",
        takes: Takes::Nothing,
        commands: For::Run,
        env: Some(SUPERVISE_VAR),
        help: "stay as PID 1: forward signals, reap zombies (AGENT_INIT_SUPERVISE=1)",
        flag: Flag::Supervise,
    },
    Opt {
        name: "--signal-child",
        short: None,
        value: "",
        takes: Takes::Nothing,
        commands: For::Run,
        env: Some(SIGNAL_CHILD_VAR),
        help: "with --supervise, signal the child alone, not its process group\n\
               (AGENT_INIT_SIGNAL_CHILD=1)",
        flag: Flag::SignalChild,
    },
    Opt {
        name: "--require",
        short: None,
        value: "NAME",
        takes: Takes::Value,
        commands: For::Run,
        env: Some(REQUIRE_VAR),
        help: "NAME must be set and non-empty (repeatable; AGENT_INIT_REQUIRE=A,B)",
        flag: Flag::Require,
    },
    Opt {
        name: "--secrets-file",
        short: None,
        value: "FILE",
        takes: Takes::Value,
        commands: For::Both,
        env: None,
        help: "local mode: load a dotenv file (repeatable; later files win);\n\
               default: .env then .env.local from the working directory, when they\n\
               exist and PYTHON_DOTENV_DISABLED is not true (1, true, t, yes, y)",
        flag: Flag::SecretsFile,
    },
    Opt {
        name: "--secrets",
        short: None,
        value: "KEY=VALUE",
        takes: Takes::NamedSecret,
        commands: For::Both,
        env: None,
        help: "local mode: add one secret (repeatable; beats inherited variables and files)",
        flag: Flag::Secrets,
    },
    Opt {
        name: "--secret-mount",
        short: None,
        value: "[VAR=]PATH",
        takes: Takes::Value,
        commands: For::Run,
        env: None,
        help: "local mode: give the command this file as a file secret, as production\n\
               would: same name (the file's base name), VAR set to its path; at most\n\
               1 MiB (repeatable)",
        flag: Flag::SecretMount,
    },
    Opt {
        name: "--list",
        short: None,
        value: "",
        takes: Takes::Nothing,
        commands: For::Run,
        env: None,
        help: "print NAME<TAB>ORIGIN[<TAB>UPDATED_AT] for each variable the command\n\
               would get, never a value; run nothing",
        flag: Flag::List,
    },
    Opt {
        name: "--check",
        short: None,
        value: "",
        takes: Takes::Nothing,
        commands: For::Run,
        env: None,
        help: "do everything up to the exec, print a one-line summary, run nothing",
        flag: Flag::Check,
    },
    Opt {
        name: "--watch",
        short: None,
        value: "S",
        takes: Takes::Value,
        commands: For::Run,
        env: Some("AGENT_INIT_WATCH"),
        help: "supervise mode, token from a file: check the bundle every S seconds\n\
               (>= 5) and roll the agent when it changes (AGENT_INIT_WATCH)",
        flag: Flag::Watch(Knob::Every),
    },
    Opt {
        name: "--on-update",
        short: None,
        value: "P",
        takes: Takes::Value,
        commands: For::Run,
        env: Some("AGENT_INIT_ON_UPDATE"),
        help: "restart (default) | exit (drain, exit 75) | overlap (AGENT_INIT_ON_UPDATE)",
        flag: Flag::Watch(Knob::OnUpdate),
    },
    Opt {
        name: "--rollout-spread",
        short: None,
        value: "S",
        takes: Takes::Value,
        commands: For::Run,
        env: Some("AGENT_INIT_ROLLOUT_SPREAD"),
        help: "random delay before a roll, 0..S s (AGENT_INIT_ROLLOUT_SPREAD)",
        flag: Flag::Watch(Knob::Spread),
    },
    Opt {
        name: "--drain-timeout",
        short: None,
        value: "S",
        takes: Takes::Value,
        commands: For::Run,
        env: Some("AGENT_INIT_DRAIN_TIMEOUT"),
        help: "SIGKILL a draining agent after S s (AGENT_INIT_DRAIN_TIMEOUT; 3600)",
        flag: Flag::Watch(Knob::Drain),
    },
    Opt {
        name: "--health-port",
        short: None,
        value: "N",
        takes: Takes::Value,
        commands: For::Run,
        env: Some("AGENT_INIT_HEALTH_PORT"),
        help: "overlap: AGENT_HTTP_PORT=N, N+1 in turn (AGENT_INIT_HEALTH_PORT; 8081)",
        flag: Flag::Watch(Knob::HealthPort),
    },
    Opt {
        name: "--overlap-settle",
        short: None,
        value: "S",
        takes: Takes::Value,
        commands: For::Run,
        env: Some("AGENT_INIT_OVERLAP_SETTLE"),
        help: "overlap: wait S s after the first 200 (AGENT_INIT_OVERLAP_SETTLE; 0)",
        flag: Flag::Watch(Knob::Settle),
    },
    Opt {
        name: "--help",
        short: Some('h'),
        value: "",
        takes: Takes::Nothing,
        commands: For::Both,
        env: None,
        help: "this text",
        flag: Flag::Help,
    },
    Opt {
        name: "--version",
        short: Some('V'),
        value: "",
        takes: Takes::Nothing,
        commands: For::Both,
        env: None,
        help: "the version",
        flag: Flag::Version,
    },
    Opt {
        name: "--out",
        short: None,
        value: "BUNDLE",
        takes: Takes::Value,
        commands: For::Seal,
        env: None,
        help: "where to write it (atomically, mode 0600; a new path or a file).\n\
               Without a token an existing BUNDLE is replaced only with --overwrite",
        flag: Flag::Out,
    },
    Opt {
        name: "--token-file",
        short: None,
        value: "FILE",
        takes: Takes::Value,
        commands: For::Seal,
        env: None,
        help: "seal for (and update the bundle of) the token in FILE, not a fresh\n\
               one (or LIVEKIT_BOOTSTRAP_TOKEN / LIVEKIT_BOOTSTRAP_TOKEN_FILE)",
        flag: Flag::TokenFile,
    },
    Opt {
        name: "--token",
        short: None,
        value: "TOKEN",
        takes: Takes::Secret,
        commands: For::Seal,
        env: None,
        help: "the same from the command line (visible to others; prefer a file)",
        flag: Flag::Token,
    },
    Opt {
        name: "--secret-mount",
        short: None,
        value: "[VAR=]PATH",
        takes: Takes::Value,
        commands: For::Seal,
        env: None,
        help: "add the file as a file secret named by its base name (at most 1 MiB);\n\
               VAR receives its path where the agent runs (repeatable)",
        flag: Flag::SecretMount,
    },
    Opt {
        name: "--overwrite",
        short: None,
        value: "",
        takes: Takes::Nothing,
        commands: For::Seal,
        env: None,
        help: "replace all secrets with the given ones",
        flag: Flag::Overwrite,
    },
    Opt {
        name: "--remove",
        short: None,
        value: "NAME",
        takes: Takes::Value,
        commands: For::Seal,
        env: None,
        help: "delete this secret from the bundle (repeatable)",
        flag: Flag::Remove,
    },
    Opt {
        name: "--list",
        short: None,
        value: "",
        takes: Takes::Nothing,
        commands: For::Seal,
        env: None,
        help: "print NAME<TAB>KIND<TAB>ORIGIN<TAB>CREATED_AT<TAB>UPDATED_AT for each\n\
               secret of the result, never a value; write nothing, print no token.\n\
               With a token, an existing BUNDLE and no input flag: the bundle as it is",
        flag: Flag::SealList,
    },
    Opt {
        name: "--json",
        short: None,
        value: "",
        takes: Takes::Nothing,
        commands: For::Seal,
        env: None,
        help: "with --list: the same as JSON",
        flag: Flag::Json,
    },
    Opt {
        name: "--port",
        short: None,
        value: "N",
        takes: Takes::Value,
        commands: For::Health,
        env: None,
        help: "the port (repeatable: the first 200 wins; default 8081)",
        flag: Flag::Port,
    },
    Opt {
        name: "--timeout",
        short: None,
        value: "SECONDS",
        takes: Takes::Value,
        commands: For::Health,
        env: None,
        help: "the whole probe's deadline (default 2)",
        flag: Flag::ProbeTimeout,
    },
];

/// The variables of the options that are not watch knobs (those are read
/// through [`OPTIONS`]).
const SUPERVISE_VAR: &str = "AGENT_INIT_SUPERVISE";
const SIGNAL_CHILD_VAR: &str = "AGENT_INIT_SIGNAL_CHILD";
const REQUIRE_VAR: &str = "AGENT_INIT_REQUIRE";

const HELP_HEAD: &str = "\
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
";

const HELP_SEAL: &str = "
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
";

const HELP_HEALTH: &str = "
health: GET http://127.0.0.1:PORT/ (a LiveKit worker's health server) for HEALTHCHECK
and exec probes; exit 0 when a port answers 200, 1 otherwise; one line on stderr.
";

const HELP_TAIL: &str = "
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

/// The column an option's help text starts at.
const HELP_COLUMN: usize = 26;

/// `--help`: the fixed text around the three option lists, which are made
/// from [`OPTIONS`].
pub fn usage() -> String {
    let mut text = String::from(HELP_HEAD);
    options_help(&mut text, For::Run);
    text.push_str(HELP_SEAL);
    options_help(&mut text, For::Seal);
    text.push_str(HELP_HEALTH);
    options_help(&mut text, For::Health);
    text.push_str(HELP_TAIL);
    text
}

/// The options listed under `command`'s part of `--help` (seal's part lists
/// only seal's own, health's only health's), one per entry: names and value, the text from
/// [`HELP_COLUMN`] on (on a line of its own after a long name).
fn options_help(out: &mut String, command: For) {
    let listed = |o: &&Opt| match command {
        For::Seal | For::Health => o.commands == command,
        For::Run | For::Both => !matches!(o.commands, For::Seal | For::Health),
    };
    for o in OPTIONS.iter().filter(listed).filter(|o| !o.help.is_empty()) {
        let start = out.len();
        out.push_str("  ");
        if let Some(c) = o.short {
            out.push('-');
            out.push(c);
            out.push_str(", ");
        }
        out.push_str(o.name);
        if !o.value.is_empty() {
            out.push(' ');
            out.push_str(o.value);
        }
        let mut col = out.len() - start;
        if col > HELP_COLUMN - 2 {
            out.push('\n');
            col = 0;
        }
        for line in o.help.split('\n') {
            out.extend(std::iter::repeat_n(' ', HELP_COLUMN - col));
            out.push_str(line);
            out.push('\n');
            col = 0;
        }
    }
}

// ---------------------------------------------------------------------------
// The grammar

/// One step of the option grammar.
#[derive(Debug)]
enum Word {
    /// An option of [`OPTIONS`], and where its value is: the index of the
    /// argument that holds it and the offset it starts at.
    Opt {
        opt: &'static Opt,
        value: Option<(usize, usize)>,
    },
    /// Not an option: the command from argument `at` on (after a `--`,
    /// which is not part of it).
    Rest { at: usize },
}

/// The option grammar over arguments (without `argv[0]`): `--name=value`,
/// `--name value` and switches; options end at `--` or at the first
/// argument that does not start with `-`. Split on bytes: an argument need
/// not be UTF-8, only an option's name must be. The parser and
/// [`secret_arg_tails`] both walk it, so they cannot disagree about which
/// argument is a value.
struct Lexer<'a> {
    args: &'a [&'a [u8]],
    at: usize,
    command: For,
}

impl Lexer<'_> {
    /// The option at argument `i`; its separate value, if it takes one, is
    /// consumed.
    fn option(&mut self, i: usize) -> Result<Word> {
        let arg = self.args[i];
        let (raw, inline) = match arg.iter().position(|&b| b == b'=') {
            Some(eq) if arg.starts_with(b"--") => (&arg[..eq], Some(eq + 1)),
            _ => (arg, None),
        };
        let unknown = || usage_error(format!("unknown option {}", shown_arg(raw)));
        let name = std::str::from_utf8(raw).map_err(|_| unknown())?;
        let named = |o: &&Opt| o.is(name);
        let known = OPTIONS.iter().find(named).ok_or_else(unknown)?;
        if known.takes == Takes::Nothing && inline.is_some() {
            return Err(usage_error(format!("{name} takes no value")));
        }
        let opt = OPTIONS
            .iter()
            .filter(named)
            .find(|o| o.commands.has(self.command))
            .ok_or_else(unknown)?;
        let value = match (opt.takes, inline) {
            (Takes::Nothing, _) => None,
            (_, Some(from)) => Some((i, from)),
            (_, None) if i + 1 < self.args.len() => {
                self.at += 1;
                Some((i + 1, 0))
            }
            _ => return Err(usage_error(format!("{name} needs a value"))),
        };
        Ok(Word::Opt { opt, value })
    }
}

impl Iterator for Lexer<'_> {
    type Item = Result<Word>;

    fn next(&mut self) -> Option<Result<Word>> {
        let i = self.at;
        let arg = *self.args.get(i)?;
        self.at += 1;
        Some(if arg == b"--" {
            Ok(Word::Rest { at: i + 1 })
        } else if arg == b"-" || !arg.starts_with(b"-") {
            Ok(Word::Rest { at: i })
        } else {
            self.option(i)
        })
    }
}

/// The secret values on agent-init's own command line (`argv[0]` first), as
/// (argument index, offset of the value): the whole of a `--token`, the
/// VALUE of `--secrets NAME=VALUE`. Wiped from the argument block once they
/// are copied (by `run`, right after the parse), so
/// `/proc/PID/cmdline` does not show them. A run's options end at its
/// command; `seal` takes nothing but options, so all of its arguments are
/// read as options (after a `--` too).
pub fn secret_arg_tails(args: &[&[u8]]) -> Vec<(usize, usize)> {
    let args = args.get(1..).unwrap_or_default();
    let seal = args.first() == Some(&&b"seal"[..]);
    let lexer = Lexer {
        args,
        at: usize::from(seal),
        command: if seal { For::Seal } else { For::Run },
    };
    let mut out = Vec::new();
    for word in lexer {
        match word {
            Ok(Word::Opt {
                opt,
                value: Some((i, from)),
            }) => {
                let value = &args[i][from..];
                let from = match opt.takes {
                    Takes::Secret => from,
                    Takes::NamedSecret => {
                        from + value.iter().position(|&b| b == b'=').map_or(0, |eq| eq + 1)
                    }
                    Takes::Nothing | Takes::Value => continue,
                };
                out.push((i + 1, from));
            }
            Ok(Word::Rest { .. }) if !seal => break,
            _ => {}
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Reading values

fn usage_error(msg: String) -> Error {
    Error::Usage(format!("{msg} (see agent-init --help)"))
}

/// Seconds from a flag or variable: a number in `[min, 31 days]`.
fn seconds(what: &str, v: &OsString, min: f64) -> Result<Duration> {
    parse_seconds(&v.to_string_lossy(), |s| s >= min && s <= 2_678_400.0).ok_or_else(|| {
        Error::Usage(format!(
            "{what} must be a number of seconds, at least {min}"
        ))
    })
}

/// An on/off variable such as `AGENT_INIT_SUPERVISE`: `1`, `true`, `yes`,
/// `on` turn it on, `0`, `false`, `no`, `off` or empty (or unset) leave it
/// off, in any ASCII case. Anything else is a 78 naming the variable, as an
/// unknown `AGENT_INIT_LOG` level is, rather than a silent "off".
#[inline(never)]
fn switch(name: &str, env: &Environ) -> Result<bool> {
    let Some(v) = env.get(name) else {
        return Ok(false);
    };
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
        .ok_or_else(|| usage_error("--secrets takes KEY=VALUE".into()))?;
    let name = std::str::from_utf8(&b[..eq])
        .ok()
        .filter(|n| crate::protocol::rules::check_name(n).is_ok())
        .ok_or_else(|| {
            usage_error("--secrets: the name must be 1 to 70 ASCII letters, digits and _".into())
        })?
        .to_string();
    let value = std::str::from_utf8(&b[eq + 1..])
        .map_err(|_| Error::Refused(format!("--secrets {name}: value is not UTF-8")))?;
    crate::protocol::rules::check_value(value)
        .map_err(|why| Error::Refused(format!("--secrets {name}: {why}")))?;
    Ok((name, SecretBytes::new(value.as_bytes().to_vec())))
}

// ---------------------------------------------------------------------------
// The environment

/// agent-init's environment, as [`crate::sys::read_environ`] gives it: in
/// zeroizing buffers. Knobs are read as `OsString` copies; the token never
/// is (see [`token_from_env`]).
struct Environ<'a>(&'a [(OsString, SecretBytes)]);

impl Environ<'_> {
    fn get(&self, name: &str) -> Option<OsString> {
        self.0
            .iter()
            .find(|(n, _)| n.as_bytes() == name.as_bytes())
            .map(|(_, v)| OsString::from_vec(v.expose().to_vec()))
    }

    /// The variable, unless it is unset or empty.
    fn set(&self, name: &str) -> Option<OsString> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// `LIVEKIT_BOOTSTRAP_TOKEN` unless unset or empty, left in its
    /// zeroizing buffer: the token never becomes an `OsString` like a knob.
    fn token(&self) -> Option<&SecretBytes> {
        self.0
            .iter()
            .find(|(n, v)| n.as_bytes() == b"LIVEKIT_BOOTSTRAP_TOKEN" && !v.is_empty())
            .map(|(_, v)| v)
    }
}

/// `AGENT_INIT_LOG`: the level for agent-init's own messages (default
/// info). `run` reads it first and sets it; a bad one is 78.
pub fn log_level(env: &[(OsString, SecretBytes)]) -> Result<Level> {
    match Environ(env).get("AGENT_INIT_LOG") {
        None => Ok(Level::Info),
        Some(v) => Level::parse(&v.to_string_lossy()).ok_or_else(|| {
            Error::Config("AGENT_INIT_LOG must be error, warn, info or debug".into())
        }),
    }
}

/// The `--watch` knobs, each with who set it (the flag or the variable, for
/// messages) and its value, in [`Knob`] order.
type WatchKnobs = [Option<(&'static str, OsString)>; 6];

/// What a run reads from `AGENT_INIT_*` (and `PYTHON_DOTENV_DISABLED`)
/// before its flags, which turn switches on, add names and override the
/// watch knobs.
#[derive(Debug, Default)]
struct Knobs {
    supervise: bool,
    signal_child_only: bool,
    require: Vec<String>,
    dotenv_disabled: bool,
    watch: WatchKnobs,
}

impl Knobs {
    /// Checks the switches, then the `AGENT_INIT_REQUIRE` names (78 each).
    /// Unset or empty, a knob has its default: off, no names, dotenv files
    /// read, no watch.
    fn from_env(env: &Environ) -> Result<Knobs> {
        let supervise = switch(SUPERVISE_VAR, env)?;
        let signal_child_only = switch(SIGNAL_CHILD_VAR, env)?;
        let require = require_names(env.get(REQUIRE_VAR))?;
        let dotenv_disabled = env
            .get("PYTHON_DOTENV_DISABLED")
            .is_some_and(|v| crate::local::dotenv::disabled_by(v.as_bytes()));
        let mut watch = WatchKnobs::default();
        for o in OPTIONS {
            if let (Flag::Watch(k), Some(name)) = (o.flag, o.env) {
                watch[k as usize] = env.set(name).map(|v| (name, v));
            }
        }
        Ok(Knobs {
            supervise,
            signal_child_only,
            require,
            dotenv_disabled,
            watch,
        })
    }
}

/// `AGENT_INIT_REQUIRE=A,B`: comma-separated, blanks and empty items
/// ignored, each a valid name.
fn require_names(v: Option<OsString>) -> Result<Vec<String>> {
    let names: Vec<String> = v
        .map(|v| {
            v.to_string_lossy()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    match names
        .iter()
        .find(|n| crate::protocol::rules::check_name(n).is_err())
    {
        Some(bad) => Err(Error::Config(format!(
            "AGENT_INIT_REQUIRE: {} is not a valid variable name",
            shown_arg(bad.as_bytes())
        ))),
        None => Ok(names),
    }
}

/// The token of `LIVEKIT_BOOTSTRAP_TOKEN` or of the file
/// `LIVEKIT_BOOTSTRAP_TOKEN_FILE` names, not yet parsed.
fn token_from_env(env: &Environ) -> Result<Option<SecretString>> {
    // The token goes from its zeroizing copy of the environment straight into
    // a `SecretString`.
    let token_env = env.token();
    let token_file = env.set("LIVEKIT_BOOTSTRAP_TOKEN_FILE");
    match (token_env, token_file) {
        (Some(_), Some(_)) => Err(Error::Config(
            "both LIVEKIT_BOOTSTRAP_TOKEN and LIVEKIT_BOOTSTRAP_TOKEN_FILE are set; set one".into(),
        )),
        (Some(v), None) => token_text(v.expose()).map(Some),
        (None, Some(path)) => read_token_file(
            "LIVEKIT_BOOTSTRAP_TOKEN_FILE",
            Path::new(&path),
            fetch_timeout(env)?,
        )
        .map(Some),
        (None, None) => Ok(None),
    }
}

/// `AGENT_INIT_TIMEOUT`: the fetch deadline, which the token file's read is
/// held to as well.
fn fetch_timeout(env: &Environ) -> Result<Duration> {
    match env.get("AGENT_INIT_TIMEOUT") {
        None => Ok(DEFAULT_TIMEOUT),
        Some(v) => {
            parse_seconds(&v.to_string_lossy(), |s| s > 0.0 && s <= 86_400.0).ok_or_else(|| {
                Error::Config("AGENT_INIT_TIMEOUT must be a number of seconds above 0".into())
            })
        }
    }
}

/// The fetch of `LIVEKIT_SECRETS_URL` (`url`) with its knobs:
/// `AGENT_INIT_TIMEOUT`, `AGENT_INIT_MAX_BUNDLE` and `AGENT_INIT_CA_FILE`.
fn fetch_options(url: OsString, env: &Environ) -> Result<FetchOptions> {
    // A URL is ASCII; mangling a non-UTF-8 byte into U+FFFD would fetch a
    // path nobody named. A file:// path with such bytes is written
    // percent-encoded.
    let url = url.to_str().ok_or_else(|| {
        Error::Config(
            "LIVEKIT_SECRETS_URL is not UTF-8 (percent-encode the bytes of a file:// path)".into(),
        )
    })?;
    let url = SecretsUrl::parse(url)?;
    let deadline = fetch_timeout(env)?;
    let max_bundle = match env.get("AGENT_INIT_MAX_BUNDLE") {
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
    Ok(FetchOptions {
        url,
        ca_file: env.set("AGENT_INIT_CA_FILE").map(PathBuf::from),
        deadline,
        max_bundle,
    })
}

// ---------------------------------------------------------------------------
// The command line

/// What the options of a run ask for (seal's `--list` is a [`SealOptions`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Asked {
    #[default]
    Run,
    List,
    Check,
    Help,
    Version,
}

/// The command line, read against [`OPTIONS`] and nothing else.
#[derive(Debug, Default)]
struct Flags {
    /// `agent-init seal ...`.
    seal: bool,
    asked: Asked,
    supervise: bool,
    signal_child_only: bool,
    require: Vec<String>,
    inputs: Inputs,
    watch: WatchKnobs,
    seal_options: SealOptions,
    out: Option<PathBuf>,
    token: Option<SecretString>,
    token_file: Option<PathBuf>,
    command: Vec<OsString>,
}

impl Flags {
    /// Reads the arguments (without `argv[0]`) in order; the first fault is
    /// the error (64, or 65 for a `--secrets` value §6 refuses). Only what is
    /// not secret leaves its zeroizing buffer as an `OsString`.
    fn parse(args: Vec<SecretBytes>) -> Result<Flags> {
        let words: Vec<&[u8]> = args.iter().map(|a| a.expose()).collect();
        let seal = words.first() == Some(&&b"seal"[..]);
        let mut flags = Flags {
            seal,
            ..Flags::default()
        };
        let lexer = Lexer {
            args: &words,
            at: usize::from(seal),
            command: if seal { For::Seal } else { For::Run },
        };
        let plain = |a: &[u8]| OsString::from_vec(a.to_vec());
        for word in lexer {
            match word? {
                Word::Opt { opt, value } => {
                    let value = value.map(|(i, from)| &words[i][from..]);
                    flags.take(opt, value.unwrap_or_default())?;
                }
                Word::Rest { at } => {
                    // `seal` runs no command: an argument that is not an
                    // option, after a `--` too, is a mistake, not ignored.
                    if let Some(arg) = words.get(at).filter(|_| seal) {
                        return Err(usage_error(format!(
                            "seal: unexpected argument {}",
                            shown_arg(arg)
                        )));
                    }
                    flags.command = words[at..].iter().map(|a| plain(a)).collect();
                    break;
                }
            }
        }
        Ok(flags)
    }

    /// One option and its value (empty for a switch).
    fn take(&mut self, opt: &Opt, value: &[u8]) -> Result<()> {
        let plain = || OsString::from_vec(value.to_vec());
        let name = opt.name;
        match opt.flag {
            Flag::Help => self.asked = Asked::Help,
            Flag::Version => self.asked = Asked::Version,
            Flag::Supervise => self.supervise = true,
            Flag::SignalChild => self.signal_child_only = true,
            Flag::List | Flag::Check => {
                let asked = if opt.flag == Flag::List {
                    Asked::List
                } else {
                    Asked::Check
                };
                if matches!(
                    (self.asked, asked),
                    (Asked::List, Asked::Check) | (Asked::Check, Asked::List)
                ) {
                    return Err(usage_error("--list and --check exclude each other".into()));
                }
                self.asked = asked;
            }
            Flag::Require => self.require.push(checked(
                value,
                |n| crate::protocol::rules::check_name(n).is_ok(),
                "is not a valid variable name",
                name,
            )?),
            Flag::SecretsFile | Flag::TokenFile if value.is_empty() => {
                return Err(usage_error(format!("{name} needs a file name")))
            }
            Flag::SecretsFile => self.inputs.files.push(PathBuf::from(plain())),
            Flag::Secrets => self
                .inputs
                .flags
                .push(secret_arg(&SecretBytes::new(value.to_vec()))?),
            Flag::SecretMount => self
                .inputs
                .mounts
                .push(crate::local::inputs::parse_mount(&plain())?),
            Flag::Watch(k) => self.watch[k as usize] = Some((name, plain())),
            Flag::Out => self.out = Some(PathBuf::from(plain())),
            Flag::Token => self.token = Some(token_text(value)?),
            Flag::TokenFile => self.token_file = Some(PathBuf::from(plain())),
            Flag::Overwrite => self.seal_options.overwrite = true,
            Flag::Remove => self.seal_options.remove.push(checked(
                value,
                |n| crate::protocol::rules::check_file_name(n).is_ok(),
                "is not a secret's name",
                name,
            )?),
            Flag::SealList => self.seal_options.list = true,
            Flag::Json => self.seal_options.json = true,
            // The lexer gives them to `health` alone.
            Flag::Port | Flag::ProbeTimeout => {
                return Err(usage_error(format!("unknown option {name}")))
            }
        }
        Ok(())
    }
}

/// `agent-init health`'s arguments (after `health`), read with the same
/// table and grammar; every fault is 64 and says `health:`. They hold no
/// secret, and no environment is read.
pub fn probe_args(args: &[SecretBytes]) -> Result<Probe> {
    let words: Vec<&[u8]> = args.iter().map(|a| a.expose()).collect();
    let bad = |m: String| Error::Usage(format!("health: {m} (see agent-init --help)"));
    let lexer = Lexer {
        args: &words,
        at: 0,
        command: For::Health,
    };
    let mut probe = Probe {
        ports: Vec::new(),
        timeout: crate::health::DEFAULT_TIMEOUT,
    };
    for word in lexer {
        let (opt, value) = match word {
            Ok(Word::Opt { opt, value }) => (opt, value.map(|(i, from)| &words[i][from..])),
            Ok(Word::Rest { at }) => match words.get(at) {
                Some(arg) => return Err(bad(format!("unknown argument {}", shown_arg(arg)))),
                None => break,
            },
            Err(Error::Usage(m)) => return Err(Error::Usage(format!("health: {m}"))),
            Err(e) => return Err(e),
        };
        let v = String::from_utf8_lossy(value.unwrap_or_default());
        match opt.flag {
            Flag::Port => {
                probe
                    .ports
                    .push(
                        v.trim()
                            .parse::<u16>()
                            .ok()
                            .filter(|p| *p > 0)
                            .ok_or_else(|| {
                                bad(format!(
                                    "--port {} is not a port number",
                                    shown_arg(v.as_bytes())
                                ))
                            })?,
                    )
            }
            _ => {
                probe.timeout = parse_seconds(&v, |s| s > 0.0 && s <= 3600.0).ok_or_else(|| {
                    bad(format!(
                        "--timeout {} is not a number of seconds above 0",
                        shown_arg(v.as_bytes())
                    ))
                })?
            }
        }
    }
    if probe.ports.is_empty() {
        probe.ports.push(crate::health::DEFAULT_PORT);
    }
    Ok(probe)
}

/// The value of option `flag` as a name `ok` accepts, or a usage error that
/// shows it as [`shown_arg`] does and says `why` not.
fn checked(value: &[u8], ok: fn(&str) -> bool, why: &str, flag: &str) -> Result<String> {
    std::str::from_utf8(value)
        .ok()
        .filter(|n| ok(n))
        .map(String::from)
        .ok_or_else(|| usage_error(format!("{flag} {} {why}", shown_arg(value))))
}

// ---------------------------------------------------------------------------
// The configuration

/// `seal`'s arguments: it needs `--out`, and `--json` needs `--list`.
fn seal_args(
    out: Option<PathBuf>,
    token: Option<SecretString>,
    options: SealOptions,
    inputs: Inputs,
) -> Result<SealArgs> {
    let out = out.ok_or_else(|| usage_error("seal needs --out BUNDLE".into()))?;
    if options.json && !options.list {
        return Err(usage_error("--json goes with --list".into()));
    }
    Ok(SealArgs {
        out,
        token,
        options,
        inputs,
    })
}

/// The watch knobs of `vars`, each overridden by its flag, if given.
fn flags_over(mut vars: WatchKnobs, flags: WatchKnobs) -> WatchKnobs {
    for (knob, flag) in vars.iter_mut().zip(flags) {
        if flag.is_some() {
            *knob = flag;
        }
    }
    vars
}

/// `--watch` and its knobs, or `None` without it. It needs supervise mode
/// and a token from a file (`LIVEKIT_BOOTSTRAP_TOKEN_FILE`), which it reads
/// again at each check.
fn watch_config(knobs: &WatchKnobs, supervise: bool, env: &Environ) -> Result<Option<WatchConfig>> {
    let Some((name, every)) = &knobs[Knob::Every as usize] else {
        return Ok(None);
    };
    let get = |k: Knob| knobs[k as usize].as_ref();
    let every = seconds(name, every, MIN_WATCH.as_secs_f64())?;
    let on_update = match get(Knob::OnUpdate) {
        None => OnUpdate::Restart,
        Some((name, v)) => match v.to_string_lossy().trim() {
            "restart" => OnUpdate::Restart,
            "exit" => OnUpdate::Exit,
            "overlap" => OnUpdate::Overlap,
            _ => {
                return Err(Error::Usage(format!(
                    "{name} must be restart, exit or overlap"
                )))
            }
        },
    };
    let health_port = match get(Knob::HealthPort) {
        None => crate::health::DEFAULT_PORT,
        Some((name, v)) => v
            .to_string_lossy()
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0 && *p < u16::MAX)
            .ok_or_else(|| Error::Usage(format!("{name} must be a port number")))?,
    };
    if !supervise {
        return Err(usage_error(
            "--watch needs --supervise (AGENT_INIT_SUPERVISE=1)".into(),
        ));
    }
    if env.token().is_some() {
        return Err(Error::Config(
            "--watch reads the token again at each check, so it must come from LIVEKIT_BOOTSTRAP_TOKEN_FILE, not LIVEKIT_BOOTSTRAP_TOKEN".into(),
        ));
    }
    let token_file = env.set("LIVEKIT_BOOTSTRAP_TOKEN_FILE").ok_or_else(|| {
        Error::Config(
            "--watch needs a bundle to watch: LIVEKIT_BOOTSTRAP_TOKEN_FILE and LIVEKIT_SECRETS_URL"
                .into(),
        )
    })?;
    let secs =
        |k: Knob, default: Duration| get(k).map_or(Ok(default), |(name, v)| seconds(name, v, 0.0));
    Ok(Some(WatchConfig {
        every,
        on_update,
        spread: secs(Knob::Spread, Duration::ZERO)?,
        drain: secs(Knob::Drain, DEFAULT_DRAIN)?,
        health_port,
        settle: secs(Knob::Settle, Duration::ZERO)?,
        token_file: PathBuf::from(token_file),
    }))
}

/// The mode of a run, `--list` or `--check`: production with a token (it
/// needs `LIVEKIT_SECRETS_URL` and refuses local inputs), else local (where
/// `LIVEKIT_SECRETS_URL` alone is a mistake). `watch` is `Some` only with a
/// token file, so only in production.
fn mode(
    token: Option<Token>,
    watch: Option<WatchConfig>,
    inputs: Inputs,
    dotenv_disabled: bool,
    env: &Environ,
) -> Result<Mode> {
    let url = env.set("LIVEKIT_SECRETS_URL");
    let Some(token) = token else {
        if url.is_some() {
            return Err(Error::Config(
                "LIVEKIT_SECRETS_URL is set but no bootstrap token (LIVEKIT_BOOTSTRAP_TOKEN or LIVEKIT_BOOTSTRAP_TOKEN_FILE)".into(),
            ));
        }
        return Ok(Mode::Local {
            inputs,
            dotenv_disabled,
        });
    };
    let url = url.ok_or_else(|| {
        Error::Config("a bootstrap token is set but LIVEKIT_SECRETS_URL is not".into())
    })?;
    let fetch = fetch_options(url, env)?;
    if !inputs.is_empty() {
        return Err(usage_error(
            "--secrets-file, --secrets and --secret-mount are for local mode; with a bootstrap token the bundle is the only source".into(),
        ));
    }
    Ok(Mode::Production {
        token,
        fetch,
        watch,
    })
}

/// The token's text for a run, `--list`, `--check` or `seal`: seal's
/// `--token` or `--token-file`, else the environment; none for `--help` and
/// `--version`, which read nothing.
fn token_source(
    flag: Option<SecretString>,
    file: Option<PathBuf>,
    asked: Asked,
    env: &Environ,
) -> Result<Option<SecretString>> {
    match (flag, file) {
        (Some(_), Some(_)) => Err(usage_error(
            "--token and --token-file exclude each other".into(),
        )),
        (Some(t), None) => Ok(Some(t)),
        // `--help` and `--version` read no file and no token.
        (None, _) if matches!(asked, Asked::Help | Asked::Version) => Ok(None),
        (None, Some(path)) => read_token_file("--token-file", &path, fetch_timeout(env)?).map(Some),
        (None, None) => token_from_env(env),
    }
}

impl Invocation {
    /// Reads flags (without `argv[0]`) and the environment, both as `main`
    /// and [`crate::sys::read_environ`] give them: in zeroizing buffers.
    /// Only what is not secret leaves them as `OsString` (the command, file
    /// names, knob values); `--secrets` and `--token` values never do.
    /// `AGENT_INIT_LOG` is not read here (see [`log_level`]).
    pub fn parse(args: Vec<SecretBytes>, env: Vec<(OsString, SecretBytes)>) -> Result<Invocation> {
        let knobs = Knobs::from_env(&Environ(&env))?;
        let flags = Flags::parse(args)?;
        Invocation::new(flags, knobs, env)
    }

    /// The flags over the knobs, the token, and what is asked with its
    /// mode. The environment is kept only for a run, `--list` or `--check`;
    /// otherwise it drops here, wiped.
    fn new(flags: Flags, knobs: Knobs, env: Vec<(OsString, SecretBytes)>) -> Result<Invocation> {
        let Flags {
            seal,
            asked,
            supervise,
            signal_child_only,
            require,
            inputs,
            watch,
            seal_options,
            out,
            token,
            token_file,
            command,
        } = flags;
        let environ = Environ(&env);
        let token = token_source(token, token_file, asked, &environ)?;
        let action = match asked {
            Asked::Help => return Ok(Invocation::Help),
            Asked::Version => return Ok(Invocation::Version),
            _ if seal => return seal_args(out, token, seal_options, inputs).map(Invocation::Seal),
            Asked::List => Action::List,
            Asked::Check => Action::Check,
            Asked::Run => Action::Run,
        };
        let token = token.map(|t| Token::parse(t.expose())).transpose()?;
        let supervise = knobs.supervise || supervise;
        let watch = match action {
            Action::Run if command.is_empty() => {
                return Err(usage_error("no command given".into()))
            }
            Action::Run => {
                let knobs = flags_over(knobs.watch, watch);
                watch_config(&knobs, supervise, &environ)?
            }
            _ => None,
        };
        let mode = mode(token, watch, inputs, knobs.dotenv_disabled, &environ)?;
        let mut all_required = knobs.require;
        all_required.extend(require);
        let secrets_dir = environ.set(crate::files::DIR_VAR);
        let inherited = env
            .into_iter()
            .filter(|(n, _)| !n.is_empty() && !crate::protocol::rules::is_stripped(n))
            .collect();
        Ok(Invocation::Run(Config {
            action,
            command,
            supervise,
            signal_child_only: knobs.signal_child_only || signal_child_only,
            require: all_required,
            mode,
            secrets_dir,
            inherited,
        }))
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
    /// The configuration as `run` reads it: `AGENT_INIT_LOG` first, then the rest.
    fn as_run_reads(
        args: Vec<SecretBytes>,
        env: Vec<(OsString, SecretBytes)>,
    ) -> Result<Invocation> {
        log_level(&env)?;
        Invocation::parse(args, env)
    }
    /// The configuration of a command line that must be a run, `--list` or
    /// `--check`.
    fn config(args: Vec<SecretBytes>, env: Vec<(OsString, SecretBytes)>) -> Config {
        match Invocation::parse(args, env) {
            Ok(Invocation::Run(c)) => c,
            other => panic!("not a run: {other:?}"),
        }
    }
    fn words(v: &[&'static str]) -> Vec<&'static [u8]> {
        v.iter().map(|s| s.as_bytes()).collect()
    }
    fn flags(v: &[&str]) -> Result<Flags> {
        Flags::parse(argv(v))
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
    fn seal_args(i: Invocation) -> SealArgs {
        match i {
            Invocation::Seal(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn command_follows_options_or_double_dash() {
        let c = config(argv(&["--supervise", "python", "-u", "agent.py"]), vec![]);
        assert!(c.supervise);
        assert_eq!(c.command, os(&["python", "-u", "agent.py"]));
        let c = config(argv(&["--", "--weird", "x"]), vec![]);
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
                let c = config(argv(&["true"]), envs(&[(name, value)]));
                assert_eq!(field(&c), on, "{name}={value}");
            }
            for value in ["maybe", "2", "enabled", "1 "] {
                let e = Invocation::parse(argv(&["true"]), envs(&[(name, value)])).unwrap_err();
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
            let e = Invocation::parse(argv(args), vec![]).unwrap_err();
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
                let e = Invocation::parse(args, vec![]).unwrap_err();
                assert_eq!(e.exit_code(), 64, "{arg:?}: {e}");
            }
        }
        // A value may be anything: only the flag's name must be UTF-8.
        let c = config(
            vec![
                SecretBytes::new(b"--secrets-file=\xff.env".to_vec()),
                SecretBytes::new(b"true".to_vec()),
            ],
            vec![],
        );
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
            let e = Invocation::parse(argv(args), vec![]).unwrap_err();
            assert_eq!(e.exit_code(), 64, "{args:?}");
            let m = e.to_string();
            assert!(!m.contains("sk-zq-value") && !m.contains("AAECAw"), "{m}");
        }
        let e = Invocation::parse(argv(&["seal", "--out", "b", TOKEN]), vec![]).unwrap_err();
        assert!(e.to_string().contains("oKGio6SlpqeoqaqrrK2urw"), "{e}");
    }

    #[test]
    fn agent_init_require_names_are_checked_like_require_flags() {
        for bad in ["A-B", "A,B C", "OPENAI_API_KEY=sk-zq-value"] {
            let e = Invocation::parse(argv(&["true"]), envs(&[("AGENT_INIT_REQUIRE", bad)]))
                .unwrap_err();
            assert_eq!(e.exit_code(), 78, "{bad}: {e}");
            assert!(e.to_string().starts_with("AGENT_INIT_REQUIRE: "), "{e}");
            assert!(!e.to_string().contains("sk-zq-value"), "{e}");
        }
    }

    #[test]
    fn python_dotenv_disabled_is_read_from_the_environment() {
        let parse = |v: &str| {
            local(&config(
                argv(&["true"]),
                envs(&[("PYTHON_DOTENV_DISABLED", v)]),
            ))
            .1
        };
        assert!(parse("1") && parse("yes") && parse("TRUE"));
        assert!(!parse("0") && !parse("") && !parse("on"));
        assert!(!local(&config(argv(&["true"]), vec![])).1);
    }

    #[test]
    fn seal_reads_its_token_from_a_flag_a_file_or_the_environment() {
        let dir = std::env::temp_dir().join(format!("agent-init-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("agent.token");
        std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
        let token_of = |i: Invocation| seal_args(i).token.map(|t| t.expose().trim().to_string());
        let f = file.to_str().unwrap();
        let c =
            Invocation::parse(argv(&["seal", "--token-file", f, "--out", "b"]), vec![]).unwrap();
        assert_eq!(token_of(c).as_deref(), Some(TOKEN));
        let c = Invocation::parse(
            argv(&["seal", "--out", "b"]),
            envs(&[("LIVEKIT_BOOTSTRAP_TOKEN_FILE", f)]),
        )
        .unwrap();
        assert_eq!(token_of(c).as_deref(), Some(TOKEN));
        let c = Invocation::parse(
            argv(&["seal", "--out", "b"]),
            envs(&[
                ("LIVEKIT_BOOTSTRAP_TOKEN", TOKEN),
                ("LIVEKIT_SECRETS_URL", "https://x"),
            ]),
        )
        .unwrap();
        // The token is seal's: a seal, not a run in production mode.
        assert!(matches!(c, Invocation::Seal(_)), "{c:?}");
        assert_eq!(token_of(c).as_deref(), Some(TOKEN));
        let e = Invocation::parse(
            argv(&["seal", "--token", TOKEN, "--token-file", f, "--out", "b"]),
            vec![],
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 64);
        let missing = dir.join("missing").to_str().unwrap().to_string();
        let e = Invocation::parse(
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
        let c = config(
            argv(&["true"]),
            envs(&[
                ("LIVEKIT_BOOTSTRAP_TOKEN", TOKEN),
                ("LIVEKIT_SECRETS_URL", "file:///b.json"),
                ("AGENT_INIT_TIMEOUT", "2.5"),
                ("KEEP", "1"),
            ]),
        );
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
        let e = Invocation::parse(argv(&["true"]), env).unwrap_err();
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
            let e = as_run_reads(argv(&["true"]), envs(&env)).unwrap_err();
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
        let c = config(
            argv(&["--supervise", "--watch", "5", "--on-update=overlap", "true"]),
            envs(&base),
        );
        let w = production(c).1.unwrap();
        assert_eq!(w.every, Duration::from_secs(5));
        assert_eq!(w.on_update, OnUpdate::Overlap);
        assert_eq!(w.drain, Duration::from_secs(30));
        assert_eq!(w.health_port, 8081);
        assert_eq!(w.spread, Duration::ZERO);

        let mut with_watch = base.to_vec();
        with_watch.push(("AGENT_INIT_WATCH", "60"));
        let c = config(argv(&["--supervise", "true"]), envs(&with_watch));
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
            let e = Invocation::parse(argv(args), envs(&base)).unwrap_err();
            assert_eq!(e.exit_code(), 64, "{args:?}: {e}");
        }
        // The token in the environment is wiped at start: it cannot be read again.
        let e = Invocation::parse(
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
        let e =
            Invocation::parse(argv(&["--supervise", "--watch", "5", "true"]), vec![]).unwrap_err();
        assert_eq!(e.exit_code(), 78);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn require_comes_from_flag_and_environment() {
        let c = config(
            argv(&["--require", "A", "--require=B", "true"]),
            envs(&[("AGENT_INIT_REQUIRE", "C, D,")]),
        );
        assert_eq!(c.require, ["C", "D", "A", "B"]);
    }

    #[test]
    fn seal_subcommand_takes_its_own_flags() {
        let c = Invocation::parse(
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
            Invocation::parse(argv(&["seal"]), vec![])
                .unwrap_err()
                .exit_code(),
            64
        );
    }

    #[test]
    fn seal_token_flag_is_kept_secret_and_beats_an_inherited_token() {
        let c = Invocation::parse(
            argv(&["seal", "--token", TOKEN, "--out=b.json"]),
            envs(&[("LIVEKIT_BOOTSTRAP_TOKEN", "lkbt1.other")]),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("AAECAw"));
        let args = seal_args(c);
        assert!(args.inputs.is_empty());
        let t = args.token.unwrap();
        assert_eq!(t.expose(), TOKEN);
    }

    #[test]
    fn help_version_and_seal_carry_no_mode_and_are_not_runs() {
        // A run would refuse each of these: no command (64), a URL without
        // a token (78).
        let url = || envs(&[("LIVEKIT_SECRETS_URL", "file:///b.json")]);
        for args in [&["--help"][..], &["--list", "-h"], &["seal", "--help"]] {
            let i = Invocation::parse(argv(args), url());
            assert!(matches!(i, Ok(Invocation::Help)), "{args:?}: {i:?}");
        }
        for args in [&["--version"][..], &["-V", "true"], &["seal", "-V"]] {
            let i = Invocation::parse(argv(args), url());
            assert!(matches!(i, Ok(Invocation::Version)), "{args:?}: {i:?}");
        }
        let i = Invocation::parse(argv(&["seal", "--out", "b"]), url());
        assert!(matches!(i, Ok(Invocation::Seal(_))), "{i:?}");
        // Help reads no token file, even one that cannot be read.
        let i = Invocation::parse(
            argv(&["seal", "--help", "--token-file", "/nonexistent"]),
            url(),
        );
        assert!(matches!(i, Ok(Invocation::Help)), "{i:?}");
        assert_eq!(
            Invocation::parse(argv(&["--list"]), url())
                .unwrap_err()
                .exit_code(),
            78
        );
        let c = config(argv(&["true"]), vec![]);
        assert_eq!(c.action, Action::Run);
    }

    #[test]
    fn list_and_check_need_no_command_and_repeat_harmlessly() {
        let c = config(argv(&["--list", "--list"]), vec![]);
        assert!(matches!(c.action, Action::List), "{:?}", c.action);
        assert!(c.command.is_empty());
        let c = config(argv(&["--check", "--", "python", "agent.py"]), vec![]);
        assert!(matches!(c.action, Action::Check), "{:?}", c.action);
        assert_eq!(c.command, os(&["python", "agent.py"]));
    }

    #[test]
    fn secrets_files_keep_their_order() {
        let c = config(
            argv(&["--secrets-file", "a.env", "--secrets-file=b.env", "true"]),
            vec![],
        );
        assert_eq!(
            local(&c).0.files,
            [PathBuf::from("a.env"), PathBuf::from("b.env")]
        );
    }

    // The log level.

    #[test]
    fn agent_init_log_gives_the_level_and_an_unknown_one_is_78_and_parsing_sets_none() {
        assert!(matches!(log_level(&[]), Ok(Level::Info)));
        let e = envs(&[("AGENT_INIT_LOG", "debug")]);
        assert!(matches!(log_level(&e), Ok(Level::Debug)));
        let e = envs(&[("AGENT_INIT_LOG", "chatty")]);
        let err = log_level(&e).unwrap_err();
        assert_eq!(err.exit_code(), 78);
        assert!(err.to_string().contains("AGENT_INIT_LOG"), "{err}");
        // Invocation::parse leaves the level to `run`: it does not read it.
        assert!(matches!(
            Invocation::parse(argv(&["true"]), e),
            Ok(Invocation::Run(_))
        ));
    }

    #[test]
    fn a_bad_log_level_is_reported_before_a_bad_command_line() {
        let e = as_run_reads(argv(&["--bogus"]), envs(&[("AGENT_INIT_LOG", "chatty")]));
        assert_eq!(e.unwrap_err().exit_code(), 78);
    }

    // The knobs.

    #[test]
    fn knobs_default_to_off_with_no_names_and_no_watch() {
        let k = Knobs::from_env(&Environ(&[])).unwrap();
        assert!(!k.supervise && !k.signal_child_only && !k.dotenv_disabled);
        assert!(k.require.is_empty());
        assert!(k.watch.iter().all(Option::is_none));
    }

    #[test]
    fn watch_knobs_come_from_their_variables_named_for_messages_and_empty_is_unset() {
        let e = envs(&[
            ("AGENT_INIT_WATCH", "30"),
            ("AGENT_INIT_DRAIN_TIMEOUT", "7"),
            ("AGENT_INIT_ON_UPDATE", ""),
        ]);
        let k = Knobs::from_env(&Environ(&e)).unwrap();
        assert_eq!(
            k.watch[Knob::Every as usize],
            Some(("AGENT_INIT_WATCH", "30".into()))
        );
        assert_eq!(
            k.watch[Knob::Drain as usize],
            Some(("AGENT_INIT_DRAIN_TIMEOUT", "7".into()))
        );
        assert_eq!(k.watch[Knob::OnUpdate as usize], None);
    }

    #[test]
    fn a_bad_switch_is_reported_before_bad_require_names() {
        let e = envs(&[
            ("AGENT_INIT_REQUIRE", "A-B"),
            ("AGENT_INIT_SIGNAL_CHILD", "maybe"),
        ]);
        let err = Knobs::from_env(&Environ(&e)).unwrap_err();
        assert!(
            err.to_string().starts_with("AGENT_INIT_SIGNAL_CHILD"),
            "{err}"
        );
    }

    #[test]
    fn require_names_skip_blanks_and_empty_items() {
        assert_eq!(require_names(Some(" A ,,B,".into())).unwrap(), ["A", "B"]);
        assert!(require_names(None).unwrap().is_empty());
    }

    // The option table and the grammar.

    #[test]
    fn an_option_is_a_switch_everywhere_or_nowhere_and_a_name_is_unique_per_command() {
        for o in OPTIONS {
            let short = o.short.map(|c| format!("-{c}"));
            for n in std::iter::once(o.name).chain(short.as_deref()) {
                for p in OPTIONS.iter().filter(|p| p.is(n)) {
                    assert_eq!(o.takes == Takes::Nothing, p.takes == Takes::Nothing, "{n}");
                    if !std::ptr::eq(o, p) {
                        assert!(
                            !o.commands.has(For::Run) || !p.commands.has(For::Run),
                            "{n} twice for a run"
                        );
                        assert!(
                            !o.commands.has(For::Seal) || !p.commands.has(For::Seal),
                            "{n} twice for seal"
                        );
                    }
                }
            }
            assert_eq!(o.takes == Takes::Nothing, o.value.is_empty(), "{}", o.name);
        }
    }

    #[test]
    fn each_option_s_help_names_its_variable() {
        for o in OPTIONS {
            if let Some(var) = o.env {
                assert!(o.help.contains(var), "{}: {var}", o.name);
            }
        }
    }

    #[test]
    fn help_lists_every_option_of_its_command_once_with_the_text_in_one_column() {
        let help = usage();
        let (run, seal) = help
            .split_once("\nLocal mode precedence")
            .expect("the seal paragraph");
        let run = run.split_once("Options:\n").unwrap().1;
        let (seal, health) = seal
            .split_once("\nhealth: GET")
            .expect("the health paragraph");
        let health = health.split_once("\nEnvironment:").unwrap().0;
        for o in OPTIONS {
            let part = match o.commands {
                For::Seal => seal,
                For::Health => health,
                For::Run | For::Both => run,
            };
            let first = o.help.split('\n').next().unwrap();
            assert_eq!(part.matches(first).count(), 1, "{}", o.name);
        }
        // A name too long for the column gets a line of its own.
        assert!(run.contains("  --secret-mount [VAR=]PATH\n                          local mode:"));
        assert!(run.starts_with("  --supervise             stay as PID 1"));
        assert!(run.contains("\n  -h, --help              this text\n"));
        assert!(health
            .ends_with("\n  --timeout SECONDS       the whole probe's deadline (default 2)\n"));
        assert!(help.ends_with("the command's own status.\n"));
    }

    #[test]
    fn the_lexer_splits_inline_and_separate_values_and_stops_at_the_command() {
        let a = words(&[
            "--require=A",
            "--supervise",
            "--secrets",
            "K=v",
            "py",
            "--x",
        ]);
        let mut l = Lexer {
            args: &a,
            at: 0,
            command: For::Run,
        };
        let mut next = || l.next().unwrap().unwrap();
        assert!(
            matches!(next(), Word::Opt { opt, value: Some((0, 10)) } if opt.flag == Flag::Require)
        );
        assert!(matches!(next(), Word::Opt { opt, value: None } if opt.flag == Flag::Supervise));
        assert!(
            matches!(next(), Word::Opt { opt, value: Some((3, 0)) } if opt.flag == Flag::Secrets)
        );
        assert!(matches!(next(), Word::Rest { at: 4 }));
        let a = words(&["--", "--supervise"]);
        let mut l = Lexer {
            args: &a,
            at: 0,
            command: For::Run,
        };
        assert!(matches!(l.next(), Some(Ok(Word::Rest { at: 1 }))));
    }

    #[test]
    fn the_lexer_knows_which_command_takes_an_option() {
        for (args, command, msg) in [
            (&["--out", "b"][..], For::Run, "unknown option --out"),
            (
                &["--supervise"][..],
                For::Seal,
                "unknown option --supervise",
            ),
            (
                &["--supervise=1"][..],
                For::Seal,
                "--supervise takes no value",
            ),
            (
                &["--overwrite=yes"][..],
                For::Run,
                "--overwrite takes no value",
            ),
            (&["--token"][..], For::Seal, "--token needs a value"),
        ] {
            let a = words(args);
            let mut l = Lexer {
                args: &a,
                at: 0,
                command,
            };
            let e = l.next().unwrap().unwrap_err();
            assert_eq!(e.exit_code(), 64);
            assert!(e.to_string().starts_with(msg), "{args:?}: {e}");
        }
    }

    // The scrubbers' grammar.

    fn tails(args: &[&'static str]) -> Vec<(usize, usize)> {
        secret_arg_tails(&words(args))
    }

    #[test]
    fn secrets_flag_values_are_found_up_to_the_command() {
        assert_eq!(
            tails(&[
                "agent-init",
                "--supervise",
                "--secrets",
                "A=x",
                "--require",
                "--secrets",
                "--secrets=B=y=z",
                "--secrets-file",
                ".env",
                "python",
                "--secrets",
                "C=not-ours",
            ]),
            // `--require` takes `--secrets` as its value; the command's own
            // `--secrets` stays untouched.
            vec![(3, 2), (6, 12)]
        );
        assert_eq!(
            tails(&["agent-init", "--secrets", "NOEQUALS", "--", "--secrets=X"]),
            vec![(2, 0)]
        );
        assert!(tails(&["agent-init", "--supervise", "sh", "--secrets=A=b"]).is_empty());
    }

    #[test]
    fn secrets_after_any_option_with_a_value_are_found_in_a_run() {
        // Every option that takes a value skips it, as the parser does: the
        // value of --secret-mount or --watch is not the command.
        assert_eq!(
            tails(&[
                "agent-init",
                "--secret-mount",
                "key.json",
                "--on-update",
                "exit",
                "--secrets",
                "A=x",
                "--watch=5",
                "--secrets=B=y",
                "python",
            ]),
            vec![(6, 2), (8, 12)]
        );
    }

    #[test]
    fn token_and_secrets_values_are_found_in_seal_s_arguments() {
        let a = [
            "agent-init",
            "seal",
            "--token",
            "T1",
            "--secrets",
            "A=v1",
            "--out",
            "--token",
            "--token=T2",
            "--secrets=B=v2",
            "--token-file",
            "--secrets",
            "--secrets",
        ];
        // `--out --token` is a file called --token; `--token-file --secrets` one called --secrets.
        assert_eq!(tails(&a), [(3, 0), (5, 2), (8, 8), (9, 12)],);
        // seal takes only options: a `--` does not end them.
        assert_eq!(
            tails(&["agent-init", "seal", "--", "--token", "T"]),
            [(4, 0)]
        );
    }

    #[test]
    fn odd_argument_vectors_give_tails_inside_their_arguments() {
        assert!(tails(&[]).is_empty());
        assert!(tails(&["agent-init"]).is_empty());
        assert!(tails(&["agent-init", "seal"]).is_empty());
        assert!(tails(&["agent-init", "--secrets"]).is_empty());
        assert_eq!(tails(&["agent-init", "--secrets="]), [(1, 10)]);
        assert_eq!(tails(&["agent-init", "seal", "--token="]), [(2, 8)]);
        // A run's --token is not an option of a run: nothing is taken as its value.
        assert!(tails(&["agent-init", "--token", "T", "sh"]).is_empty());
        for args in [
            &["agent-init", "--secrets=A=b", "--", "x"][..],
            &["agent-init", "seal", "--secrets", "A=", "--token", "T"][..],
        ] {
            for (i, from) in tails(args) {
                assert!(from <= args[i].len(), "{args:?}");
            }
        }
    }

    // The command line.

    #[test]
    fn flags_read_the_command_line_alone() {
        let f = flags(&[
            "--supervise",
            "--require",
            "A",
            "--watch",
            "9",
            "--secret-mount",
            "K=key.json",
            "--",
            "py",
        ])
        .unwrap();
        assert!(f.supervise && !f.seal && f.asked == Asked::Run);
        assert_eq!(f.require, ["A"]);
        assert_eq!(f.watch[Knob::Every as usize], Some(("--watch", "9".into())));
        assert_eq!(f.inputs.mounts[0].env.as_deref(), Some("K"));
        assert_eq!(f.command, os(&["py"]));
    }

    #[test]
    fn one_letter_names_are_the_help_and_version_switches() {
        assert_eq!(flags(&["-h"]).unwrap().asked, Asked::Help);
        assert_eq!(flags(&["seal", "-V"]).unwrap().asked, Asked::Version);
        for bad in ["-v", "-hh", "--h", "-H"] {
            let e = flags(&[bad, "x"]).unwrap_err();
            assert!(e.to_string().starts_with("unknown option"), "{bad}: {e}");
        }
        // A lone `-` is a command's word, not an option.
        assert_eq!(flags(&["-", "x"]).unwrap().command, os(&["-", "x"]));
    }

    #[test]
    fn seal_flags_fill_seal_s_options_and_refuse_a_stray_argument() {
        let f = flags(&[
            "seal",
            "--overwrite",
            "--remove",
            "OLD",
            "--list",
            "--json",
            "--token",
            TOKEN,
            "--out",
            "b.json",
        ])
        .unwrap();
        assert!(f.seal);
        assert_eq!(
            f.seal_options,
            SealOptions {
                overwrite: true,
                remove: vec!["OLD".into()],
                list: true,
                json: true
            }
        );
        assert_eq!(f.token.unwrap().expose(), TOKEN);
        assert_eq!(f.out, Some(PathBuf::from("b.json")));
        for stray in [
            &["seal", "stray"][..],
            &["seal", "--out", "b.json", "--", "x"][..],
        ] {
            let e = flags(stray).unwrap_err();
            assert_eq!(e.exit_code(), 64, "{stray:?}");
            assert!(
                e.to_string().starts_with("seal: unexpected argument"),
                "{e}"
            );
        }
        // A `--` with nothing after it is no argument.
        assert!(flags(&["seal", "--out", "b.json", "--"]).unwrap().seal);
    }

    #[test]
    fn an_empty_file_name_is_a_usage_error() {
        for args in [&["--secrets-file="][..], &["seal", "--token-file", ""][..]] {
            let e = flags(args).unwrap_err();
            assert_eq!(e.exit_code(), 64);
            assert!(e.to_string().contains("needs a file name"), "{e}");
        }
    }

    #[test]
    fn a_non_ascii_token_flag_is_78() {
        let mut args = argv(&["seal", "--out", "b"]);
        args.push(SecretBytes::new(b"--token=\xff".to_vec()));
        assert_eq!(Flags::parse(args).unwrap_err().exit_code(), 78);
    }

    // The watch, the fetch and the mode.

    fn knobs(v: &[(&'static str, &str)]) -> WatchKnobs {
        let mut k = WatchKnobs::default();
        for (name, value) in v {
            let o = OPTIONS.iter().find(|o| o.is(name)).unwrap();
            let Flag::Watch(knob) = o.flag else {
                panic!("{name}")
            };
            k[knob as usize] = Some((name, value.into()));
        }
        k
    }

    #[test]
    fn watch_config_has_defaults_and_names_the_knob_at_fault() {
        let file = envs(&[("LIVEKIT_BOOTSTRAP_TOKEN_FILE", "/t")]);
        let file = Environ(&file);
        assert!(watch_config(&knobs(&[]), true, &file).unwrap().is_none());
        let w = watch_config(&knobs(&[("--watch", "6")]), true, &file)
            .unwrap()
            .unwrap();
        assert_eq!(w.every, Duration::from_secs(6));
        assert_eq!(w.on_update, OnUpdate::Restart);
        assert_eq!(
            (w.spread, w.drain, w.settle),
            (Duration::ZERO, DEFAULT_DRAIN, Duration::ZERO)
        );
        assert_eq!(w.health_port, crate::health::DEFAULT_PORT);
        assert_eq!(w.token_file, PathBuf::from("/t"));
        let k = knobs(&[("--watch", "6"), ("--rollout-spread", "-1")]);
        let e = watch_config(&k, true, &file).unwrap_err();
        assert!(e.to_string().starts_with("--rollout-spread must be"), "{e}");
    }

    #[test]
    fn watch_config_checks_its_values_before_supervise_and_the_token() {
        // As before the split: a bad interval is reported first (64), then
        // the missing --supervise (64), then where the token comes from (78).
        let env = envs(&[("LIVEKIT_BOOTSTRAP_TOKEN", TOKEN)]);
        let token_env = Environ(&env);
        let bad = knobs(&[("--watch", "1")]);
        let e = watch_config(&bad, false, &token_env).unwrap_err();
        assert!(e.to_string().starts_with("--watch must be"), "{e}");
        let good = knobs(&[("--watch", "5")]);
        let e = watch_config(&good, false, &token_env).unwrap_err();
        assert!(e.to_string().contains("needs --supervise"), "{e}");
        let e = watch_config(&good, true, &token_env).unwrap_err();
        assert_eq!(e.exit_code(), 78);
        assert!(e.to_string().contains("not LIVEKIT_BOOTSTRAP_TOKEN"), "{e}");
        let e = watch_config(&good, true, &Environ(&[])).unwrap_err();
        assert!(e.to_string().contains("needs a bundle to watch"), "{e}");
    }

    #[test]
    fn watch_flags_override_their_variables_one_by_one() {
        let mut vars = WatchKnobs::default();
        vars[Knob::Every as usize] = Some(("AGENT_INIT_WATCH", "60".into()));
        vars[Knob::OnUpdate as usize] = Some(("AGENT_INIT_ON_UPDATE", "exit".into()));
        let k = flags_over(vars, knobs(&[("--watch", "5")]));
        assert_eq!(k[Knob::Every as usize], Some(("--watch", "5".into())));
        assert_eq!(
            k[Knob::OnUpdate as usize],
            Some(("AGENT_INIT_ON_UPDATE", "exit".into()))
        );
    }

    #[test]
    fn seal_needs_out_and_json_needs_list() {
        let e =
            super::seal_args(None, None, SealOptions::default(), Inputs::default()).unwrap_err();
        assert!(e.to_string().starts_with("seal needs --out"), "{e}");
        let json = SealOptions {
            json: true,
            ..SealOptions::default()
        };
        let e = super::seal_args(Some("b".into()), None, json, Inputs::default()).unwrap_err();
        assert!(e.to_string().starts_with("--json goes with --list"), "{e}");
    }

    #[test]
    fn fetch_options_read_their_knobs_with_defaults() {
        let e = envs(&[]);
        let f = fetch_options("https://x".into(), &Environ(&e)).unwrap();
        assert_eq!(f.deadline, DEFAULT_TIMEOUT);
        assert_eq!(f.max_bundle, DEFAULT_MAX_BUNDLE);
        assert!(f.ca_file.is_none());
        let e = envs(&[
            ("AGENT_INIT_MAX_BUNDLE", "100"),
            ("AGENT_INIT_CA_FILE", "/ca.pem"),
        ]);
        let f = fetch_options("file:///b.json".into(), &Environ(&e)).unwrap();
        assert_eq!(f.max_bundle, 100);
        assert_eq!(f.ca_file, Some(PathBuf::from("/ca.pem")));
    }

    #[test]
    fn the_mode_is_production_with_a_token_and_local_without() {
        let token = || Some(Token::parse(TOKEN).unwrap());
        let url = envs(&[("LIVEKIT_SECRETS_URL", "file:///b.json")]);
        let m = mode(token(), None, Inputs::default(), false, &Environ(&url)).unwrap();
        assert!(m.is_production());
        let m = mode(None, None, Inputs::default(), true, &Environ(&[])).unwrap();
        assert!(matches!(
            m,
            Mode::Local {
                dotenv_disabled: true,
                ..
            }
        ));
        // A token needs a URL, a URL needs a token, and a token takes no local input.
        let e = mode(token(), None, Inputs::default(), false, &Environ(&[])).unwrap_err();
        assert_eq!(e.exit_code(), 78);
        let e = mode(None, None, Inputs::default(), false, &Environ(&url)).unwrap_err();
        assert_eq!(e.exit_code(), 78);
        let inputs = Inputs {
            files: vec![PathBuf::from(".env")],
            ..Inputs::default()
        };
        let e = mode(token(), None, inputs, false, &Environ(&url)).unwrap_err();
        assert_eq!(e.exit_code(), 64);
        assert!(e.to_string().contains("are for local mode"), "{e}");
    }

    #[test]
    fn health_defaults_to_8081_and_two_seconds_and_takes_several_ports() {
        let p = probe_args(&[]).unwrap();
        assert_eq!((p.ports, p.timeout), (vec![8081], Duration::from_secs(2)));
        let p = probe_args(&argv(&["--port", "8082", "--port=9", "--timeout=0.5"])).unwrap();
        assert_eq!(p.ports, [8082, 9]);
        assert_eq!(p.timeout, Duration::from_millis(500));
    }

    #[test]
    fn health_s_bad_arguments_are_usage_errors_that_say_health() {
        for args in [
            &["--port"][..],
            &["--port", "0"][..],
            &["--port", "65536"][..],
            &["--timeout", "0"][..],
            &["--timeout", "soon"][..],
            &["--bogus"][..],
            &["--supervise"][..],
            &["--out=b.json"][..],
            &["OPENAI_API_KEY=sk-probe"][..],
            &["--", "x"][..],
        ] {
            let e = probe_args(&argv(args)).unwrap_err();
            assert_eq!(e.exit_code(), 64, "{args:?}");
            let m = e.to_string();
            assert!(
                m.starts_with("health: ") && m.ends_with("(see agent-init --help)"),
                "{m}"
            );
            assert!(!m.contains("sk-probe"), "{m}");
        }
    }
}
