//! Where the providers may connect: an operator denies address ranges
//! (`--analysis-denied-cidrs`, by default link-local and the cloud metadata addresses), checked
//! on the addresses a host name resolves to, on address literals, and on every redirect.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

/// Link-local (where 169.254.169.254 serves cloud credentials), IPv6 link-local, and AWS's IPv6
/// metadata address.
pub const DEFAULT_DENIED: &str = "169.254.0.0/16,fe80::/10,fd00:ec2::254/128";

/// An address range like `169.254.0.0/16`; a bare address is a range of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let bad = || format!("{s:?} is not an address range like 169.254.0.0/16 or fe80::/10");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // `::ffff:169.254.169.254` is 169.254.169.254.
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// A comma-separated list of ranges; empty denies nothing.
pub fn parse_list(s: &str) -> Result<Vec<Cidr>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(str::parse)
        .collect()
}

/// The denied ranges, shared by the HTTP clients and the checks of address literals.
#[derive(Clone, Debug, Default)]
pub struct Denied(pub Arc<Vec<Cidr>>);

impl Denied {
    /// Why `ip`, an address of `host`, may not be connected to.
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), String> {
        match self.0.iter().find(|c| c.contains(ip)) {
            Some(c) => Err(format!(
                "{host} is {ip}, in the denied address range {c} (--analysis-denied-cidrs): \
                 fledge does not measure there"
            )),
            None => Ok(()),
        }
    }

    /// Checks a URL before a request: its scheme, and its host when it is an address (a name is
    /// checked as it resolves, by [`Resolver`]).
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), String> {
        if !["http", "https"].contains(&url.scheme()) {
            return Err(format!(
                "{:?} URLs are not measured: only http and https",
                url.scheme()
            ));
        }
        let Some(host) = url.host_str() else {
            return Err("the URL has no host".into());
        };
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        match literal.parse::<IpAddr>() {
            Ok(ip) => self.check(host, ip),
            Err(_) => Ok(()),
        }
    }
}

/// Resolves names as the system does, then refuses a name any of whose addresses is denied: a
/// name cannot reach the metadata service by resolving to it, directly or after a redirect.
pub struct Resolver(pub Denied);

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let denied = self.0.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            for a in &addrs {
                denied.check(&host, a.ip())?;
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_contain_what_they_should() {
        let list = parse_list(DEFAULT_DENIED).unwrap();
        let denied = Denied(Arc::new(list));
        for bad in [
            "169.254.169.254",
            "169.254.0.1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
        ] {
            let ip: IpAddr = bad.parse().unwrap();
            assert!(denied.check("h", ip).is_err(), "{bad}");
        }
        for ok in [
            "127.0.0.1",
            "10.0.0.1",
            "fd00:ec2::253",
            "::1",
            "169.255.0.1",
        ] {
            let ip: IpAddr = ok.parse().unwrap();
            assert!(denied.check("h", ip).is_ok(), "{ok}");
        }
        assert!(parse_list("").unwrap().is_empty());
        assert!(parse_list("10.0.0.0/33").is_err());
        assert!(parse_list("nope").is_err());
        assert_eq!(parse_list("0.0.0.0/0").unwrap()[0].to_string(), "0.0.0.0/0");
        let url = |u: &str| reqwest::Url::parse(u).unwrap();
        assert!(
            denied
                .check_url(&url("http://169.254.169.254/latest/meta-data"))
                .is_err()
        );
        assert!(denied.check_url(&url("http://[fd00:ec2::254]/")).is_err());
        assert!(denied.check_url(&url("file:///etc/passwd")).is_err());
        assert!(denied.check_url(&url("http://checks.example/")).is_ok());
    }

    #[tokio::test]
    async fn a_name_resolving_into_a_denied_range_is_refused() {
        use reqwest::dns::Resolve;
        let everything = Denied(Arc::new(parse_list("127.0.0.0/8,::1/128").unwrap()));
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let err = match Resolver(everything).resolve(name).await {
            Ok(_) => panic!("localhost resolved although 127.0.0.0/8 is denied"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("denied address range"), "{err}");
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        assert!(Resolver(Denied::default()).resolve(name).await.is_ok());
    }
}
