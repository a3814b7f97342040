//! The SSRF guard's address rules: which IP addresses a guest's outbound call may never
//! reach, unless the operator allowed them (`--outbound-allow-cidr`).

use ipnet::IpNet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A rule that denies an address; its text (`Display`) is what a guest reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// `0.0.0.0/8`, `::`.
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918: `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`.
    Private,
    /// Carrier-grade NAT, RFC 6598: `100.64.0.0/10`.
    SharedAddressSpace,
    /// `169.254.0.0/16` (cloud metadata at 169.254.169.254), `fe80::/10`.
    LinkLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `198.18.0.0/15`, `2001:2::/48`.
    Benchmarking,
    /// Special-purpose and reserved ranges: `192.0.0.0/24`, `192.88.99.0/24`,
    /// `240.0.0.0/4`, `100::/64`, `fec0::/10`.
    Reserved,
    /// IPv6 unique local addresses: `fc00::/7`.
    UniqueLocal,
    /// `::ffff:0:0/96`.
    Ipv4Mapped,
    /// `::/96` (IPv4-compatible, deprecated).
    Ipv4Compatible,
    /// NAT64: `64:ff9b::/96`, `64:ff9b:1::/48`.
    Nat64,
}

/// An IPv6 tunnel address that embeds an IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tunnel {
    /// 6to4, `2002::/16`: the IPv4 address in bits 16-47.
    SixToFour,
    /// Teredo, `2001::/32`: the server's IPv4 address in bits 32-63, the client's
    /// (inverted) in the last 32 bits.
    Teredo,
}

/// Why an address is denied: a rule, broken by the address itself or by the IPv4
/// address a tunnel address embeds. Its text (`Display`) is what a guest reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denial {
    /// The rule broken.
    pub rule: Rule,
    /// The tunnel whose embedded IPv4 address breaks it, if any.
    pub tunnel: Option<Tunnel>,
}

impl From<Rule> for Denial {
    fn from(rule: Rule) -> Self {
        Self { rule, tunnel: None }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tunnel {
            None => write!(f, "{}", self.rule),
            Some(Tunnel::SixToFour) => {
                write!(f, "a 6to4 address (2002::/16) embedding {}", self.rule)
            }
            Some(Tunnel::Teredo) => {
                write!(f, "a Teredo address (2001::/32) embedding {}", self.rule)
            }
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Rule::Unspecified => "an unspecified address",
            Rule::Loopback => "a loopback address",
            Rule::Private => "a private address (RFC 1918)",
            Rule::SharedAddressSpace => "a shared (carrier-grade NAT) address, 100.64.0.0/10",
            Rule::LinkLocal => "a link-local address",
            Rule::Multicast => "a multicast address",
            Rule::Broadcast => "the broadcast address",
            Rule::Documentation => "a documentation address",
            Rule::Benchmarking => "a benchmarking address",
            Rule::Reserved => "a reserved special-purpose address",
            Rule::UniqueLocal => "an IPv6 unique local address, fc00::/7",
            Rule::Ipv4Mapped => "an IPv4-mapped IPv6 address, ::ffff:0:0/96",
            Rule::Ipv4Compatible => "an IPv4-compatible IPv6 address, ::/96",
            Rule::Nat64 => "a NAT64 address, 64:ff9b::/96",
        };
        f.write_str(text)
    }
}

/// The rule that denies IPv4 address `ip`, if any.
pub fn denied_v4(ip: Ipv4Addr) -> Option<Rule> {
    let [a, b, c, _] = ip.octets();
    let rule = match (a, b, c) {
        _ if ip == Ipv4Addr::BROADCAST => Rule::Broadcast,
        (0, ..) => Rule::Unspecified,
        (127, ..) => Rule::Loopback,
        (10, ..) | (172, 16..=31, _) | (192, 168, _) => Rule::Private,
        (100, 64..=127, _) => Rule::SharedAddressSpace,
        (169, 254, _) => Rule::LinkLocal,
        (224..=239, ..) => Rule::Multicast,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Rule::Documentation,
        (198, 18..=19, _) => Rule::Benchmarking,
        (192, 0, 0) | (192, 88, 99) | (240..=255, ..) => Rule::Reserved,
        _ => return None,
    };
    Some(rule)
}

