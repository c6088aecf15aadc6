//! Seed corpora for the fuzz targets: small valid messages, each checked against the decoder
//! it is meant for, written to `fuzz/corpus/TARGET/NAME`. Run from anywhere; paths are
//! relative to this crate's manifest.

#[path = "../../src/shared.rs"]
#[allow(dead_code)]
mod shared;

mod captures;

use shared::*;
use smb3d_protocol::auth::{self, ntlmssp, AuthStep, ServerAuth, ServerAuthOptions};
use smb3d_protocol::crypto::{Encryptor, Signer};
use smb3d_protocol::framing::write_frame_header;
use smb3d_protocol::header::{Command, Header};
use smb3d_protocol::info::{ea, file, security};
use smb3d_protocol::messages::{self as m, query_directory, query_info, set_info};
use smb3d_protocol::transform::TRANSFORM_HEADER_BYTES;
use smb3d_protocol::wire::{string_to_utf16le, Writer};
use std::path::{Path, PathBuf};

const FILE_ID: [u8; 16] = [7; 16];

fn corpus_dir(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("create corpus dir");
    dir
}

fn write_seed(target: &str, name: &str, bytes: &[u8]) {
    std::fs::write(corpus_dir(target).join(name), bytes).expect("write seed");
}

/// A request: 64-byte header for `command`, then `body`.
fn message(command: Command, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Header {
        command: command as u16,
        credits: 1,
        credit_charge: 1,
        message_id: 1,
        tree_id: 1,
        session_id: 0x1000_0000_0001,
        ..Default::default()
    }
    .encode(&mut out);
    out.put_bytes(body);
    out
}

fn negotiate_311() -> Vec<u8> {
    let dialects = [0x0202u16, 0x0210, 0x0300, 0x0302, 0x0311];
    let mut b = Vec::new();
    b.put_u16(36);
    b.put_u16(dialects.len() as u16);
    b.put_u16(1); // SecurityMode: signing enabled
    b.put_u16(0);
    b.put_u32(0x7f);
    b.put_bytes(&[0xab; 16]);
    let offset_at = b.len();
    b.put_u32(0);
    b.put_u16(3);
    b.put_u16(0);
    for d in dialects {
        b.put_u16(d);
    }
    let contexts: [(u16, Vec<u8>); 3] = [
        (1, [&[1u8, 0, 32, 0, 1, 0][..], &[0x33; 32]].concat()), // SHA-512, 32-byte salt
        (2, vec![4, 0, 2, 0, 1, 0, 4, 0, 3, 0]), // GCM-128, CCM-128, GCM-256, CCM-256
        (8, vec![3, 0, 2, 0, 1, 0, 0, 0]),       // AES-GMAC, AES-CMAC, HMAC-SHA256
    ];
    let mut msg = message(Command::Negotiate, &b);
    msg.align_to(8);
    let offset = msg.len() as u32;
    msg[64 + offset_at..64 + offset_at + 4].copy_from_slice(&offset.to_le_bytes());
    for (i, (kind, data)) in contexts.iter().enumerate() {
        if i > 0 {
            msg.align_to(8);
        }
        msg.put_u16(*kind);
        msg.put_u16(data.len() as u16);
        msg.put_u32(0);
        msg.put_bytes(data);
    }
    msg
}

fn negotiate_2x() -> Vec<u8> {
    let mut b = Vec::new();
    b.put_u16(36);
    b.put_u16(2);
    b.put_u16(1);
    b.put_u16(0);
    b.put_u32(0);
    b.put_bytes(&[0xcd; 16]);
    b.put_u64(0);
    b.put_u16(0x0202);
    b.put_u16(0x0210);
    message(Command::Negotiate, &b)
}

fn validate_negotiate_input() -> Vec<u8> {
    let mut v = Vec::new();
    v.put_u32(0x7f);
    v.put_bytes(&[0xab; 16]);
    v.put_u16(1);
    v.put_u16(2);
    v.put_u16(0x0300);
    v.put_u16(0x0302);
    v
}

fn session_setup(token: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_u16(25);
    b.put_u8(0);
    b.put_u8(1);
    b.put_u32(1);
    b.put_u32(0);
    b.put_u16(64 + 24);
    b.put_u16(token.len() as u16);
    b.put_u64(0);
    b.put_bytes(token);
    message(Command::SessionSetup, &b)
}

