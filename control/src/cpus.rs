//! The cores reactors run on when `--cpus` is not given: the cores local to the NICs being
//! served, read from sysfs (`/sys/class/net/IF/device/local_cpulist`), else all online cores.
//!
//! sysfs rather than hwloc (hwlocality): it needs no C library, and `local_cpulist` is the very
//! set hwloc reports as a PCI device's locality. Virtual NICs (veth, bridges, lo) have no
//! `device/` and count as "not known".

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use crate::config::parse_cpu_list;

const SYS: &str = "/sys";

/// Cores for the reactors serving `listen`: the union of the served NICs' local cores, limited to
/// the cores this process may run on; all of those if no NIC locality is known.
pub fn default_cpus(listen: &[SocketAddr]) -> Vec<usize> {
    let host: Vec<(String, IpAddr)> = smb3d_dataplane::netif::host_interfaces()
        .into_iter()
        .map(|i| (i.name, i.addr))
        .collect();
    let nics = interfaces_serving(listen, &host);
    let local = nic_local_cpus(Path::new(SYS), &nics);
    let allowed = core_affinity::get_core_ids().map(|ids| ids.into_iter().map(|c| c.id).collect());
    let chosen = choose_cpus(&local, online_cpus(Path::new(SYS)), allowed);
    if local.is_empty() {
        tracing::info!(?nics, cpus = ?chosen, "no NIC-local cores known; reactors on all online cores");
    } else {
        tracing::info!(?nics, cpus = ?chosen, "reactors on the cores local to the NICs");
    }
    chosen
}

/// A sysfs CPU list (`0-3,8-11\n`); `Some(empty)` for an empty file, `None` if malformed.
pub fn parse_sysfs_cpulist(text: &str) -> Option<Vec<usize>> {
    let text = text.trim();
    if text.is_empty() {
        return Some(Vec::new());
    }
    parse_cpu_list(text).ok()
}

/// Names of the interfaces carrying `listen`: those holding one of its addresses; every interface
/// for 0.0.0.0 or ::.
pub fn interfaces_serving(listen: &[SocketAddr], host: &[(String, IpAddr)]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for addr in listen {
        let ip = addr.ip().to_canonical();
        for (name, host_ip) in host {
            if ip.is_unspecified() || host_ip.to_canonical() == ip {
                out.insert(name.clone());
            }
        }
    }
    out
}

/// Union of `local_cpulist` of `nics` under the sysfs root `sys`, sorted; empty when none is known.
pub fn nic_local_cpus(sys: &Path, nics: &BTreeSet<String>) -> Vec<usize> {
    let mut out = BTreeSet::new();
    for nic in nics {
        let path = sys.join("class/net").join(nic).join("device/local_cpulist");
        if let Some(cpus) = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| parse_sysfs_cpulist(&t))
        {
            out.extend(cpus);
        }
    }
    out.into_iter().collect()
}

/// The online cores (`devices/system/cpu/online` under the sysfs root `sys`).
pub fn online_cpus(sys: &Path) -> Option<Vec<usize>> {
    std::fs::read_to_string(sys.join("devices/system/cpu/online"))
        .ok()
        .and_then(|t| parse_sysfs_cpulist(&t))
        .filter(|c| !c.is_empty())
}

