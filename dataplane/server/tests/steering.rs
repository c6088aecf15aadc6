//! Connection steering on loopback: a connection is accepted by the listener of the reactor pinned
//! on the CPU that processed its SYN. On loopback that is the CPU of the connecting thread, so the
//! test pins itself to each core in turn and checks which listener of the group gets the
//! connection.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use std::os::fd::OwnedFd;

use smb3d_dataplane::reactor::bind_listeners;
use smb3d_dataplane::reactor::steering;

fn usable_cores() -> Vec<usize> {
    core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect()
}

/// Connect from a thread pinned to `cpu`; the stream is returned so the connection stays open.
fn connect_from(cpu: usize, addr: SocketAddr) -> TcpStream {
    std::thread::spawn(move || {
        assert!(
            core_affinity::set_for_current(core_affinity::CoreId { id: cpu }),
            "cannot pin to core {cpu}"
        );
        TcpStream::connect(addr).expect("connect")
    })
    .join()
    .expect("connecting thread")
}

/// Index of the listener that has the connection `client` made.
fn accepted_by(listeners: &[TcpListener], client: &TcpStream) -> usize {
    let want = client.local_addr().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        for (i, l) in listeners.iter().enumerate() {
            if let Ok((_, peer)) = l.accept() {
                assert_eq!(peer, want, "a stray connection was accepted");
                return i;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no listener accepted the connection"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Bind a group of one listener per reactor; `steer` says whether `bind_listeners` steers it.
fn bind_group(reactor_cpus: &[usize], steer: bool) -> Vec<OwnedFd> {
    let cpus = if steer { reactor_cpus } else { &[] };
    bind_listeners("127.0.0.1:0".parse().unwrap(), reactor_cpus.len(), cpus).expect("bind group")
}

fn check_steering(fds: Vec<OwnedFd>, reactor_cpus: &[usize]) {
    let listeners: Vec<TcpListener> = fds.into_iter().map(TcpListener::from).collect();
    let addr = listeners[0].local_addr().unwrap();
    for l in &listeners {
        assert_eq!(
            l.local_addr().unwrap(),
            addr,
            "one port for the whole group"
        );
        l.set_nonblocking(true).unwrap();
    }
    for round in 0..4 {
        for &cpu in reactor_cpus {
            let client = connect_from(cpu, addr);
            let index = accepted_by(&listeners, &client);
            assert_eq!(
                reactor_cpus[index], cpu,
                "round {round}: connection from core {cpu} went to listener {index} \
                 (reactor cores {reactor_cpus:?})"
            );
        }
    }
}

#[test]
fn connections_go_to_the_reactor_on_the_receiving_core() {
    let cores = usable_cores();
    if cores.len() < 2 {
        eprintln!("skipped: needs two usable cores, have {cores:?}");
        return;
    }
    let (a, b) = (cores[0], cores[1]);
    check_steering(bind_group(&[a, b], true), &[a, b]);
    // The other way round, so a match cannot come from the kernel's hash or from cpu % N.
    check_steering(bind_group(&[b, a], true), &[b, a]);
}

/// The BPF program alone (no SO_INCOMING_CPU hint, which newer kernels also honour) steers.
#[test]
fn the_reuseport_program_alone_steers() {
    let cores = usable_cores();
    if cores.len() < 2 {
        eprintln!("skipped: needs two usable cores, have {cores:?}");
        return;
    }
    for reactor_cpus in [[cores[0], cores[1]], [cores[1], cores[0]]] {
        let fds = bind_group(&reactor_cpus, false);
        let prog = steering::build_program(&reactor_cpus).unwrap();
        steering::attach(&fds[1], &prog).expect("SO_ATTACH_REUSEPORT_CBPF");
        check_steering(fds, &reactor_cpus);
    }
}
