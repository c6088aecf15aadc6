//! The host's network interfaces, as FSCTL_QUERY_NETWORK_INTERFACE_INFO reports them
//! (MS-SMB2 2.2.32.5). Read from the kernel with getifaddrs and sysfs.

use std::fs;
use std::net::IpAddr;

use smb3d_protocol::wire::Writer;

/// One address of one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceAddress {
    pub if_index: u32,
    pub name: String,
    pub addr: IpAddr,
    pub rss_capable: bool,
    pub link_speed_bps: u64,
}

/// Link speed reported when the kernel does not know one (loopback, veth): 10 Gbit/s.
const DEFAULT_LINK_SPEED_BPS: u64 = 10_000_000_000;

pub fn host_interfaces() -> Vec<InterfaceAddress> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for ifa in addrs {
        let Some(addr) = ifa.address else { continue };
        let ip = if let Some(v4) = addr.as_sockaddr_in() {
            IpAddr::V4(v4.ip())
        } else if let Some(v6) = addr.as_sockaddr_in6() {
            IpAddr::V6(v6.ip())
        } else {
            continue;
        };
        let name = ifa.interface_name;
        let if_index = nix::net::if_::if_nametoindex(name.as_str()).unwrap_or(0);
        out.push(InterfaceAddress {
            if_index,
            rss_capable: rx_queue_count(&name) > 1,
            link_speed_bps: link_speed_bps(&name),
            name,
            addr: ip,
        });
    }
    out
}

fn link_speed_bps(name: &str) -> u64 {
    fs::read_to_string(format!("/sys/class/net/{name}/speed"))
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|mbps| *mbps > 0)
        .map_or(DEFAULT_LINK_SPEED_BPS, |mbps| mbps as u64 * 1_000_000)
}

fn rx_queue_count(name: &str) -> usize {
    fs::read_dir(format!("/sys/class/net/{name}/queues"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count()
        })
        .unwrap_or(0)
}

/// The interface addresses a client can reach a server listening on `listen` through: those
/// listened on, or every address of a family listened on as unspecified (0.0.0.0, ::). No
/// listen addresses (tests) means every address.
pub fn served_interfaces(
    all: Vec<InterfaceAddress>,
    listen: &[std::net::SocketAddr],
) -> Vec<InterfaceAddress> {
    if listen.is_empty() {
        return all;
    }
    all.into_iter()
        .filter(|i| {
            listen.iter().any(|l| {
                let ip = l.ip();
                ip == i.addr || (ip.is_unspecified() && ip.is_ipv4() == i.addr.is_ipv4())
            })
        })
        .collect()
}

/// Encode the NETWORK_INTERFACE_INFO list (MS-SMB2 2.2.32.5): 152-byte entries chained by Next.
pub fn encode_interface_info(ifaces: &[InterfaceAddress]) -> Vec<u8> {
    const ENTRY_BYTES: usize = 152;
    let mut out = Vec::with_capacity(ifaces.len() * ENTRY_BYTES);
    for (i, ifa) in ifaces.iter().enumerate() {
        let last = i + 1 == ifaces.len();
        out.put_u32(if last { 0 } else { ENTRY_BYTES as u32 });
        out.put_u32(ifa.if_index);
        out.put_u32(if ifa.rss_capable { 1 } else { 0 });
        out.put_u32(0);
        out.put_u64(ifa.link_speed_bps);
        let start = out.len();
        match ifa.addr {
            IpAddr::V4(v4) => {
                out.put_u16(2); // AF_INET (InterNetwork)
                out.put_u16(0);
                out.put_bytes(&v4.octets());
            }
            IpAddr::V6(v6) => {
                out.put_u16(0x17); // InterNetworkV6
                out.put_u16(0);
                out.put_u32(0); // FlowInfo
                out.put_bytes(&v6.octets());
                out.put_u32(0); // ScopeId
            }
        }
        out.put_zeros(128 - (out.len() - start));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_served_addresses_are_reported() {
        let lo4 = InterfaceAddress {
            if_index: 1,
            name: "lo".into(),
            addr: "127.0.0.1".parse().unwrap(),
            rss_capable: false,
            link_speed_bps: DEFAULT_LINK_SPEED_BPS,
        };
        let eth = InterfaceAddress {
            if_index: 2,
            name: "eth0".into(),
            addr: "10.0.0.5".parse().unwrap(),
            ..lo4.clone()
        };
        let lo6 = InterfaceAddress {
            addr: "::1".parse().unwrap(),
            ..lo4.clone()
        };
        let all = vec![lo4.clone(), eth.clone(), lo6.clone()];
        let only_lo = served_interfaces(all.clone(), &["127.0.0.1:445".parse().unwrap()]);
        assert_eq!(only_lo, vec![lo4.clone()]);
        let any4 = served_interfaces(all.clone(), &["0.0.0.0:445".parse().unwrap()]);
        assert_eq!(any4, vec![lo4, eth]);
        assert_eq!(served_interfaces(all.clone(), &[]), all);
        assert_eq!(
            served_interfaces(all, &["[::]:445".parse().unwrap()]),
            vec![lo6]
        );
    }

    #[test]
    fn loopback_is_listed_and_encoded() {
        let ifs = host_interfaces();
        assert!(ifs.iter().any(|i| i.addr.is_loopback()), "{ifs:?}");
        let b = encode_interface_info(&ifs);
        assert_eq!(b.len(), ifs.len() * 152);
        assert_eq!(
            u32::from_le_bytes(b[b.len() - 152..b.len() - 148].try_into().unwrap()),
            0
        );
    }
}
