//! The DNS front end (`--dns-listen`): names of services answered from the directory, over UDP
//! and TCP, by hickory-server. It translates a name into a discovery (`ops::instances`) and the
//! instances into records; what it may see is decided there, like for any other caller.
//!
//! Names, under the configured domain (`netget.`), matched without regard to case:
//! - `<name>.<network>.netget`: A/AAAA of the healthy instances (a hostname address answers a
//!   CNAME), SRV with port and weight, TXT with id, address, version and tags;
//! - `<tag>.<name>.<network>.netget`: the same, of the instances with that tag;
//! - `_<name>._tcp.<network>.netget` (RFC 2782): SRV (and the rest) as above;
//! - `<hex>.addr.<network>.netget`: the address an SRV answer names as its target;
//! - with `consul = true`: `[<tag>.]<name>.service[.<network>].consul`.
//!
//! A name that is a service and also a tag of a shorter service name means the service.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Metadata, ResponseCode};
use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, SOA, SRV, TXT};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::net::{TcpListener, UdpSocket};

use super::ops::{self, Caller};
use super::state::RegistryState;
use crate::error::{Error, Result};
use crate::model::{Endpoint, Host, Instance, NetworkName, ServiceName};

/// How long a TCP client may stay silent before its connection is closed.
const TCP_TIMEOUT: Duration = Duration::from_secs(10);

/// The DNS sockets, bound before the registry starts so that a taken port fails the start.
pub(crate) struct Bound {
    udp: UdpSocket,
    tcp: TcpListener,
}

impl Bound {
    /// The address both answer on.
    pub(crate) fn local_addr(&self) -> Result<SocketAddr> {
        self.udp
            .local_addr()
            .map_err(|e| Error::Io(format!("DNS socket has no address: {e}")))
    }
}

/// Binds UDP and TCP on `addr`; with port 0, on one port the OS picks for both.
pub(crate) async fn bind(addr: SocketAddr) -> Result<Bound> {
    let taken = |e: std::io::Error| {
        Error::Io(format!(
            "cannot answer DNS on {addr}: {e} (is another DNS server there? use --dns-listen with another port)"
        ))
    };
    // A port free for UDP may be taken for TCP: with port 0, try a few.
    let tries = if addr.port() == 0 { 10 } else { 1 };
    let mut last = None;
    for _ in 0..tries {
        let udp = UdpSocket::bind(addr).await.map_err(taken)?;
        let at = udp.local_addr().map_err(taken)?;
        match TcpListener::bind(at).await {
            Ok(tcp) => return Ok(Bound { udp, tcp }),
            Err(e) => last = Some(e),
        }
    }
    Err(taken(last.unwrap_or_else(|| {
        std::io::Error::other("no port free for both UDP and TCP")
    })))
}

/// Answers queries until the registry shuts down.
pub(crate) async fn serve(bound: Bound, state: Arc<RegistryState>) {
    let mut shutdown = state.shutdown_rx.clone();
    let mut server = hickory_server::Server::new(Handler {
        state: state.clone(),
    });
    // Only the registry's own handle may hold its state past shutdown.
    drop(state);
    server.register_socket(bound.udp);
    server.register_listener(bound.tcp, TCP_TIMEOUT, 64);
    let _ = shutdown.wait_for(|s| *s).await;
    let _ = server.shutdown_gracefully().await;
}

struct Handler {
    state: Arc<RegistryState>,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let answer = match request.request_info() {
            Ok(info) => {
                let name = info.query.name().to_string();
                lookup(&self.state, request.src(), &name, info.query.query_type())
            }
            Err(_) => Answer::error(ResponseCode::FormErr),
        };
        self.state.metrics.dns_query(answer.code);
        let mut meta = Metadata::response_from_request(&request.metadata);
        meta.authoritative = answer.code != ResponseCode::Refused;
        meta.response_code = answer.code;
        let built = MessageResponseBuilder::from_message_request(request).build(
            meta,
            answer.answers.iter(),
            std::iter::empty(),
            answer.soa.iter(),
            answer.additionals.iter(),
        );
        match response.send_response(built).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, "DNS answer not sent");
                let mut meta = Metadata::response_from_request(&request.metadata);
                meta.response_code = ResponseCode::ServFail;
                ResponseInfo::from(hickory_server::proto::op::Header {
                    metadata: meta,
                    counts: Default::default(),
                })
            }
        }
    }
}

