//! One SMB2 connection (a channel) over a std TCP socket: Direct-TCP framing, message ids and
//! credits, signing and encryption of requests, decryption and signature checks of responses.
//!
//! Threads rather than an event loop: each channel gets a sender and a receiver thread on the
//! two halves of one socket ([`Conn::split`]). Blocking I/O keeps the client simple and lets the
//! crypto of both directions run in parallel; a full socket buffer in one direction never stops
//! the other, so pipelined READs and WRITEs cannot deadlock.

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use smb3d_protocol::crypto::{Encryptor, NonceSequence, Signer};
use smb3d_protocol::framing::{parse_frame_header, write_frame_header, Frame, FRAME_HEADER_BYTES};
use smb3d_protocol::header::{flags, Command, Header, HEADER_BYTES};
use smb3d_protocol::transform::{TransformHeader, TRANSFORM_HEADER_BYTES};
use smb3d_protocol::NtStatus;

/// Largest PDU the client accepts (8 MiB of data plus headers).
const MAX_PDU_BYTES: usize = 16 << 20;
/// Credits asked for in every request: plenty for deep pipelines of large I/O.
const CREDIT_REQUEST: u16 = 512;

/// An error of the client: a status from the server or a local/transport problem.
#[derive(Debug, Clone)]
pub enum Error {
    Status(NtStatus),
    Io(String),
    Protocol(String),
}

