//! agent-init: the entrypoint of LiveKit agent containers.
//!
//! It fetches the agent's sealed secrets with a bootstrap token, opens and
//! checks them, merges in `LIVEKIT_URL`, `LIVEKIT_API_KEY` and
//! `LIVEKIT_API_SECRET`, wipes every buffer that held secret material, and
//! execs the agent with the assembled environment; or, on request, stays as
//! PID 1 to supervise it. Locally it reads dotenv files instead.
//!
//! The data goes one way, one module per step:
//!
//! ```text
//! config → protocol::token → source (https | file) → protocol::bundle → protocol::secrets → env → launch (exec | supervise | watch)
//!                            local (dotenv files, flags) ──────────────────────────↗      files ↗
//! ```
//!
//! The contract with the secrets service is `docs/PROTOCOL.md`; the layout,
//! the dependency rule and the test map are `docs/ARCHITECTURE.md`. The
//! library is not a stable API: it is `pub` for agent-secrets (which shares
//! [`protocol`]), the tests, the fuzz targets and the benches.

pub mod base;
pub mod config;
pub mod env;
pub mod files;
pub mod health;
pub mod launch;
pub mod local;
pub mod protocol;
pub mod report;
pub mod source;
pub mod sys;

use base::error::{Error, Result};
use base::sensitive::SecretBytes;
use config::{Action, Config, Invocation, Mode};
use env::Environment;
use protocol::rules::LIVEKIT_NAMES;
use std::ffi::OsString;
use std::io::Write;

/// Runs agent-init. Returns the exit status when agent-init itself finishes
/// (listing, checking, sealing, supervising); in exec mode it does not return
/// on success.
///
/// `args` are agent-init's arguments without `argv[0]`, each in a zeroizing
/// buffer from the first copy (`--secrets` values are secrets).
pub fn run(args: Vec<SecretBytes>, inherited: &sys::Inherited) -> Result<i32> {
    // A probe runs inside the agent's container, with its environment: it
    // must not read the token or anything else, only probe.
    if args.first().is_some_and(|a| a.expose() == b"health") {
        return probe(&args[1..]);
    }
    let environ = sys::read_environ();
    // The token is copied; its bytes in the initial environment block go now,
    // so /proc/<pid>/environ does not show it during the fetch.
    sys::scrub_environ(|n| n == b"LIVEKIT_BOOTSTRAP_TOKEN");
    base::log::set_level(config::log_level(&environ)?);
    let invocation = Invocation::parse(args, environ)?;
    // `--token` and `--secrets` values are copied: they leave
    // /proc/PID/cmdline now, before a fetch, a seal or a supervised agent's
    // lifetime (an exec replaces the block anyway).
    sys::scrub_args(config::secret_arg_tails);
    match invocation {
        Invocation::Help => Ok(report::usage()),
        Invocation::Version => Ok(report::version()),
        // Nothing of the inherited environment is sealed: the parse kept
        // none of it for seal.
        Invocation::Seal(args) => local::seal::run(args),
        Invocation::Run(cfg) => start_or_report(cfg, inherited),
    }
}

/// A run, `--list` or `--check`: the environment assembled from the mode's
/// source, then the start or the report.
fn start_or_report(cfg: Config, inherited: &sys::Inherited) -> Result<i32> {
    let Config {
        action,
        command,
        supervise,
        signal_child_only,
        require,
        mode,
        secrets_dir: dir,
        inherited: environ,
    } = cfg;
    let production = mode.is_production();
    let (environment, unlisted, files) = match mode {
        Mode::Production {
            token,
            fetch,
            watch: Some(w),
        } => {
            let required = platform_and(&require);
            let (cmd, block, watcher) =
                watch_first(w, token, fetch, command, required, environ, dir)?;
            let opts = launch::SuperviseOptions {
                signal_child_only,
                watch: Some(watcher),
            };
            // What the assembly left on the stack is below this frame: dead, wiped.
            sys::scrub_stack();
            return launch::supervise(cmd, block, inherited, opts);
        }
        // The token drops at the end of the fetch and the open.
        Mode::Production { token, fetch, .. } => from_bundle(token, fetch, environ, dir)?,
        Mode::Local {
            inputs,
            dotenv_disabled,
        } => from_local(inputs, dotenv_disabled, environ, dir)?,
    };
    // The fetch and the open ran in frames below this one, and ring leaves
    // its AES key schedule there: wipe that dead stack before later frames
    // (supervise's, which lives as long as the child) take it over.
    sys::scrub_stack();
    let required = required_names(production, action, &require, &environment);
    match action {
        Action::List => Ok(report::list(&environment, &unlisted, &files)),
        Action::Check => check(&command, &environment, &files, &required),
        Action::Run => {
            let how = launch::SuperviseOptions {
                signal_child_only,
                watch: None,
            };
            let how = supervise.then_some(how);
            start(&command, environment, files, &required, how, inherited)
        }
    }
}

