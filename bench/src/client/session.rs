//! Establishing a session: NEGOTIATE 3.1.1 with the preauth integrity hash, NTLMv2 SESSION_SETUP,
//! key derivation, TREE_CONNECT, and binding further channels (MS-SMB2 3.2.4.2, 3.2.5.3).

use std::net::SocketAddr;
use std::sync::Arc;

use smb3d_protocol::crypto::{derive_session_keys, kdf_sp800_108, Encryptor, PreauthHash, Signer};
use smb3d_protocol::dialect::{Cipher, Dialect, SigningAlgorithm};
use smb3d_protocol::header::Command;
use smb3d_protocol::messages::negotiate::{capabilities, security_mode};
use smb3d_protocol::messages::session_setup::{session_flags, FLAG_BINDING};
use smb3d_protocol::NtStatus;

use super::conn::{Conn, Error, Request, Response, Result, Security};
use super::msgs;
use super::ntlm::{Credentials, NtlmClient};

/// How to log in and protect messages.
#[derive(Clone, Debug)]
pub struct LoginOptions {
    pub creds: Credentials,
    /// Sign every request even if the server does not require it.
    pub sign: bool,
    /// Encrypt every request with this cipher.
    pub encrypt: Option<Cipher>,
    /// Signing algorithm to offer first.
    pub signing: SigningAlgorithm,
}

/// What NEGOTIATE settled for this connection.
pub struct Negotiated {
    pub reply: msgs::NegotiateReply,
    pub preauth: PreauthHash,
}

/// An authenticated session with its first channel and one tree connect.
pub struct Session {
    pub conn: Conn,
    pub session_id: u64,
    pub tree_id: u32,
    pub negotiated: msgs::NegotiateReply,
    pub signing: SigningAlgorithm,
    pub cipher: Option<Cipher>,
    /// Every channel of the session uses the same ClientGuid (Samba routes by it).
    client_guid: [u8; 16],
    session_signer: Arc<Signer>,
    encrypt: bool,
    encryptor: Option<Arc<Encryptor>>,
    decryptor: Option<Arc<Encryptor>>,
    sign_requests: bool,
}

/// Samba picks a cipher only for clients that announce SMB2_GLOBAL_CAP_ENCRYPTION.
const CLIENT_CAPS: u32 = capabilities::DFS
    | capabilities::LARGE_MTU
    | capabilities::MULTI_CHANNEL
    | capabilities::ENCRYPTION;

fn now_filetime() -> u64 {
    let since_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    116_444_736_000_000_000 + since_unix.as_nanos() as u64 / 100
}

/// NEGOTIATE for 3.1.1 only (MS-SMB2 3.2.4.2.2.2), updating the connection's preauth hash.
pub fn negotiate(
    conn: &mut Conn,
    opts: &LoginOptions,
    client_guid: [u8; 16],
) -> Result<Negotiated> {
    // Servers pick by their own preference: to measure one cipher, offer only that one.
    let ciphers = match opts.encrypt {
        Some(c) => vec![c],
        None => vec![
            Cipher::Aes128Gcm,
            Cipher::Aes256Gcm,
            Cipher::Aes128Ccm,
            Cipher::Aes256Ccm,
        ],
    };
    // Likewise for signing: offer the chosen algorithm only.
    let algs = [opts.signing];
    let offer = msgs::NegotiateOffer {
        security_mode: security_mode::SIGNING_ENABLED,
        capabilities: CLIENT_CAPS,
        client_guid,
        dialects: &[Dialect::Smb311 as u16],
        salt: rand::random(),
        ciphers: &ciphers,
        signing_algorithms: &algs,
    };
    let mut req = Request::new(Command::Negotiate, 0);
    msgs::encode_negotiate(&offer, &mut req.msg);
    conn.tx.capture = true;
    let resp = conn.call_ok(req)?;
    let mut preauth = PreauthHash::new();
    preauth.update(&std::mem::take(&mut conn.tx.captured));
    preauth.update(&resp.msg);
    let reply = msgs::decode_negotiate(&resp.msg)?;
    if reply.dialect != Dialect::Smb311 as u16 {
        return Err(Error::Protocol(format!(
            "server chose dialect 0x{:04x}, smb3bench speaks 3.1.1 only",
            reply.dialect
        )));
    }
    if let Some(c) = opts.encrypt {
        if reply.cipher != Some(c) {
            return Err(Error::Protocol(format!(
                "server does not support cipher {c:?} (chose {:?})",
                reply.cipher
            )));
        }
    }
    Ok(Negotiated { reply, preauth })
}

