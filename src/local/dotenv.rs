//! Dotenv files for local development, read the way python-dotenv 1.2.2 reads them.
//!
//! LiveKit's Python starters read `.env.local` with python-dotenv's
//! `load_dotenv`, and whatever agent-init injects beats that file (the agent
//! loads it without override). So agent-init, not the agent, decides each
//! value, and a value must not change because agent-init read the file instead
//! of the agent. `tests/dotenv_differential.rs` runs python-dotenv itself over
//! the corpus in `testdata/dotenv/` and compares results exactly.
//!
//! # What is read, as python-dotenv 1.2.2 reads it
//!
//! - Line ends: `\r\n` and a bare `\r` are read as `\n` everywhere, inside
//!   quoted values too (Python's text mode, which `dotenv_values(path)` and
//!   `load_dotenv(path)` open files with).
//! - A statement is optional `export` plus spaces, a name (`'quoted'` or a run
//!   of anything but `=`, `#` and whitespace), optional spaces, `=`, optional
//!   spaces, a value, an optional comment, the end of the line. Blank lines and
//!   lines whose first non-blank character is `#` are comments.
//! - Unquoted values run to the end of the line; a `#` preceded by whitespace
//!   starts a comment (`a=b#c` is `b#c`), trailing whitespace is dropped. The
//!   spaces after `=` are skipped first, so `A=   # c` is `# c`.
//! - `'single'` quotes: literal except `\\` and `\'`. `"double"` quotes:
//!   `\\ \' \" \a \b \f \n \r \t \v` are decoded; any other `\x` stays as
//!   written. Both may span lines; after the closing quote only whitespace
//!   and a `#` comment may follow.
//! - `${NAME}` and `${NAME:-default}` are expanded in every value, quoted or
//!   not (`$NAME` is literal). The default applies only when `NAME` is unset,
//!   not when it is empty. `NAME` is looked up as `load_dotenv` does with
//!   `override=False`: the environment first, then keys earlier in this file
//!   (a forward reference is empty unless the environment has it). With
//!   [`parse_layered`], a third layer (earlier files) comes last.
//! - The same name twice: the last value wins, at the first one's position.
//!
//! # Where agent-init deliberately differs
//!
//! - A leading UTF-8 byte order mark is ignored. python-dotenv 1.2.2 keeps it
//!   in the first name (`"\u{feff}A"`, which the agent then cannot find);
//!   python-dotenv's unreleased HEAD strips it too.
//! - python-dotenv warns about a statement it cannot parse and skips it, so a
//!   secret on that line silently goes missing. agent-init refuses the whole
//!   file instead ([`Error::Refused`], exit 65) with `FILE:LINE` and the
//!   reason.
//! - A name without `=` (`KEY`, `export KEY`, `KEY # note`) is refused too.
//!   python-dotenv reads it as "no value" and `load_dotenv` ignores it, so
//!   ignoring it would match; but in a secrets file such a line is nearly
//!   always a mistake that loses a secret: a value wrapped onto its own line,
//!   a token pasted without its name, `KEY: value`, a forgotten `=`. LiveKit's
//!   CLI (godotenv) refuses the same file at `lk agent deploy`; refusing it
//!   here catches it on the laptop instead. An empty value is written `KEY=`.
//! - Names and values obey PROTOCOL.md §6: a name python-dotenv accepts but
//!   §6 does not (`A-B`, `A.B`, `é`), a value over 16 KiB (after expansion) or
//!   one holding NUL refuses the file with `FILE:LINE`.
//!
//! # Guarantees
//!
//! After [`parse`] or [`load`] returns `Ok`, every entry's name obeys
//! [`crate::protocol::rules::check_name`], every value obeys
//! [`crate::protocol::rules::check_value`], and no name appears twice. Values and the
//! text they came from stay in zeroizing buffers. An error names the file, the
//! line and the reason, and (once it passed §6) the variable's name, never a
//! value or any other text of the line: a line that does not parse may itself
//! be a secret.

use crate::base::error::{Error, Result};
use crate::base::sensitive::{SecretBytes, SecretString};
use crate::protocol::rules::{check_name, check_value, MAX_VALUE};
use std::collections::HashMap;
use std::path::Path;
use zeroize::Zeroizing;

/// One variable from a dotenv file.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub value: SecretString,
    /// The line the (last) assignment starts on, 1-based.
    pub line: usize,
    /// The line looks like the end of a value wrapped onto a line of its own
    /// (base64 padding): its "name" is then a piece of that value, which
    /// python-dotenv reads as a variable and agent-init passes on the same
    /// way, but never shows.
    pub wrapped: bool,
}

/// Looks up `${NAME}` during interpolation.
pub type Lookup<'a> = dyn Fn(&str) -> Option<SecretString> + 'a;

/// Reads and parses `path`; `${NAME}` sees `lookup`, then earlier keys of the file.
pub fn load(path: &Path, lookup: &Lookup<'_>) -> Result<Vec<Entry>> {
    load_layered(path, lookup, &|_| None)
}

/// Like [`load`], with a last layer for `${NAME}`: `over`, then earlier keys
/// of this file, then `under`.
pub fn load_layered(path: &Path, over: &Lookup<'_>, under: &Lookup<'_>) -> Result<Vec<Entry>> {
    load_with(path, over, under, false)
}

