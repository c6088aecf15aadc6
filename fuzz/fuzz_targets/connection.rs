//! The whole connection: a client byte stream through the data plane's connection state
//! machine, after an optional NEGOTIATE + NTLMSSP logon done by the harness, over a share in a
//! temporary directory. Input layout and bounds: `smb3d_fuzz::connection`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let outcome = smb3d_fuzz::connection::run(data);
    if std::env::var_os("SMB3D_FUZZ_TRACE").is_some() {
        eprintln!(
            "responses {:x?} disconnect {:?}",
            outcome.responses, outcome.disconnect
        );
    }
});
