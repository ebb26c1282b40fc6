//! File secrets (PROTOCOL.md §6.1) as files the command can read.
//!
//! Where: the directory `AGENT_INIT_SECRETS_DIR` names, or by default
//! `/dev/shm/agent-init-UID` (UID being agent-init's effective user). Docker
//! and podman give every container a tmpfs at `/dev/shm`, writable by any
//! user even under `--read-only`, in a `FROM scratch` image, and on
//! Kubernetes with `readOnlyRootFilesystem: true` (the runtime mounts it for
//! the pod), so the default needs nothing added to a deployment.
//!
//! Guarantees, once [`Plan::write`] returns:
//!
//! - the directory is on a memory file system (tmpfs or ramfs, checked with
//!   `statfs` before anything is written), unless `AGENT_INIT_SECRETS_DIR`
//!   chose it explicitly; otherwise nothing is written and the refusal (78)
//!   names the directory;
//! - it is a real directory (not a symbolic link) owned by agent-init's user,
//!   mode 0700: other users cannot list it or open what is in it;
//! - each file holds exactly the decoded content, is owned by that user, mode
//!   0400, and was created afresh (`O_EXCL`, never through a link); the
//!   command and every process it starts as the same user can read it;
//! - the buffers that held the content are wiped (they are
//!   [`SecretBytes`]);
//! - dropping the [`Written`] guard removes the files (and the directory,
//!   when it is empty): every failure before the command starts does, and
//!   supervise mode does when the command exits. In exec mode agent-init is
//!   the command after `execve`, so nothing is left to remove them.

use crate::base::error::{Error, Result};
use crate::base::sensitive::SecretBytes;
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The variable that chooses the directory.
pub const DIR_VAR: &str = "AGENT_INIT_SECRETS_DIR";
/// Where the default directory is made: the container's shared-memory tmpfs.
pub const DEFAULT_BASE: &str = "/dev/shm";

const TMPFS_MAGIC: i64 = 0x0102_1994;
const RAMFS_MAGIC: i64 = 0x8584_58f6;

/// One file secret to write.
#[derive(Debug)]
pub struct PlannedFile {
    /// The file's name in the directory (§6.1).
    pub name: String,
    pub content: SecretBytes,
    /// Where it came from, for listings: `bundle`, `--secret-mount PATH`.
    pub origin: String,
    /// From the bundle (§6.2), for listings.
    pub updated_at: Option<String>,
}

/// The files to write, and where.
#[derive(Debug)]
pub struct Plan {
    dir: PathBuf,
    explicit: bool,
    files: Vec<PlannedFile>,
    /// A subdirectory of `dir` the files go in (one per `--watch` generation).
    sub: Option<String>,
}

/// The secrets directory's I/O failure: what was being done, and why (78).
fn dir_error(dir: &Path, what: &str, e: std::io::Error) -> Error {
    Error::Config(format!(
        "secrets directory {}: {what}: {}",
        dir.display(),
        crate::sys::io_reason(&e)
    ))
}

impl Plan {
    /// Plans `files` (name, content) into the directory `setting` names (the
    /// value of `AGENT_INIT_SECRETS_DIR`), or the default. A setting that is
    /// not an absolute path is 78.
    pub fn new(setting: Option<&OsStr>, files: Vec<PlannedFile>) -> Result<Plan> {
        let (dir, explicit) = match setting.filter(|s| !s.is_empty()) {
            Some(s) => {
                let p = PathBuf::from(s);
                if !p.is_absolute() {
                    return Err(Error::Config(format!(
                        "{DIR_VAR} must be an absolute path (it becomes part of the paths the command receives), not {}",
                        p.display()
                    )));
                }
                (p, true)
            }
            None => (default_dir(), false),
        };
        Ok(Plan {
            dir,
            explicit,
            files,
            sub: None,
        })
    }

    /// The files go in the subdirectory `sub` of the directory, made mode
    /// 0700 like it: `--watch --on-update overlap` runs two generations at
    /// once, each with its own files.
    pub fn within(mut self, sub: String) -> Plan {
        self.sub = Some(sub);
        self
    }

    /// Where the files land: the directory, or its subdirectory.
    fn target(&self) -> PathBuf {
        match &self.sub {
            Some(s) => self.dir.join(s),
            None => self.dir.clone(),
        }
    }