/// Like [`load_layered`], for `seal`: a `${NAME}` that no layer resolves, or
/// a line that looks like the end of a wrapped value, refuses the file, so
/// what is sealed never depends on anything that is not sealed with it.
pub fn load_sealing(path: &Path, over: &Lookup<'_>, under: &Lookup<'_>) -> Result<Vec<Entry>> {
    load_with(path, over, under, true)
}

fn load_with(
    path: &Path,
    over: &Lookup<'_>,
    under: &Lookup<'_>,
    sealing: bool,
) -> Result<Vec<Entry>> {
    let bytes = SecretBytes::new(std::fs::read(path).map_err(|e| {
        Error::Config(format!("{}: {}", path.display(), crate::sys::io_reason(&e)))
    })?);
    let text = std::str::from_utf8(bytes.expose()).map_err(|e| {
        Error::Refused(format!(
            "{}: not UTF-8 (at byte {})",
            path.display(),
            e.valid_up_to() + 1
        ))
    })?;
    parse_with(text, &path.display().to_string(), over, under, sealing)
}

/// Parses dotenv text; `file` names it in errors. `${NAME}` sees `lookup`
/// (the environment), then earlier keys of this text.
pub fn parse(text: &str, file: &str, lookup: &Lookup<'_>) -> Result<Vec<Entry>> {
    parse_layered(text, file, lookup, &|_| None)
}

/// Like [`parse`], with a last layer for `${NAME}`: `over` (the environment),
/// then earlier keys of this text, then `under` (earlier files).
pub fn parse_layered(
    text: &str,
    file: &str,
    over: &Lookup<'_>,
    under: &Lookup<'_>,
) -> Result<Vec<Entry>> {
    parse_with(text, file, over, under, false)
}

/// Like [`parse_layered`], with `seal`'s rules (see [`load_sealing`]).
pub fn parse_sealing(
    text: &str,
    file: &str,
    over: &Lookup<'_>,
    under: &Lookup<'_>,
) -> Result<Vec<Entry>> {
    parse_with(text, file, over, under, true)
}

/// python-dotenv's `_load_dotenv_disabled`: whether `PYTHON_DOTENV_DISABLED`
/// holds, after Python's `str.casefold`, one of `1`, `true`, `t`, `yes`, `y`.
pub fn disabled_by(value: &[u8]) -> bool {
    let Ok(v) = std::str::from_utf8(value) else {
        return false;
    };
    // Of all code points, only U+017F (long s) casefolds into these words
    // besides ASCII letters.
    let folded: String = v
        .chars()
        .map(|c| match c {
            '\u{17f}' => 's',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    matches!(folded.as_str(), "1" | "true" | "t" | "yes" | "y")
}

/// Whether an unquoted value looks cut off: a long run of base64 without
/// the padding that would end it.
fn looks_cut(value: &str) -> bool {
    value.len() >= 40
        && !value.ends_with('=')
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_'))
}

/// Whether a name looks like a piece of base64 rather than a variable's
/// name: mixed case or digits with lowercase, and no `_`.
fn looks_like_base64(name: &str) -> bool {
    let has = |f: fn(&u8) -> bool| name.bytes().any(|b| f(&b));
    has(u8::is_ascii_lowercase)
        && (has(u8::is_ascii_uppercase) || has(u8::is_ascii_digit))
        && !name.contains('_')
}

fn parse_with(
    text: &str,
    file: &str,
    over: &Lookup<'_>,
    under: &Lookup<'_>,
    sealing: bool,
) -> Result<Vec<Entry>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let normalized;
    let text = if text.contains('\r') {
        normalized = Zeroizing::new(text.replace("\r\n", "\n").replace('\r', "\n"));
        normalized.as_str()
    } else {
        text
    };
    let refuse = |line: usize, why: &str| Error::Refused(format!("{file}:{line}: {why}"));

    let mut entries: Vec<Entry> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut reader = Reader {
        s: text,
        pos: 0,
        line: 1,
    };
    // The line of the last assignment whose unquoted value looks cut off.
    let mut cut_at = None;
    loop {
        let (key, value, quoted, line) = match reader.statement() {
            Ok(Statement::End) => break,
            Ok(Statement::Comment) => {
                cut_at = None;
                continue;
            }
            Ok(Statement::Binding {
                key,
                value,
                quoted,
                line,
            }) => (key, value, quoted, line),
            Err(Fail { line, why }) => return Err(refuse(line, why)),
        };
        let Some(raw) = value else {
            return Err(refuse(
                line,
                "a name without `=` (write NAME= for an empty value); python-dotenv would silently ignore it",
            ));
        };
        check_name(key)
            .map_err(|why| refuse(line, &format!("the name breaks PROTOCOL.md §6: {why}")))?;
        // `KEY==` (or, after a cut value, `KEY=`): the last line of a wrapped
        // base64 value, its `=` padding read as an assignment.
        let wrapped = !quoted
            && ((!raw.is_empty() && raw.bytes().all(|b| b == b'='))
                || (raw.is_empty() && cut_at == Some(line - 1) && looks_like_base64(key)));
        cut_at = (!quoted && looks_cut(&raw)).then_some(line);
        if wrapped {
            let what = "this line looks like the end of a value wrapped from the line before (base64 padding), not a variable; put the whole value on one line";
            if sealing {
                return Err(refuse(line, what));
            }
            crate::warn!("{file}:{line}: {what} (passed on as python-dotenv does, never listed)");
        }
        let value = interpolate(&raw, |name| {
            if let Some(v) = over(name) {
                return Some(Resolved::Owned(v));
            }
            if let Some(&i) = index.get(name) {
                return Some(Resolved::Borrowed(entries[i].value.expose()));
            }
            under(name).map(Resolved::Owned)
        }, sealing)
        .map_err(|e| match e {
            Unexpanded::TooLong => refuse(
                line,
                &format!("{key}: value is over the limit of {MAX_VALUE} bytes once expanded"),
            ),
            Unexpanded::NotSealed(name) => refuse(
                line,
                &format!(
                    "{key}: {} is not sealed before this line (seal's ${{...}} sees only what it seals)",
                    if check_name(name).is_ok() {
                        format!("${{{name}}}")
                    } else {
                        "a ${...} reference".to_string()
                    }
                ),
            ),
        })?;
        drop(raw);
        check_value(value.expose()).map_err(|why| refuse(line, &format!("{key}: {why}")))?;
        match index.get(key) {
            Some(&i) => {
                entries[i].value = value;
                entries[i].line = line;
                entries[i].wrapped |= wrapped;
            }
            None => {
                index.insert(key.to_string(), entries.len());
                entries.push(Entry {
                    name: key.to_string(),
                    value,
                    line,
                    wrapped,
                });
            }
        }
    }
    Ok(entries)
}

/// Python's `str.isspace` (and the `\s` of its `re` module): Unicode
/// White_Space plus the separators U+001C to U+001F.
fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Whitespace that does not end a line (`[^\S\r\n]`; `\r` is gone by now).
fn is_blank(c: char) -> bool {
    c != '\n' && is_space(c)
}

/// Why a statement does not parse, and the line where that was found.
struct Fail {
    line: usize,
    why: &'static str,
}

enum Statement<'t> {
    End,
    Comment,
    Binding {
        key: &'t str,
        /// The value after unquoting and escapes, before interpolation; `None`
        /// for a name without `=`.
        value: Option<Zeroizing<String>>,
        /// The value was in quotes.
        quoted: bool,
        line: usize,
    },
}

