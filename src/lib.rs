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
use config::{Action, Config};
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
    let mut cfg = Config::parse(args, environ)?;
    match &cfg.action {
        Action::Help => return Ok(report::usage()),
        Action::Version => return Ok(report::version()),
        Action::Seal { .. } => return local::seal::run(seal_args(cfg)?),
        Action::Run | Action::List | Action::Check => {}
    }
    if cfg.watch.is_some() {
        return watch(cfg, inherited);
    }
    let production = cfg.token.is_some();
    let (environment, unlisted, files) = assemble(&mut cfg)?;
    // The fetch and the open ran in frames below this one, and ring leaves
    // its AES key schedule there: wipe that dead stack before later frames
    // (supervise's, which lives as long as the child) take it over.
    sys::scrub_stack();
    let required = required_names(&cfg, &environment, production);
    match cfg.action {
        Action::List => Ok(report::list(&environment, &unlisted, &files)),
        Action::Check => check(&cfg, &environment, &files, &required),
        _ => start(cfg, environment, files, &required, inherited),
    }
}

/// `agent-init health ...`: the probe's arguments are no secret.
fn probe(args: &[SecretBytes]) -> Result<i32> {
    use std::os::unix::ffi::OsStringExt;
    let args: Vec<OsString> = args
        .iter()
        .map(|a| OsString::from_vec(a.expose().to_vec()))
        .collect();
    Ok(health::Probe::parse(&args)?.run())
}

/// The names the command must receive: the three `LIVEKIT_*` in production
/// (locally a warning says which are missing) and `--require`'s.
fn required_names(cfg: &Config, environment: &Environment, production: bool) -> Vec<String> {
    let mut required: Vec<String> = Vec::new();
    if production {
        required.extend(LIVEKIT_NAMES.iter().map(|s| s.to_string()));
    } else {
        let missing = environment.missing(LIVEKIT_NAMES);
        if !missing.is_empty() && !matches!(cfg.action, Action::List) {
            crate::warn!(
                "{} not set; a LiveKit agent cannot connect without them",
                missing.join(", ")
            );
        }
    }
    required.extend(cfg.require.iter().cloned());
    required
}

/// `--check`: every check a start makes, then the summary on stderr.
fn check(
    cfg: &Config,
    environment: &Environment,
    files: &files::Plan,
    required: &[String],
) -> Result<i32> {
    environment.check(required, &cfg.command, sys::arg_max())?;
    if !files.is_empty() {
        files.inspect()?;
    }
    let resolved = if cfg.command.is_empty() {
        None
    } else {
        Some(resolve_command(environment, &cfg.command)?)
    };
    Ok(report::check_passed(environment, files, resolved.as_ref()))
}

