//! The TLS and TCP routes of a VirtualService that fledge weighs, selected as Argo Rollouts
//! selects them so that its manifests keep working: a TLS route by the one port its matches name
//! and the SNI hosts they name together (the same set, in any order), a TCP route by the one port.
//! A match without a port counts as port 0, so does a selector without one; a route whose matches
//! name two ports is never selected. Without selectors, a VirtualService's only TLS (or TCP)
//! route is weighed, and more than one is an error.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Target, VirtualService, destinations};

#[derive(Clone, Copy)]
enum Proto {
    Tls,
    Tcp,
}

impl Proto {
    const BOTH: [Proto; 2] = [Proto::Tls, Proto::Tcp];

    /// The VirtualService's list of such routes.
    fn list(self) -> &'static str {
        match self {
            Proto::Tls => "tls",
            Proto::Tcp => "tcp",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Proto::Tls => "TLS",
            Proto::Tcp => "TCP",
        }
    }

    /// The selectors' field.
    fn field(self) -> &'static str {
        match self {
            Proto::Tls => "tlsRoutes",
            Proto::Tcp => "tcpRoutes",
        }
    }
}

fn routes(spec: &Value, proto: Proto) -> &[Value] {
    spec.get(proto.list())
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The one port `route`'s matches name (0 for a match without one, or no match at all), and the
/// SNI hosts they name; `None` when they name more than one port.
fn port_and_hosts(route: &Value) -> Option<(i64, BTreeSet<&str>)> {
    let matches = route
        .get("match")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let ports: BTreeSet<i64> = matches
        .iter()
        .map(|m| m.get("port").and_then(Value::as_i64).unwrap_or(0))
        .collect();
    if ports.len() > 1 {
        return None;
    }
    let hosts = matches
        .iter()
        .filter_map(|m| m.get("sniHosts").and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    Some((ports.first().copied().unwrap_or(0), hosts))
}

/// Indices of the `proto` routes of `spec` that `vs` weighs, or why they cannot be chosen.
fn selected(vs: &VirtualService, spec: &Value, proto: Proto) -> Result<Vec<usize>, String> {
    let list = routes(spec, proto);
    let selectors: Vec<(i64, BTreeSet<&str>)> = match proto {
        Proto::Tls => vs
            .tls_routes
            .iter()
            .map(|t| {
                (
                    t.port.unwrap_or(0),
                    t.sni_hosts.iter().map(String::as_str).collect(),
                )
            })
            .collect(),
        Proto::Tcp => vs
            .tcp_routes
            .iter()
            .map(|t| (t.port.unwrap_or(0), BTreeSet::new()))
            .collect(),
    };
    if selectors.is_empty() {
        return match list.len() {
            0 | 1 => Ok((0..list.len()).collect()),
            n => Err(format!(
                "{}.{}: {} has {n} {} routes; select the ones to weigh",
                vs.field,
                proto.field(),
                vs.key,
                proto.name()
            )),
        };
    }
    let mut out = BTreeSet::new();
    for (i, (port, hosts)) in selectors.iter().enumerate() {
        let found: Vec<usize> = list
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                port_and_hosts(r).is_some_and(|(p, h)| {
                    p == *port && (matches!(proto, Proto::Tcp) || h == *hosts)
                })
            })
            .map(|(j, _)| j)
            .collect();
        if found.is_empty() {
            let sni = match proto {
                Proto::Tls => format!(" and sniHosts {hosts:?}"),
                Proto::Tcp => String::new(),
            };
            return Err(format!(
                "{}.{}[{i}]: {} has no {} route matching port {port}{sni} alone",
                vs.field,
                proto.field(),
                vs.key,
                proto.name()
            ));
        }
        out.extend(found);
    }
    Ok(out.into_iter().collect())
}

/// Checks the selected TLS and TCP routes of VirtualService `doc`, each with a destination to
/// the stable revision; returns how many there are.
pub(super) fn check(vs: &VirtualService, doc: &Value, target: &Target) -> Result<usize, String> {
    let spec = doc.get("spec").unwrap_or(&Value::Null);
    let mut count = 0;
    for proto in Proto::BOTH {
        for i in selected(vs, spec, proto)? {
            let route = &routes(spec, proto)[i];
            if !destinations(route).iter().any(|d| vs.is(d, target, false)) {
                return Err(format!(
                    "{}.{}: {} route {i} of {} has no destination to the stable {}",
                    vs.field,
                    proto.field(),
                    proto.name(),
                    vs.key,
                    if vs.subsets.is_some() {
                        "subset"
                    } else {
                        "Service"
                    }
                ));
            }
            count += 1;
        }
    }
    Ok(count)
}

/// Gives the canary `weight` in the selected TLS and TCP routes of `spec` (adding its
/// destination when `add_canary`).
pub(super) fn weigh(
    vs: &VirtualService,
    spec: &mut Value,
    target: &Target,
    weight: i32,
    add_canary: bool,
) -> Result<(), String> {
    // Each list is weighed as far as it can be, so that giving the stable all traffic back
    // does all it can even when a route can no longer be selected.
    let mut first_error = Ok(());
    for proto in Proto::BOTH {
        let chosen = match selected(vs, spec, proto) {
            Ok(c) => c,
            Err(e) => {
                first_error = first_error.and(Err(e));
                continue;
            }
        };
        let Some(list) = spec.get_mut(proto.list()).and_then(Value::as_array_mut) else {
            continue;
        };
        for i in chosen {
            vs.set_weights(&mut list[i], target, weight, add_canary);
        }
    }
    first_error
}

/// The selected TLS and TCP routes of VirtualService `doc`, as they are.
pub(super) fn weighed<'a>(vs: &VirtualService, doc: &'a Value) -> Vec<&'a Value> {
    let spec = doc.get("spec").unwrap_or(&Value::Null);
    Proto::BOTH
        .into_iter()
        .flat_map(|proto| {
            let list = routes(spec, proto);
            selected(vs, spec, proto)
                .unwrap_or_default()
                .into_iter()
                .map(move |i| &list[i])
        })
        .collect()
}

#[cfg(test)]
#[path = "istio_l4_tests.rs"]
mod tests;
