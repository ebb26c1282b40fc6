//! Updating a bundle's secrets the way `lk agent update-secrets` does, with
//! the dates of PROTOCOL.md §6.2.
//!
//! [`merge`] takes the old plaintext (already opened and checked, or none),
//! the new inputs, the names to remove, whether to overwrite, and "now"; it
//! returns the new [`Plaintext`] and a row per secret saying what happened. It
//! does no I/O and reads no clock, so the same arguments always give the same
//! result, and [`crate::protocol::secrets::to_plaintext`] of it the same bytes.
//!
//! Guarantees, for each secret of the result:
//!
//! - given with the same kind, value and `env` it had: both dates kept
//!   ([`Status::Unchanged`]); so resealing the same inputs changes no date and
//!   no byte of the plaintext;
//! - given with another kind, value or `env`: `created_at` kept, `updated_at`
//!   is now ([`Status::Updated`]);
//! - given and new: both dates are now ([`Status::Added`]);
//! - not given: kept as it was ([`Status::Kept`]), or, with `overwrite`, left
//!   out (listed in [`Merged::removed`]).
//!
//! `LIVEKIT_URL`, `LIVEKIT_API_KEY` and `LIVEKIT_API_SECRET` given as env
//! inputs go into the `livekit` member (it has no dates). The result obeys
//! every rule of §6 and §6.1 ([`crate::protocol::secrets::check`]; a breach is 65). A
//! name given twice, removed and given, or removed but absent is a usage
//! error (64): a typo in `--remove` must not leave the secret in place quietly.

use super::rules::LiveKitName;
use super::secrets::{FileSecret, Kind, Plaintext, Secret};
use crate::base::error::{Error, Result};
use crate::base::sensitive::{SecretBytes, SecretString};
use std::collections::HashMap;

/// A new value for one secret.
#[derive(Debug, Clone)]
pub enum Value {
    /// An environment variable's value.
    Env(SecretString),
    /// A file's content, and the variable that receives its path.
    File {
        content: SecretBytes,
        env: Option<String>,
    },
}

impl Value {
    /// The kind of secret this value makes.
    pub fn kind(&self) -> Kind {
        match self {
            Value::Env(_) => Kind::Env,
            Value::File { .. } => Kind::File,
        }
    }
}

/// One secret to add or update.
#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    pub value: Value,
    /// Where it came from, for listings: `file .env`, `flag --secrets`,
    /// `--secret-mount PATH`. Never a value.
    pub origin: String,
}

/// What the merge did with one secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// New in this bundle: both dates are now.
    Added,
    /// Given with another value, kind or `env`: `updated_at` is now.
    Updated,
    /// Given with the value it had: both dates kept.
    Unchanged,
    /// Not given, kept from the old bundle as it was.
    Kept,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Added => "added",
            Status::Updated => "updated",
            Status::Unchanged => "unchanged",
            Status::Kept => "kept",
        }
    }
}

/// One secret of the result, for listings: never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    pub kind: Kind,
    /// A file's variable.
    pub env: Option<String>,
    /// The input's origin, or `bundle` for a secret kept from the old bundle,
    /// or `bundle (livekit)` for a kept `livekit` member.
    pub origin: String,
    pub status: Status,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// The result of [`merge`].
#[derive(Debug)]
pub struct Merged {
    /// The new plaintext, checked against §6 and §6.1.
    pub secrets: Plaintext,
    /// Env secrets, then files, then the `livekit` member, in plaintext order.
    pub rows: Vec<Row>,
    /// Names the old bundle had and the new one has not (`--remove`, or
    /// left out under `overwrite`), in the old bundle's order.
    pub removed: Vec<String>,
}

fn usage(msg: String) -> Error {
    Error::Usage(msg)
}

