//! The verbs' command lines and the three that only read or revoke:
//! `secrets`, `list`, `revoke` (`create` and `update-secrets` are in
//! [`super::upload`]).

use super::client::{Admin, Reply, ServiceUrl};
use super::{note, print};
use crate::api::{ListResponse, TokenResponse, TOKENS_PATH};
use crate::args::{self, Flag, Parsed};
use agent_init::base::error::{Error, Result};
use agent_init::base::sensitive::SecretBytes;
use agent_init::protocol::token::Token;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where `agent-secrets serve` listens when given no `--listen`.
pub const DEFAULT_SERVICE: &str = "http://127.0.0.1:8077";
/// The admin key `agent-secrets serve` creates under its default `--data`.
pub const DEFAULT_ADMIN_KEY_FILE: &str = "agent-secrets-data/admin-key";
/// Largest answer to `GET /v1/tokens/{ID}`: an 8 MiB bundle and its manifest.
const TOKEN_CAP: u64 = 16 << 20;
/// Largest answer to `GET /v1/tokens`.
const LIST_CAP: u64 = 64 << 20;

const COMMON: [Flag; 4] = [
    Flag::value("--service", "AGENT_SECRETS_URL"),
    Flag::value("--admin-key-file", "AGENT_SECRETS_ADMIN_KEY_FILE"),
    Flag::value("--ca-file", "AGENT_SECRETS_CA_FILE"),
    Flag::value("--timeout", "AGENT_SECRETS_TIMEOUT"),
];
const INPUTS: [Flag; 3] = [
    Flag::repeated("--secrets-file"),
    Flag::repeated("--secrets"),
    Flag::repeated("--secret-mount"),
];

const HELP: &str = "\
agent-secrets CLI: create, update, list and revoke agents' sealed secrets on a
secrets service (PROTOCOL.md §10). Values are sealed here, before upload; the
service never sees one, nor a token's KEY.

Usage:
  agent-secrets create [INPUTS]
      make a token, seal the inputs for it, upload; print the token (only it) on stdout
  agent-secrets update-secrets --token-file FILE [INPUTS] [--overwrite] [--remove NAME]...
      add or update the given secrets, keep the others (--overwrite: replace them all)
  agent-secrets secrets ID | --token-file FILE [--json]
      each secret's name, kind, created and updated dates; never a value
  agent-secrets list [--json]
      every token: ID, version, last update, number of secrets, revoked
  agent-secrets revoke ID
      from now on agent-init gets 401 (exit 77) with that token; the bundle is deleted

Inputs (as agent-init seal reads them; python-dotenv syntax, PROTOCOL.md §6 rules):
  --secrets-file FILE       a dotenv file (repeatable; later files win)
  --secrets KEY=VALUE       one secret (repeatable; beats the files)
  --secret-mount [VAR=]PATH a file secret named after PATH's base name; VAR gets its path
  With no input, create reads .env, .env.local and .env.production where they exist.

