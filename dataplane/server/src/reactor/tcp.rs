//! What the kernel knows about a connection's sent bytes: how many the peer has not yet
//! acknowledged (SIOCOUTQ) and the current retransmission timeout (TCP_INFO). Used to find out
//! whether an oplock break reached the client, and how long to wait before calling its channel
//! dead (FIELD-NOTES: Samba waits 6 × RTO, RTO clamped to 0.2–1 s).

use std::os::fd::{AsFd, RawFd};
use std::time::Duration;

use nix::sys::socket::{setsockopt, sockopt};

use crate::server::DeadPeer;

/// Abort the connection now with a RST, keeping the descriptor (connect with AF_UNSPEC
/// disconnects a TCP socket, Linux tcp_disconnect). For a channel declared dead: a FIN, from
/// shutdown or close, waits behind the unacknowledged bytes and never reaches a peer whose
/// acknowledgments are lost; a RST goes out at once, so a peer that still receives learns the
/// channel is gone and fails what it sent there (a lease break acknowledgment, say) instead of
/// waiting on it. Operations in flight on the socket end with an error. False if it failed.
pub fn abort(fd: RawFd) -> bool {
    // SAFETY: sockaddr is plain data; all-zero is a valid value for it.
    let mut unspec: libc::sockaddr = unsafe { std::mem::zeroed() };
    unspec.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
    let len = std::mem::size_of::<libc::sockaddr>() as libc::socklen_t;
    // SAFETY: connect reads `len` bytes from `unspec`, a live local of that size.
    let rc = unsafe { libc::connect(fd, &unspec, len) };
    rc == 0
}

/// Give an accepted connection the socket options every channel gets: no Nagle delay, and
/// the dead-peer settings (TCP_USER_TIMEOUT, keepalive). Failures are logged, not fatal: the
/// connection still works, only a dead peer is found later.
pub fn configure_connection(fd: &impl AsFd, dead_peer: &DeadPeer) {
    let mut failed = Vec::new();
    if setsockopt(fd, sockopt::TcpNoDelay, &true).is_err() {
        failed.push("TCP_NODELAY");
    }
    if let Some(t) = dead_peer.tcp_user_timeout {
        let ms = u32::try_from(t.as_millis()).unwrap_or(u32::MAX);
        if setsockopt(fd, sockopt::TcpUserTimeout, &ms).is_err() {
            failed.push("TCP_USER_TIMEOUT");
        }
    }
    if let Some(k) = dead_peer.keepalive {
        let secs = |d: Duration| u32::try_from(d.as_secs().max(1)).unwrap_or(u32::MAX);
        let ok = setsockopt(fd, sockopt::KeepAlive, &true).is_ok()
            && setsockopt(fd, sockopt::TcpKeepIdle, &secs(k.idle)).is_ok()
            && setsockopt(fd, sockopt::TcpKeepInterval, &secs(k.interval)).is_ok()
            && setsockopt(fd, sockopt::TcpKeepCount, &k.count).is_ok();
        if !ok {
            failed.push("keepalive");
        }
    }
    if !failed.is_empty() {
        tracing::warn!(options = ?failed, "cannot set socket options on a connection");
    }
}

/// Bytes written to the socket that the peer has not acknowledged yet.
pub fn unacked_bytes(fd: RawFd) -> Option<u64> {
    let mut outq: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (TIOCOUTQ) writes one int to the pointer, which points at a live local.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut outq as *mut libc::c_int) };
    (rc == 0 && outq >= 0).then_some(outq as u64)
}

/// The connection's retransmission timeout.
pub fn rto(fd: RawFd) -> Option<Duration> {
    // SAFETY: tcp_info is plain data; all-zero is a valid value for it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info`, a live local of that size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            &mut info as *mut libc::tcp_info as *mut libc::c_void,
            &mut len,
        )
    };
    (rc == 0).then(|| Duration::from_micros(u64::from(info.tcpi_rto)))
}

/// How long a break may stay unacknowledged before its channel is declared dead: `factor`
/// retransmission timeouts, each clamped to [`RTO_MIN`, `RTO_MAX`].
pub fn dead_after(rto: Option<Duration>, factor: u32) -> Duration {
    rto.unwrap_or(RTO_MIN).clamp(RTO_MIN, RTO_MAX) * factor
}

pub const RTO_MIN: Duration = Duration::from_millis(200);
pub const RTO_MAX: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::Keepalive;
    use nix::sys::socket::getsockopt;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    #[test]
    fn loopback_socket_reports_outq_and_rto() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, _) = listener.accept().unwrap();
        client.write_all(b"hello").unwrap();
        assert!(unacked_bytes(client.as_raw_fd()).is_some());
        assert!(rto(client.as_raw_fd()).is_some());
        assert_eq!(
            dead_after(Some(Duration::from_millis(5)), 6),
            Duration::from_millis(1200)
        );
        assert_eq!(dead_after(None, 6), Duration::from_millis(1200));
        assert_eq!(
            dead_after(Some(Duration::from_secs(3)), 6),
            Duration::from_secs(6)
        );
    }

    #[test]
    fn a_connection_gets_the_dead_peer_settings() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (conn, _) = listener.accept().unwrap();
        let settings = DeadPeer {
            break_silence_rtos: 3,
            tcp_user_timeout: Some(Duration::from_millis(12_345)),
            keepalive: Some(Keepalive {
                idle: Duration::from_secs(77),
                interval: Duration::from_secs(7),
                count: 4,
            }),
        };
        configure_connection(&conn, &settings);
        assert!(getsockopt(&conn, sockopt::TcpNoDelay).unwrap());
        assert_eq!(getsockopt(&conn, sockopt::TcpUserTimeout).unwrap(), 12_345);
        assert!(getsockopt(&conn, sockopt::KeepAlive).unwrap());
        assert_eq!(getsockopt(&conn, sockopt::TcpKeepIdle).unwrap(), 77);
        assert_eq!(getsockopt(&conn, sockopt::TcpKeepInterval).unwrap(), 7);
        assert_eq!(getsockopt(&conn, sockopt::TcpKeepCount).unwrap(), 4);
    }
}