/// The start: the last checks, the file secrets written, then exec or
/// supervise. Nothing secret outlives `cfg`'s drop but the command's block.
fn start(
    cfg: Config,
    environment: Environment,
    files: files::Plan,
    required: &[String],
    inherited: &sys::Inherited,
) -> Result<i32> {
    environment.check(required, &cfg.command, sys::arg_max())?;
    let cmd = resolve_command(&environment, &cfg.command)?;
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
    let supervise = cfg.supervise;
    let opts = launch::SuperviseOptions {
        signal_child_only: cfg.signal_child_only,
        watch: None,
    };
    // Nothing secret outlives this point but the block the command receives.
    drop(cfg);
    crate::info!(
        "starting {} ({})",
        cmd.name,
        if supervise { "supervised" } else { "exec" }
    );
    // And the check and the block's assembly, also in frames below.
    sys::scrub_stack();
    if supervise {
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

/// `seal`'s own arguments, taken out of `cfg`; the rest of it (the inherited
/// environment among it) drops here, before anything is read or sealed.
fn seal_args(cfg: Config) -> Result<local::seal::SealArgs> {
    let Action::Seal { out, token } = cfg.action else {
        return Err(Error::Internal(
            "seal_args called for another action".into(),
        ));
    };
    Ok(local::seal::SealArgs {
        out,
        token,
        options: cfg.seal,
        files: cfg.secrets_files,
        flags: cfg.secrets_flags,
        mounts: cfg.secret_mounts,
    })
}

/// `--watch`: the first generation from the bundle, as without it, and a
/// watcher that keeps agent-init's own environment sealed with the token.
fn watch(cfg: Config, inherited: &sys::Inherited) -> Result<i32> {
    let (cmd, block, opts) = watch_first(cfg)?;
    // What the assembly left on the stack is below this frame: dead, wiped.
    sys::scrub_stack();
    launch::supervise(cmd, block, inherited, opts)
}

#[inline(never)]
fn watch_first(
    mut cfg: Config,
) -> Result<(launch::Command, env::EnvBlock, launch::SuperviseOptions)> {
    let (Some(w), Some(token), Some(fetch)) =
        (cfg.watch.take(), cfg.token.take(), cfg.fetch.take())
    else {
        return Err(Error::Internal("--watch without a bundle".into()));
    };
    warn_about_env_files();
    let fetched = source::fetch(&fetch, &token)?;
    let mut required: Vec<String> = LIVEKIT_NAMES.iter().map(|s| s.to_string()).collect();
    required.extend(std::mem::take(&mut cfg.require));
    let (every, policy) = (w.every, w.on_update);
    let mut watcher = launch::Watcher::new(
        w,
        fetch,
        std::mem::take(&mut cfg.command),
        required,
        &token,
        std::mem::take(&mut cfg.inherited),
        fetched.version,
    )?
    .files_in(cfg.secrets_dir.take());
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
    let signal_child_only = cfg.signal_child_only;
    drop(cfg);
    crate::info!(
        "starting {} (supervised; bundle {}, checked every {}s, on update: {}{})",
        cmd.name,
        watcher.version(),
        every.as_secs(),
        match policy {
            config::OnUpdate::Restart => "restart",
            config::OnUpdate::Exit => "exit",
            config::OnUpdate::Overlap => "overlap",
        },
        port.map_or(String::new(), |p| format!(", {}={p}", launch::PORT_VAR))
    );
    let opts = launch::SuperviseOptions {
        signal_child_only,
        watch: Some(watcher),
    };
    Ok((cmd, block, opts))
}

/// Looks the command up on the PATH it will itself receive.
fn resolve_command(environment: &Environment, command: &[OsString]) -> Result<launch::Command> {
    let path = environment.get("PATH").map(|v| v.value.expose());
    launch::resolve(command, path)
}

/// Builds the environment from the bundle (production) or from local files
/// and flags, the names `--list` must not show, and the file secrets
/// (§6.1) it refers to.
/// Never inlined: its frames, and the key schedules in them, must lie below
/// `run`'s, where `sys::scrub_stack` reaches them.
#[inline(never)]
fn assemble(cfg: &mut Config) -> Result<(Environment, Vec<String>, files::Plan)> {
    let inherited = std::mem::take(&mut cfg.inherited);
    let dir = cfg.secrets_dir.take();
    if let (Some(token), Some(fetch)) = (&cfg.token, &cfg.fetch) {
        warn_about_env_files();
        let body = source::fetch(fetch, token)?.body;
        let plaintext = protocol::bundle::open(token, body.expose())?;
        drop(body);
        let mut secrets = protocol::secrets::parse(plaintext.expose())?;
        drop(plaintext);
        cfg.token = None;
        crate::debug!(
            "bundle opened: {} secrets, {} files",
            secrets.secrets.len(),
            secrets.files.len()
        );
        let bundle_files = std::mem::take(&mut secrets.files);
        let mut env = Environment::production(inherited, secrets);
        let plan = files::plan_bundle_files(&mut env, dir.as_deref(), bundle_files, None)?;
        return Ok((env, Vec::new(), plan));
    }
    let dotenv_files = local::load::local_files(&cfg.secrets_files, cfg.dotenv_disabled);
    let (loaded, unlisted) = local::load::load_files(&dotenv_files, &inherited, false)?;
    let mut env = Environment::local(inherited, loaded, std::mem::take(&mut cfg.secrets_flags));
    // `--secret-mount`: the same file, name and variable production gives.
    let mut planned = Vec::with_capacity(cfg.secret_mounts.len());
    let mut vars = Vec::new();
    for m in &cfg.secret_mounts {
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