    /// The directory the files go in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The absolute path file `name` gets.
    pub fn path(&self, name: &str) -> PathBuf {
        self.target().join(name)
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The planned files, for listings (never their content).
    pub fn files(&self) -> &[PlannedFile] {
        &self.files
    }

    /// Checks the directory without writing: it is a real directory owned by
    /// agent-init's user (or absent), on a memory file system unless chosen
    /// explicitly. Returns whether it exists. `--check` stops here.
    pub fn inspect(&self) -> Result<bool> {
        let dir = &self.dir;
        let shown = dir.display();
        let fail = |what: &str, e: std::io::Error| dir_error(dir, what, e);
        let existing = match std::fs::symlink_metadata(dir) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(fail("cannot inspect it", e)),
        };
        let euid = nix::unistd::geteuid().as_raw();
        match &existing {
            Some(m) if m.file_type().is_symlink() => {
                return Err(Error::Config(format!(
                    "secrets directory {shown} is a symbolic link; agent-init writes secrets only into a real directory"
                )));
            }
            Some(m) if !m.is_dir() => {
                return Err(Error::Config(format!(
                    "secrets directory {shown} exists and is not a directory"
                )));
            }
            Some(m) if m.uid() != euid => {
                return Err(Error::Config(format!(
                    "secrets directory {shown} is owned by uid {}, not by agent-init's user (uid {euid}); other users could reach what is written there",
                    m.uid()
                )));
            }
            _ => {}
        }
        // The file system is checked where the files will land, before any
        // byte is written: the directory itself, or the one it is made in.
        let probe = match &existing {
            Some(_) => dir.as_path(),
            None => dir.parent().unwrap_or(Path::new("/")),
        };
        let memory = match nix::sys::statfs::statfs(probe) {
            Ok(st) => is_memory(&st),
            Err(e) => return Err(fail("cannot inspect its file system", e.into())),
        };
        if !memory {
            if !self.explicit {
                return Err(Error::Config(format!(
                    "secrets directory {shown} is not on a memory file system (tmpfs), and file secrets are never written to disk; mount a tmpfs there (docker run --tmpfs {}, a Kubernetes emptyDir with medium: Memory) or set {DIR_VAR} to a directory on one",
                    probe.display()
                )));
            }
            crate::warn!(
                "{DIR_VAR} {shown} is not on a memory file system; file secrets are written there as asked"
            );
        }
        Ok(existing.is_some())
    }

    /// Checks the directory ([`Plan::inspect`]), creates it if needed, and
    /// writes every file. On any failure, what was written is removed again.
    pub fn write(self) -> Result<Written> {
        let mut written = Written {
            dir: self.dir.clone(),
            created_dir: false,
            files: Vec::with_capacity(self.files.len()),
            sub: None,
        };
        if self.files.is_empty() {
            return Ok(written);
        }
        let exists = self.inspect()?;
        let dir = &self.dir;
        let fail = |what: &str, e: std::io::Error| dir_error(dir, what, e);
        if !exists {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .map_err(|e| fail("cannot create it", e))?;
            written.created_dir = true;
        }
        // Exactly 0700 whatever the umask or an earlier mode.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| fail("cannot make it private (mode 0700)", e))?;
        let target = self.target();
        if let Some(sub) = &self.sub {
            // Inside a directory only agent-init's user can write to: one
            // that exists was left by an earlier generation.
            match std::fs::DirBuilder::new().mode(0o700).create(&target) {
                Ok(()) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::AlreadyExists
                        && std::fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) => {}
                Err(e) => return Err(fail(&format!("cannot create {sub}"), e)),
            }
            written.sub = Some(target.clone());
        }
        for PlannedFile { name, content, .. } in self.files {
            let path = target.join(&name);
            // A file left by an earlier run (exec mode cannot remove its
            // files) is replaced, never written through.
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(fail(&format!("cannot replace {name}"), e)),
            }
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o400)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(&path)
                .map_err(|e| fail(&format!("cannot create {name}"), e))?;
            written.files.push(path);
            f.set_permissions(std::fs::Permissions::from_mode(0o400))
                .and_then(|_| f.write_all(content.expose()))
                .map_err(|e| fail(&format!("cannot write {name}"), e))?;
            drop(content);
        }
        crate::debug!(
            "{} file secret(s) written to {}",
            written.files.len(),
            dir.display()
        );
        Ok(written)
    }
}