/// One NTLM SESSION_SETUP exchange; returns the final response, the exported session key and
/// the preauth hash over the exchange (for 3.1.1 key derivation).
pub fn authenticate(
    conn: &mut Conn,
    creds: &Credentials,
    flags: u8,
    mut hash: PreauthHash,
) -> Result<(Response, [u8; 16], PreauthHash)> {
    let ntlm = NtlmClient::new();
    let mut req = Request::new(Command::SessionSetup, 0);
    msgs::encode_session_setup(
        flags,
        security_mode::SIGNING_ENABLED as u8,
        &ntlm.first_token(),
        &mut req.msg,
    );
    conn.tx.capture = true;
    let resp = conn.call(req)?;
    hash.update(&std::mem::take(&mut conn.tx.captured));
    if resp.status() != NtStatus::MORE_PROCESSING_REQUIRED {
        return Err(Error::Status(resp.status()));
    }
    hash.update(&resp.msg);
    let session_id = resp.header.session_id;
    let (_, server_token) = msgs::decode_session_setup(&resp.msg)?;
    let (token, exported) = ntlm.second_token(
        &server_token,
        creds,
        rand::random(),
        rand::random(),
        now_filetime(),
    )?;
    conn.set_session_id(session_id);
    let mut req = Request::new(Command::SessionSetup, 0);
    msgs::encode_session_setup(
        flags,
        security_mode::SIGNING_ENABLED as u8,
        &token,
        &mut req.msg,
    );
    conn.tx.capture = true;
    let resp = conn.call(req)?;
    hash.update(&std::mem::take(&mut conn.tx.captured));
    let resp = resp.ok_or_status(&[])?;
    Ok((resp, exported, hash))
}

/// Connect, negotiate, log in, derive keys and connect to `share` (`\\host\share`).
pub fn login(addr: SocketAddr, unc: &str, opts: &LoginOptions) -> Result<Session> {
    login_as(addr, unc, opts, rand::random())
}

/// [`login`] as the client `client_guid`: a client reconnecting after a lost connection keeps
/// its ClientGuid, and a server with worker processes places a client by it.
pub fn login_as(
    addr: SocketAddr,
    unc: &str,
    opts: &LoginOptions,
    client_guid: [u8; 16],
) -> Result<Session> {
    let mut conn = Conn::connect(addr)?;
    let neg = negotiate(&mut conn, opts, client_guid)?;
    let (resp, exported, hash) = authenticate(&mut conn, &opts.creds, 0, neg.preauth)?;
    let (flags, _) = msgs::decode_session_setup(&resp.msg)?;
    if flags & (session_flags::IS_GUEST | session_flags::IS_NULL) != 0 {
        return Err(Error::Protocol(
            "server made the session a guest/anonymous one".into(),
        ));
    }
    let cipher = neg.reply.cipher;
    let keys = derive_session_keys(Dialect::Smb311, cipher, &exported, Some(&hash));
    let signing = neg
        .reply
        .signing_algorithm
        .unwrap_or(SigningAlgorithm::AesCmac);
    let signer = Arc::new(Signer::new(signing, &keys.signing));
    // MS-SMB2 3.3.5.5.3: the final SESSION_SETUP response of 3.1.1 is signed.
    if resp.header.is_signed() && !signer.verify(&resp.msg) {
        return Err(Error::Protocol(
            "bad signature on SESSION_SETUP response".into(),
        ));
    }
    let encrypt_session = flags & session_flags::ENCRYPT_DATA != 0;
    let (encryptor, decryptor) = match cipher {
        Some(c) => (
            Some(Arc::new(Encryptor::new(c, &keys.decryption))),
            Some(Arc::new(Encryptor::new(c, &keys.encryption))),
        ),
        None => (None, None),
    };
    let sign_requests = opts.sign || neg.reply.security_mode & security_mode::SIGNING_REQUIRED != 0;
    let mut s = Session {
        conn,
        session_id: resp.header.session_id,
        tree_id: 0,
        negotiated: neg.reply,
        signing,
        cipher,
        client_guid,
        session_signer: signer,
        encrypt: opts.encrypt.is_some() || encrypt_session,
        encryptor,
        decryptor,
        sign_requests,
    };
    if s.encrypt && s.encryptor.is_none() {
        return Err(Error::Protocol(
            "encryption requested but no cipher negotiated".into(),
        ));
    }
    let sec = s.security_for(s.session_signer.clone());
    s.conn.set_security(sec);
    let mut req = Request::new(Command::TreeConnect, 0);
    // MS-SMB2 3.2.4.1.1: with 3.1.1 the client signs TREE_CONNECT even when signing is optional.
    req.flags = smb3d_protocol::header::flags::SIGNED;
    msgs::encode_tree_connect(unc, &mut req.msg);
    let resp = s.conn.call_ok(req)?;
    let share_flags = msgs::decode_tree_connect(&resp.msg)?;
    s.tree_id = resp.header.tree_id;
    if share_flags & msgs::SHAREFLAG_ENCRYPT_DATA != 0 && !s.encrypt {
        s.encrypt = true;
        let sec = s.security_for(s.session_signer.clone());
        s.conn.set_security(sec);
    }
    Ok(s)
}

