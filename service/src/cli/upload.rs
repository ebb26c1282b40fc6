//! `create` and `update-secrets`: seal (§5, §6) and upload, or download,
//! open, merge and reseal. The inputs are read and merged by agent-init's own
//! code (`agent_init::local::inputs`, `agent_init::protocol::update`), the code `agent-init
//! seal` runs: the same rules, messages and §6.2 dates.

use super::client::{Admin, Reply};
use super::note;
use super::verbs::{admin, get_token, read_token, unexpected, usage};
use crate::api::{Bundle, Manifest, PutRequest, PutResponse, TokenResponse, TOKENS_PATH};
use crate::args::Parsed;
use agent_init::base::error::{Error, Result};
use agent_init::base::sensitive::SecretBytes;
use agent_init::protocol::secrets::Plaintext;
use agent_init::protocol::token::Token;
use std::path::{Path, PathBuf};

/// How often `update-secrets` merges again when another update won the race.
const UPDATE_ATTEMPTS: u32 = 8;

/// The sealed bundle and its §10 manifest for `secrets` under `token`.
struct Sealed {
    put: PutRequest,
    /// For messages: how many secrets and files.
    count: usize,
}

fn seal(token: &Token, s: &Plaintext, now: &str) -> Result<Sealed> {
    let plaintext = agent_init::protocol::secrets::to_plaintext(s);
    // The same checks agent-init applies when it opens: what is uploaded opens.
    let checked = agent_init::protocol::secrets::parse_noting(
        plaintext.expose(),
        agent_init::env::warn_dropped,
    )?;
    let sealed = agent_init::protocol::bundle::seal(token, plaintext.expose())?;
    drop(plaintext);
    let bundle: Bundle = serde_json::from_str(&sealed)
        .map_err(|e| Error::Internal(format!("a sealed bundle is not its own JSON: {e}")))?;
    let mut manifest: Manifest = agent_init::protocol::secrets::manifest(s);
    for e in &mut manifest.secrets {
        // Only a bundle sealed without dates lacks them; §10 requires them,
        // so the date the CLI first uploads such a secret stands in.
        e.created_at.get_or_insert_with(|| now.to_string());
        e.updated_at.get_or_insert_with(|| now.to_string());
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &token.auth_key()[..]);
    Ok(Sealed {
        put: PutRequest {
            auth_key_sha256: agent_init::protocol::token::b64u(digest.as_ref()),
            bundle,
            manifest,
        },
        count: checked.secrets.len() + checked.files.len(),
    })
}

/// Whether the service holds exactly this bundle (our own PUT, whose answer was lost).
fn holds(admin: &Admin, id: &str, bundle: &Bundle) -> Result<Option<TokenResponse>> {
    let t = get_token(admin, id)?;
    Ok((t.bundle.as_ref() == Some(bundle)).then_some(t))
}

fn put(admin: &Admin, id: &str, precondition: (&str, &str), body: &PutRequest) -> Result<Reply> {
    let json = zeroize::Zeroizing::new(
        serde_json::to_vec(body).map_err(|e| Error::Internal(format!("PUT body: {e}")))?,
    );
    admin.put(&format!("{TOKENS_PATH}/{id}"), &[precondition], &json)
}

pub fn create(p: &Parsed) -> Result<i32> {
    if !p.positional.is_empty() {
        return Err(usage(
            "create",
            "takes no positional argument; inputs are --secrets-file, --secrets and --secret-mount",
        ));
    }
    let inputs = gather("create", p, true)?;
    let admin = admin(p)?;
    let token = Token::generate()?;
    let id = token.id_b64();
    let now = agent_init::base::time::rfc3339_now();
    let merged = agent_init::protocol::update::merge(None, inputs, &[], false, &now)?;
    let sealed = seal(&token, &merged.secrets, &now)?;
    let r = put(&admin, &id, ("If-None-Match", "*"), &sealed.put)?;
    let version = match r.status {
        201 => r.json::<PutResponse>("the create")?.version,
        // A retried PUT whose first answer was lost finds its own bundle.
        412 => match holds(&admin, &id, &sealed.put.bundle)? {
            Some(t) => t.version,
            None => {
                return Err(Error::Unavailable(format!(
                    "the secrets service already has a token {id} (HTTP 412); nothing was stored, run create again"
                )))
            }
        },
        _ => return Err(unexpected("the create", Some(&id), &r)),
    };
    note(&format!(
        "created token {id} (version {version}) with {} secret{} on {}; agents fetch with LIVEKIT_SECRETS_URL={}",
        sealed.count,
        if sealed.count == 1 { "" } else { "s" },
        admin.base().as_str(),
        admin.base().bundle_url()
    ));
    let mut line = token.encode().expose().as_bytes().to_vec();
    line.push(b'\n');
    let line = SecretBytes::new(line);
    super::print(line.expose())?;
    Ok(0)
}

