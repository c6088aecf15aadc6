//! A small synchronous SMB 3.1.1 client: just what the load generator needs.

pub mod conn;
pub mod files;
pub mod msgs;
pub mod ntlm;
pub mod session;

use std::net::{SocketAddr, ToSocketAddrs};

/// `//HOST[:PORT]/SHARE` to a socket address and the `\\HOST\SHARE` tree path.
pub fn parse_target(t: &str) -> Result<(SocketAddr, String), String> {
    let rest = t.strip_prefix("//").ok_or("target must start with //")?;
    let (hostport, share) = rest
        .split_once('/')
        .filter(|(_, s)| !s.is_empty() && !s.contains('/'))
        .ok_or("target must be //HOST[:PORT]/SHARE")?;
    let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
        let (h, p) = h.split_once(']').ok_or("bad [IPv6] host")?;
        (
            h.to_string(),
            p.strip_prefix(':').unwrap_or("445").to_string(),
        )
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.to_string()),
            None => (hostport.to_string(), "445".to_string()),
        }
    };
    let port: u16 = port.parse().map_err(|_| format!("bad port '{port}'"))?;
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve {host}"))?;
    Ok((addr, format!("\\\\{host}\\{share}")))
}
