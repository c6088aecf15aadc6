//! Listening sockets: one per reactor per address, joined in a SO_REUSEPORT group so the kernel
//! spreads new connections over the reactors.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use nix::sys::socket::{
    bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType,
    SockaddrStorage,
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
    let family = family_of(addr);
    let probe = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| format!("cannot create socket for {addr}: {e}"))?;
    setsockopt(&probe, sockopt::ReuseAddr, &true)
        .map_err(|e| format!("SO_REUSEADDR on {addr}: {e}"))?;
    if addr.is_ipv6() {
        setsockopt(&probe, sockopt::Ipv6V6Only, &true)
            .map_err(|e| format!("IPV6_V6ONLY on {addr}: {e}"))?;
    }
    bind_one(&probe, addr)
}

/// Bind `count` listening sockets to `addr` in one SO_REUSEPORT group (with worker processes,
/// every worker's sockets join the same group). Errors name the address and the cause.
pub fn bind_listeners(addr: SocketAddr, count: usize) -> Result<Vec<OwnedFd>, String> {
    let family = family_of(addr);
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
        listen(&fd, Backlog::new(1024).unwrap_or(Backlog::MAXCONN))
            .map_err(|e| format!("listen on {addr}: {e}"))?;
        out.push(fd);
    }
    Ok(out)
}

fn bind_one(fd: &OwnedFd, addr: SocketAddr) -> Result<(), String> {
    let sa = SockaddrStorage::from(addr);
    bind(std::os::fd::AsRawFd::as_raw_fd(fd), &sa).map_err(|e| match e {
        nix::errno::Errno::EADDRINUSE => format!("cannot listen on {addr}: address already in use"),
        e => format!("cannot listen on {addr}: {e}"),
    })
}
