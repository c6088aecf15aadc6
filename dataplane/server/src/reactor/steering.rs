//! Connection steering: a new connection goes to the reactor pinned on the core whose receive
//! queue got its SYN, so a connection's bytes are handled on the core its NIC queue interrupts.
//!
//! A classic BPF program is attached to each SO_REUSEPORT group (SO_ATTACH_REUSEPORT_CBPF). The
//! kernel runs it for every new connection on the CPU processing the SYN; its return value is the
//! index of the listening socket in the group, which is the order the sockets called listen()
//! (closing one reorders the rest, so the listeners live as long as the reactors). An index out of
//! range makes the kernel fall back to its hash. Each listener also carries SO_INCOMING_CPU = its
//! reactor's core: kernels since late 2022 (checked on 6.18) prefer, in their own selection, the
//! socket whose SO_INCOMING_CPU matches, which steers alike when the program cannot be attached (and the
//! program is what spreads connections over several reactors sharing one core).
//!
//! This module is the only place with `unsafe` for these socket options.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};

/// One classic BPF instruction (struct sock_filter, linux/filter.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

// Opcodes and ancillary offsets from linux/filter.h and linux/bpf_common.h.
const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const BPF_MOD_K: u16 = (libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K) as u16;
const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
const BPF_RET_A: u16 = (libc::BPF_RET | libc::BPF_A) as u16;
/// `ld #cpu`: the CPU running the program (the one processing the SYN).
const LOAD_CPU: u32 = (libc::SKF_AD_OFF + libc::SKF_AD_CPU) as u32;
/// `ld #rxhash`: the packet's flow hash (from the NIC's RSS, or the stack's).
const LOAD_RXHASH: u32 = (libc::SKF_AD_OFF + libc::SKF_AD_RXHASH) as u32;
/// The kernel refuses longer classic programs.
const MAX_INSNS: usize = libc::BPF_MAXINSNS as usize;

const fn stmt(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}

/// Build the steering program for a group whose socket `i` belongs to the reactor pinned on
/// `reactor_cpus[i]`.
///
/// `A = cpu`; then for each CPU that has reactors, `if A == cpu` return its reactor (when several
/// reactors share the CPU, pick one by `rxhash % count`); any other CPU gets `cpu % N`. When that
/// last rule already maps every CPU right (reactor `i` on CPU `i`), the program is just the three
/// instructions of it. `None` when there are no reactors or the program would be too long.
pub fn build_program(reactor_cpus: &[usize]) -> Option<Vec<Insn>> {
    let count = u32::try_from(reactor_cpus.len()).ok().filter(|&n| n > 0)?;
    let mut by_cpu: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (index, &cpu) in reactor_cpus.iter().enumerate() {
        let cpu = u32::try_from(cpu).ok()?;
        by_cpu.entry(cpu).or_default().push(index as u32);
    }
    let identity = by_cpu
        .iter()
        .all(|(&cpu, reactors)| reactors.len() == 1 && reactors[0] == cpu % count);
    let mut prog = vec![stmt(BPF_LD_W_ABS, LOAD_CPU)];
    if !identity {
        for (&cpu, reactors) in &by_cpu {
            let block = cpu_block(reactors)?;
            let skip = u8::try_from(block.len()).ok()?;
            prog.push(jump(BPF_JEQ_K, cpu, 0, skip));
            prog.extend(block);
        }
    }
    // Fallback for CPUs without a reactor: A still holds the CPU number here.
    prog.push(stmt(BPF_MOD_K, count));
    prog.push(stmt(BPF_RET_A, 0));
    (prog.len() <= MAX_INSNS).then_some(prog)
}

/// The instructions run when the CPU matched: return the one reactor, or spread over several by
/// the flow hash.
fn cpu_block(reactors: &[u32]) -> Option<Vec<Insn>> {
    let Some((&last, rest)) = reactors.split_last() else {
        return Some(Vec::new());
    };
    if rest.is_empty() {
        return Some(vec![stmt(BPF_RET_K, last)]);
    }
    let mut block = vec![
        stmt(BPF_LD_W_ABS, LOAD_RXHASH),
        stmt(BPF_MOD_K, reactors.len() as u32),
    ];
    for (slot, &reactor) in rest.iter().enumerate() {
        block.push(jump(BPF_JEQ_K, slot as u32, 0, 1));
        block.push(stmt(BPF_RET_K, reactor));
    }
    block.push(stmt(BPF_RET_K, last));
    // A jump skips at most 255 instructions: a CPU with more than 127 reactors is not steered.
    (block.len() <= usize::from(u8::MAX)).then_some(block)
}