/// Why IPv6 address `ip` is denied, if it is.
pub fn denied_v6(ip: Ipv6Addr) -> Option<Denial> {
    let s = ip.segments();
    let v4_at = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    let rule = match s {
        [0, 0, 0, 0, 0, 0, 0, 0] => Rule::Unspecified,
        [0, 0, 0, 0, 0, 0, 0, 1] => Rule::Loopback,
        [0, 0, 0, 0, 0, 0xffff, ..] => Rule::Ipv4Mapped,
        [0, 0, 0, 0, 0, 0, ..] => Rule::Ipv4Compatible,
        [0x64, 0xff9b, 0, 0, 0, 0, ..] | [0x64, 0xff9b, 1, ..] => Rule::Nat64,
        [0x100, 0, 0, 0, ..] => Rule::Reserved,
        [0x2001, 0xdb8, ..] => Rule::Documentation,
        [0x3fff, ..] if s[1] < 0x1000 => Rule::Documentation,
        [0x2001, 2, 0, ..] => Rule::Benchmarking,
        [0x2001, 0, server_hi, server_lo, _, _, client_hi, client_lo] => {
            // Teredo: the server's IPv4 address in bits 32-63, the client's (inverted)
            // in the last 32 bits.
            let server = v4_at(server_hi, server_lo);
            let client = v4_at(!client_hi, !client_lo);
            let rule = denied_v4(server).or_else(|| denied_v4(client))?;
            return Some(Denial {
                rule,
                tunnel: Some(Tunnel::Teredo),
            });
        }
        [0x2002, hi, lo, ..] => {
            return Some(Denial {
                rule: denied_v4(v4_at(hi, lo))?,
                tunnel: Some(Tunnel::SixToFour),
            });
        }
        [first, ..] if first & 0xfe00 == 0xfc00 => Rule::UniqueLocal,
        [first, ..] if first & 0xffc0 == 0xfe80 => Rule::LinkLocal,
        [first, ..] if first & 0xffc0 == 0xfec0 => Rule::Reserved,
        [first, ..] if first & 0xff00 == 0xff00 => Rule::Multicast,
        _ => return None,
    };
    Some(rule.into())
}

/// Why `ip` is denied, if it is (operator allowances aside).
pub fn denied(ip: IpAddr) -> Option<Denial> {
    match ip {
        IpAddr::V4(v4) => denied_v4(v4).map(Denial::from),
        IpAddr::V6(v6) => denied_v6(v6),
    }
}

/// The guard: the deny rules, minus what the operator allowed.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allow: Vec<IpNet>,
}

impl Guard {
    /// A guard that lets through addresses in `allow` (the operator's private services)
    /// whatever the rules say.
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self { allow }
    }

    /// `Ok` when a guest may connect to `ip`, else why not.
    pub fn check(&self, ip: IpAddr) -> Result<(), Denial> {
        if self.allow.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        denied(ip).map_or(Ok(()), Err)
    }
}

