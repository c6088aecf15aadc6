//! What the kernel knows about a connection's sent bytes: how many the peer has not yet
//! acknowledged (SIOCOUTQ) and the current retransmission timeout (TCP_INFO). Used to find out
//! whether an oplock break reached the client, and how long to wait before calling its channel
//! dead (FIELD-NOTES: Samba waits 6 × RTO, RTO clamped to 0.2–1 s).

use std::os::fd::RawFd;
use std::time::Duration;

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
    use std::io::Write;
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
}