/// A cursor over the text, mirroring python-dotenv's regex-driven `Reader`.
struct Reader<'t> {
    s: &'t str,
    pos: usize,
    line: usize,
}

impl<'t> Reader<'t> {
    fn rest(&self) -> &'t str {
        &self.s[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn advance_to(&mut self, end: usize) {
        self.line += self.s.as_bytes()[self.pos..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.pos = end;
    }

    /// Consumes the longest prefix whose characters satisfy `f`; returns its length in bytes.
    fn skip_while(&mut self, f: impl Fn(char) -> bool) -> usize {
        let rest = self.rest();
        let n = rest.len() - rest.trim_start_matches(f).len();
        self.advance_to(self.pos + n);
        n
    }

    fn fail(&self, why: &'static str) -> Fail {
        Fail {
            line: self.line,
            why,
        }
    }

    /// `parse_binding`: one statement, or the end of the text.
    fn statement(&mut self) -> std::result::Result<Statement<'t>, Fail> {
        self.skip_while(is_space);
        if self.pos == self.s.len() {
            return Ok(Statement::End);
        }
        let line = self.line;
        // `(?:export[^\S\r\n]+)?`
        if let Some(after) = self.rest().strip_prefix("export") {
            let blanks = after.len() - after.trim_start_matches(is_blank).len();
            if blanks > 0 {
                self.advance_to(self.pos + "export".len() + blanks);
            }
        }
        let key = match self.peek() {
            Some('#') => None,
            // `'([^']+)'`
            Some('\'') => match self.rest()[1..].find('\'') {
                Some(0) | None => return Err(self.fail("a quoted name has no closing quote")),
                Some(i) => {
                    let key = &self.s[self.pos + 1..self.pos + 1 + i];
                    self.advance_to(self.pos + i + 2);
                    Some(key)
                }
            },
            // `[^=\#\s]+`
            c => {
                let rest = self.rest();
                let n = rest.len()
                    - rest
                        .trim_start_matches(|c: char| c != '=' && c != '#' && !is_space(c))
                        .len();
                if n == 0 {
                    return Err(self.fail(if c == Some('=') {
                        "`=` with no name before it"
                    } else {
                        "`export` with no name after it"
                    }));
                }
                let key = &rest[..n];
                self.advance_to(self.pos + n);
                Some(key)
            }
        };
        self.skip_while(is_blank);
        let mut quoted = false;
        let value = if key.is_some() && self.peek() == Some('=') {
            self.advance_to(self.pos + 1);
            self.skip_while(is_blank);
            quoted = matches!(self.peek(), Some('\'' | '"'));
            Some(self.value()?)
        } else {
            None
        };
        // `(?:[^\S\r\n]*#[^\r\n]*)?`
        let rest = self.rest();
        let blanks = rest.len() - rest.trim_start_matches(is_blank).len();
        if rest[blanks..].starts_with('#') {
            let to_eol = rest.find('\n').unwrap_or(rest.len());
            self.advance_to(self.pos + to_eol);
        }
        // `[^\S\r\n]*(?:\r\n|\n|\r|$)`
        self.skip_while(is_blank);
        match self.peek() {
            None => {}
            Some('\n') => self.advance_to(self.pos + 1),
            Some(_) => {
                return Err(self.fail(if quoted {
                    "text after the closing quote (only a # comment may follow it)"
                } else {
                    "not an assignment: expected NAME=VALUE, a # comment or a blank line"
                }))
            }
        }
        Ok(match key {
            None => Statement::Comment,
            Some(key) => Statement::Binding {
                key,
                value,
                quoted,
                line,
            },
        })
    }

    /// `parse_value`, just after `=` and the blanks that follow it.
    fn value(&mut self) -> std::result::Result<Zeroizing<String>, Fail> {
        match self.peek() {
            Some(q @ ('\'' | '"')) => {
                let raw = self.quoted(q as u8)?;
                Ok(decode_escapes(raw, q == '"'))
            }
            None | Some('\n') => Ok(Zeroizing::new(String::new())),
            Some(_) => {
                let rest = self.rest();
                let part = &rest[..rest.find('\n').unwrap_or(rest.len())];
                // `re.sub(r"\s+#.*", "", part).rstrip()`
                let mut cut = part.len();
                let mut prev_space = false;
                for (i, c) in part.char_indices() {
                    if c == '#' && prev_space {
                        cut = i;
                        break;
                    }
                    prev_space = is_space(c);
                }
                let value = part[..cut].trim_end_matches(is_space);
                let mut out = Zeroizing::new(String::with_capacity(value.len()));
                out.push_str(value);
                self.advance_to(self.pos + part.len());
                Ok(out)
            }
        }
    }

    /// `'((?:\\'|[^'])*)'` (or with `"`), with the regex's backtracking: `\q`
    /// does not end the value, a bare `q` does, and if the text ends first,
    /// the value ends at the last `\q` after all (the backslash stays in it).
    fn quoted(&mut self, q: u8) -> std::result::Result<&'t str, Fail> {
        let b = self.s.as_bytes();
        let start = self.pos + 1;
        let mut i = start;
        let mut last_escaped = None;
        let close = loop {
            match b.get(i) {
                None => match last_escaped {
                    Some(at) => break at,
                    None => return Err(self.fail("a quoted value has no closing quote")),
                },
                Some(b'\\') if b.get(i + 1) == Some(&q) => {
                    last_escaped = Some(i + 1);
                    i += 2;
                }
                Some(&c) if c == q => break i,
                Some(_) => i += 1,
            }
        };
        let raw = &self.s[start..close];
        self.advance_to(close + 1);
        Ok(raw)
    }
}