/// What one query is answered with.
#[derive(Debug, Default)]
struct Answer {
    code: ResponseCode,
    answers: Vec<Record>,
    additionals: Vec<Record>,
    /// The zone's SOA, for negative answers (resolvers cache them for its minimum TTL).
    soa: Vec<Record>,
}

impl Answer {
    fn error(code: ResponseCode) -> Answer {
        Answer {
            code,
            ..Answer::default()
        }
    }
}

/// What a name asks for, once parsed.
#[derive(Debug, PartialEq, Eq)]
enum Asked {
    /// Instances of a service, maybe of one tag.
    Service {
        network: NetworkName,
        name: ServiceName,
        tag: Option<String>,
    },
    /// The address an SRV target names.
    Addr(IpAddr),
}

/// Answers one question.
fn lookup(state: &RegistryState, from: SocketAddr, qname: &str, qtype: RecordType) -> Answer {
    let dns = &state.config.dns;
    let ttl = u32::try_from(dns.ttl.as_secs()).unwrap_or(u32::MAX);
    let Some((labels, zone)) = split_zone(qname, &dns.domain, dns.consul) else {
        return Answer::error(ResponseCode::Refused);
    };
    let negative = |code| Answer {
        code,
        soa: vec![soa(&zone, ttl)],
        ..Answer::default()
    };
    let Some(asked) = parse(state, &labels, zone.is_consul) else {
        return negative(ResponseCode::NXDomain);
    };
    let owner = match Name::from_ascii(qname) {
        Ok(n) => n,
        Err(_) => return Answer::error(ResponseCode::FormErr),
    };
    let (network, name, tag) = match asked {
        Asked::Addr(ip) => {
            let answers = address_record(&owner, ttl, ip, qtype).into_iter().collect();
            return Answer {
                answers,
                ..Answer::default()
            };
        }
        Asked::Service { network, name, tag } => (network, name, tag),
    };
    let caller = ops::DnsCaller { remote: from };
    let tags: Vec<String> = tag.into_iter().collect();
    let found = match ops::instances(
        state,
        Caller::Dns(&caller),
        &network,
        Some(&name),
        true,
        &tags,
    ) {
        Ok(d) => d,
        Err(Error::Forbidden(_) | Error::Unauthorized(_)) => {
            return Answer::error(ResponseCode::Refused)
        }
        Err(_) => return negative(ResponseCode::NXDomain),
    };
    if found.is_empty() {
        return negative(ResponseCode::NXDomain);
    }
    let mut instances = found;
    fastrand::shuffle(&mut instances);
    let mut answer = Answer::default();
    match qtype {
        RecordType::A | RecordType::AAAA => {
            let mut hostnames = Vec::new();
            for i in &instances {
                match Endpoint::of(&i.address).map(|e| e.host) {
                    Some(Host::Ip(ip)) => answer
                        .answers
                        .extend(address_record(&owner, ttl, ip, qtype)),
                    Some(Host::Name(n)) => hostnames.extend(host_name(&n)),
                    None => {}
                }
            }
            // One name may have one CNAME only: a service whose instances have hostnames and
            // no address of the asked family names one of them (randomly, as the order is).
            if answer.answers.is_empty() {
                if let Some(target) = hostnames.first() {
                    answer.answers.push(Record::from_rdata(
                        owner.clone(),
                        ttl,
                        RData::CNAME(CNAME(target.clone())),
                    ));
                }
            }
        }
        RecordType::SRV => {
            for i in &instances {
                let Some(Endpoint { host, port, .. }) = Endpoint::of(&i.address) else {
                    continue;
                };
                let target = match host {
                    Host::Ip(ip) => {
                        let target = addr_name(ip, &network, &zone);
                        answer.additionals.extend(address_record(
                            &target,
                            ttl,
                            ip,
                            if ip.is_ipv4() {
                                RecordType::A
                            } else {
                                RecordType::AAAA
                            },
                        ));
                        target
                    }
                    Host::Name(n) => match host_name(&n) {
                        Some(n) => n,
                        None => continue,
                    },
                };
                let weight = u16::try_from(i.weight).unwrap_or(u16::MAX);
                answer.answers.push(Record::from_rdata(
                    owner.clone(),
                    ttl,
                    RData::SRV(SRV::new(1, weight, port, target)),
                ));
            }
        }
        RecordType::TXT => {
            for i in &instances {
                answer
                    .answers
                    .push(Record::from_rdata(owner.clone(), ttl, RData::TXT(txt(i))));
            }
        }
        _ => {}
    }
    if answer.answers.is_empty() {
        // The name exists, with nothing of this type: NODATA, with the SOA for caching.
        answer.soa.push(soa(&zone, ttl));
    }
    answer
}