Options of every verb:
  --service URL             the service (AGENT_SECRETS_URL; default http://127.0.0.1:8077)
  --admin-key-file FILE     the admin key (AGENT_SECRETS_ADMIN_KEY_FILE;
                            default agent-secrets-data/admin-key, where serve makes one)
  --ca-file PEM             extra trusted CA certificates (AGENT_SECRETS_CA_FILE)
  --timeout SECONDS         overall deadline of each request, retries included
                            (AGENT_SECRETS_TIMEOUT; default 60)

Exit codes: 64 usage, 65 inputs or bundle refused, 69 service unavailable or
unexpected answer, 77 admin key, token or ID refused or unknown, 78 configuration.
";

/// Runs `verb`. `env` is the process environment (for the `AGENT_SECRETS_*` variables).
pub fn run(verb: &str, argv: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<i32> {
    if argv.iter().any(|a| a == "-h" || a == "--help") {
        print(HELP.as_bytes())?;
        return Ok(0);
    }
    let own: &[Flag] = match verb {
        "create" => &INPUTS,
        "update-secrets" => &[
            Flag::value("--token-file", "AGENT_SECRETS_TOKEN_FILE"),
            Flag::repeated("--secrets-file"),
            Flag::repeated("--secrets"),
            Flag::repeated("--secret-mount"),
            Flag::switch("--overwrite"),
            Flag::repeated("--remove"),
        ],
        "secrets" => &[
            Flag::value("--token-file", "AGENT_SECRETS_TOKEN_FILE"),
            Flag::switch("--json"),
        ],
        "list" => &[Flag::switch("--json")],
        "revoke" => &[],
        other => return Err(Error::Usage(format!("unknown command {other:?}"))),
    };
    let flags: Vec<Flag> = COMMON.iter().chain(own).copied().collect();
    let p = args::parse(verb, argv, &flags, env)?;
    match verb {
        "create" => super::upload::create(&p),
        "update-secrets" => super::upload::update(&p),
        "secrets" => show(&p),
        "list" => list(&p),
        _ => revoke(&p),
    }
}

pub(super) fn usage(verb: &str, msg: impl std::fmt::Display) -> Error {
    Error::Usage(format!("{verb}: {msg} (see agent-secrets {verb} --help)"))
}

/// The client of `--service`, `--admin-key-file`, `--ca-file` and `--timeout`.
pub(super) fn admin(p: &Parsed) -> Result<Admin> {
    let url = ServiceUrl::parse(p.get("--service").unwrap_or(DEFAULT_SERVICE))?;
    let key = PathBuf::from(p.get("--admin-key-file").unwrap_or(DEFAULT_ADMIN_KEY_FILE));
    let deadline = match p.get("--timeout") {
        None => Duration::from_secs(60),
        Some(t) => agent_init::base::time::parse_seconds(t, |s| s > 0.0 && s <= 86_400.0)
            .ok_or_else(|| {
                Error::Config(
                    "--timeout (AGENT_SECRETS_TIMEOUT) must be a number of seconds above 0".into(),
                )
            })?,
    };
    Admin::new(url, &key, p.get("--ca-file").map(Path::new), deadline)
}

/// The ID positional of `secrets` and `revoke`, checked (§2); or, with
/// `--token-file`, the token's.
fn id_arg(verb: &str, p: &Parsed) -> Result<String> {
    match (p.positional.as_slice(), p.get("--token-file")) {
        ([], Some(file)) => Ok(read_token(Path::new(file))?.id_b64()),
        ([id], None) => {
            if id.starts_with(agent_init::protocol::token::PREFIX) {
                // Never echoed: that is a whole token, KEY included.
                return Err(usage(
                    verb,
                    "that is a whole token (lkbt1.ID.KEY), which must not go on a command line; give its ID, or --token-file FILE",
                ));
            }
            if agent_init::protocol::token::parse_id(id).is_none() {
                return Err(usage(
                    verb,
                    "the ID is not a token ID (22 characters of base64url naming 16 bytes)",
                ));
            }
            Ok(id.clone())
        }
        ([], None) => Err(usage(verb, "give a token ID or --token-file FILE")),
        _ => Err(usage(
            verb,
            "give one token ID, or --token-file FILE, not both",
        )),
    }
}

/// Reads a token file (surrounding whitespace trimmed, §2).
pub(super) fn read_token(path: &Path) -> Result<Token> {
    let bytes = SecretBytes::new(std::fs::read(path).map_err(|e| {
        Error::Config(format!(
            "--token-file {}: {}",
            path.display(),
            agent_init::sys::io_reason(&e)
        ))
    })?);
    let text = std::str::from_utf8(bytes.expose()).map_err(|_| {
        Error::Config(format!(
            "--token-file {}: bootstrap token is malformed: it is not ASCII",
            path.display()
        ))
    })?;
    Token::parse(text).map_err(|e| Error::Config(format!("--token-file {}: {e}", path.display())))
}

/// An answer the verb did not expect, as an error of its class.
pub(super) fn unexpected(what: &str, id: Option<&str>, r: &Reply) -> Error {
    match (r.status, id) {
        (401, _) => Error::Denied("the secrets service refused the admin key (HTTP 401); check --admin-key-file".into()),
        (404, Some(id)) => Error::Denied(format!(
            "the secrets service has no token {id} (HTTP 404): it was never created there, or it was revoked"
        )),
        (400 | 413, _) => Error::Refused(format!(
            "the secrets service refused {what} (HTTP {}{})",
            r.status,
            r.reason()
        )),
        (s, _) => Error::Unavailable(format!(
            "the secrets service answered {what} with HTTP {s}{}, which agent-secrets does not expect",
            r.reason()
        )),
    }
}

/// `GET /v1/tokens/{ID}`.
pub(super) fn get_token(admin: &Admin, id: &str) -> Result<TokenResponse> {
    let r = admin.get(&format!("{TOKENS_PATH}/{id}"), TOKEN_CAP)?;
    if r.status != 200 {
        return Err(unexpected(&format!("GET of token {id}"), Some(id), &r));
    }
    r.json("GET of a token")
}

/// Names, kinds and dates from a manifest, tab-separated, one secret a line.
fn show(p: &Parsed) -> Result<i32> {
    let id = id_arg("secrets", p)?;
    let admin = admin(p)?;
    let t = get_token(&admin, &id)?;
    if p.has("--json") {
        let out = serde_json::json!({
            "id": t.id,
            "version": t.version,
            "created_at": t.created_at,
            "updated_at": t.updated_at,
            "revoked": t.revoked,
            "secrets": t.manifest.secrets,
        });
        print(format!("{out}\n").as_bytes())?;
        return Ok(0);
    }
    let mut out = String::new();
    for s in &t.manifest.secrets {
        let fields = [
            s.name.as_str(),
            s.kind.as_str(),
            s.created_at.as_deref().unwrap_or("-"),
            s.updated_at.as_deref().unwrap_or("-"),
        ];
        out.push_str(&line(&fields));
        if let Some(env) = &s.env {
            out.pop();
            out.push('\t');
            out.push_str(&printable(&format!("env {env}")));
            out.push('\n');
        }
    }
    if t.revoked {
        note(&format!("token {id} is revoked"));
    }
    print(out.as_bytes())?;
    Ok(0)
}

fn list(p: &Parsed) -> Result<i32> {
    if !p.positional.is_empty() {
        return Err(usage("list", "takes no positional argument"));
    }
    let admin = admin(p)?;
    let r = admin.get(TOKENS_PATH, LIST_CAP)?;
    if r.status != 200 {
        return Err(unexpected("the list", None, &r));
    }
    let l: ListResponse = r.json("the list")?;
    if p.has("--json") {
        let out = serde_json::to_string(&l).map_err(|e| Error::Internal(e.to_string()))?;
        print(format!("{out}\n").as_bytes())?;
        return Ok(0);
    }
    let mut out = String::new();
    for t in &l.tokens {
        let version = t.version.to_string();
        let count = t.secrets.to_string();
        let mut fields = vec![t.id.as_str(), &version, &t.updated_at, &count];
        if t.revoked {
            fields.push("revoked");
        }
        out.push_str(&line(&fields));
    }
    print(out.as_bytes())?;
    Ok(0)
}

fn revoke(p: &Parsed) -> Result<i32> {
    let id = id_arg("revoke", p)?;
    if p.has("--token-file") {
        return Err(usage("revoke", "takes the token ID, not --token-file"));
    }
    let admin = admin(p)?;
    let r = admin.delete(&format!("{TOKENS_PATH}/{id}"))?;
    if r.status != 204 && r.status != 200 {
        return Err(unexpected(
            &format!("the revocation of {id}"),
            Some(&id),
            &r,
        ));
    }
    note(&format!(
        "revoked token {id}: agent-init now gets 401 (exit 77) with it, and its bundle is deleted"
    ));
    Ok(0)
}

/// A control character from the service must not start a line of its own.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn line(fields: &[&str]) -> String {
    let mut s = fields
        .iter()
        .map(|f| printable(f))
        .collect::<Vec<_>>()
        .join("\t");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_never_start_a_line_from_a_control_character() {
        assert_eq!(line(&["a\nb", "c\td"]), "a?b\tc?d\n");
    }
}
