//! Checks of URLs the mesh would let someone else make it (or an upstream)
//! call: push-notification webhooks (an SSRF vector). One parser — the
//! WHATWG URL parser of the `url` crate, which is what browsers and most
//! HTTP clients use — and checks on the **addresses a name resolves to**,
//! not on how the host is spelled.
//!
//! Refused:
//! * schemes other than `https` (and `http` when allowed), user info;
//! * hosts not written canonically: IPv4 in decimal, hex, octal or short
//!   forms (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`, `0`), upper-case
//!   or percent-encoded names, a trailing dot (`example.com.`) — another
//!   parser might read them differently from this one;
//! * names resolving to a non-public address (loopback, private, link-local,
//!   CGNAT, documentation, benchmarking, multicast, reserved; IPv4-mapped
//!   and NAT64 IPv6 forms of them), unless private addresses are allowed;
//! * names that do not resolve (fail closed).
//!
//! Left as it is: DNS rebinding after the check (the upstream agent resolves
//! the name again when it calls the webhook); an allow list of hosts
//! (`allowed_hosts`) is the defence for that.

use crate::config::PushSettings;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IPv4 networks that are not the public internet.
const NON_PUBLIC_V4: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    (Ipv4Addr::new(100, 64, 0, 0), 10),
    (Ipv4Addr::new(127, 0, 0, 0), 8),
    (Ipv4Addr::new(169, 254, 0, 0), 16),
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    (Ipv4Addr::new(192, 0, 0, 0), 24),
    (Ipv4Addr::new(192, 0, 2, 0), 24),
    (Ipv4Addr::new(192, 88, 99, 0), 24),
    (Ipv4Addr::new(192, 168, 0, 0), 16),
    (Ipv4Addr::new(198, 18, 0, 0), 15),
    (Ipv4Addr::new(198, 51, 100, 0), 24),
    (Ipv4Addr::new(203, 0, 113, 0), 24),
    (Ipv4Addr::new(224, 0, 0, 0), 4),
    (Ipv4Addr::new(240, 0, 0, 0), 4),
];

/// IPv6 networks that are not the public internet (IPv4-mapped and NAT64
/// addresses are judged by the IPv4 address they carry).
const NON_PUBLIC_V6: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::UNSPECIFIED, 128),
    (Ipv6Addr::LOCALHOST, 128),
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64),
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32),
    (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16),
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),
];

/// Whether `ip` is an address on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !NON_PUBLIC_V4.iter().any(|(n, len)| {
            Ipv4Net::new(*n, *len)
                .map(|net| net.contains(&v4))
                .unwrap_or(true)
        }),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            // NAT64 (64:ff9b::/96) carries an IPv4 address.
            let nat64 = IpNet::V6(
                Ipv6Net::new(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96).unwrap_or_default(),
            );
            if nat64.contains(&IpAddr::V6(v6)) {
                let o = v6.octets();
                return is_public(IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15])));
            }
            !NON_PUBLIC_V6.iter().any(|(n, len)| {
                Ipv6Net::new(*n, *len)
                    .map(|net| net.contains(&v6))
                    .unwrap_or(true)
            })
        }
    }
}

/// A webhook URL that passed the syntax checks.
#[derive(Debug, Clone)]
pub struct CheckedUrl {
    pub url: url::Url,
    /// The host as written (canonical), and the port to resolve with it.
    pub host: String,
    pub port: u16,
}

/// The checks that need no network: scheme, canonical host, allowed hosts,
/// and literal addresses. Names are resolved by [`check_webhook`].
pub fn check_webhook_syntax(text: &str, s: &PushSettings) -> Result<CheckedUrl, String> {
    let bad = |why: &str| Err(format!("push notification URL `{text}` {why}"));
    let url = match url::Url::parse(text) {
        Ok(u) => u,
        Err(e) => return bad(&format!("is not a URL ({e})")),
    };
    match url.scheme() {
        "https" => {}
        "http" if s.allow_http => {}
        _ => {
            return bad(
                "must be https (the gateway's push_notifications.allow_http is off for http)",
            );
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return bad("must not carry user info");
    }
    let Some(host) = url.host_str().map(str::to_owned) else {
        return bad("has no host");
    };
    // The host exactly as the client wrote it: between `//` (after any
    // user info) and the port, path, query or fragment.
    let after = text.split_once("://").map(|(_, r)| r).unwrap_or_default();
    let authority = after.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority);
    let written = if authority.starts_with('[') {
        authority
            .split_once(']')
            .map(|(h, _)| format!("{h}]"))
            .unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default().to_owned()
    };
    if written != host {
        return bad(&format!(
            "writes its host as `{written}`, which reads as `{host}`: write the host canonically (lower case, dotted-decimal IPv4, no percent-encoding)"
        ));
    }
    if host.ends_with('.') {
        return bad("has a trailing dot in its host name");
    }
    if !s.allowed_hosts.is_empty()
        && !s
            .allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&host))
    {
        return Err(format!(
            "push notification host `{host}` is not in push_notifications.allowed_hosts"
        ));
    }
    let literal = match url.host() {
        Some(url::Host::Ipv4(a)) => Some(IpAddr::V4(a)),
        Some(url::Host::Ipv6(a)) => Some(IpAddr::V6(a)),
        _ => None,
    };
    if let Some(ip) = literal
        && !s.allow_private
        && !is_public(ip)
    {
        return bad(
            "points at a private or loopback address (push_notifications.allow_private is off)",
        );
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Ok(CheckedUrl { url, host, port })
}

