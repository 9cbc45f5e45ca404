//! The annotated `sysctl/*.conf` files: the single source of the kernel settings a host
//! of each role wants, and of how `check` judges them.
//!
//! The files are plain `sysctl.d` files (`key = value`, `#` comments) that
//! `sysctl -p FILE` applies as they are. Each key's comment block ends, on the line
//! directly above the key, with one machine-readable annotation:
//!
//! ```text
//! # redpacket: scope=netns check=at-least scale=conn limits=what the key limits
//! net.core.somaxconn = 65535
//! ```
//!
//! and a header line before the first key gives the connection count the file's values
//! are for: `# redpacket: target-connections=1000000`. The files are embedded in the
//! binaries, so the programs and the hosts they tune read the same values.

use std::fmt;

/// `sysctl/server.conf`, as built into this binary.
pub const SERVER_CONF: &str = include_str!("../../../sysctl/server.conf");
/// `sysctl/client.conf`, as built into this binary.
pub const CLIENT_CONF: &str = include_str!("../../../sysctl/client.conf");

const MARK: &str = "redpacket:";

/// Where a setting lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Per network namespace: each namespace has its own value.
    Netns,
    /// One value for the whole host.
    Global,
    /// A limit of one process (not a sysctl; used by `check`'s own items).
    Process,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Netns => "netns",
            Scope::Global => "global",
            Scope::Process => "process",
        }
    }
}

/// How the live value is judged against the file's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Live >= wanted, element-wise for several numbers.
    AtLeast,
    /// Live <= wanted, element-wise.
    AtMost,
    /// Live == wanted (numbers compared as numbers, anything else as text).
    Equal,
    /// Two numbers `lo hi`: the live range must contain the wanted one.
    Range,
    /// Shown, never judged.
    Info,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::AtLeast => "at-least",
            Check::AtMost => "at-most",
            Check::Equal => "equal",
            Check::Range => "range",
            Check::Info => "info",
        }
    }
}

/// One key of a file with its annotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfKey {
    /// Dotted name, e.g. `net.core.somaxconn`.
    pub key: String,
    /// The file's value, blanks folded to single spaces.
    pub value: String,
    pub scope: Scope,
    pub check: Check,
    /// The value is for the file's target connection count and scales linearly with
    /// the connections asked for.
    pub scale_conn: bool,
    /// What the key limits, for people.
    pub limits: String,
    /// 1-based line of the key in its file.
    pub line: usize,
}

impl ConfKey {
    /// The value's numbers (empty when it is not all numbers).
    pub fn numbers(&self) -> Vec<i64> {
        numbers(&self.value).unwrap_or_default()
    }
}

/// A parsed file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conf {
    /// The file's name, for messages (`sysctl/server.conf`).
    pub name: String,
    /// `target-connections`: the count the values are for.
    pub target: Option<u64>,
    pub keys: Vec<ConfKey>,
}

impl Conf {
    pub fn get(&self, key: &str) -> Option<&ConfKey> {
        self.keys.iter().find(|k| k.key == key)
    }

