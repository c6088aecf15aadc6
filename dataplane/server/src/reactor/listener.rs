//! Listening sockets: one per reactor per address, joined in a SO_REUSEPORT group; a steering
//! program on the group hands each new connection to the reactor on the core that received it
//! (see `steering`). With worker processes, every worker's sockets join the same group.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use nix::sys::socket::{
    bind, getsockname, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag,
    SockType, SockaddrStorage,
};

fn family_of(addr: SocketAddr) -> AddressFamily {
    if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

/// Fail with "address already in use" when something else listens on `addr`.
///
/// SO_REUSEPORT would let us join a group another process of the same user already listens
/// in; a plain socket bound for a moment makes sure the port is really free first. Called once
/// at start-up, before any of our own listeners exist.
pub fn check_port_free(addr: SocketAddr) -> Result<(), String> {
    let probe = socket(
        family_of(addr),
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| format!("cannot create socket for {addr}: {e}"))?;
    setsockopt(&probe, sockopt::ReuseAddr, &true)
        .map_err(|e| format!("SO_REUSEADDR on {addr}: {e}"))?;
    if addr.is_ipv6() {
        setsockopt(&probe, sockopt::Ipv6V6Only, &true)
            .map_err(|e| format!("IPV6_V6ONLY on {addr}: {e}"))?;
    }
    bind_one(&probe, addr)
}

/// Bind `count` listening sockets to `addr`, socket `i` for reactor `i`. `reactor_cpus[i]` is the
/// core reactor `i` is pinned to; with it the group is steered by receiving CPU (empty: reactors
/// are not pinned, the kernel hashes). Port 0 picks one free port for the whole group. Errors
/// name the address and the cause.
pub fn bind_listeners(
    addr: SocketAddr,
    count: usize,
    reactor_cpus: &[usize],
) -> Result<Vec<OwnedFd>, String> {
    if !reactor_cpus.is_empty() && reactor_cpus.len() != count {
        return Err(format!(
            "{addr}: {count} listeners but {} reactor cores",
            reactor_cpus.len()
        ));
    }
    let family = family_of(addr);
    let mut addr = addr;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
            .map_err(|e| format!("cannot create socket for {addr}: {e}"))?;
        setsockopt(&fd, sockopt::ReuseAddr, &true)
            .map_err(|e| format!("SO_REUSEADDR on {addr}: {e}"))?;
        setsockopt(&fd, sockopt::ReusePort, &true)
            .map_err(|e| format!("SO_REUSEPORT on {addr}: {e}"))?;
        if addr.is_ipv6() {
            setsockopt(&fd, sockopt::Ipv6V6Only, &true)
                .map_err(|e| format!("IPV6_V6ONLY on {addr}: {e}"))?;
        }
        bind_one(&fd, addr)?;
        // Port 0: the first socket picked a port; the rest of the group joins it.
        addr = bound_addr(&fd).unwrap_or(addr);
        listen(&fd, Backlog::new(1024).unwrap_or(Backlog::MAXCONN))
            .map_err(|e| format!("listen on {addr}: {e}"))?;
        out.push(fd);
    }
    if !reactor_cpus.is_empty() {
        super::steering::steer_group(addr, &out, reactor_cpus);
    }
    Ok(out)
}

/// The address a socket is bound to (the real port when bound to port 0).
fn bound_addr(fd: &OwnedFd) -> Option<SocketAddr> {
    let sa: SockaddrStorage = getsockname(std::os::fd::AsRawFd::as_raw_fd(fd)).ok()?;
    if let Some(v4) = sa.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    sa.as_sockaddr_in6().map(|v6| {
        SocketAddr::from(std::net::SocketAddrV6::new(
            v6.ip(),
            v6.port(),
            v6.flowinfo(),
            v6.scope_id(),
        ))
    })
}

fn bind_one(fd: &OwnedFd, addr: SocketAddr) -> Result<(), String> {
    let sa = SockaddrStorage::from(addr);
    bind(std::os::fd::AsRawFd::as_raw_fd(fd), &sa).map_err(|e| match e {
        nix::errno::Errno::EADDRINUSE => format!("cannot listen on {addr}: address already in use"),
        e => format!("cannot listen on {addr}: {e}"),
    })
}