/// The addresses a checked URL's host stands for must all be public
/// (unless private ones are allowed). `resolved` are the addresses the
/// name resolved to; an empty list is refused (fail closed).
pub fn check_addresses(
    c: &CheckedUrl,
    resolved: &[IpAddr],
    s: &PushSettings,
) -> Result<(), String> {
    if resolved.is_empty() {
        return Err(format!(
            "push notification host `{}` does not resolve (refused: its address cannot be checked)",
            c.host
        ));
    }
    if s.allow_private {
        return Ok(());
    }
    if let Some(ip) = resolved.iter().find(|ip| !is_public(**ip)) {
        return Err(format!(
            "push notification host `{}` resolves to {ip}, a private or loopback address (push_notifications.allow_private is off)",
            c.host
        ));
    }
    Ok(())
}

/// Every check of a webhook URL, resolving its host.
pub async fn check_webhook(text: &str, s: &PushSettings) -> Result<url::Url, String> {
    let c = check_webhook_syntax(text, s)?;
    let resolved: Vec<IpAddr> = match c.host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => match tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tokio::net::lookup_host((c.host.as_str(), c.port)),
        )
        .await
        {
            Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
            _ => Vec::new(),
        },
    };
    check_addresses(&c, &resolved, s)?;
    Ok(c.url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> PushSettings {
        PushSettings::default()
    }

    #[test]
    fn non_canonical_and_private_spellings_are_refused() {
        for bad in [
            "http://example.com/hook",
            "https://127.0.0.1/hook",
            "https://2130706433/x",
            "https://0x7f000001/x",
            "https://0x7f.1/x",
            "https://0177.0.0.1/x",
            "https://127.1/x",
            "https://0/x",
            "https://10.0.0.8/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://[64:ff9b::a9fe:a9fe]/x",
            "https://100.64.0.1/x",
            "https://EXAMPLE.com/x",
            "https://ex%61mple.com/x",
            "https://example.com./x",
            "https://user:pw@example.com/x",
            "ftp://example.com/x",
            "javascript:alert(1)",
            "not a url",
        ] {
            assert!(check_webhook_syntax(bad, &strict()).is_err(), "{bad}");
        }
        assert!(check_webhook_syntax("https://hooks.example.com/a2a", &strict()).is_ok());
        assert!(check_webhook_syntax("https://93.184.215.14:8443/a2a", &strict()).is_ok());
        let lax = PushSettings {
            allow_http: true,
            allow_private: true,
            allowed_hosts: vec!["127.0.0.1".into()],
        };
        assert!(check_webhook_syntax("http://127.0.0.1:9/x", &lax).is_ok());
        assert!(check_webhook_syntax("http://example.com/x", &lax).is_err());
    }

    #[test]
    fn resolved_addresses_decide_not_the_name() {
        let c = check_webhook_syntax("https://hooks.example.com/a2a", &strict()).expect("syntax");
        let public: IpAddr = "93.184.215.14".parse().expect("ip");
        let private: IpAddr = "10.1.2.3".parse().expect("ip");
        let metadata: IpAddr = "fd00:ec2::254".parse().expect("ip");
        assert!(check_addresses(&c, &[public], &strict()).is_ok());
        assert!(check_addresses(&c, &[public, private], &strict()).is_err());
        assert!(check_addresses(&c, &[metadata], &strict()).is_err());
        assert!(check_addresses(&c, &[], &strict()).is_err(), "fail closed");
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused() {
        // `localhost` resolves locally, without a network.
        let e = check_webhook("https://localhost:8443/hook", &strict())
            .await
            .expect_err("loopback");
        assert!(
            e.contains("resolves to") || e.contains("does not resolve"),
            "{e}"
        );
    }

    #[test]
    fn public_addresses_are_public() {
        for ip in ["93.184.215.14", "8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(ip.parse().expect("ip")), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "192.168.1.1",
            "224.0.0.1",
            "::",
            "fe80::1",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip.parse().expect("ip")), "{ip}");
        }
    }
}
