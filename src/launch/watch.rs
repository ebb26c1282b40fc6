//! `--watch`: supervise mode that rolls the agent when its bundle changes.
//!
//! Guarantees:
//! - the source is checked every `--watch` seconds plus jitter, never more
//!   often than every 5 s: over HTTPS with `If-None-Match` (a 304 is no
//!   change), a `file://` bundle by its content;
//! - between checks agent-init holds no secret: the token is read again
//!   from `LIVEKIT_BOOTSTRAP_TOKEN_FILE` at each check and dropped after it,
//!   and agent-init's own environment (which may hold the platform's
//!   `LIVEKIT_API_SECRET`) is kept only sealed with that token's seal key;
//! - a new bundle is opened and checked exactly as at start (§5, §6, the
//!   required names, the kernel's budget, the command's resolution) before
//!   anything happens to the agent. One that fails changes nothing: one
//!   error line names the reason, and the next check tries again. A service
//!   that cannot be reached is not a change;
//! - file secrets (§6.1) belong to a generation: written (once the update
//!   checked out) before it starts, removed once its group has exited; with
//!   `overlap` each generation has a subdirectory of its own;
//! - a roll sends the draining generation exactly one SIGTERM (to its group,
//!   as supervise mode forwards signals) and SIGKILLs what is left of it
//!   after `--drain-timeout`; every step is logged with the bundle's version;
//! - a check (fetch, open, the checks) runs in a thread of its own, on a
//!   copy of the watcher, and wipes the dead stack it leaves: signals never
//!   wait for it, and a stop drops it;
//! - a stop signal for agent-init during a roll cancels the roll and stops
//!   every generation exactly once: one that the roll already stopped gets
//!   no second stop signal. agent-init exits once all are gone, with the
//!   status of the generation that was serving.

use super::supervise::{forward, is_stop, job_stop, start, Generation};
use super::Command;
use crate::base::error::{Error, Result};
use crate::base::sensitive::SecretBytes;
use crate::env::{EnvBlock, Environment, Origin};
use crate::files::{Plan, Written};
use crate::protocol::token::Token;
use crate::source::{self, FetchOptions};
use crate::sys::{self, ChildStatus, Inherited, Reaped, SpawnOptions};
use nix::sys::signal::{SigSet, Signal};
use ring::rand::SecureRandom;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The shortest `--watch` interval (PROTOCOL.md §4).
pub const MIN_WATCH: Duration = Duration::from_secs(5);
/// LiveKit's own drain timeout, in both SDKs.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(3600);

/// How a running agent is replaced when its bundle changes (`--on-update`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUpdate {
    /// Drain the agent (one SIGTERM, then SIGKILL after the drain timeout),
    /// then start it again with the new environment.
    Restart,
    /// Drain the agent, then exit (status [`super::EXIT_UPDATED`]).
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

/// The status agent-init exits with after draining for `--on-update exit`
/// (EX_TEMPFAIL: "try again"), so that an orchestrator starts a new container.
pub const EXIT_UPDATED: i32 = 75;
/// The variable that tells each generation of an `overlap` roll its health port.
pub const PORT_VAR: &str = "AGENT_HTTP_PORT";
/// One check's fetch deadline. The check runs in a thread of its own, so
/// signals never wait for it.
const CHECK_DEADLINE: Duration = Duration::from_secs(10);
/// How long a new `overlap` generation may take to answer 200.
const READY_TIMEOUT: Duration = Duration::from_secs(600);
/// How often a new generation's health port, and stopping groups, are looked at.
const POLL: Duration = Duration::from_millis(500);

