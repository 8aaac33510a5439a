//! DAEMON_URL: ElectrumX's daemon URLs (`[http://][user:password@]host[:port][/]`,
//! comma-separated for failover) and how each authenticates, never showing a password
//! in a message or a log.

use bitcoin::hex::FromHex;
use std::fmt;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

/// How to authenticate to one daemon.
#[derive(Clone, PartialEq, Eq)]
pub enum DaemonAuth {
    /// From `user:password@` in DAEMON_URL (rpcuser/rpcpassword or rpcauth).
    UserPass { user: String, password: String },
    /// The daemon's `.cookie` file, re-read whenever the daemon refuses it: the daemon
    /// writes a new one each time it starts.
    CookieFile(PathBuf),
}

impl fmt::Debug for DaemonAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DaemonAuth::UserPass { user, .. } => write!(f, "UserPass({user}:***)"),
            DaemonAuth::CookieFile(path) => write!(f, "CookieFile({})", path.display()),
        }
    }
}

/// One daemon RPC endpoint. Displays as `host:port/`, without credentials, for logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonUrl {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    pub auth: DaemonAuth,
}

/// A DAEMON_URL entry that cannot be used. `url` has its credentials removed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid daemon URL {url:?}: {reason}")]
pub struct DaemonUrlError {
    pub url: String,
    pub reason: String,
}

impl DaemonUrl {
    /// Parses one ElectrumX daemon URL, `[http://][user:password@]host[:port][/]`.
    /// The port defaults to `default_port` (the coin's RPC port). Without credentials the
    /// daemon's cookie file is used, so `cookie_file` must then be known. Credentials may
    /// be percent-encoded (as in any URL), e.g. `%40` for `@`.
    pub fn parse(
        text: &str,
        default_port: u16,
        cookie_file: Option<&Path>,
    ) -> Result<DaemonUrl, DaemonUrlError> {
        let url = text.trim().trim_end_matches('/');
        let fail = |reason: String| DaemonUrlError {
            url: redact(url),
            reason,
        };
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
                return Err(fail(
                    "https is not supported: the daemon's RPC server speaks plain HTTP, \
                     so use http:// (tunnel it if the daemon is remote)"
                        .into(),
                ));
            }
            Some((scheme, _)) => {
                return Err(fail(format!("the scheme must be http://, not {scheme}://")));
            }
            None => url,
        };
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, rest),
        };
        if hostport.contains('/') {
            return Err(fail(
                "a path is not supported; the form is [http://][user:password@]host[:port][/]"
                    .into(),
            ));
        }
        let (host, port) = split_host_port(hostport).map_err(fail)?;
        let port = match port {
            None => default_port,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(fail(format!("invalid port {p:?}; expected 1-65535"))),
            },
        };
        let auth = match userinfo {
            Some(userinfo) => {
                let Some((user, password)) = userinfo.split_once(':') else {
                    return Err(fail("the credentials must be user:password".into()));
                };
                let (Some(user), Some(password)) = (percent_decode(user), percent_decode(password))
                else {
                    return Err(fail("bad %-escape in the credentials".into()));
                };
                if user.is_empty() {
                    return Err(fail("the user name is empty".into()));
                }
                DaemonAuth::UserPass { user, password }
            }
            None => match cookie_file {
                Some(path) => DaemonAuth::CookieFile(path.to_path_buf()),
                None => {
                    return Err(fail(
                        "no user:password given and no cookie file is known (HOME is not \
                         set): add user:password@ or set DAEMON_COOKIE_FILE"
                            .into(),
                    ));
                }
            },
        };
        Ok(DaemonUrl {
            host: host.to_owned(),
            port,
            auth,
        })
    }

    /// Parses DAEMON_URL: a comma-separated list of [`DaemonUrl::parse`] forms, tried in
    /// order, failing over round-robin. Empty items are skipped.
    pub fn parse_list(
        text: &str,
        default_port: u16,
        cookie_file: Option<&Path>,
    ) -> Result<Vec<DaemonUrl>, DaemonUrlError> {
        let urls = text
            .split(',')
            .filter(|item| !item.trim().is_empty())
            .map(|item| DaemonUrl::parse(item, default_port, cookie_file))
            .collect::<Result<Vec<_>, _>>()?;
        if urls.is_empty() {
            return Err(DaemonUrlError {
                url: text.to_owned(),
                reason: "no daemon URL given".into(),
            });
        }
        Ok(urls)
    }
}

impl DaemonUrl {
    /// `host:port`, an IPv6 host in brackets: what to connect to, and the Host header.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for DaemonUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/", self.host_port())
    }
}