/// Merges `inputs` into `old` (see the module documentation). `now` is an
/// RFC 3339 timestamp (`YYYY-MM-DDTHH:MM:SSZ`); `remove` names secrets to
/// delete, from the secret list or the `livekit` member.
pub fn merge(
    old: Option<Plaintext>,
    inputs: Vec<Input>,
    remove: &[String],
    overwrite: bool,
    now: &str,
) -> Result<Merged> {
    if !crate::protocol::secrets::looks_like_rfc3339(now) {
        return Err(Error::Internal(
            "the time of an update is not an RFC 3339 timestamp".into(),
        ));
    }
    let mut given: HashMap<String, (Status, String)> = HashMap::with_capacity(inputs.len());
    for i in &inputs {
        if given.contains_key(&i.name) {
            return Err(usage(format!(
                "{} is given twice ({} and another input); give each secret once",
                i.name, i.origin
            )));
        }
        given.insert(i.name.clone(), (Status::Added, i.origin.clone()));
    }
    let mut s = old.unwrap_or_default();
    let mut removed = Vec::new();
    for name in remove {
        if given.contains_key(name) {
            return Err(usage(format!(
                "{name} is both given and removed (--remove {name})"
            )));
        }
        let before = s.secrets.len() + s.files.len();
        s.secrets.retain(|x| x.name != *name);
        s.files.retain(|f| f.name != *name);
        let from_livekit =
            LiveKitName::from_name(name).is_some_and(|n| s.livekit.slot(n).take().is_some());
        if before == s.secrets.len() + s.files.len() && !from_livekit {
            return Err(usage(format!(
                "--remove {name}: the bundle has no secret of that name"
            )));
        }
        if !removed.contains(name) {
            removed.push(name.clone());
        }
    }
    if overwrite {
        for name in s
            .secrets
            .iter()
            .map(|x| x.name.as_str())
            .chain(s.files.iter().map(|f| f.name.as_str()))
            .chain(s.livekit.vars().map(|(n, _)| n))
        {
            if !given.contains_key(name) {
                removed.push(name.to_string());
            }
        }
        s.secrets.retain(|x| given.contains_key(&x.name));
        s.files.retain(|f| given.contains_key(&f.name));
        for n in LiveKitName::ALL {
            if !given.contains_key(n.as_str()) {
                *s.livekit.slot(n) = None;
            }
        }
    }
    for input in inputs {
        let status = apply(&mut s, input.name.clone(), input.value, now);
        given
            .get_mut(&input.name)
            .expect("every input is in `given`")
            .0 = status;
    }
    crate::protocol::secrets::check(&s)?;
    let rows = rows(&s, &given);
    Ok(Merged {
        secrets: s,
        rows,
        removed,
    })
}

/// Puts one input into `s`, returning what changed. Dates follow §6.2.
fn apply(s: &mut Plaintext, name: String, value: Value, now: &str) -> Status {
    if let (Value::Env(v), Some(n)) = (&value, LiveKitName::from_name(&name)) {
        let slot = s.livekit.slot(n);
        let status = match slot {
            Some(old) if old.expose() == v.expose() => Status::Unchanged,
            Some(_) => Status::Updated,
            None => Status::Added,
        };
        *slot = Some(v.clone());
        return status;
    }
    let env_at = s.secrets.iter().position(|x| x.name == name);
    let file_at = s.files.iter().position(|f| f.name == name);
    let same = match (&value, env_at, file_at) {
        (Value::Env(v), Some(i), _) => s.secrets[i].value.expose() == v.expose(),
        (Value::File { content, env }, _, Some(i)) => {
            s.files[i].content.expose() == content.expose() && s.files[i].env == *env
        }
        _ => false,
    };
    if same {
        return Status::Unchanged;
    }
    let now = now.to_string();
    // The old entry of this name, of either kind: its `created_at` stays.
    let created = match (env_at, file_at) {
        (Some(i), _) => Some(s.secrets[i].created_at.clone()),
        (_, Some(i)) => Some(s.files[i].created_at.clone()),
        _ => None,
    };
    let (status, created_at) = match created {
        Some(c) => (Status::Updated, c),
        None => (Status::Added, Some(now.clone())),
    };
    match value {
        Value::Env(v) => {
            if let Some(i) = file_at {
                s.files.remove(i);
            }
            let new = Secret {
                name,
                value: v,
                created_at,
                updated_at: Some(now),
            };
            match env_at {
                Some(i) => s.secrets[i] = new,
                None => s.secrets.push(new),
            }
        }
        Value::File { content, env } => {
            if let Some(i) = env_at {
                s.secrets.remove(i);
            }
            let new = FileSecret {
                name,
                content,
                env,
                created_at,
                updated_at: Some(now),
            };
            match file_at {
                Some(i) => s.files[i] = new,
                None => s.files.push(new),
            }
        }
    }
    status
}