/// What `--watch` keeps between checks: no secret, only ciphertext.
pub struct Watcher {
    cfg: WatchConfig,
    fetch: FetchOptions,
    command: Vec<OsString>,
    required: Vec<String>,
    /// The token's ID, to tell "another token" from "a broken bundle".
    token_id: String,
    /// agent-init's own environment, sealed with the token (PROTOCOL.md §5).
    inherited: String,
    /// The version of the bundle the serving generation runs.
    version: String,
    /// SHA-256 of what the serving generation got (see [`digest`]).
    digest: [u8; 32],
    /// Where the command is looked up and started (agent-init itself moves to `/`).
    cwd: Option<std::path::PathBuf>,
    /// `AGENT_INIT_SECRETS_DIR`: where file secrets go.
    files_dir: Option<OsString>,
    /// The first generation's file secrets, until it takes them over.
    first: Option<Written>,
}

/// A generation ready to start: the command, its environment, its file
/// secrets (not written yet) and the digest that tells one update from another.
pub struct Ready {
    pub cmd: Command,
    pub block: EnvBlock,
    pub files: Plan,
    pub digest: [u8; 32],
}

/// A new bundle that checked out: the sealed body (ciphertext) and its version.
struct Update {
    body: SecretBytes,
    version: String,
}

impl Watcher {
    /// Seals `inherited` with `token` and remembers how to fetch again.
    pub fn new(
        cfg: WatchConfig,
        fetch: FetchOptions,
        command: Vec<OsString>,
        required: Vec<String>,
        token: &Token,
        inherited: Vec<(OsString, SecretBytes)>,
        version: String,
    ) -> Result<Watcher> {
        let mut plain = SecretBytes::new(Vec::new());
        for (n, v) in &inherited {
            plain.expose_mut().extend_from_slice(n.as_bytes());
            plain.expose_mut().push(0);
            plain.expose_mut().extend_from_slice(v.expose());
            plain.expose_mut().push(0);
        }
        drop(inherited);
        Ok(Watcher {
            inherited: crate::protocol::bundle::seal(token, plain.expose())?,
            cfg,
            fetch,
            command,
            required,
            token_id: token.id_b64(),
            version,
            digest: [0; 32],
            cwd: nix::unistd::getcwd().ok(),
            files_dir: None,
            first: None,
        })
    }

    /// A copy for a check in another thread: everything but the first
    /// generation's files (long handed over by then).
    fn copy(&self) -> Watcher {
        Watcher {
            cfg: self.cfg.clone(),
            fetch: self.fetch.clone(),
            command: self.command.clone(),
            required: self.required.clone(),
            token_id: self.token_id.clone(),
            inherited: self.inherited.clone(),
            version: self.version.clone(),
            digest: self.digest,
            cwd: self.cwd.clone(),
            files_dir: self.files_dir.clone(),
            first: None,
        }
    }

    /// File secrets go where `AGENT_INIT_SECRETS_DIR` says (`None`: the default).
    pub fn files_in(mut self, dir: Option<OsString>) -> Watcher {
        self.files_dir = dir;
        self
    }

    /// Hands the first generation's written file secrets over.
    pub fn first_files(&mut self, w: Written) {
        self.first = Some(w);
    }

    /// The first generation's file secrets, for it to hold.
    pub(super) fn take_first_files(&mut self) -> Option<Written> {
        self.first.take()
    }

    /// The port generation `n` listens on with `overlap`; `None` otherwise.
    pub fn port(&self, n: u32) -> Option<u16> {
        (self.cfg.on_update == OnUpdate::Overlap).then(|| self.cfg.health_port + (n % 2) as u16)
    }

    /// The version of the bundle in use.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Reads the token again; the caller drops it after the check.
    fn token(&self) -> Result<Token> {
        let text = source::read_token_file(
            "LIVEKIT_BOOTSTRAP_TOKEN_FILE",
            &self.cfg.token_file,
            CHECK_DEADLINE,
        )?;
        let token = Token::parse(text.expose())?;
        if token.id_b64() != self.token_id {
            return Err(Error::Config(
                "LIVEKIT_BOOTSTRAP_TOKEN_FILE now holds another token; agent-init keeps its own environment sealed with the one it started with, so a new token needs a new container".into(),
            ));
        }
        Ok(token)
    }

