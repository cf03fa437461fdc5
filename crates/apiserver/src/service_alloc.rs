//! Service cluster IP and node port allocation (upstream's ipallocator/portallocator), as
//! unique store claims taken in the same step as the Service write: `serviceip/<ip>` and
//! `nodeport/<port>`, owned by the Service's key.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use rand::Rng;
use reddwarf_store::{Mutation, ReadView};
use serde_json::{json, Value};

use crate::status::{ApiError, ApiResult, Cause};

/// The service network: where cluster IPs and node ports come from.
#[derive(Clone, Debug)]
pub struct ServiceNetwork {
    base: u32,
    prefix: u8,
    node_ports: (u16, u16),
}

impl Default for ServiceNetwork {
    fn default() -> Self {
        ServiceNetwork::parse("10.43.0.0/16", "30000-32767").expect("valid defaults")
    }
}

impl ServiceNetwork {
    /// `cidr` as `10.43.0.0/16`, `ports` as `30000-32767` (upstream's flag formats).
    pub fn parse(cidr: &str, ports: &str) -> Result<ServiceNetwork, String> {
        let (ip, prefix) = cidr
            .split_once('/')
            .ok_or_else(|| format!("service CIDR {cidr:?}: expected ADDRESS/PREFIX"))?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("service CIDR {cidr:?}: not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| format!("service CIDR {cidr:?}: bad prefix length"))?;
        if !(8..=30).contains(&prefix) {
            return Err(format!(
                "service CIDR {cidr:?}: prefix length must be between 8 and 30"
            ));
        }
        let mask = u32::MAX << (32 - prefix);
        let (lo, hi) = ports
            .split_once('-')
            .ok_or_else(|| format!("node port range {ports:?}: expected LOW-HIGH"))?;
        let lo: u16 = lo
            .trim()
            .parse()
            .map_err(|_| format!("node port range {ports:?}: bad number"))?;
        let hi: u16 = hi
            .trim()
            .parse()
            .map_err(|_| format!("node port range {ports:?}: bad number"))?;
        if lo == 0 || hi < lo {
            return Err(format!("node port range {ports:?}: empty"));
        }
        Ok(ServiceNetwork {
            base: u32::from(ip) & mask,
            prefix,
            node_ports: (lo, hi),
        })
    }

    fn size(&self) -> u32 {
        1u32 << (32 - self.prefix)
    }

    fn cidr(&self) -> String {
        format!("{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }

    /// The first usable address: upstream gives it to the `kubernetes` Service.
    pub fn first_ip(&self) -> String {
        Ipv4Addr::from(self.base + 1).to_string()
    }

    fn contains(&self, ip: Ipv4Addr) -> bool {
        let v = u32::from(ip);
        v > self.base && v < self.base + self.size() - 1
    }
}

fn ip_claim(ip: &str) -> String {
    format!("serviceip/{ip}")
}

fn port_claim(port: i64) -> String {
    format!("nodeport/{port}")
}

/// The claims an existing Service holds.
pub fn held(obj: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(ips) = obj.pointer("/spec/clusterIPs").and_then(Value::as_array) {
        for ip in ips.iter().filter_map(Value::as_str) {
            if ip.parse::<Ipv4Addr>().is_ok() {
                out.push(ip_claim(ip));
            }
        }
    }
    if let Some(ports) = obj.pointer("/spec/ports").and_then(Value::as_array) {
        for p in ports {
            if let Some(n) = p.get("nodePort").and_then(Value::as_i64) {
                let c = port_claim(n);
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
    }
    if let Some(n) = obj
        .pointer("/spec/healthCheckNodePort")
        .and_then(Value::as_i64)
    {
        out.push(port_claim(n));
    }
    out
}

/// What allocation decided: claims to take, and whether any value was picked by us (a lost
/// race on a picked value is retried; on a requested value it is the client's error).
pub struct Allocation {
    pub claims: Vec<String>,
    pub releases: Vec<String>,
    /// The claims whose values we chose (retry with new ones if another object got them).
    pub picked: Vec<String>,
}

impl Allocation {
    /// Whether losing `claim` to another object means "pick again" rather than a client error.
    pub fn retry_on(&self, claim: &str) -> bool {
        self.picked.iter().any(|c| c == claim)
    }
}

/// The 422 for a requested value another Service holds, naming the field as upstream does.
pub fn taken_error(obj: &Value, claim: &str) -> ApiError {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    match claim.split_once('/') {
        Some(("serviceip", ip)) => invalid(
            name,
            "spec.clusterIPs",
            ip,
            &format!("failed to allocate IP {ip}: provided IP is already allocated"),
        ),
        Some((_, port)) => {
            let idx = obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .and_then(|ps| {
                    ps.iter().position(|p| {
                        p.get("nodePort").map(|n| n.to_string()) == Some(port.to_string())
                    })
                })
                .unwrap_or(0);
            ApiError::invalid(
                "",
                "Service",
                name,
                vec![Cause {
                    reason: "FieldValueInvalid",
                    message: format!("Invalid value: {port}: provided port is already allocated"),
                    field: format!("spec.ports[{idx}].nodePort"),
                }],
            )
        }
        None => invalid(name, "spec", claim, "already allocated"),
    }
}

fn invalid(name: &str, field: &str, value: &str, msg: &str) -> ApiError {
    ApiError::invalid("", "Service", name, vec![Cause::invalid(field, value, msg)])
}

/// Fills in spec.clusterIP(s) and node ports of a Service being created (`old` None) or
/// updated, keeping what `old` had allocated when the new object leaves it unset.
pub fn allocate(
    net: &ServiceNetwork,
    view: &ReadView,
    obj: &mut Value,
    old: Option<&Value>,
) -> ApiResult<Allocation> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let ty = obj
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    let spec = match obj.get_mut("spec").and_then(Value::as_object_mut) {
        Some(s) => s,
        None => {
            return Ok(Allocation {
                claims: vec![],
                releases: vec![],
                picked: vec![],
            })
        }
    };
    let mut picked = Vec::new();
    let mut claims = Vec::new();
    // Upstream's patchAllocatedValues: an update that omits allocated values keeps them.
    if let Some(old) = old {
        let keep = |k: &str| old.pointer(&format!("/spec/{k}")).cloned();
        if ty != "ExternalName" {
            if spec
                .get("clusterIP")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                if let Some(v) = keep("clusterIP") {
                    spec.insert("clusterIP".into(), v);
                }
            }
            if !spec.contains_key("clusterIPs") {
                if let Some(v) = keep("clusterIPs") {
                    spec.insert("clusterIPs".into(), v);
                }
            }
        }
        if matches!(ty.as_str(), "NodePort" | "LoadBalancer") {
            let old_ports = old
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports.iter_mut() {
                    if p.get("nodePort").is_some() {
                        continue;
                    }
                    let same = old_ports.iter().find(|o| {
                        o.get("port") == p.get("port") && o.get("protocol") == p.get("protocol")
                    });
                    if let Some(np) = same.and_then(|o| o.get("nodePort")).cloned() {
                        p["nodePort"] = np;
                    }
                }
            }
        }
    }
    if ty == "ExternalName" {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    } else {
        let ip = spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let ip = if ip.is_empty() {
            let taken: HashSet<String> = view
                .claims("serviceip/")
                .map_err(ApiError::internal)?
                .into_iter()
                .map(|(c, _)| c)
                .collect();
            let ip = pick_ip(net, &taken).ok_or_else(|| {
                invalid(
                    &name,
                    "spec.clusterIPs",
                    "",
                    &format!("failed to allocate IP: range is full ({})", net.cidr()),
                )
            })?;
            picked.push(ip_claim(&ip));
            ip
        } else {
            ip
        };
        if ip != "None" {
            let parsed: Ipv4Addr = ip.parse().map_err(|_| {
                invalid(
                    &name,
                    "spec.clusterIPs[0]",
                    &ip,
                    "must be a valid IP address",
                )
            })?;
            if !net.contains(parsed) {
                return Err(invalid(
                    &name,
                    "spec.clusterIPs",
                    &ip,
                    &format!("failed to allocate IP {ip}: provided IP is not in the valid range. The range of valid IPs is {}", net.cidr()),
                ));
            }
            claims.push(ip_claim(&ip));
        }
        spec.insert("clusterIP".into(), json!(ip));
        spec.insert("clusterIPs".into(), json!([ip]));
    }
    let wants_node_ports = ty == "NodePort"
        || (ty == "LoadBalancer"
            && spec.get("allocateLoadBalancerNodePorts") != Some(&Value::Bool(false)));
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        let mut taken: Option<HashSet<String>> = None;
        for (i, p) in ports.iter_mut().enumerate() {
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(n) if n != 0 => {
                    if !wants_node_ports {
                        return Err(invalid(
                            &name,
                            &format!("spec.ports[{i}].nodePort"),
                            &n.to_string(),
                            "may not be used when `type` is 'ClusterIP'",
                        ));
                    }
                    if n < net.node_ports.0 as i64 || n > net.node_ports.1 as i64 {
                        return Err(invalid(
                            &name,
                            &format!("spec.ports[{i}].nodePort"),
                            &n.to_string(),
                            &format!("provided port is not in the valid range. The range of valid ports is {}-{}", net.node_ports.0, net.node_ports.1),
                        ));
                    }
                    let c = port_claim(n);
                    if !claims.contains(&c) {
                        claims.push(c);
                    }
                }
                _ if wants_node_ports => {
                    let taken = match &mut taken {
                        Some(t) => t,
                        None => taken.insert(
                            view.claims("nodeport/")
                                .map_err(ApiError::internal)?
                                .into_iter()
                                .map(|(c, _)| c)
                                .collect(),
                        ),
                    };
                    let n = pick_port(net, taken).ok_or_else(|| {
                        invalid(
                            &name,
                            &format!("spec.ports[{i}].nodePort"),
                            "",
                            "failed to allocate a node port: range is full",
                        )
                    })?;
                    picked.push(port_claim(n));
                    taken.insert(port_claim(n));
                    claims.push(port_claim(n));
                    p["nodePort"] = json!(n);
                }
                _ => {
                    if let Some(m) = p.as_object_mut() {
                        m.remove("nodePort");
                    }
                }
            }
        }
    }
    let releases = old
        .map(held)
        .unwrap_or_default()
        .into_iter()
        .filter(|c| !claims.contains(c))
        .collect();
    Ok(Allocation {
        claims,
        releases,
        picked,
    })
}

