//! IPv4 prefixes: parsing and the host range a podCIDR offers.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use crate::Error;

/// An IPv4 network in CIDR form, normalised to its network address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Cidr {
    network: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Cidr {
    /// The network `addr` lies in, with host bits cleared; fails for a prefix longer than 32.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self, Error> {
        if prefix > 32 {
            return Err(Error::Config(format!("prefix /{prefix} is longer than 32")));
        }
        let network = Ipv4Addr::from(u32::from(addr) & mask(prefix));
        Ok(Self { network, prefix })
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The last address of the network.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !mask(self.prefix))
    }

    /// Whether `ip` lies in the network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.network)
    }

    /// The first host address: the bridge's (the pods' gateway).
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// Addresses pods may get, lowest first: all but network, gateway and broadcast.
    pub fn pod_addresses(&self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.network) + 2;
        let last = u32::from(self.broadcast()).saturating_sub(1);
        (first..=last).map(Ipv4Addr::from)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl FromStr for Ipv4Cidr {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::Config(format!("{s:?} is not an IPv4 CIDR (a.b.c.d/n)"));
        let (addr, prefix) = s.trim().split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        Self::new(addr, prefix)
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let c: Ipv4Cidr = "10.42.3.7/24".parse().unwrap();
        assert_eq!(c.to_string(), "10.42.3.0/24");
        assert_eq!(c.gateway(), Ipv4Addr::new(10, 42, 3, 1));
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 42, 3, 255));
        assert!(c.contains(Ipv4Addr::new(10, 42, 3, 200)));
        assert!(!c.contains(Ipv4Addr::new(10, 42, 4, 1)));
        let hosts: Vec<_> = c.pod_addresses().collect();
        assert_eq!(hosts.len(), 253);
        assert_eq!(hosts[0], Ipv4Addr::new(10, 42, 3, 2));
        assert_eq!(hosts[252], Ipv4Addr::new(10, 42, 3, 254));
        assert!("10.0.0.0".parse::<Ipv4Cidr>().is_err());
        assert!("10.0.0.0/33".parse::<Ipv4Cidr>().is_err());
        let tiny: Ipv4Cidr = "10.0.0.0/30".parse().unwrap();
        assert_eq!(
            tiny.pod_addresses().collect::<Vec<_>>(),
            [Ipv4Addr::new(10, 0, 0, 2)]
        );
    }
}
