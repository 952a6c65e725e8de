//! Typed readings of one value. Each returns the [`ErrorKind`] to report; the builder adds the
//! file, line and key.
//!
//! Numbers are plain decimal digits, nothing else: no sign, no unit, no hex, no blanks. The C
//! original read `timeout = 60s` as 60 and `timeout = abc` as 0, which silently turned a typo
//! into a tunnel that never times out; we would rather refuse to start.

use super::error::ErrorKind;
use crate::proto::route::Prefix;

/// A decimal integer in `min..=max`. `what` names the quantity in the error message.
pub(crate) fn number(value: &str, what: &'static str, min: u64, max: u64) -> Result<u64, ErrorKind> {
    let bad = || ErrorKind::BadNumber { what, min, max, got: value.to_string() };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    // Only digits, so the one failure left is overflow: out of range too.
    let n: u64 = value.parse().map_err(|_| bad())?;
    if (min..=max).contains(&n) { Ok(n) } else { Err(bad()) }
}

/// A list of IPv4 (`ipv6` false) or IPv6 prefixes, separated by commas or blanks. With
/// `hosts`, each is one address, its length (if written, as in `10.42.0.2/24`) ignored: a
/// site's tunnel address is its own, not its subnet's.
pub(crate) fn prefixes(value: &str, ipv6: bool, hosts: bool) -> Result<Vec<Prefix>, ErrorKind> {
    let expected = match (ipv6, hosts) {
        (false, true) => "IPv4 addresses (10.42.0.2)",
        (true, true) => "IPv6 addresses (fd42::2)",
        (false, false) => "IPv4 networks, separated by commas (192.168.10.0/24, 10.8.0.0/16)",
        (true, false) => "IPv6 networks, separated by commas (2001:db8:10::/48)",
    };
    let mut out = Vec::new();
    for word in value.split([',', ' ', '\t']) {
        if word.is_empty() {
            continue;
        }
        let parsed = match word.split_once('/') {
            Some((a, _)) if hosts => a.parse::<Prefix>(),
            _ => word.parse::<Prefix>(),
        };
        match parsed {
            Ok(p) if p.addr().is_ipv6() == ipv6 => out.push(p),
            _ => return Err(ErrorKind::BadValue { expected, got: word.to_string() }),
        }
    }
    Ok(out)
}

/// A port; `min` is 0 where "any port" makes sense (a client's bindport), else 1.
pub(crate) fn port(value: &str, min: u16) -> Result<u16, ErrorKind> {
    let n = number(value, "a port", u64::from(min), u64::from(u16::MAX))?;
    Ok(u16::try_from(n).expect("checked against u16::MAX"))
}

/// `0` or `1`, as in the original. `yes`/`true` are refused rather than guessed at.
pub(crate) fn flag(value: &str) -> Result<bool, ErrorKind> {
    match value {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(ErrorKind::BadValue { expected: "0 or 1", got: value.to_string() }),
    }
}

/// One of `choices`, exactly (values are case-sensitive like the original's).
pub(crate) fn choice<T: Copy>(
    value: &str,
    choices: &[(&str, T)],
    expected: &'static str,
) -> Result<T, ErrorKind> {
    choices
        .iter()
        .find(|(name, _)| *name == value)
        .map(|(_, v)| *v)
        .ok_or_else(|| ErrorKind::BadValue { expected, got: value.to_string() })
}

/// A host name or address, resolved later by the daemon. Only what cannot be a host is
/// refused here: nothing, or blanks.
pub(crate) fn host(value: &str) -> Result<String, ErrorKind> {
    if value.is_empty() || value.chars().any(|c| c.is_whitespace()) {
        return Err(ErrorKind::BadValue {
            expected: "a host name or address, without spaces",
            got: value.into(),
        });
    }
    Ok(value.to_string())
}

/// Longest interface name Linux accepts: `IFNAMSIZ` (16) less the terminating NUL.
pub const IFNAME_MAX: usize = 15;

/// `bindinterface`: a device name where the system can bind a socket to a device (Linux's
/// `SO_BINDTODEVICE`). The BSDs cannot: there the key is refused, and `bindhost` (the device's
/// address) is what chooses a link's way out.
pub(crate) fn bind_interface(v: &str) -> Result<String, ErrorKind> {
    match NO_BIND_INTERFACE {
        None => interface_name(v),
        Some(why) => Err(ErrorKind::BadValue { expected: why, got: v.into() }),
    }
}

#[cfg(target_os = "linux")]
const NO_BIND_INTERFACE: Option<&str> = None;
#[cfg(target_os = "freebsd")]
const NO_BIND_INTERFACE: Option<&str> =
    Some("no bindinterface on FreeBSD, which cannot bind a socket to a device: use bindhost (its address)");