/// Run `prog` by hand for a packet seen on `cpu` with flow hash `rxhash`: what the kernel would
/// return. Used by the tests; understands only the instructions `build_program` emits.
#[cfg(test)]
fn evaluate(prog: &[Insn], cpu: u32, rxhash: u32) -> Option<u32> {
    let mut a = 0u32;
    let mut pc = 0usize;
    while let Some(insn) = prog.get(pc) {
        pc += 1;
        match insn.code {
            BPF_LD_W_ABS if insn.k == LOAD_CPU => a = cpu,
            BPF_LD_W_ABS if insn.k == LOAD_RXHASH => a = rxhash,
            BPF_JEQ_K => {
                pc += usize::from(if a == insn.k { insn.jt } else { insn.jf });
            }
            BPF_MOD_K => a = a.checked_rem(insn.k)?,
            BPF_RET_K => return Some(insn.k),
            BPF_RET_A => return Some(a),
            _ => return None,
        }
    }
    None
}

/// Attach `prog` to the SO_REUSEPORT group `listener` is in (any member will do).
pub fn attach(listener: &OwnedFd, prog: &[Insn]) -> std::io::Result<()> {
    let mut filter: Vec<libc::sock_filter> = prog
        .iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    let len = u16::try_from(filter.len())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let fprog = libc::sock_fprog {
        len,
        filter: filter.as_mut_ptr(),
    };
    // SAFETY: `listener` is an open socket; `fprog` points at `len` initialised sock_filter
    // entries in `filter`, which outlives the call (the kernel copies the program), and the option
    // length is the size of the sock_fprog passed.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            std::ptr::from_ref(&fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Tell the kernel `listener` is meant for connections received on `cpu` (SO_INCOMING_CPU).
pub fn set_incoming_cpu(listener: &OwnedFd, cpu: usize) -> std::io::Result<()> {
    let value = libc::c_int::try_from(cpu)
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: `listener` is an open socket; the option value is a c_int living across the call
    // and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_INCOMING_CPU,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Steer the group `listeners` (socket `i` listened `i`-th and serves the reactor on
/// `reactor_cpus[i]`). Failures are logged and leave the kernel's hashing in place.
pub fn steer_group(addr: std::net::SocketAddr, listeners: &[OwnedFd], reactor_cpus: &[usize]) {
    for (fd, &cpu) in listeners.iter().zip(reactor_cpus) {
        if let Err(e) = set_incoming_cpu(fd, cpu) {
            tracing::debug!(%addr, cpu, error = %e, "SO_INCOMING_CPU not set");
        }
    }
    let Some(first) = listeners.first() else {
        return;
    };
    let Some(prog) = build_program(reactor_cpus) else {
        tracing::warn!(%addr, "too many reactors to steer by CPU; the kernel hashes connections");
        return;
    };
    match attach(first, &prog) {
        Ok(()) => tracing::debug!(%addr, insns = prog.len(), "connections steered by CPU"),
        Err(e) => tracing::warn!(
            %addr,
            error = %e,
            "cannot attach the reuseport steering program; the kernel hashes connections"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ret(k: u32) -> Insn {
        stmt(BPF_RET_K, k)
    }

    #[test]
    fn reactor_i_on_cpu_i_is_cpu_mod_n() {
        let prog = build_program(&[0, 1, 2, 3]).unwrap();
        assert_eq!(
            prog,
            vec![
                stmt(BPF_LD_W_ABS, LOAD_CPU),
                stmt(BPF_MOD_K, 4),
                stmt(BPF_RET_A, 0),
            ]
        );
        // The encoding the kernel sees: ld [-4096+36]; mod #4; ret a.
        assert_eq!((prog[0].code, prog[0].k), (0x20, 0xffff_f024));
        assert_eq!((prog[1].code, prog[2].code), (0x94, 0x16));
        for cpu in 0..8 {
            assert_eq!(evaluate(&prog, cpu, 0), Some(cpu % 4));
        }
    }

    #[test]
    fn other_cores_get_a_jump_table() {
        // Reactors on cores 8, 9, 2 (e.g. --cpus 8,9,2: the cores next to the NIC).
        let prog = build_program(&[8, 9, 2]).unwrap();
        assert_eq!(
            prog,
            vec![
                stmt(BPF_LD_W_ABS, LOAD_CPU),
                jump(BPF_JEQ_K, 2, 0, 1),
                ret(2),
                jump(BPF_JEQ_K, 8, 0, 1),
                ret(0),
                jump(BPF_JEQ_K, 9, 0, 1),
                ret(1),
                stmt(BPF_MOD_K, 3),
                stmt(BPF_RET_A, 0),
            ]
        );
        assert_eq!(evaluate(&prog, 8, 0), Some(0));
        assert_eq!(evaluate(&prog, 9, 0), Some(1));
        assert_eq!(evaluate(&prog, 2, 0), Some(2));
        // A core without a reactor: cpu % N.
        assert_eq!(evaluate(&prog, 5, 0), Some(2));
        assert_eq!(evaluate(&prog, 7, 0), Some(1));
    }

    #[test]
    fn reactors_sharing_a_core_split_by_flow_hash() {
        // --reactors 5 --cpus 0,1: reactors 0, 2, 4 on core 0, reactors 1, 3 on core 1.
        let prog = build_program(&[0, 1, 0, 1, 0]).unwrap();
        assert_eq!(prog[0], stmt(BPF_LD_W_ABS, LOAD_CPU));
        assert_eq!(prog[1], jump(BPF_JEQ_K, 0, 0, 7));
        assert_eq!(prog[2], stmt(BPF_LD_W_ABS, LOAD_RXHASH));
        assert_eq!(prog[3], stmt(BPF_MOD_K, 3));
        for hash in 0..9 {
            assert_eq!(evaluate(&prog, 0, hash), Some([0, 2, 4][hash as usize % 3]));
            assert_eq!(evaluate(&prog, 1, hash), Some([1, 3][hash as usize % 2]));
        }
        assert_eq!(evaluate(&prog, 6, 1234), Some(1));
    }

    #[test]
    fn worker_groups_keep_the_core_and_split_workers_by_flow_hash() {
        // --workers 3 --cpus 2,3: the group holds worker w's reactor r at index w * 2 + r.
        let group: Vec<usize> = (0..3).flat_map(|_| [2, 3]).collect();
        let prog = build_program(&group).unwrap();
        let mut workers_seen = std::collections::BTreeSet::new();
        for hash in 0..30 {
            let on_2 = evaluate(&prog, 2, hash).unwrap() as usize;
            let on_3 = evaluate(&prog, 3, hash).unwrap() as usize;
            assert_eq!(
                (group[on_2], group[on_3]),
                (2, 3),
                "the receiving core's reactor"
            );
            workers_seen.insert(on_2 / 2);
        }
        assert_eq!(workers_seen.len(), 3, "every worker gets connections");
    }

    #[test]
    fn single_reactor_and_limits() {
        let prog = build_program(&[3]).unwrap();
        assert_eq!(evaluate(&prog, 3, 0), Some(0));
        assert_eq!(evaluate(&prog, 0, 0), Some(0));
        assert_eq!(build_program(&[]), None);
        // 128 reactors on one core need a jump over more than 255 instructions.
        assert_eq!(build_program(&[0; 128]), None);
        assert_eq!(
            evaluate(&build_program(&[0; 127]).unwrap(), 0, 200),
            Some(200 % 127)
        );
        // 3000 cores with one reactor each: 6000 instructions, over the kernel's 4096.
        let many: Vec<usize> = (0..3000).map(|i| i + 1).collect();
        assert_eq!(build_program(&many), None);
        let fits: Vec<usize> = (0..2000).map(|i| i + 1).collect();
        assert_eq!(evaluate(&build_program(&fits).unwrap(), 1, 0), Some(0));
    }
}