impl Error {
    pub fn status_code(&self) -> u32 {
        match self {
            Error::Status(s) => s.0,
            _ => 0xC000_0001, // STATUS_UNSUCCESSFUL
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Status(s) => write!(f, "STATUS_{} (0x{:08x})", s.name(), s.0),
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

impl From<NtStatus> for Error {
    fn from(s: NtStatus) -> Self {
        Error::Status(s)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Message ids and the credit window of one connection (MS-SMB2 3.2.4.1.5, 3.2.5.1.4).
struct CreditState {
    available: u32,
    next_message_id: u64,
    closed: bool,
}

struct Credits {
    state: Mutex<CreditState>,
    granted: Condvar,
}

impl Credits {
    /// Wait for `charge` credits and take the message ids they cover.
    fn acquire(&self, charge: u16) -> Result<u64> {
        let charge = charge.max(1) as u32;
        let mut s = self.state.lock().expect("credit lock");
        loop {
            if s.closed {
                return Err(Error::Io("connection closed".into()));
            }
            if s.available >= charge {
                s.available -= charge;
                let id = s.next_message_id;
                s.next_message_id += charge as u64;
                return Ok(id);
            }
            let (guard, _) = self
                .granted
                .wait_timeout(s, Duration::from_secs(30))
                .expect("credit lock");
            s = guard;
        }
    }

    fn grant(&self, n: u16) {
        if n == 0 {
            return;
        }
        let mut s = self.state.lock().expect("credit lock");
        s.available += n as u32;
        self.granted.notify_all();
    }

    fn close(&self) {
        self.state.lock().expect("credit lock").closed = true;
        self.granted.notify_all();
    }
}

/// How messages are protected on this connection.
#[derive(Clone, Default)]
pub struct Security {
    pub session_id: u64,
    /// Signs requests (and checks signed responses); the channel's signing key.
    pub signer: Option<Arc<Signer>>,
    pub sign_requests: bool,
    /// Client -> server (the server's "decryption" key) and server -> client.
    pub encryptor: Option<Arc<Encryptor>>,
    pub decryptor: Option<Arc<Encryptor>>,
}

/// A request to send: header fields and the body (appended to the 64-byte header).
pub struct Request {
    pub command: Command,
    pub tree_id: u32,
    /// CreditCharge: one per started 64 KiB of payload.
    pub credit_charge: u16,
    pub flags: u32,
    /// The whole message; bytes 0..64 are overwritten with the header.
    pub msg: Vec<u8>,
}

impl Request {
    /// A request whose body the caller appends after the returned 64-byte placeholder.
    pub fn new(command: Command, tree_id: u32) -> Request {
        let mut msg = Vec::with_capacity(256);
        msg.resize(HEADER_BYTES, 0);
        Request {
            command,
            tree_id,
            credit_charge: 1,
            flags: 0,
            msg,
        }
    }

    pub fn with_payload(command: Command, tree_id: u32, payload_bytes: u32) -> Request {
        let mut r = Request::new(command, tree_id);
        r.credit_charge = smb3d_protocol::messages::credits_needed(payload_bytes);
        r
    }
}

/// A response: the decoded header and the whole plaintext message.
pub struct Response {
    pub header: Header,
    pub msg: Vec<u8>,
    /// The server signed it (after a successful check).
    pub was_encrypted: bool,
}

impl Response {
    pub fn status(&self) -> NtStatus {
        NtStatus(self.header.status)
    }

    /// An unsolicited oplock break notification (MS-SMB2 3.3.4.6: MessageId 0xFFFFFFFFFFFFFFFF,
    /// StructureSize 24, MS-SMB2 2.2.23.1).
    pub fn is_oplock_break_notification(&self) -> bool {
        self.is_break_notification(24)
    }

    /// An unsolicited lease break notification (MS-SMB2 3.3.4.7: MessageId 0xFFFFFFFFFFFFFFFF,
    /// StructureSize 44, MS-SMB2 2.2.23.2).
    pub fn is_lease_break_notification(&self) -> bool {
        self.is_break_notification(44)
    }

    fn is_break_notification(&self, structure_size: u16) -> bool {
        self.header.command == Command::OplockBreak as u16
            && self.header.message_id == u64::MAX
            && self.msg.get(HEADER_BYTES..HEADER_BYTES + 2)
                == Some(&structure_size.to_le_bytes()[..])
    }

    /// `Ok(self)` for success (and the given benign statuses), else the status as an error.
    pub fn ok_or_status(self, also_ok: &[NtStatus]) -> Result<Response> {
        let s = self.status();
        if s == NtStatus::SUCCESS || also_ok.contains(&s) {
            Ok(self)
        } else {
            Err(Error::Status(s))
        }
    }
}

/// The sending half.
pub struct Sender {
    stream: TcpStream,
    credits: Arc<Credits>,
    security: Security,
    nonces: NonceSequence,
    buf: Vec<u8>,
    /// When set, the next sent message is copied to `captured` (for the preauth hash).
    pub capture: bool,
    pub captured: Vec<u8>,
    /// When set, the next message goes out only up to this many bytes (framing included): a
    /// peer that dies in the middle of a message, for fault tests.
    cut_after_bytes: Option<usize>,
}

/// The receiving half.
pub struct Receiver {
    stream: BufReader<TcpStream>,
    credits: Arc<Credits>,
    security: Security,
    buf: Vec<u8>,
}

/// A connection used synchronously (setup); [`Conn::split`] for the pipelined data phase.
pub struct Conn {
    pub tx: Sender,
    pub rx: Receiver,
    pub peer: SocketAddr,
    /// The channel's number in its job (0: the session's first connection).
    pub channel: usize,
}

impl Conn {
    pub fn connect(addr: SocketAddr) -> Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        stream.set_nodelay(true)?;
        let credits = Arc::new(Credits {
            state: Mutex::new(CreditState {
                available: 1,
                next_message_id: 0,
                closed: false,
            }),
            granted: Condvar::new(),
        });
        let rx_stream = stream.try_clone()?;
        Ok(Conn {
            tx: Sender {
                stream,
                credits: credits.clone(),
                security: Security::default(),
                nonces: NonceSequence::new(rand::random()),
                buf: Vec::new(),
                capture: false,
                captured: Vec::new(),
                cut_after_bytes: None,
            },
            rx: Receiver {
                stream: BufReader::with_capacity(256 * 1024, rx_stream),
                credits,
                security: Security::default(),
                buf: Vec::new(),
            },
            peer: addr,
            channel: 0,
        })
    }

    /// This end's address (its port tells the channel apart in packet filters).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.tx.stream.local_addr()?)
    }

    pub fn set_security(&mut self, s: Security) {
        self.tx.security = s.clone();
        self.rx.security = s;
    }

    pub fn security(&self) -> &Security {
        &self.tx.security
    }

    /// The socket, for socket options a test needs (SO_LINGER to reset the connection).
    pub fn socket(&self) -> &TcpStream {
        &self.tx.stream
    }

    pub fn set_session_id(&mut self, id: u64) {
        self.tx.security.session_id = id;
        self.rx.security.session_id = id;
    }

    /// Send one request and wait for its final response (interim STATUS_PENDING skipped).
    pub fn call(&mut self, req: Request) -> Result<Response> {
        let id = self.tx.send(req)?;
        loop {
            let resp = self.rx.recv()?;
            if resp.header.message_id != id {
                return Err(Error::Protocol(format!(
                    "response for message {} while waiting for {id}",
                    resp.header.message_id
                )));
            }
            if !is_interim(&resp) {
                return Ok(resp);
            }
        }
    }

    /// Like [`Conn::call`], then fails on any status but success.
    pub fn call_ok(&mut self, req: Request) -> Result<Response> {
        self.call(req)?.ok_or_status(&[])
    }

    pub fn split(self) -> (Sender, Receiver) {
        (self.tx, self.rx)
    }
}

/// An interim response (MS-SMB2 3.3.4.2): the final one follows with the same message id.
pub fn is_interim(r: &Response) -> bool {
    r.header.is_async() && r.status() == NtStatus::PENDING
}

impl Sender {
    /// Frame, protect and send `req`; returns its message id.
    pub fn send(&mut self, req: Request) -> Result<u64> {
        self.send_registered(req, |_| {})
    }

    /// Like [`Sender::send`], calling `register` with the message id before the request goes
    /// out (so the response cannot overtake the bookkeeping).
    pub fn send_registered(&mut self, mut req: Request, register: impl FnOnce(u64)) -> Result<u64> {
        let message_id = self.credits.acquire(req.credit_charge)?;
        register(message_id);
        let sec = &self.security;
        let header = Header {
            credit_charge: req.credit_charge,
            status: 0,
            command: req.command as u16,
            credits: CREDIT_REQUEST.max(req.credit_charge),
            flags: req.flags,
            next_command: 0,
            message_id,
            async_id: 0,
            process_id: 0xFEFF,
            tree_id: req.tree_id,
            session_id: sec.session_id,
            signature: [0; 16],
        };
        header.write_into(&mut req.msg[..HEADER_BYTES]);
        if let Some(enc) = &sec.encryptor {
            let len = TRANSFORM_HEADER_BYTES + req.msg.len();
            self.buf.clear();
            self.buf
                .resize(FRAME_HEADER_BYTES + TRANSFORM_HEADER_BYTES, 0);
            self.buf.extend_from_slice(&req.msg);
            write_frame_header(&mut self.buf[..FRAME_HEADER_BYTES], len);
            let nonce = self.nonces.next(enc.cipher());
            enc.encrypt_in_place(&nonce, sec.session_id, &mut self.buf[FRAME_HEADER_BYTES..]);
            let bufs = [std::io::IoSlice::new(&self.buf)];
            write_all_vectored(&mut self.stream, &bufs, self.cut_after_bytes.take())?;
            return Ok(message_id);
        }
        let sign = sec.sign_requests || req.flags & flags::SIGNED != 0;
        if let (true, Some(signer)) = (sign, &sec.signer) {
            req.msg[16..20].copy_from_slice(&(req.flags | flags::SIGNED).to_le_bytes());
            signer.sign(&mut req.msg);
        }
        if self.capture {
            self.capture = false;
            self.captured = req.msg.clone();
        }
        let mut frame = [0u8; FRAME_HEADER_BYTES];
        write_frame_header(&mut frame, req.msg.len());
        let bufs = [
            std::io::IoSlice::new(&frame),
            std::io::IoSlice::new(&req.msg),
        ];
        write_all_vectored(&mut self.stream, &bufs, self.cut_after_bytes.take())?;
        Ok(message_id)
    }

    /// Send only the first `after_bytes` bytes of the next message (its frame header counted).
    pub fn cut_next_send(&mut self, after_bytes: usize) {
        self.cut_after_bytes = Some(after_bytes);
    }

    pub fn set_security(&mut self, s: Security) {
        self.security = s;
    }

    /// Take `charge` credits and return the first message id they cover, for a request the
    /// caller frames itself ([`Sender::send_raw`]).
    pub fn reserve_message_ids(&mut self, charge: u16) -> Result<u64> {
        self.credits.acquire(charge)
    }

    /// Write `bytes` to the socket as they are: a hand-made frame, possibly malformed (tests of
    /// the server's handling of hostile input).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes)?;
        Ok(())
    }

    /// The next nonce for an encrypted request on this connection.
    pub fn next_nonce(&mut self, cipher: smb3d_protocol::dialect::Cipher) -> [u8; 16] {
        self.nonces.next(cipher)
    }

    /// Wake anyone waiting for credits; the connection is going away.
    pub fn close(&self) {
        self.credits.close();
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// Write `bufs` in full, or only their first `cut_after` bytes.
fn write_all_vectored(
    stream: &mut TcpStream,
    bufs: &[std::io::IoSlice<'_>],
    cut_after: Option<usize>,
) -> Result<()> {
    if let Some(limit) = cut_after {
        let mut left = limit;
        for b in bufs {
            let n = left.min(b.len());
            stream.write_all(&b[..n])?;
            left -= n;
        }
        return Ok(());
    }
    let total: usize = bufs.iter().map(|b| b.len()).sum();
    let written = stream.write_vectored(bufs)?;
    if written == total {
        return Ok(());
    }
    // Partial write: finish piece by piece.
    let mut skip = written;
    for b in bufs {
        if skip >= b.len() {
            skip -= b.len();
            continue;
        }
        stream.write_all(&b[skip..])?;
        skip = 0;
    }
    Ok(())
}

impl Receiver {
    /// Read, decrypt and check the next response. Credits it grants are added to the window.
    pub fn recv(&mut self) -> Result<Response> {
        let mut head = [0u8; FRAME_HEADER_BYTES];
        self.stream.read_exact(&mut head)?;
        let len = match parse_frame_header(&head, MAX_PDU_BYTES) {
            Frame::Pdu { len } => len,
            _ => return Err(Error::Protocol("bad transport frame header".into())),
        };
        let mut pdu = std::mem::take(&mut self.buf);
        pdu.clear();
        pdu.resize(len, 0);
        self.stream.read_exact(&mut pdu)?;
        let mut was_encrypted = false;
        let msg = if TransformHeader::is_transform(&pdu) {
            let dec = self
                .security
                .decryptor
                .as_ref()
                .ok_or_else(|| Error::Protocol("encrypted response without keys".into()))?;
            let range = dec.decrypt_in_place(&mut pdu)?;
            was_encrypted = true;
            pdu.drain(..range.start);
            pdu.truncate(range.len());
            pdu
        } else {
            pdu
        };
        let header = Header::decode(&msg)?;
        self.credits.grant(header.credits);
        if header.next_command != 0 {
            return Err(Error::Protocol("compound response not expected".into()));
        }
        if !was_encrypted && header.is_signed() {
            if let Some(signer) = &self.security.signer {
                if !signer.verify(&msg) {
                    return Err(Error::Protocol(format!(
                        "bad signature on response to message {}",
                        header.message_id
                    )));
                }
            }
        }
        Ok(Response {
            header,
            msg,
            was_encrypted,
        })
    }

    pub fn set_security(&mut self, s: Security) {
        self.security = s;
    }

    /// The socket, e.g. to watch for the server closing it.
    pub fn stream(&self) -> &TcpStream {
        self.stream.get_ref()
    }

    /// Bound how long [`Receiver::recv`] waits (None: forever).
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        self.stream.get_ref().set_read_timeout(timeout)?;
        Ok(())
    }

    /// Hand a finished response's buffer back for reuse.
    pub fn recycle(&mut self, msg: Vec<u8>) {
        if msg.capacity() > self.buf.capacity() {
            self.buf = msg;
        }
    }

    pub fn close(&self) {
        self.credits.close();
    }
}
