//! Host names as the Host guard (`http.rs`) and `allowed_hosts` compare
//! them: parsed strictly (RFC 9110's `host [":" port]`), since a lenient
//! reading let `[::1]evil.com` or `localhost..` pass for loopback names.
//! Only the name is compared: a port, one trailing dot (the same name,
//! fully qualified) and an IPv6 address's brackets are not part of it.

use std::net::{IpAddr, Ipv6Addr};

/// The name of a Host value, in lower case, or None when the value is not
/// `host [":" port]`: a bracketed IPv6 address, or letters, digits, `-`,
/// `.` and `_` (punycode for other scripts, as browsers send them).
pub fn name_of(value: &str) -> Option<String> {
    let v = value.trim();
    let (host, after, bracketed) = match v.strip_prefix('[') {
        Some(rest) => {
            let (inner, after) = rest.split_once(']')?;
            inner.parse::<Ipv6Addr>().ok()?;
            (inner, after, true)
        }
        None => match v.find(':') {
            Some(i) => (&v[..i], &v[i..], false),
            None => (v, "", false),
        },
    };
    if !after.is_empty() {
        let port = after.strip_prefix(':')?;
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_';
    if host.is_empty() || (!bracketed && !host.bytes().all(plain)) {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

/// Whether a name (from [`name_of`]) can only be this machine: one no DNS
/// answer can move elsewhere (`localhost` and `*.localhost`, which
/// browsers resolve themselves), or a loopback address (IPv4-mapped too).
pub fn is_loopback(name: &str) -> bool {
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// Whether the address the server listens on (the config's `host`:
/// `127.0.0.1`, `::1`, `[::1]` or `localhost`) is a loopback one.
pub fn binds_loopback(host: &str) -> bool {
    let h = host.trim();
    let bare = h
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(h);
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// An `allowed_hosts` entry's name, or why it is not one (a scheme, a
/// path, a port, characters a Host never holds).
pub fn allowed_name(entry: &str) -> Result<String, String> {
    let bad = || {
        format!(
            "`{entry}` is not a host name: give a name or an address, without scheme, port or path (recur.internal, 10.0.0.7, [fd00::1])"
        )
    };
    let name = name_of(entry).ok_or_else(bad)?;
    // A port would be ignored, so it is refused rather than misread.
    let t = entry.trim();
    let t = t.strip_suffix('.').unwrap_or(t);
    let bare = t
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(t);
    if bare.to_ascii_lowercase() != name {
        return Err(bad());
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_read_strictly() {
        for (value, name) in [
            ("localhost:8080", Some("localhost")),
            ("LOCALHOST.", Some("localhost")),
            ("[::1]:80", Some("::1")),
            ("[::ffff:127.0.0.1]", Some("::ffff:127.0.0.1")),
            ("recur.internal", Some("recur.internal")),
            ("[::1]evil.com", None),
            ("[::1", None),
            ("[::1]]", None),
            ("[::1]:80:80", None),
            ("[localhost]", None),
            ("[127.0.0.1]", None),
            ("localhost:80:80", None),
            ("localhost:", None),
            (":8080", None),
            ("::1", None),
            ("bücher.example", None),
            ("a b", None),
        ] {
            assert_eq!(name_of(value).as_deref(), name, "{value}");
        }
        for (name, lo) in [
            ("localhost", true),
            ("app.localhost", true),
            ("127.3.4.5", true),
            ("::1", true),
            ("::ffff:127.0.0.1", true),
            ("localhost.", false),
            ("localhost.evil", false),
            ("::2", false),
            ("10.0.0.7", false),
        ] {
            assert_eq!(is_loopback(name), lo, "{name}");
        }
        assert!(binds_loopback("::1") && binds_loopback("[::1]") && binds_loopback("localhost"));
        assert!(!binds_loopback("0.0.0.0") && !binds_loopback("::"));
        assert_eq!(allowed_name("Recur.Internal.").unwrap(), "recur.internal");
        assert_eq!(allowed_name("[fd00::1]").unwrap(), "fd00::1");
        for e in [
            "",
            "recur.internal:8080",
            "http://x.example",
            "bücher.example",
            "a/b",
        ] {
            assert!(allowed_name(e).is_err(), "{e}");
        }
    }
}