/// Splits `host[:port]` or `[ipv6][:port]`.
fn split_host_port(text: &str) -> Result<(&str, Option<&str>), String> {
    let (host, port) = if let Some(inner) = text.strip_prefix('[') {
        let Some((ip, after)) = inner.split_once(']') else {
            return Err("unclosed '[' in an IPv6 address".into());
        };
        if ip.parse::<Ipv6Addr>().is_err() {
            return Err(format!("{ip:?} is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return Err(format!("unexpected {after:?} after the IPv6 address")),
            },
        };
        (ip, port)
    } else {
        match text.split_once(':') {
            Some((_, port)) if port.contains(':') => {
                return Err("an IPv6 address must be in brackets, e.g. [::1]:8332".into());
            }
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err("the host is missing".into());
    }
    let valid = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':');
    if !host.bytes().all(valid) {
        return Err(format!("{host:?} is not a valid host name"));
    }
    Ok((host, port))
}

/// `%XX` escapes decoded; `None` for a bad escape or text that is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let [byte] = <[u8; 1]>::from_hex(text.get(i + 1..i + 3)?).ok()?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The URL with any credentials replaced, for error messages.
fn redact(url: &str) -> String {
    match url.rsplit_once('@') {
        Some((before, after)) => {
            let scheme = before.split_once("://").map_or("", |(s, _)| s);
            if scheme.is_empty() {
                format!("***@{after}")
            } else {
                format!("{scheme}://***@{after}")
            }
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn cookie() -> Option<&'static Path> {
        Some(Path::new("/home/u/.bitcoin/.cookie"))
    }

    pub(in crate::daemon) fn user_pass(user: &str, password: &str) -> DaemonAuth {
        DaemonAuth::UserPass {
            user: user.into(),
            password: password.into(),
        }
    }

    #[test]
    fn urls_parse_in_every_electrumx_form() {
        let cases = [
            ("http://u:p@host:1234/", "host", 1234, user_pass("u", "p")),
            ("u:p@host:1234", "host", 1234, user_pass("u", "p")),
            (" u:p@host// ", "host", 8332, user_pass("u", "p")),
            ("HTTP://u:p@10.0.0.1", "10.0.0.1", 8332, user_pass("u", "p")),
            ("u:p:q@host", "host", 8332, user_pass("u", "p:q")),
            // The last '@' ends the credentials (as ElectrumX), the first ':' ends the user.
            ("u:p@ss@host", "host", 8332, user_pass("u", "p@ss")),
            ("u:p%40ss%2C@host", "host", 8332, user_pass("u", "p@ss,")),
            ("u:@host", "host", 8332, user_pass("u", "")),
            ("http://[::1]:18443/", "::1", 18443, auth_cookie()),
            ("[::1]", "::1", 8332, auth_cookie()),
            ("localhost", "localhost", 8332, auth_cookie()),
            ("127.0.0.1:19443/", "127.0.0.1", 19443, auth_cookie()),
        ];
        for (text, host, port, auth) in cases {
            let url = DaemonUrl::parse(text, 8332, cookie()).unwrap();
            assert_eq!(
                url,
                DaemonUrl {
                    host: host.into(),
                    port,
                    auth
                },
                "{text}"
            );
        }
    }

    fn auth_cookie() -> DaemonAuth {
        DaemonAuth::CookieFile(PathBuf::from("/home/u/.bitcoin/.cookie"))
    }

    #[test]
    fn url_lists_and_display_hide_credentials() {
        let urls = DaemonUrl::parse_list("u:secret@a, b:1,,[::1]:2/", 8332, cookie()).unwrap();
        let shown: Vec<String> = urls.iter().map(|u| u.to_string()).collect();
        assert_eq!(shown, ["a:8332/", "b:1/", "[::1]:2/"]);
        assert!(!format!("{urls:?}").contains("secret"));
        assert!(DaemonUrl::parse_list(" , ", 8332, cookie()).is_err());
    }

    #[test]
    fn bad_urls_are_explained_without_the_password() {
        let cases = [
            ("https://u:secret@h", "https is not supported"),
            ("ftp://h", "the scheme must be http://, not ftp://"),
            ("u:secret@h:0", "invalid port \"0\"; expected 1-65535"),
            ("u:secret@h:x", "invalid port \"x\""),
            ("u:secret@h:1/wallet/w", "a path is not supported"),
            ("usersecret@h", "the credentials must be user:password"),
            (":secret@h", "the user name is empty"),
            ("u:secret@", "the host is missing"),
            ("u:secret@::1", "must be in brackets"),
            ("u:secret@[::1", "unclosed"),
            ("u:secret@[nope]:1", "is not an IPv6 address"),
            ("u:secret@h st", "is not a valid host name"),
            ("u:%zz@h", "bad %-escape"),
        ];
        for (text, reason) in cases {
            let err = DaemonUrl::parse(text, 8332, cookie()).unwrap_err();
            let message = err.to_string();
            assert!(message.contains(reason), "{text}: {message}");
            assert!(!message.contains("secret"), "{text}: {message}");
        }
        let err = DaemonUrl::parse("host", 8332, None).unwrap_err();
        assert!(err.to_string().contains("set DAEMON_COOKIE_FILE"), "{err}");
    }
}