    /// Opens `body` and builds the command, its environment and its file
    /// secrets exactly as at start, for generation `n` (`None`: only to
    /// check it): with `overlap`, its health port in [`PORT_VAR`] and its
    /// files in a subdirectory of its own, named `n`.
    /// Never inlined: its frame, with whatever secret bytes it left there,
    /// is dead stack once it returns, which the caller then wipes.
    #[inline(never)]
    pub fn prepare(&mut self, token: &Token, body: &[u8], n: Option<u32>) -> Result<Ready> {
        let plaintext = crate::protocol::bundle::open(token, body)?;
        let mut secrets =
            crate::protocol::secrets::parse_noting(plaintext.expose(), crate::env::warn_dropped)?;
        drop(plaintext);
        let bundle_files = std::mem::take(&mut secrets.files);
        let plain = crate::protocol::bundle::open(token, self.inherited.as_bytes())?;
        let mut inherited = Vec::new();
        let mut fields = plain.expose().split(|&b| b == 0);
        while let (Some(n), Some(v)) = (fields.next(), fields.next()) {
            inherited.push((OsString::from_vec(n.to_vec()), SecretBytes::new(v.to_vec())));
        }
        drop(plain);
        let mut env = Environment::production(inherited, secrets);
        let sub = n.filter(|_| self.cfg.on_update == OnUpdate::Overlap);
        let files = crate::files::plan_bundle_files(
            &mut env,
            self.files_dir.as_deref(),
            bundle_files,
            sub.map(|n| n.to_string()),
        )?;
        if let Some(p) = n.and_then(|n| self.port(n)) {
            env.set(
                PORT_VAR.into(),
                SecretBytes::new(p.to_string().into_bytes()),
                Origin::Inherited,
            );
        }
        env.check(&self.required, &self.command, sys::arg_max())?;
        // `./agent` and relative PATH entries mean the same as at start.
        let here = nix::unistd::getcwd().ok();
        if let Some(d) = &self.cwd {
            let _ = nix::unistd::chdir(d.as_path());
        }
        let cmd = super::resolve(&self.command, env.get("PATH").map(|v| v.value.expose()));
        if let Some(d) = here {
            let _ = nix::unistd::chdir(d.as_path());
        }
        let digest = digest(&env, &files);
        Ok(Ready {
            cmd: cmd?,
            block: env.into_block(),
            files,
            digest,
        })
    }

    /// Records what the serving generation runs.
    pub fn serving(&mut self, version: String, digest: [u8; 32]) {
        self.version = version;
        self.digest = digest;
    }

    /// One check. A new bundle that opens and checks out is returned; every
    /// failure is one line and no change.
    #[inline(never)]
    fn check(&mut self) -> Option<Update> {
        let token = match self.token() {
            Ok(t) => t,
            Err(e) => {
                crate::error!("watch: {e}; the agent keeps running");
                return None;
            }
        };
        let opts = FetchOptions {
            deadline: self.fetch.deadline.min(CHECK_DEADLINE),
            ..self.fetch.clone()
        };
        let fetched = match source::fetch_if_changed(&opts, &token, Some(&self.version)) {
            Ok(None) => {
                crate::debug!("watch: bundle {} is current", self.version);
                return None;
            }
            Ok(Some(f)) => f,
            // A revoked (or expired) token is no change either: the agent's
            // LiveKit credentials are not the token, and stopping it would
            // cut its calls for a container that cannot start again (77).
            Err(e @ Error::Denied(_)) => {
                crate::error!(
                    "watch: {e}; the agent keeps running bundle {}, and no update reaches it until the container gets a new token",
                    self.version
                );
                return None;
            }
            Err(e) => {
                crate::warn!("watch: cannot check the bundle ({e}); the agent keeps running");
                return None;
            }
        };
        let ready = match self.prepare(&token, fetched.body.expose(), None) {
            Ok(ready) => ready,
            Err(e) => {
                crate::error!(
                    "watch: bundle {} refused: {e}; the agent keeps running bundle {}",
                    fetched.version,
                    self.version
                );
                return None;
            }
        };
        if ready.digest == self.digest {
            crate::info!(
                "watch: bundle {} gives the same environment as {}: nothing to roll",
                fetched.version,
                self.version
            );
            self.version = fetched.version;
            return None;
        }
        Some(Update {
            body: fetched.body,
            version: fetched.version,
        })
    }
}