/// Parses a CIDR of `--outbound-allow-cidr`: `10.1.0.0/16`, `fd00::/8`, or one address.
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{text:?} is not a CIDR (like 10.1.0.0/16) or an IP address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(ip: &str) -> Option<Denial> {
        denied(ip.parse().unwrap())
    }

    fn via(tunnel: Tunnel, rule: Rule) -> Denial {
        Denial {
            rule,
            tunnel: Some(tunnel),
        }
    }

    #[test]
    fn every_deny_rule_of_ipv4_names_its_range() {
        for (ip, expected) in [
            ("0.0.0.0", Rule::Unspecified),
            ("0.1.2.3", Rule::Unspecified),
            ("127.0.0.1", Rule::Loopback),
            ("127.255.255.254", Rule::Loopback),
            ("10.0.0.1", Rule::Private),
            ("172.16.0.1", Rule::Private),
            ("172.31.255.255", Rule::Private),
            ("192.168.1.1", Rule::Private),
            ("100.64.0.1", Rule::SharedAddressSpace),
            ("100.127.255.255", Rule::SharedAddressSpace),
            ("169.254.169.254", Rule::LinkLocal),
            ("169.254.0.1", Rule::LinkLocal),
            ("224.0.0.1", Rule::Multicast),
            ("239.255.255.250", Rule::Multicast),
            ("255.255.255.255", Rule::Broadcast),
            ("192.0.2.1", Rule::Documentation),
            ("198.51.100.7", Rule::Documentation),
            ("203.0.113.9", Rule::Documentation),
            ("198.18.0.1", Rule::Benchmarking),
            ("198.19.255.255", Rule::Benchmarking),
            ("192.0.0.8", Rule::Reserved),
            ("192.88.99.1", Rule::Reserved),
            ("240.0.0.1", Rule::Reserved),
        ] {
            assert_eq!(rule(ip), Some(expected.into()), "{ip}");
        }
    }

    #[test]
    fn public_ipv4_addresses_pass_including_the_neighbours_of_denied_ranges() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.15.255.255",
            "172.32.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "169.253.255.255",
            "192.167.255.255",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "11.0.0.0",
            "126.255.255.255",
            "128.0.0.0",
        ] {
            assert_eq!(rule(ip), None, "{ip}");
        }
    }

    #[test]
    fn every_deny_rule_of_ipv6_names_its_range() {
        use Tunnel::{SixToFour, Teredo};
        let rules = [
            ("::", Rule::Unspecified),
            ("::1", Rule::Loopback),
            ("::ffff:127.0.0.1", Rule::Ipv4Mapped),
            ("::ffff:8.8.8.8", Rule::Ipv4Mapped),
            ("::127.0.0.1", Rule::Ipv4Compatible),
            ("::8.8.8.8", Rule::Ipv4Compatible),
            ("64:ff9b::7f00:1", Rule::Nat64),
            ("64:ff9b::808:808", Rule::Nat64),
            ("64:ff9b:1::1", Rule::Nat64),
            ("100::1", Rule::Reserved),
            ("fec0::1", Rule::Reserved),
            ("2001:db8::1", Rule::Documentation),
            ("3fff::1", Rule::Documentation),
            ("2001:2::1", Rule::Benchmarking),
            ("fc00::1", Rule::UniqueLocal),
            ("fd12:3456::1", Rule::UniqueLocal),
            ("fe80::1", Rule::LinkLocal),
            ("febf::1", Rule::LinkLocal),
            ("ff02::1", Rule::Multicast),
        ];
        for (ip, expected) in rules {
            assert_eq!(rule(ip), Some(expected.into()), "{ip}");
        }
        for (ip, expected) in [
            ("2002:7f00:1::", via(SixToFour, Rule::Loopback)),
            ("2002:a00:1::1", via(SixToFour, Rule::Private)),
            ("2002:a9fe:a9fe::", via(SixToFour, Rule::LinkLocal)),
            // Teredo: server 127.0.0.1; client 8.8.8.8 (inverted: f7f7:f7f7).
            ("2001:0:7f00:1::f7f7:f7f7", via(Teredo, Rule::Loopback)),
            // Teredo: server 8.8.8.8; client 10.0.0.1 (inverted: f5ff:fffe).
            ("2001:0:808:808::f5ff:fffe", via(Teredo, Rule::Private)),
        ] {
            assert_eq!(rule(ip), Some(expected), "{ip}");
        }
    }

    #[test]
    fn public_ipv6_addresses_pass_including_tunnels_of_public_ipv4() {
        for ip in [
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "2002:808:808::1",
            "2001:0:808:808::f7f7:f7f7",
            "2001:db9::1",
            "3fff:1000::1",
            "64:ff9c::1",
        ] {
            assert_eq!(rule(ip), None, "{ip}");
        }
    }

    #[test]
    fn the_operator_allow_list_lets_denied_ranges_through_and_nothing_else() {
        let guard = Guard::new(vec![
            parse_cidr("127.0.0.1").unwrap(),
            parse_cidr("10.1.0.0/16").unwrap(),
        ]);
        assert_eq!(guard.check("127.0.0.1".parse().unwrap()), Ok(()));
        assert_eq!(guard.check("10.1.2.3".parse().unwrap()), Ok(()));
        assert_eq!(
            guard.check("127.0.0.2".parse().unwrap()),
            Err(Rule::Loopback.into())
        );
        assert_eq!(
            guard.check("10.2.0.1".parse().unwrap()),
            Err(Rule::Private.into())
        );
        assert_eq!(
            guard.check("::1".parse().unwrap()),
            Err(Rule::Loopback.into())
        );
        assert_eq!(
            guard.check("::ffff:127.0.0.1".parse().unwrap()),
            Err(Rule::Ipv4Mapped.into())
        );
        assert_eq!(guard.check("8.8.8.8".parse().unwrap()), Ok(()));
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("localhost").is_err());
        assert_eq!(
            parse_cidr("10.1.2.3/16").unwrap(),
            "10.1.0.0/16".parse().unwrap()
        );
    }

    #[test]
    fn denials_read_as_rules() {
        assert_eq!(
            via(Tunnel::SixToFour, Rule::Loopback).to_string(),
            "a 6to4 address (2002::/16) embedding a loopback address"
        );
        assert_eq!(Rule::LinkLocal.to_string(), "a link-local address");
    }
}