    /// `sysctl/server.conf` as built in. The file is checked by this crate's tests, so
    /// a parse failure here is a build that skipped them: it panics with the reason.
    pub fn server() -> Conf {
        Conf::parse("sysctl/server.conf", SERVER_CONF).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `sysctl/client.conf` as built in (see [`Conf::server`]).
    pub fn client() -> Conf {
        Conf::parse("sysctl/client.conf", CLIENT_CONF).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Parses a file; the error names the file, the line and what is wrong.
    pub fn parse(name: &str, text: &str) -> Result<Conf, ConfError> {
        let err = |line: usize, msg: String| ConfError {
            file: name.to_string(),
            line,
            msg,
        };
        let mut conf = Conf {
            name: name.to_string(),
            target: None,
            keys: Vec::new(),
        };
        // The annotation waiting for its key: (line, fields).
        let mut pending: Option<(usize, Annotation)> = None;
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim();
            if line.is_empty() {
                if let Some((at, _)) = pending {
                    return Err(err(
                        at,
                        "an annotation must be directly above its key".into(),
                    ));
                }
            } else if let Some(comment) = line.strip_prefix('#').or_else(|| line.strip_prefix(';'))
            {
                let Some(body) = comment.trim().strip_prefix(MARK) else {
                    if let Some((at, _)) = pending {
                        return Err(err(
                            at,
                            "an annotation must be the last comment line, directly above its key"
                                .into(),
                        ));
                    }
                    continue;
                };
                if let Some((at, _)) = pending {
                    return Err(err(at, "two annotations in a row: one per key".into()));
                }
                let body = body.trim();
                if let Some(t) = body.strip_prefix("target-connections=") {
                    conf.target = Some(conf.target_line(t).map_err(|m| err(n, m))?);
                } else {
                    pending = Some((n, Annotation::parse(body).map_err(|m| err(n, m))?));
                }
            } else {
                let key = conf
                    .key_line(line, n, pending.take().map(|(_, a)| a))
                    .map_err(|m| err(n, m))?;
                conf.keys.push(key);
            }
        }
        if let Some((at, _)) = pending {
            return Err(err(at, "an annotation with no key below it".into()));
        }
        Ok(conf)
    }

    /// The value of a `target-connections=N` annotation, which must come once, before
    /// the first key.
    fn target_line(&self, t: &str) -> Result<u64, String> {
        if !self.keys.is_empty() {
            return Err("target-connections must come before the first key".into());
        }
        if self.target.is_some() {
            return Err("target-connections given twice".into());
        }
        t.trim()
            .parse()
            .ok()
            .filter(|&t| t > 0)
            .ok_or_else(|| format!("target-connections={t:?}: need a positive whole number"))
    }

    /// A `key = value` line with the annotation above it (`None`: there was none).
    fn key_line(&self, line: &str, n: usize, a: Option<Annotation>) -> Result<ConfKey, String> {
        // `-` before the key is sysctl.d's "ignore failure" prefix.
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("{line:?} is neither `key = value` nor a comment"))?;
        let key = key.trim().trim_start_matches('-').trim().replace('/', ".");
        let value = redpacket_sys::sysctl::normalize(value);
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(format!("{key:?} is not a sysctl key"));
        }
        if value.is_empty() {
            return Err(format!("{key} has no value"));
        }
        let Some(a) = a else {
            return Err(format!(
                "{key} has no `# {MARK} scope=.. check=.. limits=..` line directly above it"
            ));
        };
        if self.keys.iter().any(|k| k.key == key) {
            return Err(format!("{key} is set twice"));
        }
        self.annotation_fits(&key, &value, &a)?;
        Ok(ConfKey {
            key,
            value,
            scope: a.scope,
            check: a.check,
            scale_conn: a.scale_conn,
            limits: a.limits,
            line: n,
        })
    }

    /// Whether a key's value can be checked the way its annotation asks.
    fn annotation_fits(&self, key: &str, value: &str, a: &Annotation) -> Result<(), String> {
        let nums = numbers(value);
        match a.check {
            Check::AtLeast | Check::AtMost if nums.is_none() => {
                return Err(format!(
                    "{key} = {value}: check={} needs numbers",
                    a.check.as_str()
                ));
            }
            Check::Range if !matches!(nums.as_deref(), Some([lo, hi]) if lo <= hi) => {
                return Err(format!(
                    "{key} = {value}: check=range needs two numbers, low then high"
                ));
            }
            _ => {}
        }
        if !a.scale_conn {
            return Ok(());
        }
        if a.check != Check::AtLeast {
            return Err(format!("{key}: scale=conn works with check=at-least only"));
        }
        if nums.as_ref().is_some_and(|v| v.iter().any(|&x| x < 0)) {
            return Err(format!(
                "{key} = {value}: scale=conn needs values of 0 or more"
            ));
        }
        if self.target.is_none() {
            return Err(format!(
                "{key}: scale=conn needs a `# {MARK} target-connections=N` line before the first key"
            ));
        }
        Ok(())
    }
}

/// The fields of one annotation line.
struct Annotation {
    scope: Scope,
    check: Check,
    scale_conn: bool,
    limits: String,
}