/// Whether `st` is a tmpfs or a ramfs.
// `f_type`'s width differs between architectures.
#[allow(clippy::unnecessary_cast)]
fn is_memory(st: &nix::sys::statfs::Statfs) -> bool {
    let t = st.filesystem_type().0 as i64;
    t == TMPFS_MAGIC || t == RAMFS_MAGIC
}

/// The default directory: `/dev/shm/agent-init-UID`.
pub fn default_dir() -> PathBuf {
    Path::new(DEFAULT_BASE).join(format!("agent-init-{}", nix::unistd::geteuid().as_raw()))
}

/// The files written; dropping it removes them.
#[derive(Debug)]
pub struct Written {
    dir: PathBuf,
    created_dir: bool,
    files: Vec<PathBuf>,
    sub: Option<PathBuf>,
}

impl Written {
    /// Removes the files now (and the directory, when agent-init made it or it is left empty).
    pub fn remove(&mut self) {
        if self.files.is_empty() && !self.created_dir && self.sub.is_none() {
            return;
        }
        for p in self.files.drain(..) {
            if let Err(e) = std::fs::remove_file(&p) {
                crate::warn!(
                    "cannot remove file secret {}: {}",
                    p.display(),
                    crate::sys::io_reason(&e)
                );
            }
        }
        if let Some(sub) = self.sub.take() {
            let _ = std::fs::remove_dir(sub);
        }
        // Only an empty directory goes: it may be a mount point or hold
        // someone else's files (another generation's), and then it stays.
        let _ = std::fs::remove_dir(&self.dir);
        self.created_dir = false;
    }
}