fn pick_ip(net: &ServiceNetwork, taken: &HashSet<String>) -> Option<String> {
    let mut rng = rand::rng();
    let usable = net.size() - 2;
    // Random probing first (as upstream), then a scan so a nearly full range still succeeds.
    for _ in 0..64 {
        let ip = Ipv4Addr::from(net.base + 1 + rng.random_range(0..usable)).to_string();
        if !taken.contains(&ip_claim(&ip)) {
            return Some(ip);
        }
    }
    (0..usable)
        .map(|o| Ipv4Addr::from(net.base + 1 + o).to_string())
        .find(|ip| !taken.contains(&ip_claim(ip)))
}

fn pick_port(net: &ServiceNetwork, taken: &HashSet<String>) -> Option<i64> {
    let (lo, hi) = (net.node_ports.0 as i64, net.node_ports.1 as i64);
    let mut rng = rand::rng();
    for _ in 0..64 {
        let p = rng.random_range(lo..=hi);
        if !taken.contains(&port_claim(p)) {
            return Some(p);
        }
    }
    (lo..=hi).find(|p| !taken.contains(&port_claim(*p)))
}

/// Wraps a Service mutation with its claims and releases.
pub fn wrap(m: Mutation, claims: Vec<String>, releases: Vec<String>) -> Mutation {
    if claims.is_empty() && releases.is_empty() {
        return m;
    }
    Mutation::WithClaims {
        inner: Box::new(m),
        claims,
        releases,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_bounds_the_network() {
        let n = ServiceNetwork::parse("10.43.0.0/16", "30000-32767").unwrap();
        assert_eq!(n.first_ip(), "10.43.0.1");
        assert!(n.contains("10.43.255.254".parse().unwrap()));
        assert!(!n.contains("10.43.255.255".parse().unwrap()));
        assert!(!n.contains("10.43.0.0".parse().unwrap()));
        assert!(!n.contains("10.44.0.1".parse().unwrap()));
        assert!(ServiceNetwork::parse("10.43.0.0", "1-2").is_err());
        assert!(ServiceNetwork::parse("10.43.0.0/16", "5-1").is_err());
    }

    #[test]
    fn picks_free_values_even_when_nearly_full() {
        let n = ServiceNetwork::parse("10.0.0.0/29", "30000-30002").unwrap();
        let taken: HashSet<String> = (1..6).map(|i| ip_claim(&format!("10.0.0.{i}"))).collect();
        assert_eq!(pick_ip(&n, &taken).as_deref(), Some("10.0.0.6"));
        let mut all = taken.clone();
        all.insert(ip_claim("10.0.0.6"));
        assert_eq!(pick_ip(&n, &all), None);
        let ports: HashSet<String> = [30000, 30002].iter().map(|p| port_claim(*p)).collect();
        assert_eq!(pick_port(&n, &ports), Some(30001));
    }
}