impl Session {
    pub fn client_guid(&self) -> [u8; 16] {
        self.client_guid
    }

    /// The protection of a channel whose signing key is `signer`.
    fn security_for(&self, signer: Arc<Signer>) -> Security {
        Security {
            session_id: self.session_id,
            signer: Some(signer),
            sign_requests: self.sign_requests,
            encryptor: if self.encrypt {
                self.encryptor.clone()
            } else {
                None
            },
            decryptor: self.decryptor.clone(),
        }
    }

    pub fn encrypting(&self) -> bool {
        self.encrypt
    }

    pub fn supports_multichannel(&self) -> bool {
        self.negotiated.capabilities & capabilities::MULTI_CHANNEL != 0
    }

    /// Bind a new channel to this session over a new connection to `addr` (MS-SMB2 3.2.4.2.3
    /// with SMB2_SESSION_FLAG_BINDING): requests signed with the session's signing key, the
    /// channel's signing key derived from the bind's own preauth hash.
    pub fn bind(&self, addr: SocketAddr, opts: &LoginOptions) -> Result<Conn> {
        let mut conn = Conn::connect(addr)?;
        let neg = negotiate(&mut conn, opts, self.client_guid)?;
        if neg.reply.cipher != self.cipher || neg.reply.signing_algorithm != Some(self.signing) {
            return Err(Error::Protocol(
                "second connection negotiated different algorithms".into(),
            ));
        }
        // MS-SMB2 3.2.4.1.1: binding requests are signed with the session's signing key; the
        // final response is signed with the new channel's key, checked below.
        conn.tx.set_security(Security {
            session_id: self.session_id,
            signer: Some(self.session_signer.clone()),
            sign_requests: true,
            encryptor: None,
            decryptor: None,
        });
        conn.rx.set_security(Security {
            session_id: self.session_id,
            ..Security::default()
        });
        let (resp, exported, hash) =
            authenticate(&mut conn, &opts.creds, FLAG_BINDING, neg.preauth)?;
        let mut key = [0u8; 16];
        kdf_sp800_108(&exported, b"SMBSigningKey\0", hash.as_bytes(), &mut key);
        let channel_signer = Arc::new(Signer::new(self.signing, &key));
        if resp.header.is_signed() && !channel_signer.verify(&resp.msg) {
            return Err(Error::Protocol(
                "bad signature on binding SESSION_SETUP response".into(),
            ));
        }
        conn.set_security(self.security_for(channel_signer));
        Ok(conn)
    }

    /// The server's interfaces (FSCTL_QUERY_NETWORK_INTERFACE_INFO, MS-SMB2 3.3.5.15.11).
    pub fn query_interfaces(&mut self) -> Result<Vec<msgs::NetworkInterface>> {
        let mut req = Request::new(Command::Ioctl, self.tree_id);
        msgs::encode_ioctl(
            smb3d_protocol::messages::ioctl::ctl_code::FSCTL_QUERY_NETWORK_INTERFACE_INFO,
            &[0xff; 16],
            65536,
            &mut req.msg,
        );
        let resp = self.conn.call_ok(req)?;
        Ok(msgs::decode_interfaces(msgs::decode_ioctl(&resp.msg)?)?)
    }
}