fn tree_connect(path: &str) -> Vec<u8> {
    let path = string_to_utf16le(path);
    let mut b = Vec::new();
    b.put_u16(9);
    b.put_u16(0);
    b.put_u16(64 + 8);
    b.put_u16(path.len() as u16);
    b.put_bytes(&path);
    message(Command::TreeConnect, &b)
}

fn create_contexts() -> Vec<u8> {
    // Encoded like a response's chain: the layout rules are the same both ways.
    let lease = [&[0x11u8; 16][..], &[7, 0, 0, 0], &[0; 4], &[0; 8]].concat();
    let dh2q = [&[0u8; 4][..], &[0; 4], &[0; 8], &[0x22; 16]].concat();
    let mut out = Vec::new();
    m::create::encode_contexts(
        &[
            (b"MxAc", &[][..]),
            (b"QFid", &[][..]),
            (b"RqLs", &lease),
            (b"DH2Q", &dh2q),
        ],
        &mut out,
    );
    out
}

fn create(name: &str, contexts: &[u8]) -> Vec<u8> {
    let name = string_to_utf16le(name);
    let mut b = Vec::new();
    b.put_u16(57);
    b.put_u8(0);
    b.put_u8(0xff); // lease
    b.put_u32(2);
    b.put_u64(0);
    b.put_u64(0);
    b.put_u32(0x0012_019f);
    b.put_u32(0x80);
    b.put_u32(7);
    b.put_u32(3); // FILE_OPEN_IF
    b.put_u32(0x40);
    b.put_u16(64 + 56);
    b.put_u16(name.len() as u16);
    let ctx_at = b.len();
    b.put_u32(0);
    b.put_u32(contexts.len() as u32);
    b.put_bytes(&name);
    if name.is_empty() {
        b.put_u8(0);
    }
    if !contexts.is_empty() {
        while (64 + b.len()) % 8 != 0 {
            b.put_u8(0);
        }
        let off = (64 + b.len()) as u32;
        b[ctx_at..ctx_at + 4].copy_from_slice(&off.to_le_bytes());
        b.put_bytes(contexts);
    }
    message(Command::Create, &b)
}

fn file_id_body(command: Command, structure_size: u16) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_u16(structure_size);
    b.put_u16(if command == Command::Close { 1 } else { 0 });
    b.put_u32(0);
    b.put_bytes(&FILE_ID);
    message(command, &b)
}

fn read() -> Vec<u8> {
    let mut b = Vec::new();
    b.put_u16(49);
    b.put_u8(0x50);
    b.put_u8(0);
    b.put_u32(65536);
    b.put_u64(4096);
    b.put_bytes(&FILE_ID);
    b.put_u32(1);
    b.put_u32(0);
    b.put_u32(0);
    b.put_u16(0);
    b.put_u16(0);
    b.put_u8(0);
    message(Command::Read, &b)
}

fn write(data: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_u16(49);
    b.put_u16(64 + 48);
    b.put_u32(data.len() as u32);
    b.put_u64(512);
    b.put_bytes(&FILE_ID);
    b.put_u32(0);
    b.put_u32(0);
    b.put_u16(0);
    b.put_u16(0);
    b.put_u32(0);
    b.put_bytes(data);
    message(Command::Write, &b)
}