/// `agent-init health ...`: the probe's arguments are no secret.
fn probe(args: &[SecretBytes]) -> Result<i32> {
    Ok(config::probe_args(args)?.run())
}

/// The names the command must receive: the three `LIVEKIT_*` in production
/// (locally a warning says which are missing) and `--require`'s.
fn required_names(
    production: bool,
    action: Action,
    require: &[String],
    environment: &Environment,
) -> Vec<String> {
    if production {
        return platform_and(require);
    }
    let missing = environment.missing(LIVEKIT_NAMES);
    if !missing.is_empty() && !matches!(action, Action::List) {
        crate::warn!(
            "{} not set; a LiveKit agent cannot connect without them",
            missing.join(", ")
        );
    }
    require.to_vec()
}

/// What production requires: the three `LIVEKIT_*`, then `require`.
fn platform_and(require: &[String]) -> Vec<String> {
    LIVEKIT_NAMES
        .iter()
        .map(|s| s.to_string())
        .chain(require.iter().cloned())
        .collect()
}

/// `--check`: every check a start makes, then the summary on stderr.
fn check(
    command: &[OsString],
    environment: &Environment,
    files: &files::Plan,
    required: &[String],
) -> Result<i32> {
    environment.check(required, command, sys::arg_max())?;
    if !files.is_empty() {
        files.inspect()?;
    }
    let resolved = if command.is_empty() {
        None
    } else {
        Some(resolve_command(environment, command)?)
    };
    Ok(report::check_passed(environment, files, resolved.as_ref()))
}

/// The start: the last checks, the file secrets written, then exec or
/// supervise (`supervise` is `Some`). Nothing secret is left by now but the
/// command's block.
fn start(
    command: &[OsString],
    environment: Environment,
    files: files::Plan,
    required: &[String],
    supervise: Option<launch::SuperviseOptions>,
    inherited: &sys::Inherited,
) -> Result<i32> {
    environment.check(required, command, sys::arg_max())?;
    let cmd = resolve_command(&environment, command)?;
    // From here to the start, a stop signal must not end agent-init
    // with the files written: it waits, blocked, until the start
    // (supervise forwards it) or is taken up before the exec.
    let early = !files.is_empty();
    if early {
        sys::block_early_signals();
    }
    // Last, once nothing else can fail: dropping `written` removes them.
    let written = files.write()?;
    let block = environment.into_block();
    crate::info!(
        "starting {} ({})",
        cmd.name,
        if supervise.is_some() {
            "supervised"
        } else {
            "exec"
        }
    );
    // And the check and the block's assembly, also in frames below.
    sys::scrub_stack();
    if let Some(opts) = supervise {
        let status = launch::supervise(cmd, block, inherited, opts);
        // The command has exited (or never started): its files go.
        drop(written);
        status
    } else {
        if let Some(sig) = early.then(sys::pending_early_signal).flatten() {
            drop(written);
            return Err(Error::Interrupted(sig));
        }
        let e = launch::exec(cmd, block, inherited);
        drop(written);
        Err(e)
    }
}

/// `--watch`: the first generation from the bundle, as without it, and a
/// watcher that keeps agent-init's own environment sealed with the token.
#[inline(never)]
fn watch_first(
    w: launch::WatchConfig,
    token: protocol::token::Token,
    fetch: source::FetchOptions,
    command: Vec<OsString>,
    required: Vec<String>,
    environ: Vec<(OsString, SecretBytes)>,
    dir: Option<OsString>,
) -> Result<(launch::Command, env::EnvBlock, launch::Watcher)> {
    warn_about_env_files();
    let fetched = source::fetch(&fetch, &token)?;
    let (every, policy) = (w.every, w.on_update);
    let mut watcher = launch::Watcher::new(
        w,
        fetch,
        command,
        required,
        &token,
        environ,
        fetched.version,
    )?
    .files_in(dir);
    let port = watcher.port(0);
    let ready = watcher.prepare(&token, fetched.body.expose(), Some(0))?;
    drop(token);
    drop(fetched.body);
    let version = watcher.version().to_string();
    watcher.serving(version, ready.digest);
    let (cmd, block) = (ready.cmd, ready.block);
    if !ready.files.is_empty() {
        // As without --watch: a stop signal waits until the command runs.
        sys::block_early_signals();
    }
    // Last, once nothing else can fail; the first generation removes them.
    watcher.first_files(ready.files.write()?);
    crate::info!(
        "starting {} (supervised; bundle {}, checked every {}s, on update: {}{})",
        cmd.name,
        watcher.version(),
        every.as_secs(),
        match policy {
            launch::OnUpdate::Restart => "restart",
            launch::OnUpdate::Exit => "exit",
            launch::OnUpdate::Overlap => "overlap",
        },
        port.map_or(String::new(), |p| format!(", {}={p}", launch::PORT_VAR))
    );
    Ok((cmd, block, watcher))
}