/// SHA-256 over what a generation gets, less what differs between two
/// generations of one bundle: the variables (less its own port; a file
/// secret's variable by the file's name, not its path) and the files.
fn digest(env: &Environment, files: &Plan) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for v in env.vars().iter().filter(|v| v.name != PORT_VAR) {
        ctx.update(v.name.as_bytes());
        match &v.origin {
            Origin::SecretFile(name) => {
                ctx.update(b"\x01");
                ctx.update(name.as_bytes());
            }
            _ => {
                ctx.update(b"=");
                ctx.update(v.value.expose());
            }
        }
        ctx.update(b"\0");
    }
    for f in files.files() {
        ctx.update(f.name.as_bytes());
        ctx.update(&(f.content.expose().len() as u64).to_le_bytes());
        ctx.update(f.content.expose());
    }
    let mut out = [0; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// A uniform random duration in `[0, max]`.
fn random_upto(max: Duration) -> Duration {
    let mut b = [0u8; 8];
    let r = match ring::rand::SystemRandom::new().fill(&mut b) {
        Ok(()) => u64::from_le_bytes(b),
        Err(_) => 0,
    };
    let ms = max.as_millis() as u64;
    Duration::from_millis(if ms == 0 { 0 } else { r % (ms + 1) })
}

/// Where a roll is.
enum Phase {
    /// Waiting for the next check.
    Idle { check_at: Instant },
    /// A check runs in its own thread, on a copy of the watcher; the signal
    /// loop goes on meanwhile (a stop drops the check).
    Checking {
        thread: std::thread::JoinHandle<(String, Option<Update>)>,
    },
    /// A new bundle checked out; the roll starts at `at` (`--rollout-spread`).
    Delay { at: Instant, update: Update },
    /// `restart` / `exit`: the serving generation got its SIGTERM.
    Draining { update: Update },
    /// `overlap`: the new generation runs and is not ready yet.
    Starting {
        next: Generation,
        update: Update,
        /// The new environment's digest, the serving one's once it is ready.
        digest: [u8; 32],
        until: Instant,
        ready_since: Option<Instant>,
    },
}

/// Supervises `first` and rolls it on every bundle update; returns the exit status.
pub fn run(
    first: Generation,
    waited: &SigSet,
    inherited: &Inherited,
    spawn: &SpawnOptions,
    alone: bool,
    mut w: Watcher,
) -> Result<i32> {
    let next_check = |w: &Watcher| Instant::now() + w.cfg.every + random_upto(w.cfg.every / 5);
    let mut cur = first;
    let mut drained: Vec<Generation> = Vec::new();
    let mut phase = Phase::Idle {
        check_at: next_check(&w),
    };
    let mut stopping = false;
    let mut n = 0u32;
    let gone = |g: &Generation| g.status.is_some() && (alone || !sys::group_exists(g.pid.as_raw()));
    loop {
        let now = Instant::now();
        let mut wake = now + POLL;
        match &phase {
            Phase::Idle { check_at } if !stopping && cur.status.is_none() && drained.is_empty() => {
                wake = *check_at
            }
            Phase::Delay { at, .. } if drained.is_empty() => wake = (*at).min(now + POLL * 20),
            _ => {}
        }
        let sig = sys::wait_signal_for(waited, wake.saturating_duration_since(now));
        match sig {
            Some(s) if s == Signal::SIGCHLD as i32 => {
                while let Reaped::Child { pid, status } = sys::reap_one() {
                    let next = match &mut phase {
                        Phase::Starting { next, .. } => Some(next),
                        _ => None,
                    };
                    for g in std::iter::once(&mut cur)
                        .chain(next)
                        .chain(drained.iter_mut())
                    {
                        if g.pid.as_raw() == pid {
                            g.status = Some(status);
                        }
                    }
                }
            }
            Some(s) => {
                let stop = is_stop(s);
                if stop && !stopping {
                    stopping = true;
                    crate::info!(
                        "{} received: stopping{}",
                        crate::base::log::signal_name(s),
                        if matches!(phase, Phase::Idle { .. } | Phase::Checking { .. }) {
                            ""
                        } else {
                            "; the roll is cancelled"
                        }
                    );
                }
                // A generation the roll already stopped gets no second stop.
                let draining = matches!(phase, Phase::Draining { .. });
                if !(stop && draining) && cur.status.is_none() {
                    forward(cur.pid, s, alone, false);
                }
                if let Phase::Starting { next, .. } = &phase {
                    if next.status.is_none() {
                        forward(next.pid, s, alone, false);
                    }
                }
                job_stop(s);
                if stop {
                    // A check still running is left to itself: its thread
                    // ends with agent-init.
                    if let Phase::Idle { .. } | Phase::Delay { .. } | Phase::Checking { .. } = phase
                    {
                        phase = Phase::Idle {
                            check_at: Instant::now(),
                        };
                    }
                }
            }
            None => {}
        }

        // Drain deadlines: SIGKILL what is left of a generation, once.
        let now = Instant::now();
        for g in std::iter::once(&mut cur).chain(drained.iter_mut()) {
            if let Some(until) = g.kill_at {
                if now >= until && !gone(g) {
                    crate::warn!(
                        "generation {} (bundle {}) still runs after --drain-timeout; SIGKILL",
                        g.n,
                        g.version
                    );
                    sys::send_signal(-g.pid.as_raw(), Signal::SIGKILL as i32);
                    if g.status.is_none() {
                        sys::send_signal(g.pid.as_raw(), Signal::SIGKILL as i32);
                    }
                    g.kill_at = None;
                }
            }
        }
        drained.retain(|g| {
            let done = gone(g);
            if done {
                crate::info!(
                    "generation {} (bundle {}) has drained (status {})",
                    g.n,
                    g.version,
                    g.status.map_or(0, ChildStatus::code)
                );
            }
            !done
        });

        if stopping {
            let next_gone = match &phase {
                Phase::Starting { next, .. } => gone(next),
                _ => true,
            };
            if gone(&cur) && next_gone && drained.is_empty() {
                return Ok(cur.status.map_or(0, ChildStatus::code));
            }
            continue;
        }

        let draining = matches!(phase, Phase::Draining { .. });
        if let (Some(st), false) = (cur.status, draining) {
            // The serving generation ended on its own: as without --watch
            // (tini's rule), unless a stop its group got too ended it.
            if !alone && st.signal().is_some_and(is_stop) && sys::group_exists(cur.pid.as_raw()) {
                stopping = true;
                continue;
            }
            return Ok(st.code());
        }

        phase = match phase {
            Phase::Idle { check_at } if Instant::now() >= check_at => match check_in_thread(&w) {
                Ok(thread) => Phase::Checking { thread },
                // No thread: the check runs here, and signals wait for it.
                Err(_) => {
                    let found = checked(&mut w);
                    after_check(&w, found)
                }
            },
            Phase::Checking { thread } if thread.is_finished() => {
                let found = match thread.join() {
                    Ok((version, found)) => {
                        // A bundle that gave the same environment is current now.
                        w.version = version;
                        found
                    }
                    Err(_) => None,
                };
                after_check(&w, found)
            }
            Phase::Delay { at, update } if Instant::now() >= at && drained.is_empty() => {
                let p = begin(&mut w, &mut cur, update, &mut n, inherited, spawn, alone);
                sys::scrub_stack();
                p
            }
            Phase::Draining { update } if gone(&cur) => {
                crate::info!(
                    "generation {} (bundle {}) has drained (status {})",
                    cur.n,
                    cur.version,
                    cur.status.map_or(0, ChildStatus::code)
                );
                if w.cfg.on_update == OnUpdate::Exit {
                    crate::info!(
                        "--on-update exit: exiting {EXIT_UPDATED} for bundle {}",
                        update.version
                    );
                    return Ok(EXIT_UPDATED);
                }
                // Its files go before the next generation's are written
                // (the same paths, with `restart`).
                cur.files = None;
                n += 1;
                cur = respawn(&mut w, update, inherited, spawn, n)?;
                sys::scrub_stack();
                crate::info!(
                    "generation {} (bundle {}) started (pid {})",
                    cur.n,
                    cur.version,
                    cur.pid
                );
                Phase::Idle {
                    check_at: next_check(&w),
                }
            }
            Phase::Starting {
                mut next,
                update,
                digest,
                until,
                mut ready_since,
            } => {
                let port = w.port(next.n).unwrap_or(0);
                if let Some(st) = next.status {
                    crate::error!(
                        "generation {} (bundle {}) exited with status {} before it was ready on port {port}; generation {} keeps running",
                        next.n, next.version, st.code(), cur.n
                    );
                    drained.push(next);
                    Phase::Idle {
                        check_at: next_check(&w),
                    }
                } else if Instant::now() >= until {
                    crate::error!(
                        "generation {} (bundle {}) was not ready on port {port} within {}s; SIGKILL; generation {} keeps running",
                        next.n, next.version, READY_TIMEOUT.as_secs(), cur.n
                    );
                    next.kill_at = Some(Instant::now());
                    drained.push(next);
                    Phase::Idle {
                        check_at: next_check(&w),
                    }
                } else {
                    if ready_since.is_none()
                        && crate::health::get(port, Instant::now() + Duration::from_secs(1))
                            == Ok(200)
                    {
                        crate::info!(
                            "generation {} (bundle {}) answers 200 on port {port}{}",
                            next.n,
                            next.version,
                            if w.cfg.settle.is_zero() {
                                String::new()
                            } else {
                                format!("; handing over in {:.1}s", w.cfg.settle.as_secs_f64())
                            }
                        );
                        ready_since = Some(Instant::now());
                    }
                    match ready_since {
                        Some(t) if t.elapsed() >= w.cfg.settle => {
                            crate::info!(
                                "roll to bundle {}: generation {} serves; SIGTERM to generation {} (bundle {}, pid {}); it may drain for {}s",
                                update.version,
                                next.n,
                                cur.n,
                                cur.version,
                                cur.pid,
                                w.cfg.drain.as_secs()
                            );
                            stop_for_roll(&mut cur, w.cfg.drain, alone);
                            let old = std::mem::replace(&mut cur, next);
                            drained.push(old);
                            w.version = update.version;
                            w.digest = digest;
                            Phase::Idle {
                                check_at: next_check(&w),
                            }
                        }
                        _ => Phase::Starting {
                            next,
                            update,
                            digest,
                            until,
                            ready_since,
                        },
                    }
                }
            }
            other => other,
        };
    }
}

/// Starts a roll to `update`: checks it again (the token may have changed
/// during the spread), then stops the serving generation (`restart`,
/// `exit`) or starts the next one (`overlap`).
#[inline(never)]
fn begin(
    w: &mut Watcher,
    cur: &mut Generation,
    update: Update,
    n: &mut u32,
    inherited: &Inherited,
    spawn: &SpawnOptions,
    alone: bool,
) -> Phase {
    let idle = |w: &Watcher| Phase::Idle {
        check_at: Instant::now() + w.cfg.every,
    };
    let token = match w.token() {
        Ok(t) => t,
        Err(e) => {
            crate::error!("watch: {e}; the roll to bundle {} is off", update.version);
            return idle(w);
        }
    };
    let port = w.port(*n + 1);
    let prepared = w.prepare(&token, update.body.expose(), Some(*n + 1));
    drop(token);
    let ready = match prepared {
        Ok(p) => p,
        Err(e) => {
            crate::error!(
                "watch: bundle {} refused: {e}; the agent keeps running bundle {}",
                update.version,
                w.version
            );
            return idle(w);
        }
    };
    if w.cfg.on_update != OnUpdate::Overlap {
        drop(ready);
        sys::scrub_stack();
        crate::info!(
            "roll to bundle {}: SIGTERM to generation {} (bundle {}, pid {}); it may drain for {}s",
            update.version,
            cur.n,
            cur.version,
            cur.pid,
            w.cfg.drain.as_secs()
        );
        stop_for_roll(cur, w.cfg.drain, alone);
        return Phase::Draining { update };
    }
    let Ready {
        cmd,
        block,
        files,
        digest,
    } = ready;
    // The new generation's own subdirectory: the old one keeps its files.
    let files = match files.write() {
        Ok(f) => f,
        Err(e) => {
            crate::error!(
                "roll to bundle {}: {e}; generation {} keeps running",
                update.version,
                cur.n
            );
            return idle(w);
        }
    };
    match start(
        &cmd,
        block,
        inherited,
        spawn,
        *n + 1,
        update.version.clone(),
    ) {
        Ok(mut next) => {
            next.files = Some(files);
            *n += 1;
            crate::info!(
                "roll to bundle {}: generation {} started (pid {}, {PORT_VAR}={}); generation {} serves until it answers 200 there",
                update.version,
                next.n,
                next.pid,
                port.unwrap_or(0),
                cur.n
            );
            Phase::Starting {
                next,
                update,
                digest,
                until: Instant::now() + READY_TIMEOUT,
                ready_since: None,
            }
        }
        Err(e) => {
            crate::error!(
                "roll to bundle {}: the new generation did not start ({e}); generation {} keeps running",
                update.version,
                cur.n
            );
            idle(w)
        }
    }
}

/// Starts one check in a thread of its own, on a copy of the watcher
/// (which holds no secret); it wipes the dead stack it leaves, and returns
/// the version that is current and the update it found.
fn check_in_thread(
    w: &Watcher,
) -> std::io::Result<std::thread::JoinHandle<(String, Option<Update>)>> {
    let mut copy = w.copy();
    std::thread::Builder::new()
        .name("watch-check".into())
        .spawn(move || {
            let found = checked(&mut copy);
            (copy.version, found)
        })
}

/// What a check leads to: the next check, or a roll after the spread.
fn after_check(w: &Watcher, found: Option<Update>) -> Phase {
    let Some(update) = found else {
        return Phase::Idle {
            check_at: Instant::now() + w.cfg.every + random_upto(w.cfg.every / 5),
        };
    };
    let delay = random_upto(w.cfg.spread);
    crate::info!(
        "watch: bundle {} is new and checks out; the roll from {} starts in {:.1}s",
        update.version,
        w.version,
        delay.as_secs_f64()
    );
    Phase::Delay {
        at: Instant::now() + delay,
        update,
    }
}

/// One check, then the dead stack it left wiped.
fn checked(w: &mut Watcher) -> Option<Update> {
    let found = w.check();
    sys::scrub_stack();
    found
}

/// `restart`: the next generation, once the last one has drained.
#[inline(never)]
fn respawn(
    w: &mut Watcher,
    update: Update,
    inherited: &Inherited,
    spawn: &SpawnOptions,
    n: u32,
) -> Result<Generation> {
    let token = w.token()?;
    let ready = w.prepare(&token, update.body.expose(), Some(n))?;
    drop(token);
    w.serving(update.version, ready.digest);
    let files = ready.files.write()?;
    let mut g = start(
        &ready.cmd,
        ready.block,
        inherited,
        spawn,
        n,
        w.version.clone(),
    )?;
    g.files = Some(files);
    Ok(g)
}

/// Sends a generation its one SIGTERM (where supervise mode sends
/// signals), and arms its drain deadline.
fn stop_for_roll(g: &mut Generation, drain: Duration, alone: bool) {
    forward(g.pid, Signal::SIGTERM as i32, alone, g.status.is_some());
    g.kill_at = Some(Instant::now() + drain);
}