/// The zone a question falls in.
#[derive(Debug, Clone)]
struct Zone {
    /// `netget.`, or `consul.` for Consul's names.
    apex: String,
    is_consul: bool,
}

/// The labels of `qname` before the zone it falls in (lowercase, in order), or `None` when it
/// is in none of this registry's zones.
fn split_zone(qname: &str, domain: &str, consul: bool) -> Option<(Vec<String>, Zone)> {
    let q = qname.to_ascii_lowercase();
    let q = if q.ends_with('.') { q } else { format!("{q}.") };
    let mut zones = vec![(domain.to_string(), false)];
    if consul {
        zones.push(("consul.".to_string(), true));
    }
    for (apex, is_consul) in zones {
        let Some(rest) = q.strip_suffix(&apex) else {
            continue;
        };
        let rest = rest.trim_end_matches('.');
        let labels = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('.').map(str::to_string).collect()
        };
        return Some((labels, Zone { apex, is_consul }));
    }
    None
}

/// What the labels before the zone name, or `None` for nothing known.
fn parse(state: &RegistryState, labels: &[String], consul: bool) -> Option<Asked> {
    let networks = state.directory.networks();
    if consul {
        // [<tag>.]<name>.service[.<network>]
        let at = labels.iter().rposition(|l| l == "service")?;
        let network = match &labels[at + 1..] {
            [] => networks.first()?.clone(),
            rest => find_network(&networks, &rest.join("."))?,
        };
        return service_in(state, &network, &labels[..at]);
    }
    // The network is the longest run of labels at the end that names one.
    for split in 0..labels.len() {
        let Some(network) = find_network(&networks, &labels[split..].join(".")) else {
            continue;
        };
        let before = &labels[..split];
        if let [hex, addr] = before {
            if addr == "addr" {
                if let Some(ip) = parse_hex_ip(hex) {
                    return Some(Asked::Addr(ip));
                }
            }
        }
        if let [service, tcp] = before {
            if let (Some(s), "_tcp") = (service.strip_prefix('_'), tcp.as_str()) {
                return service_in(state, &network, &[s.to_string()]);
            }
        }
        return service_in(state, &network, before);
    }
    None
}

fn find_network(networks: &[NetworkName], lower: &str) -> Option<NetworkName> {
    networks
        .iter()
        .find(|n| n.as_str().eq_ignore_ascii_case(lower))
        .cloned()
}

/// `labels` as a service of `network` (all of them), or as a tag and a service.
fn service_in(state: &RegistryState, network: &NetworkName, labels: &[String]) -> Option<Asked> {
    if labels.is_empty() {
        return None;
    }
    let services = state.directory.services(network).ok()?;
    let named = |lower: &str| {
        services
            .iter()
            .find(|s| s.name.as_str().eq_ignore_ascii_case(lower))
            .map(|s| s.name.clone())
    };
    if let Some(name) = named(&labels.join(".")) {
        return Some(Asked::Service {
            network: network.clone(),
            name,
            tag: None,
        });
    }
    let (tag, rest) = labels.split_first()?;
    let name = named(&rest.join("."))?;
    Some(Asked::Service {
        network: network.clone(),
        name,
        tag: Some(tag.clone()),
    })
}

/// A host name as a fully qualified DNS name, when it is one.
fn host_name(host: &str) -> Option<Name> {
    let mut n = Name::from_ascii(host).ok()?;
    n.set_fqdn(true);
    Some(n)
}