fn lock(elements: &[(u64, u64, u32)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_u16(48);
    b.put_u16(elements.len() as u16);
    b.put_u32(0);
    b.put_bytes(&FILE_ID);
    for &(offset, len, flags) in elements {
        b.put_u64(offset);
        b.put_u64(len);
        b.put_u32(flags);
        b.put_u32(0);
    }
    message(Command::Lock, &b)
}

fn ioctl(ctl_code: u32, input: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_u16(57);
    b.put_u16(0);
    b.put_u32(ctl_code);
    b.put_bytes(&[0xff; 16]);
    b.put_u32(if input.is_empty() { 0 } else { 64 + 56 });
    b.put_u32(input.len() as u32);
    b.put_u32(0);
    b.put_u32(0);
    b.put_u32(0);
    b.put_u32(65536);
    b.put_u32(1); // SMB2_0_IOCTL_IS_FSCTL
    b.put_u32(0);
    b.put_bytes(input);
    message(Command::Ioctl, &b)
}

fn echo() -> Vec<u8> {
    message(Command::Echo, &[4, 0, 0, 0])
}

fn query_directory(pattern: &str) -> Vec<u8> {
    let mut b = Vec::new();
    query_directory::QueryDirectoryRequest {
        file_information_class: 37, // FileIdBothDirectoryInformation
        flags: 1,
        file_index: 0,
        file_id: FILE_ID,
        file_name: pattern.into(),
        output_buffer_length: 65536,
    }
    .encode(&mut b);
    message(Command::QueryDirectory, &b)
}

fn query_info(info_type: u8, class: u8, input: Vec<u8>) -> Vec<u8> {
    let mut b = Vec::new();
    query_info::QueryInfoRequest {
        info_type,
        file_info_class: class,
        output_buffer_length: 4096,
        input_buffer: input,
        additional_information: 0,
        flags: 0,
        file_id: FILE_ID,
    }
    .encode(&mut b);
    message(Command::QueryInfo, &b)
}

fn set_info(info_type: u8, class: u8, buffer: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    set_info::SetInfoRequest {
        info_type,
        file_info_class: class,
        additional_information: if info_type == 3 { 4 } else { 0 },
        file_id: FILE_ID,
        buffer,
    }
    .encode(&mut b);
    message(Command::SetInfo, &b)
}

fn oplock_break_ack() -> Vec<u8> {
    let mut b = Vec::new();
    b.put_u16(24);
    b.put_u8(0);
    b.put_u8(0);
    b.put_u32(0);
    b.put_bytes(&FILE_ID);
    message(Command::OplockBreak, &b)
}

fn rename_info(target: &str) -> Vec<u8> {
    let mut v = Vec::new();
    file::RenameInformation {
        replace_if_exists: true,
        root_directory: 0,
        file_name: string_to_utf16le(target),
    }
    .encode(&mut v);
    v
}

fn basic_info() -> Vec<u8> {
    let mut v = Vec::new();
    let times = smb3d_protocol::info::Times {
        last_write: 133_500_000_000_000_000,
        ..Default::default()
    };
    file::BasicInformation::from_times(&times, 0x20).encode(&mut v);
    v
}

fn ea_list() -> Vec<u8> {
    let mut v = Vec::new();
    ea::encode_list(
        &[
            ea::FullEa {
                flags: 0,
                name: b"user.one".to_vec(),
                value: b"first value".to_vec(),
            },
            ea::FullEa {
                flags: 0x80,
                name: b"TWO".to_vec(),
                value: vec![1, 2, 3],
            },
        ],
        &mut v,
    );
    v
}

fn get_ea_list() -> Vec<u8> {
    let mut v = Vec::new();
    ea::encode_get_list(&[b"user.one", b"TWO"], &mut v);
    v
}

fn security_descriptor() -> Vec<u8> {
    security::SecurityDescriptor::simple(
        security::Sid::unix_user(1000),
        security::Sid::unix_group(100),
    )
    .to_bytes()
}

fn u64_le(v: u64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// Every request seed: (name, message), checked by decoding.
fn request_seeds() -> Vec<(&'static str, u16, Vec<u8>)> {
    let ntlm_negotiate = ntlm_negotiate_message(ntlmssp::flags::UNICODE);
    vec![
        ("negotiate_311", 0x00, negotiate_311()),
        ("negotiate_2x", 0x00, negotiate_2x()),
        ("session_setup", 0x01, session_setup(&ntlm_negotiate)),
        ("tree_connect", 0x03, tree_connect("\\\\filer\\share")),
        (
            "tree_connect_ipc",
            0x03,
            tree_connect("\\\\127.0.0.1\\IPC$"),
        ),
        (
            "create_contexts",
            0x05,
            create("dir\\file.txt", &create_contexts()),
        ),
        ("create_root", 0x05, create("", &[])),
        ("close", 0x06, file_id_body(Command::Close, 24)),
        ("flush", 0x07, file_id_body(Command::Flush, 24)),
        ("read", 0x08, read()),
        ("write", 0x09, write(b"hello, world")),
        ("lock", 0x0A, lock(&[(0, 10, 2), (100, 1, 4)])),
        (
            "ioctl_validate",
            0x0B,
            ioctl(0x0014_0204, &validate_negotiate_input()),
        ),
        ("ioctl_resume_key", 0x0B, ioctl(0x0014_0078, &[])),
        ("echo", 0x0D, echo()),
        ("query_directory", 0x0E, query_directory("*.txt")),
        ("query_info_all", 0x10, query_info(1, 18, Vec::new())),
        ("query_info_ea", 0x10, query_info(1, 15, get_ea_list())),
        ("query_info_fs", 0x10, query_info(2, 1, Vec::new())),
        (
            "set_info_rename",
            0x11,
            set_info(1, 10, &rename_info("new\\name.txt")),
        ),
        ("set_info_basic", 0x11, set_info(1, 4, &basic_info())),
        ("set_info_disposition", 0x11, set_info(1, 13, &[1])),
        ("set_info_eof", 0x11, set_info(1, 20, &u64_le(1 << 20))),
        ("set_info_ea", 0x11, set_info(1, 15, &ea_list())),
        (
            "set_info_security",
            0x11,
            set_info(3, 0, &security_descriptor()),
        ),
        ("oplock_break_ack", 0x12, oplock_break_ack()),
    ]
}

fn check_request(command: u16, msg: &[u8]) -> bool {
    use m::*;
    match command {
        0x00 => negotiate::NegotiateRequest::decode(msg).is_ok(),
        0x01 => session_setup::SessionSetupRequest::decode(msg).is_ok(),
        0x03 => tree_connect::TreeConnectRequest::decode(msg).is_ok_and(|r| r.share_name().is_ok()),
        0x05 => create::CreateRequest::decode(msg)
            .is_ok_and(|r| create::parse_contexts(r.contexts).is_ok()),
        0x06 => close::CloseRequest::decode(msg).is_ok(),
        0x07 => flush::decode_request(msg).is_ok(),
        0x08 => read::ReadRequest::decode(msg).is_ok(),
        0x09 => write::WriteRequest::decode(msg).is_ok(),
        0x0A => lock::LockRequest::decode(msg).is_ok(),
        0x0B => ioctl::IoctlRequest::decode(msg).is_ok(),
        0x0D => echo::decode_request(msg).is_ok(),
        0x0E => query_directory::QueryDirectoryRequest::decode(msg).is_ok(),
        0x10 => query_info::QueryInfoRequest::decode(msg).is_ok(),
        0x11 => set_info::SetInfoRequest::decode(msg).is_ok(),
        _ => oplock_break::OplockBreakAck::decode(msg).is_ok(),
    }
}

fn selector_of(command: u16) -> u8 {
    REQUEST_COMMANDS
        .iter()
        .position(|&c| c == command)
        .expect("command in REQUEST_COMMANDS") as u8
}

fn framed(msg: &[u8]) -> Vec<u8> {
    let mut out = vec![0; 4];
    write_frame_header(&mut out, msg.len());
    out.extend_from_slice(msg);
    out
}

/// Two messages chained with NextCommand (the second related).
fn compound(first: &[u8], second: &[u8]) -> Vec<u8> {
    let mut a = first.to_vec();
    a.align_to(8);
    let next = a.len() as u32;
    a[20..24].copy_from_slice(&next.to_le_bytes());
    let mut b = second.to_vec();
    b[16] |= 0x04; // SMB2_FLAGS_RELATED_OPERATIONS
    [a, b].concat()
}

fn smb1_negotiate() -> Vec<u8> {
    let mut v = vec![0xff, b'S', b'M', b'B', 0x72];
    v.resize(32, 0);
    v.push(0); // WordCount
    let dialects = b"\x02NT LM 0.12\0\x02SMB 2.002\0\x02SMB 2.???\0";
    v.put_u16(dialects.len() as u16);
    v.put_bytes(dialects);
    v
}

fn new_auth(allow_anonymous: bool) -> ServerAuth {
    let opts = ServerAuthOptions {
        netbios_name: "FILER".into(),
        dns_name: "filer.example".into(),
        allow_anonymous,
    };
    ServerAuth::new(opts, AUTH_CHALLENGE, AUTH_NOW_FILETIME)
}

struct OneUser;

impl auth::UserLookup for OneUser {
    fn nt_hash(&self, user: &str) -> Option<[u8; 16]> {
        user.eq_ignore_ascii_case(AUTH_USER)
            .then(|| auth::nt_hash(AUTH_PASSWORD))
    }
}

/// The server's NTLMSSP CHALLENGE for `first` (raw or inside a SPNEGO NegTokenResp).
fn challenge_for(first: &[u8], allow_anonymous: bool) -> Vec<u8> {
    let AuthStep::Continue { token } = new_auth(allow_anonymous).step(first, &OneUser) else {
        panic!("first auth token not accepted");
    };
    let at = token
        .windows(8)
        .position(|w| w == ntlmssp::SIGNATURE)
        .expect("NTLMSSP in the answer");
    token[at..].to_vec()
}

/// An auth seed; the selector byte (first length byte) also sets allow_anonymous, so the
/// first token's length parity must match `allow_anonymous`.
fn auth_seed(first: Vec<u8>, second: Vec<u8>, allow_anonymous: bool) -> (Vec<u8>, bool) {
    let mut first = first;
    if (first.len() & 1 == 1) != allow_anonymous {
        // Trailing bytes after the outer DER element / NTLMSSP message are ignored.
        first.push(0);
    }
    let mut auth = new_auth(allow_anonymous);
    let completes = matches!(auth.step(&first, &OneUser), AuthStep::Continue { .. })
        && matches!(auth.step(&second, &OneUser), AuthStep::Complete { .. });
    (join_tokens(&first, &second), completes)
}

fn auth_seeds() {
    let neg = ntlm_negotiate_message(ntlmssp::DEFAULT_CLIENT_FLAGS);
    let raw_challenge = challenge_for(&neg, false);
    let spnego_challenge = challenge_for(&spnego_init(&neg), false);
    let seeds = [
        (
            "raw_ntlmssp",
            auth_seed(neg.clone(), ntlm_authenticate(&raw_challenge, false), false),
        ),
        (
            "spnego",
            auth_seed(
                spnego_init(&neg),
                spnego_resp(&ntlm_authenticate(&spnego_challenge, false)),
                false,
            ),
        ),
        (
            "spnego_anonymous",
            auth_seed(
                spnego_init(&neg),
                spnego_resp(&ntlm_authenticate(&spnego_challenge, true)),
                true,
            ),
        ),
        (
            "spnego_no_mech_token",
            auth_seed(auth::negotiate_token(), Vec::new(), false),
        ),
    ];
    for (name, (bytes, completes)) in seeds {
        println!("auth/{name}: {} bytes, completes: {completes}", bytes.len());
        write_seed("auth", name, &bytes);
    }
}

fn transform_seeds() {
    let messages = [
        ("echo", echo()),
        ("read", read()),
        ("write", write(b"data")),
    ];
    for selector in 0u8..4 {
        let encryptor = Encryptor::new(cipher_for(selector), &FUZZ_KEY);
        for (name, msg) in &messages {
            let mut buf = vec![0u8; TRANSFORM_HEADER_BYTES];
            buf.extend_from_slice(msg);
            let nonce = [selector + 1; 16];
            encryptor.encrypt_in_place(&nonce, 0x1000_0000_0001, &mut buf);
            assert!(encryptor.decrypt_in_place(&mut buf.clone()).is_ok());
            let seed = [&[selector][..], &buf].concat();
            write_seed(
                "transform",
                &format!("{name}_{:?}", cipher_for(selector)),
                &seed,
            );
        }
    }
}

fn signing_seeds() {
    for selector in 0u8..3 {
        let signer = Signer::new(signing_algorithm_for(selector), &FUZZ_KEY[..16]);
        for (name, mut msg) in [("echo", echo()), ("write", write(b"signed data"))] {
            msg[16] |= 0x08; // SMB2_FLAGS_SIGNED
            signer.sign(&mut msg);
            assert!(signer.verify(&msg));
            let alg = signing_algorithm_for(selector);
            write_seed(
                "signing",
                &format!("{name}_{alg:?}"),
                &[&[selector][..], &msg].concat(),
            );
        }
    }
}

fn check_info(decoder: InfoDecoder, b: &[u8]) -> bool {
    use smb3d_protocol::info::fs;
    match decoder {
        InfoDecoder::Rename => file::RenameInformation::decode(b).is_ok(),
        InfoDecoder::Basic => file::BasicInformation::decode(b).is_ok(),
        InfoDecoder::Disposition => file::DispositionInformation::decode(b).is_ok(),
        InfoDecoder::DispositionEx => file::DispositionInformationEx::decode(b).is_ok(),
        InfoDecoder::EndOfFile => file::EndOfFileInformation::decode(b).is_ok(),
        InfoDecoder::Allocation => file::AllocationInformation::decode(b).is_ok(),
        InfoDecoder::Position => file::PositionInformation::decode(b).is_ok(),
        InfoDecoder::Mode => file::ModeInformation::decode(b).is_ok(),
        InfoDecoder::FullEaList => ea::decode_list(b).is_ok(),
        InfoDecoder::GetEaList => ea::decode_get_list(b).is_ok(),
        InfoDecoder::SecurityDescriptor => security::RawDescriptor::decode(b).is_ok(),
        InfoDecoder::FsControl => fs::ControlInformation::decode(b).is_ok(),
        InfoDecoder::Name => file::NameInformation::decode(b).is_ok(),
    }
}

fn info_seeds() {
    let seeds: Vec<(InfoDecoder, &str, Vec<u8>)> = vec![
        (InfoDecoder::Rename, "rename", rename_info("dir\\new.txt")),
        (
            InfoDecoder::Rename,
            "rename_stream",
            rename_info(":alt:$DATA"),
        ),
        (InfoDecoder::Basic, "basic", basic_info()),
        (InfoDecoder::Disposition, "disposition", vec![1]),
        (
            InfoDecoder::DispositionEx,
            "disposition_ex",
            vec![0x13, 0, 0, 0],
        ),
        (InfoDecoder::EndOfFile, "eof", u64_le(4096)),
        (InfoDecoder::Allocation, "allocation", u64_le(8192)),
        (InfoDecoder::Position, "position", u64_le(17)),
        (InfoDecoder::Mode, "mode", vec![2, 0, 0, 0]),
        (InfoDecoder::FullEaList, "ea_list", ea_list()),
        (InfoDecoder::GetEaList, "get_ea_list", get_ea_list()),
        (
            InfoDecoder::SecurityDescriptor,
            "security_descriptor",
            security_descriptor(),
        ),
        (InfoDecoder::FsControl, "fs_control", vec![0; 48]),
        (
            InfoDecoder::Name,
            "name",
            [&[8u8, 0, 0, 0][..], &string_to_utf16le("a\\bc")].concat(),
        ),
    ];
    for (decoder, name, bytes) in seeds {
        let selector = INFO_DECODERS
            .iter()
            .position(|&d| d == decoder)
            .expect("decoder in table") as u8;
        assert!(
            check_info(decoder, &bytes),
            "info seed {name} does not decode"
        );
        write_seed("info", name, &[&[selector][..], &bytes].concat());
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, cmd, pcap, port] = &args[..] {
        assert_eq!(cmd, "captures", "usage: seedgen [captures PCAP PORT]");
        captures::run(pcap.as_ref(), port.parse().expect("a port number"));
        return;
    }
    let requests = request_seeds();
    for (name, command, msg) in &requests {
        assert!(check_request(*command, msg), "seed {name} does not decode");
        write_seed(
            "requests",
            name,
            &[&[selector_of(*command)][..], msg].concat(),
        );
        match *command {
            0x00 => write_seed("negotiate", name, msg),
            0x05 => write_seed("create", name, msg),
            _ => {}
        }
    }
    write_seed("create", "contexts_only", &create_contexts());
    let mut ivalidate = vec![0u8; 64];
    ivalidate.extend_from_slice(&validate_negotiate_input());
    write_seed("negotiate", "validate_negotiate_info", &ivalidate);

    let by_name = |n: &str| requests.iter().find(|r| r.0 == n).expect("seed").2.clone();
    write_seed(
        "frame_header",
        "negotiate",
        &framed(&by_name("negotiate_311")),
    );
    write_seed("frame_header", "smb1_negotiate", &framed(&smb1_negotiate()));
    write_seed(
        "frame_header",
        "compound_create_read_close",
        &framed(&compound(
            &compound(&by_name("create_root"), &by_name("read")),
            &by_name("close"),
        )),
    );
    let mut async_read = by_name("read");
    async_read[16] |= 0x02; // SMB2_FLAGS_ASYNC_COMMAND
    write_seed("frame_header", "async", &framed(&async_read));

    transform_seeds();
    signing_seeds();
    auth_seeds();
    info_seeds();
    println!("seeds written under {}", corpus_dir("").display());
}