pub fn update(p: &Parsed) -> Result<i32> {
    const VERB: &str = "update-secrets";
    if !p.positional.is_empty() {
        return Err(usage(
            VERB,
            "takes no positional argument; the token comes from --token-file",
        ));
    }
    let file = p
        .get("--token-file")
        .ok_or_else(|| usage(VERB, "needs --token-file FILE (the token create printed)"))?;
    let token = read_token(Path::new(file))?;
    let id = token.id_b64();
    let remove: Vec<String> = p.all("--remove").to_vec();
    let overwrite = p.has("--overwrite");
    let inputs = gather(VERB, p, false)?;
    if inputs.is_empty() && remove.is_empty() && !overwrite {
        return Err(usage(
            VERB,
            "nothing to update: give --secrets-file, --secrets, --secret-mount or --remove",
        ));
    }
    let admin = admin(p)?;
    let mut backoff = agent_init::source::Backoff::default();
    for attempt in 1..=UPDATE_ATTEMPTS {
        let current = get_token(&admin, &id)?;
        let Some(stored) = current.bundle.as_ref().filter(|_| !current.revoked) else {
            return Err(Error::Denied(format!(
                "token {id} is revoked on the secrets service; it cannot be updated"
            )));
        };
        let body =
            serde_json::to_vec(stored).map_err(|e| Error::Internal(format!("bundle JSON: {e}")))?;
        let plaintext = agent_init::protocol::bundle::open(&token, &body)?;
        let old = agent_init::protocol::secrets::parse_noting(
            plaintext.expose(),
            agent_init::env::warn_dropped,
        )?;
        drop(plaintext);
        let now = agent_init::base::time::rfc3339_now();
        let merged = agent_init::protocol::update::merge(
            Some(old),
            inputs.clone(),
            &remove,
            overwrite,
            &now,
        )?;
        let sealed = seal(&token, &merged.secrets, &now)?;
        let r = put(&admin, &id, ("If-Match", &current.etag), &sealed.put)?;
        let version = match r.status {
            200 | 201 => Some(r.json::<PutResponse>("the update")?.version),
            // Another update won, or our own retried PUT already landed.
            412 => holds(&admin, &id, &sealed.put.bundle)?.map(|t| t.version),
            _ => return Err(unexpected("the update", Some(&id), &r)),
        };
        let Some(version) = version else {
            if attempt == UPDATE_ATTEMPTS {
                break;
            }
            note(&format!(
                "token {id} changed under this update (version {} is no longer current); merging again (attempt {attempt} of {UPDATE_ATTEMPTS})",
                current.version
            ));
            std::thread::sleep(backoff.next_wait());
            continue;
        };
        let count = |s: agent_init::protocol::update::Status| {
            merged.rows.iter().filter(|r| r.status == s).count()
        };
        use agent_init::protocol::update::Status as S;
        note(&format!(
            "updated token {id} to version {version}: {} added, {} updated, {} unchanged, {} kept, {} removed",
            count(S::Added),
            count(S::Updated),
            count(S::Unchanged),
            count(S::Kept),
            merged.removed.len()
        ));
        return Ok(0);
    }
    Err(Error::Unavailable(format!(
        "token {id} was changed by another update each of the {UPDATE_ATTEMPTS} times this one merged; nothing of this update was stored, run it again"
    )))
}

/// The inputs of `create` and `update-secrets`, read by agent-init's own code
/// (the same files, flags, rules and messages as `agent-init seal`). With no
/// input flag, `create` reads `.env`, `.env.local` and `.env.production`,
/// naming each file it read, and refuses to create nothing.
fn gather(
    verb: &str,
    p: &Parsed,
    defaults: bool,
) -> Result<Vec<agent_init::protocol::update::Input>> {
    use agent_init::local::inputs;
    let mut files: Vec<PathBuf> = Vec::new();
    for f in p.all("--secrets-file") {
        if f.is_empty() {
            return Err(usage(verb, "--secrets-file needs a file name"));
        }
        files.push(PathBuf::from(f));
    }
    let flags = p
        .all("--secrets")
        .iter()
        .map(|s| agent_init::config::secret_flag(s.clone().into()))
        .collect::<Result<Vec<_>>>()?;
    let mounts = p
        .all("--secret-mount")
        .iter()
        .map(|m| inputs::parse_mount(std::ffi::OsStr::new(m)))
        .collect::<Result<Vec<_>>>()?;
    if defaults && files.is_empty() && flags.is_empty() && mounts.is_empty() {
        files = inputs::existing_files(&inputs::SEAL_FILES);
        if files.is_empty() {
            return Err(usage(
                verb,
                format!(
                    "nothing to create: no --secrets-file, --secrets or --secret-mount, and none of {} in the working directory",
                    inputs::SEAL_FILES.join(", ")
                ),
            ));
        }
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        note(&format!("reading {}", names.join(", ")));
    }
    let gathered = inputs::gather(&files, flags, &mounts)?;
    if defaults && gathered.is_empty() {
        return Err(usage(verb, "nothing to create: the inputs hold no secret"));
    }
    Ok(gathered)
}