/// NIC-local cores that are usable, else all usable cores. Usable = online (or, unknown, as many
/// as `available_parallelism`) and in this process's affinity mask `allowed` when known.
pub fn choose_cpus(
    nic_local: &[usize],
    online: Option<Vec<usize>>,
    allowed: Option<Vec<usize>>,
) -> Vec<usize> {
    let online = online.unwrap_or_else(|| {
        (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
    });
    let usable: Vec<usize> = match allowed {
        Some(allowed) if online.iter().any(|c| allowed.contains(c)) => {
            online.into_iter().filter(|c| allowed.contains(c)).collect()
        }
        _ => online,
    };
    let local: Vec<usize> = usable
        .iter()
        .copied()
        .filter(|c| nic_local.contains(c))
        .collect();
    if local.is_empty() {
        usable
    } else {
        local
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_sysfs_lists() {
        assert_eq!(
            parse_sysfs_cpulist("0-3,8-11\n"),
            Some(vec![0, 1, 2, 3, 8, 9, 10, 11])
        );
        assert_eq!(parse_sysfs_cpulist("5\n"), Some(vec![5]));
        assert_eq!(parse_sysfs_cpulist("\n"), Some(vec![]));
        assert_eq!(parse_sysfs_cpulist("0-x"), None);
    }

    #[test]
    fn finds_the_interfaces_of_listen_addresses() {
        let host = vec![
            ("lo".to_string(), "127.0.0.1".parse().unwrap()),
            ("lo".to_string(), "::1".parse().unwrap()),
            ("eth0".to_string(), "192.0.2.10".parse().unwrap()),
            ("eth1".to_string(), "2001:db8::10".parse().unwrap()),
        ];
        let on = |l: &[&str]| {
            let addrs: Vec<SocketAddr> = l.iter().map(|a| a.parse().unwrap()).collect();
            interfaces_serving(&addrs, &host)
        };
        assert_eq!(on(&["192.0.2.10:445"]), names(&["eth0"]));
        assert_eq!(on(&["[::ffff:192.0.2.10]:445"]), names(&["eth0"]));
        assert_eq!(
            on(&["127.0.0.1:445", "[2001:db8::10]:445"]),
            names(&["eth1", "lo"])
        );
        assert_eq!(on(&["0.0.0.0:445"]), names(&["eth0", "eth1", "lo"]));
        assert_eq!(on(&["[::]:445"]), names(&["eth0", "eth1", "lo"]));
        assert_eq!(on(&["198.51.100.1:445"]), names(&[]));
    }

    #[test]
    fn reads_nic_locality_from_a_sysfs_tree() {
        let root = std::env::temp_dir().join(format!("smb3d-cpus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let write = |rel: &str, text: &str| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write("class/net/eth0/device/local_cpulist", "0-3\n");
        write("class/net/eth1/device/local_cpulist", "2-5\n");
        std::fs::create_dir_all(root.join("class/net/lo")).unwrap();
        write("devices/system/cpu/online", "0-7\n");

        assert_eq!(
            nic_local_cpus(&root, &names(&["eth0", "eth1"])),
            vec![0, 1, 2, 3, 4, 5]
        );
        assert_eq!(
            nic_local_cpus(&root, &names(&["eth1", "lo"])),
            vec![2, 3, 4, 5]
        );
        assert!(nic_local_cpus(&root, &names(&["lo", "veth9"])).is_empty());
        assert_eq!(online_cpus(&root), Some((0..8).collect()));
        assert_eq!(online_cpus(&root.join("nowhere")), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn chooses_local_then_usable_cores() {
        let online = || Some((0..8).collect::<Vec<_>>());
        assert_eq!(choose_cpus(&[2, 3], online(), None), vec![2, 3]);
        // No locality known: every online core.
        assert_eq!(choose_cpus(&[], online(), None), (0..8).collect::<Vec<_>>());
        // Limited by the affinity mask (taskset, cgroup cpuset).
        assert_eq!(choose_cpus(&[2, 3], online(), Some(vec![3, 4])), vec![3]);
        assert_eq!(choose_cpus(&[0, 1], online(), Some(vec![3, 4])), vec![3, 4]);
        // Local cores that are offline do not count.
        assert_eq!(
            choose_cpus(&[9], online(), None),
            (0..8).collect::<Vec<_>>()
        );
        // A mask naming no online core is ignored rather than leaving nothing.
        assert_eq!(choose_cpus(&[1], Some(vec![0, 1]), Some(vec![7])), vec![1]);
        assert!(!choose_cpus(&[], None, None).is_empty());
    }

    #[test]
    fn default_on_this_host_is_usable() {
        let cpus = default_cpus(&["127.0.0.1:445".parse().unwrap()]);
        assert!(!cpus.is_empty());
        if let Some(online) = online_cpus(Path::new(SYS)) {
            assert!(
                cpus.iter().all(|c| online.contains(c)),
                "{cpus:?} not online"
            );
        }
    }
}