/// python-dotenv's `decode_escapes`: in double quotes `\\ \' \" \a \b \f \n
/// \r \t \v`, in single quotes `\\ \'`; anything else is kept as written.
fn decode_escapes(raw: &str, double: bool) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(raw.len()));
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let mut ahead = chars.clone();
        let decoded = match ahead.next() {
            Some(e @ ('\\' | '\'')) => Some(e),
            Some('"') if double => Some('"'),
            Some('a') if double => Some('\u{7}'),
            Some('b') if double => Some('\u{8}'),
            Some('f') if double => Some('\u{c}'),
            Some('n') if double => Some('\n'),
            Some('r') if double => Some('\r'),
            Some('t') if double => Some('\t'),
            Some('v') if double => Some('\u{b}'),
            _ => None,
        };
        match decoded {
            Some(d) => {
                out.push(d);
                chars = ahead;
            }
            None => out.push('\\'),
        }
    }
    out
}

/// A `${NAME}` resolved by one of the lookup layers.
enum Resolved<'a> {
    Owned(SecretString),
    Borrowed(&'a str),
}

/// One piece of a value being interpolated.
enum Piece<'a> {
    Text(&'a str),
    Var(Resolved<'a>),
}

impl Piece<'_> {
    fn as_str(&self) -> &str {
        match self {
            Piece::Text(s) | Piece::Var(Resolved::Borrowed(s)) => s,
            Piece::Var(Resolved::Owned(v)) => v.expose(),
        }
    }
}

/// Why a value could not be expanded.
enum Unexpanded<'a> {
    /// The expansion would be over [`MAX_VALUE`]; nothing that size was allocated.
    TooLong,
    /// While sealing, `${NAME}` found no value to use.
    NotSealed(&'a str),
}