impl Annotation {
    fn parse(body: &str) -> Result<Annotation, String> {
        let (fields, limits) = match body.find("limits=") {
            Some(i) => (&body[..i], body[i + "limits=".len()..].trim()),
            None => {
                return Err("the annotation lacks limits=... (last, the rest of the line)".into())
            }
        };
        if limits.is_empty() {
            return Err("limits= is empty: say what the key limits".into());
        }
        let (mut scope, mut check, mut scale_conn) = (None, None, false);
        for f in fields.split_whitespace() {
            let (k, v) = f
                .split_once('=')
                .ok_or_else(|| format!("{f:?} is not name=value"))?;
            match k {
                "scope" if scope.is_some() => return Err("scope= given twice".into()),
                "scope" => {
                    scope = Some(match v {
                        "netns" => Scope::Netns,
                        "global" => Scope::Global,
                        _ => return Err(format!("scope={v:?}: expected netns or global")),
                    })
                }
                "check" if check.is_some() => return Err("check= given twice".into()),
                "check" => {
                    check = Some(match v {
                        "at-least" => Check::AtLeast,
                        "at-most" => Check::AtMost,
                        "equal" => Check::Equal,
                        "range" => Check::Range,
                        "info" => Check::Info,
                        _ => {
                            return Err(format!(
                                "check={v:?}: expected at-least, at-most, equal, range or info"
                            ))
                        }
                    })
                }
                "scale" if v == "conn" => scale_conn = true,
                "scale" => return Err(format!("scale={v:?}: the only scale is conn")),
                _ => return Err(format!("unknown field {k:?} (scope, check, scale, limits)")),
            }
        }
        Ok(Annotation {
            scope: scope.ok_or("the annotation lacks scope=netns|global")?,
            check: check.ok_or("the annotation lacks check=at-least|at-most|equal|range|info")?,
            scale_conn,
            limits: limits.to_string(),
        })
    }
}

/// `"4096 131072 6291456"` -> its numbers; `None` if any part is not a number.
pub fn numbers(v: &str) -> Option<Vec<i64>> {
    v.split_whitespace().map(|x| x.parse().ok()).collect()
}

/// A file that does not follow the format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfError {
    pub file: String,
    pub line: usize,
    pub msg: String,
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} line {}: {}", self.file, self.line, self.msg)
    }
}

