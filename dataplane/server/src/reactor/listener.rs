//! Listening sockets: one per reactor per address, joined in a SO_REUSEPORT group so the kernel
//! spreads new connections over the reactors.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use nix::sys::socket::{
    bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType,
    SockaddrStorage,
};

/// Bind `count` listening sockets to `addr`. Errors name the address and the cause.
pub fn bind_listeners(addr: SocketAddr, count: usize) -> Result<Vec<OwnedFd>, String> {
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    // SO_REUSEPORT would let us join a group another process of the same user already listens
    // in; probe with a plain socket first so "port in use" is reported, not silently shared.
    let probe = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| format!("cannot create socket for {addr}: {e}"))?;
    setsockopt(&probe, sockopt::ReuseAddr, &true)
        .map_err(|e| format!("SO_REUSEADDR on {addr}: {e}"))?;
    if addr.is_ipv6() {
        setsockopt(&probe, sockopt::Ipv6V6Only, &true)
            .map_err(|e| format!("IPV6_V6ONLY on {addr}: {e}"))?;
    }
    bind_one(&probe, addr)?;
    drop(probe);
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