/// Expands `${NAME}` and `${NAME:-default}` as python-dotenv's
/// `\$\{(?P<name>[^\}:]*)(?::-(?P<default>[^\}]*))?\}` does; text that does
/// not match is literal. The length is counted as the pieces are found, and
/// an expansion over [`MAX_VALUE`] stops there, before anything of its size
/// is allocated; the result is built in one exact-size buffer. With
/// `sealing`, a name that `resolve` does not know is refused, default or not.
fn interpolate<'a>(
    value: &'a str,
    resolve: impl Fn(&str) -> Option<Resolved<'a>>,
    sealing: bool,
) -> std::result::Result<SecretString, Unexpanded<'a>> {
    let b = value.as_bytes();
    let mut pieces: Vec<Piece<'a>> = Vec::new();
    let mut len = 0usize;
    let mut push = |p: Piece<'a>, pieces: &mut Vec<Piece<'a>>| {
        len += p.as_str().len();
        pieces.push(p);
        if len > MAX_VALUE {
            Err(Unexpanded::TooLong)
        } else {
            Ok(())
        }
    };
    let (mut cursor, mut i) = (0, 0);
    while i + 1 < b.len() {
        if b[i] != b'$' || b[i + 1] != b'{' {
            i += 1;
            continue;
        }
        let Some((name, default, end)) = match_variable(value, i) else {
            i += 1;
            continue;
        };
        if i > cursor {
            push(Piece::Text(&value[cursor..i]), &mut pieces)?;
        }
        let piece = match resolve(name) {
            Some(r) => Piece::Var(r),
            None if sealing => return Err(Unexpanded::NotSealed(name)),
            None => Piece::Text(default.unwrap_or("")),
        };
        push(piece, &mut pieces)?;
        cursor = end;
        i = end;
    }
    if cursor < b.len() {
        push(Piece::Text(&value[cursor..]), &mut pieces)?;
    }
    let mut out = String::with_capacity(len);
    for p in &pieces {
        out.push_str(p.as_str());
    }
    Ok(SecretString::new(out))
}