/// One row per secret of `s`, in plaintext order.
fn rows(s: &Plaintext, given: &HashMap<String, (Status, String)>) -> Vec<Row> {
    let what = |name: &str, kept_origin: &str| -> (Status, String) {
        given
            .get(name)
            .cloned()
            .unwrap_or((Status::Kept, kept_origin.to_string()))
    };
    let mut rows = Vec::with_capacity(s.secrets.len() + s.files.len() + 3);
    for x in &s.secrets {
        let (status, origin) = what(&x.name, "bundle");
        rows.push(Row {
            name: x.name.clone(),
            kind: Kind::Env,
            env: None,
            origin,
            status,
            created_at: x.created_at.clone(),
            updated_at: x.updated_at.clone(),
        });
    }
    for f in &s.files {
        let (status, origin) = what(&f.name, "bundle");
        rows.push(Row {
            name: f.name.clone(),
            kind: Kind::File,
            env: f.env.clone(),
            origin,
            status,
            created_at: f.created_at.clone(),
            updated_at: f.updated_at.clone(),
        });
    }
    for (name, _) in s.livekit.vars() {
        let (status, origin) = what(name, "bundle (livekit)");
        rows.push(Row {
            name: name.to_string(),
            kind: Kind::Env,
            env: None,
            origin,
            status,
            created_at: None,
            updated_at: None,
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: &str = "2026-11-02T10:00:00Z";
    const T1: &str = "2026-11-20T08:30:00Z";
    const NOW: &str = "2026-12-01T09:00:00Z";

    fn env(name: &str, v: &str) -> Input {
        Input {
            name: name.into(),
            value: Value::Env(SecretString::new(v.into())),
            origin: "flag --secrets".into(),
        }
    }
    fn file(name: &str, content: &[u8], var: Option<&str>) -> Input {
        Input {
            name: name.into(),
            value: Value::File {
                content: SecretBytes::new(content.to_vec()),
                env: var.map(String::from),
            },
            origin: format!("--secret-mount ./{name}"),
        }
    }
    /// A bundle with A (env), B (env) and key.json (file, env KEY_FILE), all created T0, updated T1.
    fn old() -> Plaintext {
        let plain = format!(
            r#"{{"secrets": [
                {{"name": "A", "value": "a", "created_at": "{T0}", "updated_at": "{T1}"}},
                {{"name": "B", "value": "b", "created_at": "{T0}", "updated_at": "{T1}"}},
                {{"name": "key.json", "kind": "file", "value": "e30", "env": "KEY_FILE", "created_at": "{T0}", "updated_at": "{T1}"}}
            ], "livekit": {{"url": "wss://old"}}}}"#
        );
        crate::protocol::secrets::parse(plain.as_bytes()).unwrap()
    }
    /// `(name, kind, status, created_at, updated_at)` of every row.
    fn table(m: &Merged) -> Vec<(String, &'static str, &'static str, String, String)> {
        m.rows
            .iter()
            .map(|r| {
                (
                    r.name.clone(),
                    r.kind.as_str(),
                    r.status.as_str(),
                    r.created_at.clone().unwrap_or_default(),
                    r.updated_at.clone().unwrap_or_default(),
                )
            })
            .collect()
    }
    /// `inputs` merged onto `old` (`None`: a new bundle) at `NOW`, removing
    /// nothing, not overwriting.
    fn give(old: Option<Plaintext>, inputs: Vec<Input>) -> Result<Merged> {
        merge(old, inputs, &[], false, NOW)
    }
    fn row(
        n: &str,
        k: &'static str,
        s: &'static str,
        c: &str,
        u: &str,
    ) -> (String, &'static str, &'static str, String, String) {
        (n.into(), k, s, c.into(), u.into())
    }

    #[test]
    fn a_new_bundle_stamps_every_secret_now() {
        let m = give(None, vec![env("A", "a"), file("k.pem", b"\x00\xff", None)]).unwrap();
        assert_eq!(
            table(&m),
            [
                row("A", "env", "added", NOW, NOW),
                row("k.pem", "file", "added", NOW, NOW)
            ]
        );
        assert!(m.removed.is_empty());
    }

    #[test]
    fn update_adds_updates_keeps_and_leaves_unchanged_with_section_6_2_dates() {
        let m = give(
            Some(old()),
            vec![
                env("A", "a"),
                env("B", "b2"),
                env("C", "c"),
                file("key.json", b"{}", Some("KEY_FILE")),
            ],
        )
        .unwrap();
        assert_eq!(
            table(&m),
            [
                row("A", "env", "unchanged", T0, T1),
                row("B", "env", "updated", T0, NOW),
                row("C", "env", "added", NOW, NOW),
                row("key.json", "file", "unchanged", T0, T1),
                row("LIVEKIT_URL", "env", "kept", "", ""),
            ]
        );
        assert_eq!(m.secrets.secrets[1].value.expose(), "b2");
        assert_eq!(m.rows[4].origin, "bundle (livekit)");
    }

    #[test]
    fn secrets_not_given_are_kept_as_they_were() {
        let m = give(Some(old()), vec![env("C", "c")]).unwrap();
        assert_eq!(
            table(&m),
            [
                row("A", "env", "kept", T0, T1),
                row("B", "env", "kept", T0, T1),
                row("C", "env", "added", NOW, NOW),
                row("key.json", "file", "kept", T0, T1),
                row("LIVEKIT_URL", "env", "kept", "", ""),
            ]
        );
        assert_eq!(m.rows[0].origin, "bundle");
    }

    #[test]
    fn a_file_whose_content_or_env_changes_gets_a_new_updated_at() {
        for input in [
            file("key.json", b"{ }", Some("KEY_FILE")),
            file("key.json", b"{}", Some("OTHER_FILE")),
            file("key.json", b"{}", None),
        ] {
            let m = give(Some(old()), vec![input]).unwrap();
            assert_eq!(table(&m)[2], row("key.json", "file", "updated", T0, NOW));
        }
    }

    #[test]
    fn a_kind_change_is_an_update_that_keeps_created_at() {
        let m = give(Some(old()), vec![file("A", b"now a file", Some("A_PATH"))]).unwrap();
        assert_eq!(
            table(&m),
            [
                row("B", "env", "kept", T0, T1),
                row("key.json", "file", "kept", T0, T1),
                row("A", "file", "updated", T0, NOW),
                row("LIVEKIT_URL", "env", "kept", "", ""),
            ]
        );
    }

    #[test]
    fn overwrite_drops_what_is_not_given_and_keeps_dates_of_what_is_unchanged() {
        let m = merge(
            Some(old()),
            vec![env("A", "a"), env("B", "b2"), env("D", "d")],
            &[],
            true,
            NOW,
        )
        .unwrap();
        assert_eq!(
            table(&m),
            [
                row("A", "env", "unchanged", T0, T1),
                row("B", "env", "updated", T0, NOW),
                row("D", "env", "added", NOW, NOW),
            ]
        );
        assert_eq!(m.removed, ["key.json", "LIVEKIT_URL"]);
        assert!(m.secrets.livekit.url.is_none());
    }

    #[test]
    fn remove_deletes_secrets_files_and_livekit_members() {
        let m = merge(
            Some(old()),
            vec![],
            &["B".into(), "key.json".into(), "LIVEKIT_URL".into()],
            false,
            NOW,
        )
        .unwrap();
        assert_eq!(table(&m), [row("A", "env", "kept", T0, T1)]);
        assert_eq!(m.removed, ["B", "key.json", "LIVEKIT_URL"]);
        assert!(m.secrets.files.is_empty());
    }

    #[test]
    fn removing_an_absent_name_or_a_given_one_or_giving_one_twice_is_a_usage_error() {
        let cases: Vec<(Vec<Input>, Vec<String>)> = vec![
            (vec![], vec!["NOPE".into()]),
            (vec![env("A", "x")], vec!["A".into()]),
            (vec![env("A", "x"), env("A", "y")], vec![]),
            (vec![env("k.pem", "x"), file("k.pem", b"y", None)], vec![]),
        ];
        for (inputs, remove) in cases {
            let e = merge(Some(old()), inputs, &remove, false, NOW).unwrap_err();
            assert_eq!(e.exit_code(), 64, "{e}");
        }
        let e = merge(None, vec![], &["A".into()], false, NOW).unwrap_err();
        assert!(e.to_string().contains("--remove A"), "{e}");
    }

    #[test]
    fn livekit_inputs_go_into_the_livekit_member() {
        let m = give(
            Some(old()),
            vec![env("LIVEKIT_URL", "wss://old"), env("LIVEKIT_API_KEY", "k")],
        )
        .unwrap();
        let lk: Vec<_> = m
            .rows
            .iter()
            .filter(|r| r.name.starts_with("LIVEKIT_"))
            .collect();
        assert_eq!(lk[0].status, Status::Unchanged);
        assert_eq!(lk[1].status, Status::Added);
        assert_eq!(m.secrets.livekit.api_key.as_ref().unwrap().expose(), "k");
        assert!(m
            .secrets
            .secrets
            .iter()
            .all(|s| !s.name.starts_with("LIVEKIT_")));
    }

    #[test]
    fn the_same_inputs_twice_give_the_same_plaintext_bytes() {
        let inputs = || {
            vec![
                env("A", "a"),
                env("C", "c"),
                file("x.bin", &[0, 1, 2], None),
            ]
        };
        let first = merge(Some(old()), inputs(), &[], false, NOW).unwrap();
        let plain = crate::protocol::secrets::to_plaintext(&first.secrets);
        let reopened = crate::protocol::secrets::parse(plain.expose()).unwrap();
        let later = "2026-12-24T00:00:00Z";
        let second = merge(Some(reopened), inputs(), &[], false, later).unwrap();
        assert_eq!(
            crate::protocol::secrets::to_plaintext(&second.secrets).expose(),
            plain.expose()
        );
        assert!(second
            .rows
            .iter()
            .all(|r| matches!(r.status, Status::Unchanged | Status::Kept)));
    }

    #[test]
    fn a_result_that_breaks_section_6_1_is_refused_65() {
        // A file's env may not be another secret's name.
        let e = give(Some(old()), vec![file("f.txt", b"x", Some("A"))]).unwrap_err();
        assert_eq!(e.exit_code(), 65);
        assert!(e.to_string().contains("f.txt"), "{e}");
        let e = give(None, vec![file("f.txt", b"x", Some("LIVEKIT_API_SECRET"))]).unwrap_err();
        assert_eq!(e.exit_code(), 65);
    }

    #[test]
    fn now_must_be_rfc3339_and_the_clock_gives_that_shape() {
        assert!(merge(None, vec![], &[], false, "yesterday").is_err());
        let t = crate::base::time::rfc3339_now();
        assert!(crate::protocol::secrets::looks_like_rfc3339(&t), "{t}");
        assert!(
            t.len() == 20 && t.starts_with("20") && t.ends_with('Z'),
            "{t}"
        );
    }
}