/// An A or AAAA record of `ip`, when it is of the asked type.
fn address_record(owner: &Name, ttl: u32, ip: IpAddr, qtype: RecordType) -> Option<Record> {
    let data = match (ip, qtype) {
        (IpAddr::V4(v4), RecordType::A) => RData::A(A(v4)),
        (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(v6)),
        _ => return None,
    };
    Some(Record::from_rdata(owner.clone(), ttl, data))
}

/// `<hex of ip>.addr.<network>.<zone>`: a name for an address, as SRV targets must be names.
fn addr_name(ip: IpAddr, network: &NetworkName, zone: &Zone) -> Name {
    let hex: String = match ip {
        IpAddr::V4(v4) => v4.octets().iter().map(|b| format!("{b:02x}")).collect(),
        IpAddr::V6(v6) => v6.octets().iter().map(|b| format!("{b:02x}")).collect(),
    };
    let text = format!("{hex}.addr.{}.{}", network.as_str(), zone.apex);
    Name::from_ascii(&text).unwrap_or_else(|_| Name::root())
}

fn parse_hex_ip(hex: &str) -> Option<IpAddr> {
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    match bytes?.as_slice() {
        [a, b, c, d] => Some(IpAddr::V4(Ipv4Addr::new(*a, *b, *c, *d))),
        b if b.len() == 16 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(b);
            Some(IpAddr::V6(Ipv6Addr::from(o)))
        }
        _ => None,
    }
}

/// An instance's TXT record: `id=…`, `address=…`, `version=…`, `tags=a,b`.
fn txt(i: &Instance) -> TXT {
    let mut parts = vec![format!("id={}", i.id), format!("address={}", i.address)];
    if let Some(v) = &i.version {
        parts.push(format!("version={v}"));
    }
    if !i.tags.is_empty() {
        parts.push(format!("tags={}", i.tags.joined()));
    }
    // A character-string is at most 255 bytes.
    TXT::new(
        parts
            .into_iter()
            .map(|p| crate::error::truncate(&p, 255).to_string())
            .collect(),
    )
}

/// The zone's SOA record; its minimum is the TTL of negative answers.
fn soa(zone: &Zone, ttl: u32) -> Record {
    let apex = Name::from_ascii(&zone.apex).unwrap_or_else(|_| Name::root());
    let ns = Name::from_ascii(format!("ns.{}", zone.apex)).unwrap_or_else(|_| Name::root());
    let mail =
        Name::from_ascii(format!("hostmaster.{}", zone.apex)).unwrap_or_else(|_| Name::root());
    Record::from_rdata(
        apex,
        ttl,
        RData::SOA(SOA::new(ns, mail, 1, 3600, 600, 86400, ttl)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fall_in_the_domain_or_in_consuls_when_asked() {
        let (labels, zone) = split_zone("V1.Web.Development.NETGET.", "netget.", false).unwrap();
        assert_eq!(labels, ["v1", "web", "development"]);
        assert!(!zone.is_consul);
        assert!(split_zone("web.service.consul.", "netget.", false).is_none());
        let (labels, zone) = split_zone("web.service.consul.", "netget.", true).unwrap();
        assert_eq!(labels, ["web", "service"]);
        assert!(zone.is_consul);
        assert!(split_zone("example.com.", "netget.", true).is_none());
    }

    #[test]
    fn srv_targets_name_their_address_and_read_back() {
        let zone = Zone {
            apex: "netget.".into(),
            is_consul: false,
        };
        let net = NetworkName::new("development").unwrap();
        let n = addr_name("10.0.0.5".parse().unwrap(), &net, &zone);
        assert_eq!(n.to_ascii(), "0a000005.addr.development.netget.");
        assert_eq!(parse_hex_ip("0a000005"), Some("10.0.0.5".parse().unwrap()));
        let v6: IpAddr = "fd00::1".parse().unwrap();
        let n6 = addr_name(v6, &net, &zone);
        let hex = n6.to_ascii();
        assert_eq!(parse_hex_ip(hex.split('.').next().unwrap()), Some(v6));
        assert_eq!(parse_hex_ip("0a00"), None);
        assert_eq!(parse_hex_ip("zz000005"), None);
    }
}