#[cfg(target_os = "openbsd")]
const NO_BIND_INTERFACE: Option<&str> =
    Some("no bindinterface on OpenBSD, which cannot bind a socket to a device: use bindhost (its address)");

/// A network interface name as Linux's `dev_valid_name` accepts it: 1 to 15 bytes, no `/`,
/// `:` or whitespace, and not `.` or `..`. Checked here so a typo fails at start with a line
/// number rather than as an `EINVAL` from `TUNSETIFF`.
pub(crate) fn interface_name(value: &str) -> Result<String, ErrorKind> {
    let ok = !value.is_empty()
        && value.len() <= IFNAME_MAX
        && value != "."
        && value != ".."
        && !value.chars().any(|c| c == '/' || c == ':' || c.is_whitespace());
    if ok {
        Ok(value.to_string())
    } else {
        Err(ErrorKind::BadValue {
            expected: "an interface name of 1 to 15 bytes, without `/`, `:` or spaces",
            got: value.to_string(),
        })
    }
}

/// Longest UNIX socket path: `sun_path` is 108 bytes on Linux, including the NUL.
pub const UNIX_PATH_MAX: usize = 107;

/// A path for the control socket's `bind(2)`.
pub(crate) fn unix_path(value: &str) -> Result<String, ErrorKind> {
    if value.len() <= UNIX_PATH_MAX {
        Ok(value.to_string())
    } else {
        Err(ErrorKind::BadValue { expected: "a socket path of at most 107 bytes", got: value.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_plain_decimal_in_range() {
        assert_eq!(number("60", "seconds", 2, 86400), Ok(60));
        assert_eq!(number("0060", "seconds", 2, 86400), Ok(60));
        assert_eq!(number("2", "seconds", 2, 86400), Ok(2));
        assert_eq!(number("86400", "seconds", 2, 86400), Ok(86400));
        for bad in
            ["", "1", "86401", "60s", "abc", "-1", "+5", " 5", "0x10", "1.5", "99999999999999999999999"]
        {
            let e = number(bad, "seconds", 2, 86400).unwrap_err();
            assert_eq!(e, ErrorKind::BadNumber { what: "seconds", min: 2, max: 86400, got: bad.into() });
        }
    }

    #[test]
    fn prefixes_by_family_hosts_and_separators() {
        let list = |v: &str, v6: bool, hosts: bool| -> Vec<String> {
            prefixes(v, v6, hosts).unwrap().iter().map(|p| p.to_string()).collect()
        };
        assert_eq!(list("192.168.10.0/24, 10.8.0.0/16", false, false), ["192.168.10.0/24", "10.8.0.0/16"]);
        assert_eq!(list("192.168.10.0/24 10.8.0.0/16", false, false).len(), 2);
        assert_eq!(list("10.42.0.2/24", false, true), ["10.42.0.2/32"]);
        assert_eq!(list("fd42::2/64", true, true), ["fd42::2/128"]);
        assert_eq!(list("", false, false), Vec::<String>::new());
        assert!(prefixes("fd42::/64", false, false).is_err(), "an IPv6 network in ip4_routes");
        assert!(prefixes("10.0.0.0/8", true, false).is_err());
        assert!(prefixes("10.0.0.0/40", false, false).is_err());
        assert!(prefixes("vpn.example.net", false, true).is_err());
    }

    #[test]
    fn ports() {
        assert_eq!(port("0", 0), Ok(0));
        assert!(port("0", 1).is_err());
        assert_eq!(port("65535", 1), Ok(65535));
        assert!(port("65536", 1).is_err());
    }

    #[test]
    fn flags_are_zero_or_one() {
        assert_eq!(flag("0"), Ok(false));
        assert_eq!(flag("1"), Ok(true));
        for bad in ["", "yes", "true", "2", "01"] {
            assert!(flag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn choices_are_exact() {
        let c = [("tun", 1), ("tap", 2)];
        assert_eq!(choice("tap", &c, "tun or tap"), Ok(2));
        assert!(choice("TAP", &c, "tun or tap").is_err());
    }

    #[test]
    fn hosts() {
        assert_eq!(host("vpn.example.net"), Ok("vpn.example.net".into()));
        assert_eq!(host("fe80::1%eth0"), Ok("fe80::1%eth0".into()));
        assert!(host("").is_err());
        assert!(host("a b").is_err());
    }

    #[test]
    fn interface_names_follow_linux() {
        assert!(interface_name("mlvpn0").is_ok());
        assert!(interface_name("123456789012345").is_ok());
        for bad in ["", "1234567890123456", ".", "..", "a/b", "a:1", "a b"] {
            assert!(interface_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unix_paths_fit_sun_path() {
        assert!(unix_path(&"a".repeat(107)).is_ok());
        assert!(unix_path(&"a".repeat(108)).is_err());
    }
}