/// Matches `${NAME}` or `${NAME:-DEFAULT}` at byte `at`: (name, default, end).
fn match_variable(v: &str, at: usize) -> Option<(&str, Option<&str>, usize)> {
    let start = at + 2;
    let name_len = v[start..].find(['}', ':'])?;
    let name_end = start + name_len;
    let name = &v[start..name_end];
    if v.as_bytes()[name_end] == b'}' {
        return Some((name, None, name_end + 1));
    }
    let default_start = name_end + 2;
    if v.as_bytes().get(name_end + 1) != Some(&b'-') {
        return None;
    }
    let close = default_start + v[default_start..].find('}')?;
    Some((name, Some(&v[default_start..close]), close + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<SecretString> {
        None
    }

    /// Parses `text` with the environment `env`; returns (name, value) pairs.
    fn with_env(text: &str, env: &[(&str, &str)]) -> Vec<(String, String)> {
        let lookup = |n: &str| {
            env.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| SecretString::new(v.to_string()))
        };
        parse(text, "t.env", &lookup)
            .unwrap_or_else(|e| panic!("{text:?}: {e}"))
            .into_iter()
            .map(|e| (e.name, e.value.expose().to_string()))
            .collect()
    }

    fn ok(text: &str) -> Vec<(String, String)> {
        with_env(text, &[])
    }

    fn one(text: &str) -> String {
        let v = ok(text);
        assert_eq!(v.len(), 1, "{text:?}: {v:?}");
        v[0].1.clone()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// The refusal of `text`: checks exit 65 and that it never shows the line.
    fn refused(text: &str) -> String {
        let e = parse(text, "t.env", &none).expect_err(text);
        assert_eq!(e.exit_code(), 65, "{text:?}: {e}");
        let m = e.to_string();
        for token in text.split(|c: char| c.is_whitespace() || c == '=') {
            // A name that passed §6 may be shown; `export` is syntax.
            let shown_name = check_name(token).is_ok() && text.contains(&format!("{token}="))
                || token == "export";
            if token.len() >= 4 && !shown_name {
                assert!(!m.contains(token), "{m:?} shows {token:?}");
            }
        }
        m
    }

    #[test]
    fn plain_assignments_in_order() {
        assert_eq!(ok("A=1\nB=two\n"), pairs(&[("A", "1"), ("B", "two")]));
        assert_eq!(ok("A=1"), pairs(&[("A", "1")]));
        assert_eq!(ok(""), pairs(&[]));
    }

    #[test]
    fn entries_know_their_line() {
        let e = parse("\n\nA=1\n# c\nB=\"x\ny\"\nC=3\n", "t", &none).unwrap();
        let lines: Vec<_> = e.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 5, 7]);
    }

    #[test]
    fn export_prefix_is_dropped_but_only_before_a_blank() {
        assert_eq!(
            ok("export A=1\nexport\tB=2\nexportC=3\nexport=4\n"),
            pairs(&[("A", "1"), ("B", "2"), ("exportC", "3"), ("export", "4")])
        );
    }

    #[test]
    fn blanks_around_equals_and_before_names_are_skipped() {
        assert_eq!(
            ok("  A = 1\n\tB\t=\t2\nC =3\n"),
            pairs(&[("A", "1"), ("B", "2"), ("C", "3")])
        );
    }

    #[test]
    fn full_line_comments_and_blank_lines_are_skipped() {
        assert_eq!(
            ok("# c\n\n   # indented\n#B=2\nA=1\n\n"),
            pairs(&[("A", "1")])
        );
        assert_eq!(ok("export # not a name\n"), pairs(&[]));
    }

    #[test]
    fn inline_comment_needs_whitespace_before_the_hash() {
        assert_eq!(one("A=b # c"), "b");
        assert_eq!(one("A=b\t# c # d"), "b");
        assert_eq!(one("A=b#c"), "b#c");
        assert_eq!(one("A=http://x/#frag"), "http://x/#frag");
        // The blanks after `=` go first, so the `#` has none before it.
        assert_eq!(one("A=   # c"), "# c");
    }

    #[test]
    fn unquoted_values_lose_trailing_whitespace_python_style() {
        assert_eq!(one("A=a b  c \t "), "a b  c");
        assert_eq!(one("A=x\u{a0}"), "x");
        assert_eq!(one("A=x\u{1f}"), "x");
        assert_eq!(one("A=a\u{1c}#c"), "a");
        assert_eq!(one("A=\u{3000}y"), "y");
        assert_eq!(one("A=b=c"), "b=c");
        assert_eq!(one("A=it's \"x\""), "it's \"x\"");
        assert_eq!(one("A=C:\\path\\n"), "C:\\path\\n");
    }

    #[test]
    fn empty_values() {
        assert_eq!(
            ok("A=\nB=\"\"\nC=''\nD=  \nE="),
            pairs(&[("A", ""), ("B", ""), ("C", ""), ("D", ""), ("E", "")])
        );
    }

    #[test]
    fn single_quotes_are_literal_except_backslash_and_quote() {
        assert_eq!(one("A='a # b'"), "a # b");
        assert_eq!(one("A='it\\'s'"), "it's");
        assert_eq!(one("A='back\\\\slash'"), "back\\slash");
        assert_eq!(one("A='keep \\n \\t \\\"'"), "keep \\n \\t \\\"");
        assert_eq!(one("A='  padded  '  "), "  padded  ");
    }

    #[test]
    fn double_quotes_decode_python_escapes_and_keep_unknown_ones() {
        assert_eq!(one(r#"A="l1\nl2\ttab""#), "l1\nl2\ttab");
        assert_eq!(one(r#"A="\a\b\f\v\r""#), "\u{7}\u{8}\u{c}\u{b}\r");
        assert_eq!(one(r#"A="q\"q \'s\' \\""#), "q\"q 's' \\");
        assert_eq!(one(r#"A="\q\$\x41\u00e9""#), r"\q\$\x41\u00e9");
        assert_eq!(one(r#"A="\\n""#), "\\n");
        assert_eq!(one(r#"A="say \"hi\"""#), "say \"hi\"");
        assert_eq!(one(r#"A="C:\\dir\\""#), "C:\\dir\\");
    }

    #[test]
    fn quoted_value_without_a_bare_closing_quote_ends_at_the_last_escaped_one() {
        // The regex backtracks: `\"` gives up its quote.
        assert_eq!(ok("A=\"x\\\"\nB=2\n"), pairs(&[("A", "x\\"), ("B", "2")]));
    }

    #[test]
    fn comment_after_a_closing_quote_needs_no_space() {
        assert_eq!(
            ok("A=\"b\"#c\nB='d' # e\n"),
            pairs(&[("A", "b"), ("B", "d")])
        );
    }

    #[test]
    fn quoted_values_span_lines() {
        assert_eq!(
            one("A=\"l1\n# not a comment\nl3\""),
            "l1\n# not a comment\nl3"
        );
        assert_eq!(one("A='l1\n  l2'\n"), "l1\n  l2");
    }

    #[test]
    fn crlf_and_bare_cr_end_lines_even_inside_quotes() {
        assert_eq!(
            ok("A=1\r\nB=\"x\r\ny\"\r\nC=z # c\rD=4\r"),
            pairs(&[("A", "1"), ("B", "x\ny"), ("C", "z"), ("D", "4")])
        );
        let e = parse("A=1\r\nB=2\r\nC D\r\n", "t", &none).unwrap_err();
        assert!(e.to_string().starts_with("t:3: "), "{e}");
    }

    #[test]
    fn leading_byte_order_mark_is_ignored() {
        assert_eq!(ok("\u{feff}A=1\n"), pairs(&[("A", "1")]));
        assert_eq!(ok("\u{feff}# c\nA=1\n"), pairs(&[("A", "1")]));
    }

    #[test]
    fn last_duplicate_wins_at_the_first_position() {
        let e = parse("A=1\nB=2\nA=3\n", "t", &none).unwrap();
        assert_eq!(e[0].name, "A");
        assert_eq!(e[0].value.expose(), "3");
        assert_eq!(e[0].line, 3);
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn quoted_names_are_unquoted() {
        assert_eq!(ok("'A'=1\n'B' = \"2\"\n"), pairs(&[("A", "1"), ("B", "2")]));
    }

    #[test]
    fn interpolation_in_every_value_style() {
        assert_eq!(
            ok("A=hi\nB=${A} there\nC=\"${A}\"\nD='${A}'\n"),
            pairs(&[("A", "hi"), ("B", "hi there"), ("C", "hi"), ("D", "hi")])
        );
    }

    #[test]
    fn defaults_apply_only_when_unset() {
        assert_eq!(one("A=${UNSET:-fall back}"), "fall back");
        assert_eq!(one("A=${UNSET:-}"), "");
        assert_eq!(one("A=${UNSET}"), "");
        assert_eq!(ok("E=\nA=${E:-d}\n"), pairs(&[("E", ""), ("A", "")]));
        assert_eq!(with_env("A=${X:-d}", &[("X", "")]), pairs(&[("A", "")]));
    }

    #[test]
    fn forward_references_are_empty_unless_the_environment_has_them() {
        assert_eq!(ok("A=${B}\nB=2\n"), pairs(&[("A", ""), ("B", "2")]));
        assert_eq!(
            with_env("A=${B}\nB=2\n", &[("B", "env")]),
            pairs(&[("A", "env"), ("B", "2")])
        );
    }

    #[test]
    fn the_environment_wins_over_earlier_keys_like_load_dotenv() {
        assert_eq!(
            with_env("S=file\nA=${S}\n", &[("S", "env")]),
            pairs(&[("S", "file"), ("A", "env")])
        );
    }

    #[test]
    fn layers_are_environment_then_this_file_then_earlier_files() {
        let over = |n: &str| (n == "O").then(|| SecretString::new("over".into()));
        let under =
            |n: &str| matches!(n, "O" | "F" | "U").then(|| SecretString::new("under".into()));
        let e = parse_layered("F=file\nA=${O} ${F} ${U}\n", "t", &over, &under).unwrap();
        assert_eq!(e[1].value.expose(), "over file under");
    }

    #[test]
    fn self_reference_sees_the_earlier_value() {
        assert_eq!(ok("P=${P}:x\nP=${P}:y\n"), pairs(&[("P", ":x:y")]));
    }

    #[test]
    fn only_braced_variables_expand_and_odd_syntax_is_python_exact() {
        assert_eq!(
            with_env("A=$HOME ${ $ ${A", &[("HOME", "/h")]),
            pairs(&[("A", "$HOME ${ $ ${A")])
        );
        assert_eq!(one("A=${A:B} ${}"), "${A:B} ");
        assert_eq!(one("A=${X:-a:-b}"), "a:-b");
        assert_eq!(one("A=${X:-${Y}}"), "${Y}");
        assert_eq!(one("A=${X:-${Y}"), "${Y");
        assert_eq!(
            with_env(r#"A="\${X}""#, &[("X", "v")]),
            pairs(&[("A", "\\v")])
        );
        assert_eq!(
            with_env("A=${B:C} ${X}", &[("X", "v")]),
            pairs(&[("A", "${B:C} v")])
        );
    }

    #[test]
    fn a_line_that_is_not_an_assignment_refuses_the_file_with_its_line() {
        for (text, line) in [
            ("A=1\nA B=2\n", 2),
            ("A=1\nthis is not valid\n", 2),
            ("A: b\n", 1),
            ("A=\"b\" c\n", 1),
            ("=value\n", 1),
            ("export =1\n", 1),
            ("export \nA=1", 1),
            ("A=1\n\n\n  not valid here\n", 4),
            ("A=\"l1\nl2\" trailing\n", 2),
        ] {
            let m = refused(text);
            assert!(m.starts_with(&format!("t.env:{line}: ")), "{text:?}: {m}");
        }
    }

    #[test]
    fn unterminated_quotes_refuse_the_file_at_the_opening_line() {
        for text in ["A=1\nB=\"abc\nC=3\n", "A=1\nB='abc\n", "A=1\n'KEY=2\n"] {
            let m = refused(text);
            assert!(m.starts_with("t.env:2: "), "{m}");
            assert!(m.contains("closing quote"), "{m}");
        }
    }

    #[test]
    fn a_name_without_equals_refuses_the_file() {
        for (text, line) in [
            ("A=1\nBARE\n", 2),
            ("export SOMEKEY\n", 1),
            ("SOMEKEY # note\n", 1),
            ("A#B=1\n", 1),
            ("\nsk-live-0123456789abcdef\n", 2),
        ] {
            let m = refused(text);
            assert!(m.starts_with(&format!("t.env:{line}: ")), "{m}");
            assert!(m.contains("without `=`"), "{m}");
        }
    }

    #[test]
    fn names_python_accepts_but_section_6_refuses_are_refused() {
        let long = format!("{}=1", "N".repeat(71));
        for text in [
            "A-B=1",
            "A.B=1",
            "\u{e9}t\u{e9}=1",
            "'A\nB'=1",
            "'A B'=1",
            &long,
        ] {
            let m = refused(text);
            assert!(m.starts_with("t.env:1: "), "{m}");
            assert!(m.contains("§6"), "{m}");
        }
        assert_eq!(ok(&format!("{}=1", "N".repeat(70))).len(), 1);
        assert_eq!(ok("1A=1\n_x=2").len(), 2);
    }

    #[test]
    fn values_over_16_kib_or_with_nul_are_refused_naming_the_variable() {
        let m = refused("A=x\0secretvalue\n");
        assert!(m.starts_with("t.env:1: A: "), "{m}");
        assert!(m.contains("NUL"), "{m}");
        let big = format!("OK=1\nBIG={}\n", "v".repeat(16 * 1024 + 1));
        let m = refused(&big);
        assert!(m.starts_with("t.env:2: BIG: "), "{m}");
        assert_eq!(
            one(&format!("A={}", "v".repeat(16 * 1024))).len(),
            16 * 1024
        );
        // The limit applies after expansion.
        let half = "h".repeat(8 * 1024 + 1);
        let m = refused(&format!("H={half}\nDOUBLE=${{H}}${{H}}\n"));
        assert!(m.starts_with("t.env:2: DOUBLE: "), "{m}");
    }

    #[test]
    fn an_expansion_over_16_kib_stops_before_it_is_built() {
        // 300,000 references to 16,000 bytes would be 4.8 GB.
        let text = format!("A={}\nB={}\n", "x".repeat(16_000), "${A}".repeat(300_000));
        let m = refused(&text);
        assert!(
            m.starts_with("t.env:2: B: value is over the limit of 16384 bytes"),
            "{m}"
        );
        // An expansion of exactly the limit is fine.
        let text = format!("A={}\nB=${{A}}${{A}}\n", "x".repeat(8 * 1024));
        assert_eq!(ok(&text)[1].1.len(), 16 * 1024);
    }

    #[test]
    fn sealing_refuses_a_reference_to_anything_not_sealed() {
        let over = |n: &str| (n == "FLAG").then(|| SecretString::new("flag".into()));
        let under = |n: &str| (n == "EARLIER").then(|| SecretString::new("earlier".into()));
        let e = parse_sealing("A=1\nB=${A}${FLAG}${EARLIER}\n", "t", &over, &under).unwrap();
        assert_eq!(e[1].value.expose(), "1flagearlier");
        for (text, name) in [
            ("A=${HOME}", "${HOME}"),
            ("A=${B}\nB=1", "${B}"),
            ("A=${UNSET:-default}", "${UNSET}"),
            ("A=${not-a-name}", "a ${...} reference"),
        ] {
            let m = parse_sealing(text, "t", &none, &none)
                .unwrap_err()
                .to_string();
            assert!(
                m.starts_with(&format!("t:1: A: {name} is not sealed")),
                "{m}"
            );
        }
        // Outside seal, the same text reads as python-dotenv reads it.
        assert_eq!(one("A=${UNSET:-default}"), "default");
    }

    #[test]
    fn a_line_that_is_only_base64_padding_is_marked_wrapped() {
        let wrapped = |text: &str| -> Vec<(String, bool)> {
            parse(text, "t", &none)
                .unwrap()
                .into_iter()
                .map(|e| (e.name, e.wrapped))
                .collect()
        };
        let cut = "eyJ0eXBlIjoic2VydmljZV9hY2NvdW50IiwicHJpdmF0ZV9rZXki";
        let w = |n: &str, b: bool| (n.to_string(), b);
        assert_eq!(
            wrapped(&format!("K={cut}\nOiJTRUifQ==\n")),
            [w("K", false), w("OiJTRUifQ", true)]
        );
        assert_eq!(
            wrapped(&format!("K={cut}\nOiJTRUifQ=\n")),
            [w("K", false), w("OiJTRUifQ", true)]
        );
        assert_eq!(wrapped("A=x\nEQ==\n"), [w("A", false), w("EQ", true)]);
        // An empty variable after a short, padded, quoted or commented value is a variable.
        for text in [
            "K=short\nOiJTRUifQ=\n".to_string(),
            format!("K={cut}=\nOiJTRUifQ=\n"),
            format!("K=\"{cut}\"\nOiJTRUifQ=\n"),
            format!("K={cut}\n# c\nOiJTRUifQ=\n"),
            format!("K={cut}\nNEXT_EMPTY=\n"),
            "A=\"==\"\n".to_string(),
        ] {
            assert!(wrapped(&text).iter().all(|(_, b)| !b), "{text:?}");
        }
        let m = parse_sealing("A=x\nEQ==\n", "t", &none, &none)
            .unwrap_err()
            .to_string();
        assert!(
            m.starts_with("t:2: this line looks like the end of a value wrapped"),
            "{m}"
        );
        assert!(!m.contains("EQ"), "{m}");
    }

    #[test]
    fn python_dotenv_disabled_takes_python_s_true_words_after_casefold() {
        for v in "1 true True TRUE t T yes YES y Y ye\u{17f}".split(' ') {
            assert!(disabled_by(v.as_bytes()), "{v}");
        }
        for v in ["", "0", "false", "no", "on", " 1", "1 ", "tru", "yess"] {
            assert!(!disabled_by(v.as_bytes()), "{v}");
        }
        assert!(!disabled_by(b"\xff"));
    }

    #[test]
    fn load_reports_missing_files_and_non_utf8_without_content() {
        let dir = std::env::temp_dir().join(format!("agent-init-dotenv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.env");
        assert_eq!(load(&missing, &none).unwrap_err().exit_code(), 78);
        let bad = dir.join("bad.env");
        std::fs::write(&bad, b"A=secret\xff\n").unwrap();
        let e = load(&bad, &none).unwrap_err();
        assert_eq!(e.exit_code(), 65);
        assert!(e.to_string().contains("not UTF-8"), "{e}");
        assert!(!e.to_string().contains("secret"), "{e}");
        let good = dir.join("good.env");
        std::fs::write(&good, b"A=1\n").unwrap();
        assert_eq!(load(&good, &none).unwrap()[0].value.expose(), "1");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn debug_output_of_entries_hides_values() {
        let e = parse("A=hunter2hunter2", "t", &none).unwrap();
        assert!(!format!("{e:?}").contains("hunter2"));
    }
}