impl std::error::Error for ConfError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Conf, String> {
        Conf::parse("t.conf", text).map_err(|e| e.to_string())
    }

    #[test]
    fn the_built_in_files_parse() {
        for conf in [Conf::server(), Conf::client()] {
            assert!(conf.target.is_some(), "{}", conf.name);
            assert!(!conf.keys.is_empty(), "{}", conf.name);
            for k in &conf.keys {
                assert!(!k.limits.is_empty(), "{}", k.key);
            }
        }
        assert!(Conf::server().get("net.core.somaxconn").is_some());
        assert!(Conf::client().get("net.ipv4.ip_local_port_range").is_some());
    }

    #[test]
    fn every_annotation_is_read() {
        let c = parse(
            "# a header comment\n\
             # redpacket: target-connections=1000\n\
             \n\
             # why this key\n\
             # redpacket: scope=netns check=at-least scale=conn limits=a burst of   connects\n\
             net.core.somaxconn = 65535\n\
             # redpacket: scope=global check=at-most limits=x\n\
             net.ipv4.tcp_fin_timeout=10\n\
             # redpacket: check=equal scope=netns limits=y\n\
             net/ipv4/tcp_tw_reuse = 1\n\
             # redpacket: scope=netns check=range limits=ports\n\
             net.ipv4.ip_local_port_range = 1024\t65535\n\
             # redpacket: scope=global check=info limits=spin\n\
             -net.core.busy_poll = 0\n\
             # redpacket: scope=global check=equal limits=cc\n\
             net.ipv4.tcp_congestion_control = bbr\n",
        )
        .unwrap();
        assert_eq!(c.target, Some(1000));
        let k = &c.keys[0];
        assert_eq!(
            (k.key.as_str(), k.scope, k.check, k.scale_conn, k.line),
            ("net.core.somaxconn", Scope::Netns, Check::AtLeast, true, 6)
        );
        assert_eq!(k.limits, "a burst of   connects");
        assert_eq!(c.keys[1].check, Check::AtMost);
        assert_eq!(c.keys[1].value, "10");
        assert_eq!(c.keys[2].key, "net.ipv4.tcp_tw_reuse");
        assert_eq!(c.keys[2].check, Check::Equal);
        assert_eq!(c.keys[3].value, "1024 65535");
        assert_eq!(c.keys[3].numbers(), vec![1024, 65535]);
        assert_eq!(c.keys[4].key, "net.core.busy_poll");
        assert_eq!(c.keys[4].check, Check::Info);
        assert_eq!(c.keys[5].value, "bbr");
        assert!(c.keys[5].numbers().is_empty());
    }

    #[test]
    fn malformed_files_say_where_and_why() {
        let cases: &[(&str, &str)] = &[
            ("net.core.somaxconn = 1\n", "line 1: net.core.somaxconn has no `# redpacket:"),
            ("# redpacket: scope=netns check=at-least limits=x\n# plain\nk.a = 1\n", "line 1: an annotation must be the last comment"),
            ("# redpacket: scope=netns check=at-least limits=x\n\nk.a = 1\n", "line 1: an annotation must be directly above"),
            ("# redpacket: scope=netns check=at-least limits=x\n", "line 1: an annotation with no key"),
            ("# redpacket: scope=host check=at-least limits=x\nk.a = 1\n", "scope=\"host\""),
            ("# redpacket: scope=netns check=more limits=x\nk.a = 1\n", "check=\"more\""),
            ("# redpacket: scope=netns limits=x\nk.a = 1\n", "lacks check="),
            ("# redpacket: check=info limits=x\nk.a = 1\n", "lacks scope="),
            ("# redpacket: scope=netns check=info\nk.a = 1\n", "lacks limits="),
            ("# redpacket: scope=netns check=info limits=\nk.a = 1\n", "limits= is empty"),
            ("# redpacket: scope=netns check=info colour=red limits=x\nk.a = 1\n", "unknown field \"colour\""),
            ("# redpacket: scope=netns check=info scale=cpu limits=x\nk.a = 1\n", "scale=\"cpu\""),
            ("# redpacket: scope=netns check=at-least limits=x\nk.a = many\n", "needs numbers"),
            ("# redpacket: scope=netns check=range limits=x\nk.a = 5 1\n", "two numbers, low then high"),
            ("# redpacket: scope=netns check=range limits=x\nk.a = 5\n", "two numbers"),
            ("# redpacket: scope=netns check=at-least scale=conn limits=x\nk.a = 5\n", "line 2: k.a: scale=conn needs a `# redpacket: target-connections"),
            ("# redpacket: target-connections=9\n# redpacket: scope=netns check=at-most scale=conn limits=x\nk.a = 5\n", "at-least only"),
            ("# redpacket: target-connections=0\n", "positive whole number"),
            ("# redpacket: scope=netns check=info limits=x\nk.a = 1\n# redpacket: target-connections=5\n", "line 3: target-connections must come before"),
            ("# redpacket: scope=netns check=info limits=x\nk.a = 1\n# redpacket: scope=netns check=info limits=x\nk.a = 2\n", "line 4: k.a is set twice"),
            ("just words\n", "line 1: \"just words\" is neither"),
            ("# redpacket: scope=netns check=info limits=x\nbad key! = 1\n", "is not a sysctl key"),
            ("# redpacket: scope=netns check=info limits=x\nk.a =\n", "k.a has no value"),
            ("# redpacket: scope=netns check=info limits=x\n# redpacket: scope=netns check=info limits=y\nk.a = 1\n", "two annotations in a row"),
        ];
        for (text, want) in cases {
            let e = parse(text).unwrap_err();
            assert!(e.starts_with("t.conf line "), "{e}");
            assert!(e.contains(want), "{text:?}: {e} lacks {want:?}");
        }
    }
}