/// Looks the command up on the PATH it will itself receive.
fn resolve_command(environment: &Environment, command: &[OsString]) -> Result<launch::Command> {
    let path = environment.get("PATH").map(|v| v.value.expose());
    launch::resolve(command, path)
}

/// The environment from the bundle, and the file secrets (§6.1) it refers
/// to. The token drops when this returns.
/// Never inlined: its frames, and the key schedules in them, must lie below
/// the caller's, where `sys::scrub_stack` reaches them.
#[inline(never)]
fn from_bundle(
    token: protocol::token::Token,
    fetch: source::FetchOptions,
    inherited: Vec<(OsString, SecretBytes)>,
    dir: Option<OsString>,
) -> Result<(Environment, Vec<String>, files::Plan)> {
    warn_about_env_files();
    let body = source::fetch(&fetch, &token)?.body;
    let plaintext = protocol::bundle::open(&token, body.expose())?;
    drop(body);
    drop(token);
    let mut secrets = protocol::secrets::parse_noting(plaintext.expose(), env::warn_dropped)?;
    drop(plaintext);
    crate::debug!(
        "bundle opened: {} secrets, {} files",
        secrets.secrets.len(),
        secrets.files.len()
    );
    let bundle_files = std::mem::take(&mut secrets.files);
    let mut env = Environment::production(inherited, secrets);
    let plan = files::plan_bundle_files(&mut env, dir.as_deref(), bundle_files, None)?;
    Ok((env, Vec::new(), plan))
}

/// The environment from local files and flags, the names `--list` must not
/// show, and the file secrets of `--secret-mount`.
#[inline(never)]
fn from_local(
    inputs: local::inputs::Inputs,
    dotenv_disabled: bool,
    inherited: Vec<(OsString, SecretBytes)>,
    dir: Option<OsString>,
) -> Result<(Environment, Vec<String>, files::Plan)> {
    let dotenv_files = local::load::local_files(&inputs.files, dotenv_disabled);
    let (loaded, unlisted) = local::load::load_files(&dotenv_files, &inherited, false)?;
    let mut env = Environment::local(inherited, loaded, inputs.flags);
    // `--secret-mount`: the same file, name and variable production gives.
    let mut planned = Vec::with_capacity(inputs.mounts.len());
    let mut vars = Vec::new();
    for m in &inputs.mounts {
        let input = local::inputs::read_mount(m)?;
        let protocol::update::Value::File { content, env: var } = input.value else {
            return Err(Error::Internal("a mount read as an env input".into()));
        };
        if planned
            .iter()
            .any(|p: &files::PlannedFile| p.name == input.name)
        {
            return Err(Error::Usage(format!(
                "--secret-mount: two files are named {}; a file secret's name is its base name",
                input.name
            )));
        }
        if let Some(var) = var {
            if vars.iter().any(|(v, _)| *v == var) {
                return Err(Error::Usage(format!(
                    "--secret-mount: {var} is given to two files"
                )));
            }
            vars.push((var, input.name.clone()));
        }
        planned.push(files::PlannedFile {
            name: input.name,
            content,
            origin: input.origin,
            updated_at: None,
        });
    }
    let plan = files::Plan::new(dir.as_deref(), planned)?;
    files::set_file_vars(&mut env, &plan, vars);
    Ok((env, unlisted, plan))
}

/// Images should not ship `.env*` files: with a token they are not read, and
/// their presence usually means a developer's secrets were copied in.
fn warn_about_env_files() {
    let Ok(dir) = std::fs::read_dir(".") else {
        return;
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".env"))
        .collect();
    names.sort();
    if !names.is_empty() {
        crate::warn!(
            "{} in the working directory: not read with a bootstrap token, and images should not ship them (add .env* to .dockerignore)",
            names.join(", ")
        );
    }
}

/// Writes the one-line reason where Kubernetes shows it, if that file exists.
pub fn write_termination_log(e: &Error) {
    let path = std::path::Path::new("/dev/termination-log");
    if path.exists() {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(path)
        {
            let _ = writeln!(f, "agent-init: {e}");
        }
    }
}
