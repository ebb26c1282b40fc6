//! Command-line flags for `serve` and the CLI verbs: `--flag VALUE` or
//! `--flag=VALUE`, boolean `--flag`, repeatable flags, and an
//! `AGENT_SECRETS_*` variable mirroring each flag that takes one value. A
//! flag given on the command line wins over its variable.

use crate::{Error, Result};
use std::collections::HashMap;

/// One flag a command accepts.
#[derive(Clone, Copy, Debug)]
pub struct Flag {
    /// With its dashes: `"--listen"`.
    pub name: &'static str,
    /// The variable that supplies it when the flag is absent.
    pub env: Option<&'static str>,
    /// Takes a value (`--listen ADDR`) rather than being a switch (`--json`).
    pub value: bool,
    /// May be given more than once (`--secrets K=V --secrets K2=V2`).
    pub repeat: bool,
}

impl Flag {
    /// A flag with one value and its mirroring variable.
    pub const fn value(name: &'static str, env: &'static str) -> Flag {
        Flag {
            name,
            env: Some(env),
            value: true,
            repeat: false,
        }
    }
    /// A repeatable flag with a value and no variable.
    pub const fn repeated(name: &'static str) -> Flag {
        Flag {
            name,
            env: None,
            value: true,
            repeat: true,
        }
    }
    /// A switch.
    pub const fn switch(name: &'static str) -> Flag {
        Flag {
            name,
            env: None,
            value: false,
            repeat: false,
        }
    }
}

/// What [`parse`] found.
#[derive(Debug, Default)]
pub struct Parsed {
    values: HashMap<&'static str, Vec<String>>,
    /// Arguments that are not flags, in order.
    pub positional: Vec<String>,
}

impl Parsed {
    /// The value of a single-valued flag, or its variable's.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }
    /// Every value of a repeatable flag, in order.
    pub fn all(&self, name: &str) -> &[String] {
        self.values.get(name).map(Vec::as_slice).unwrap_or(&[])
    }
    /// Whether a switch (or any flag) was given.
    pub fn has(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }
}

/// Parses `args` against `flags`, reading variables through `env`.
/// `command` names the command in error messages.
pub fn parse(
    command: &str,
    args: &[String],
    flags: &[Flag],
    env: impl Fn(&str) -> Option<String>,
) -> Result<Parsed> {
    let usage = |m: String| Error::Usage(format!("{command}: {m}"));
    let mut out = Parsed::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            out.positional.extend(it.by_ref().cloned());
            break;
        }
        if !arg.starts_with("--") || arg.len() == 2 {
            out.positional.push(arg.clone());
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        let flag = flags
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| usage(format!("unknown option {name}")))?;
        let value = match (flag.value, inline) {
            (true, Some(v)) => v,
            (true, None) => it
                .next()
                .cloned()
                .ok_or_else(|| usage(format!("{name} needs a value")))?,
            (false, Some(_)) => return Err(usage(format!("{name} takes no value"))),
            (false, None) => String::new(),
        };
        let slot = out.values.entry(flag.name).or_default();
        if !flag.repeat && !slot.is_empty() {
            return Err(usage(format!("{name} given twice")));
        }
        slot.push(value);
    }
    for flag in flags {
        if let (Some(var), false) = (flag.env, out.values.contains_key(flag.name)) {
            if let Some(v) = env(var).filter(|v| !v.is_empty()) {
                out.values.insert(flag.name, vec![v]);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGS: &[Flag] = &[
        Flag::value("--listen", "AGENT_SECRETS_LISTEN"),
        Flag::repeated("--secrets"),
        Flag::switch("--json"),
    ];

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_win_over_variables_and_variables_fill_the_rest() {
        let env = |v: &str| (v == "AGENT_SECRETS_LISTEN").then(|| "127.0.0.1:9".to_string());
        let p = parse("t", &args(&["--listen=[::1]:1", "x"]), FLAGS, env).unwrap();
        assert_eq!(p.get("--listen"), Some("[::1]:1"));
        assert_eq!(p.positional, ["x"]);
        let p = parse(
            "t",
            &args(&["--secrets", "A=1", "--secrets", "B=2", "--json"]),
            FLAGS,
            env,
        )
        .unwrap();
        assert_eq!(p.get("--listen"), Some("127.0.0.1:9"));
        assert_eq!(p.all("--secrets"), ["A=1", "B=2"]);
        assert!(p.has("--json"));
    }

    #[test]
    fn unknown_missing_and_doubled_flags_are_usage_errors() {
        let none = |_: &str| None;
        for bad in [
            &["--nope"][..],
            &["--listen"],
            &["--listen", "a", "--listen", "b"],
            &["--json=1"],
        ] {
            let e = parse("t", &args(bad), FLAGS, none).unwrap_err();
            assert_eq!(e.exit_code(), 64, "{bad:?}");
        }
    }
}
