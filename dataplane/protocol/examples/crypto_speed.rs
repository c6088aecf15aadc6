//! Throughput of SMB signing and encryption on 1 MiB messages (single core).
//!
//! `cargo run --release -p smb3d-protocol --example crypto_speed`

use std::time::{Duration, Instant};

use smb3d_protocol::crypto::{Encryptor, NonceSequence, Signer};
use smb3d_protocol::dialect::{Cipher, SigningAlgorithm};
use smb3d_protocol::header::{flags, Command, Header};
use smb3d_protocol::transform::TRANSFORM_HEADER_BYTES;

const MESSAGE_BYTES: usize = 1 << 20;
const RUN_TIME: Duration = Duration::from_millis(700);

/// Run `op` repeatedly for about `RUN_TIME` and return MB/s (10^6 bytes per second).
fn measure(mut op: impl FnMut()) -> f64 {
    op(); // warm up
    let start = Instant::now();
    let mut rounds = 0u64;
    while start.elapsed() < RUN_TIME {
        op();
        rounds += 1;
    }
    (rounds as f64 * MESSAGE_BYTES as f64) / start.elapsed().as_secs_f64() / 1e6
}

fn smb_message() -> Vec<u8> {
    let header = Header {
        command: Command::Read as u16,
        flags: flags::SERVER_TO_REDIR | flags::SIGNED,
        message_id: 77,
        session_id: 0x1000_0000_0025,
        ..Header::default()
    };
    let mut msg = Vec::with_capacity(MESSAGE_BYTES);
    header.encode(&mut msg);
    msg.extend((msg.len()..MESSAGE_BYTES).map(|i| (i * 131) as u8));
    msg
}

fn main() {
    let key = [0x5Au8; 32];
    println!("1 MiB messages, one core, MB/s");
    for alg in [
        SigningAlgorithm::HmacSha256,
        SigningAlgorithm::AesCmac,
        SigningAlgorithm::AesGmac,
    ] {
        let signer = Signer::new(alg, &key);
        let mut msg = smb_message();
        let sign = measure(|| signer.sign(&mut msg));
        let verify_in_place = measure(|| assert!(signer.verify_in_place(&mut msg)));
        let verify = measure(|| assert!(signer.verify(&msg)));
        println!(
            "sign    {:<12} sign {sign:>8.0}  verify_in_place {verify_in_place:>8.0}  verify {verify:>8.0}",
            format!("{alg:?}")
        );
    }
    for cipher in [
        Cipher::Aes128Ccm,
        Cipher::Aes128Gcm,
        Cipher::Aes256Ccm,
        Cipher::Aes256Gcm,
    ] {
        let enc = Encryptor::new(cipher, &key[..cipher.key_bytes()]);
        let mut nonces = NonceSequence::new(0x0123_4567_89AB_CDEF);
        let mut buf = vec![0u8; TRANSFORM_HEADER_BYTES];
        buf.extend_from_slice(&smb_message());
        let seal = measure(|| enc.encrypt_in_place(&nonces.next(cipher), 0x25, &mut buf));
        // Decrypting destroys the sealed copy, so restore it each round (memcpy included).
        let sealed = buf.clone();
        let open = measure(|| {
            buf.copy_from_slice(&sealed);
            enc.decrypt_in_place(&mut buf).expect("authentic");
        });
        println!(
            "encrypt {:<12} seal {seal:>8.0}  open (incl. 1 MiB copy) {open:>8.0}",
            format!("{cipher:?}")
        );
    }
}