impl Drop for Written {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Plans the bundle's file secrets into `dir` (the `AGENT_INIT_SECRETS_DIR`
/// setting), in its subdirectory `sub` when given, and sets their variables
/// in `env`.
pub fn plan_bundle_files(
    env: &mut crate::env::Environment,
    dir: Option<&std::ffi::OsStr>,
    bundle_files: Vec<crate::protocol::secrets::FileSecret>,
    sub: Option<String>,
) -> Result<Plan> {
    let mut planned = Vec::with_capacity(bundle_files.len());
    let mut vars = Vec::new();
    for f in bundle_files {
        if let Some(var) = f.env {
            vars.push((var, f.name.clone()));
        }
        planned.push(PlannedFile {
            name: f.name,
            content: f.content,
            origin: "bundle".into(),
            updated_at: f.updated_at,
        });
    }
    let mut plan = Plan::new(dir, planned)?;
    if let Some(s) = sub {
        plan = plan.within(s);
    }
    set_file_vars(env, &plan, vars);
    Ok(plan)
}

/// Sets each file secret's variable to the file's absolute path, at the
/// precedence of the bundle's secrets (§6.1 keeps it off `LIVEKIT_*` and off
/// every other secret's name).
pub fn set_file_vars(env: &mut crate::env::Environment, plan: &Plan, vars: Vec<(String, String)>) {
    use std::os::unix::ffi::OsStrExt;
    for (var, name) in vars {
        let path = plan.path(&name);
        env.set(
            var.into(),
            SecretBytes::new(path.as_os_str().as_bytes().to_vec()),
            crate::env::Origin::SecretFile(name),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(dir: &Path, files: &[(&str, &[u8])]) -> Plan {
        Plan::new(
            Some(dir.as_os_str()),
            files
                .iter()
                .map(|(n, c)| PlannedFile {
                    name: n.to_string(),
                    content: SecretBytes::new(c.to_vec()),
                    origin: "bundle".into(),
                    updated_at: None,
                })
                .collect(),
        )
        .unwrap()
    }

    fn shm(tag: &str) -> Option<PathBuf> {
        let st = nix::sys::statfs::statfs("/dev/shm").ok()?;
        is_memory(&st).then(|| {
            Path::new("/dev/shm").join(format!("agent-init-unit-{tag}-{}", std::process::id()))
        })
    }

    #[test]
    fn files_land_exactly_with_modes_0700_and_0400_and_go_when_dropped() {
        let dir = shm("write").expect("/dev/shm is a tmpfs on this machine");
        let _ = std::fs::remove_dir_all(&dir);
        let bytes: Vec<u8> = (0..=255u8).collect();
        let w = plan(&dir, &[("raw.bin", &bytes), ("k.pem", b"PEM\n")])
            .write()
            .unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(std::fs::read(dir.join("raw.bin")).unwrap(), bytes);
        assert_eq!(mode(&dir.join("raw.bin")), 0o400);
        assert_eq!(std::fs::read(dir.join("k.pem")).unwrap(), b"PEM\n");
        drop(w);
        assert!(
            !dir.exists(),
            "the directory agent-init made is removed with its files"
        );
    }

    #[test]
    fn two_generations_subdirectories_coexist_and_each_goes_with_its_guard() {
        let dir = shm("subdirs").expect("/dev/shm is a tmpfs on this machine");
        let _ = std::fs::remove_dir_all(&dir);
        let one = plan(&dir, &[("k.pem", b"one")]).within("1".into());
        assert_eq!(one.path("k.pem"), dir.join("1").join("k.pem"));
        let one = one.write().unwrap();
        let two = plan(&dir, &[("k.pem", b"two")])
            .within("2".into())
            .write()
            .unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("2")), 0o700);
        assert_eq!(std::fs::read(dir.join("1/k.pem")).unwrap(), b"one");
        assert_eq!(std::fs::read(dir.join("2/k.pem")).unwrap(), b"two");
        drop(one);
        assert!(!dir.join("1").exists(), "the first generation's files go");
        assert_eq!(std::fs::read(dir.join("2/k.pem")).unwrap(), b"two");
        drop(two);
        assert!(!dir.exists(), "the last one takes the directory along");
    }

    #[test]
    fn a_stale_file_is_replaced_not_written_through() {
        let dir = shm("stale").expect("/dev/shm is a tmpfs on this machine");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let target = dir.join("target");
        std::fs::write(&target, b"untouched").unwrap();
        std::os::unix::fs::symlink(&target, dir.join("k.pem")).unwrap();
        let w = plan(&dir, &[("k.pem", b"new")]).write().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"untouched");
        assert_eq!(std::fs::read(dir.join("k.pem")).unwrap(), b"new");
        drop(w);
        // The directory held another file, so it stays.
        assert!(target.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_symlinked_or_foreign_directory_is_refused_78() {
        let dir = shm("link").expect("/dev/shm is a tmpfs on this machine");
        let _ = std::fs::remove_file(&dir);
        std::os::unix::fs::symlink("/tmp", &dir).unwrap();
        let e = plan(&dir, &[("k.pem", b"x")]).write().unwrap_err();
        assert_eq!(e.exit_code(), 78);
        assert!(e.to_string().contains(&dir.display().to_string()), "{e}");
        std::fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn a_relative_setting_is_refused_and_the_default_is_under_dev_shm() {
        let e = Plan::new(Some(OsStr::new("secrets")), Vec::new()).unwrap_err();
        assert_eq!(e.exit_code(), 78);
        let p = Plan::new(None, Vec::new()).unwrap();
        assert!(p.dir().starts_with("/dev/shm"));
        assert!(!p.explicit);
        assert_eq!(p.path("k.pem"), p.dir().join("k.pem"));
    }

    #[test]
    fn a_disk_directory_is_refused_by_default_and_used_when_chosen() {
        // The crate's target directory is on disk wherever the crate is built.
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        let dir = base.join(format!("agent-init-unit-disk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let st = nix::sys::statfs::statfs(&base).unwrap();
        let t = st.filesystem_type().0 as i64;
        assert!(
            t != TMPFS_MAGIC && t != RAMFS_MAGIC,
            "{} must be on disk",
            base.display()
        );
        let mut p = plan(&dir, &[("k.pem", b"x")]);
        p.explicit = false;
        let e = p.write().unwrap_err();
        assert_eq!(e.exit_code(), 78);
        assert!(e.to_string().contains(&dir.display().to_string()), "{e}");
        assert!(!dir.exists(), "nothing is written when refused");
        let w = plan(&dir, &[("k.pem", b"x")]).write().unwrap();
        assert_eq!(std::fs::read(dir.join("k.pem")).unwrap(), b"x");
        drop(w);
        assert!(!dir.exists());
    }

    #[test]
    fn an_empty_plan_touches_nothing() {
        let p = Plan::new(Some(OsStr::new("/nonexistent/dir")), Vec::new()).unwrap();
        let w = p.write().unwrap();
        assert!(!Path::new("/nonexistent/dir").exists());
        drop(w);
    }
}
