//! Samba's smbclient against `smb3d serve`, for every dialect and protection level smbclient offers.
//!
//! Each combination gets its own server and runs the same file operations, checking both what
//! smbclient reports and what ends up on disk in the share directory. Needs `smbclient` installed
//! (scripts/test installs it).

mod common;

use common::{assert_same_bytes, pseudo_random_bytes, Smbclient, TempDir, TestServer};
use std::fs;
use std::path::Path;

const BIG_FILE_LEN_BYTES: usize = 5 * 1024 * 1024;

/// The operations every combination must support, each as its own smbclient run so that a failure
/// names the command.
fn exercise_file_operations(max_protocol: &str, protection: &str) {
    let mut server = TestServer::start(&[]);
    let local = TempDir::new("smb3d-it-client");
    let client = Smbclient::new(&server, max_protocol, protection, local.path());
    let share = server.share_dir.clone();

    let listing = client.run("ls");
    listing.assert_ok();
    assert!(
        listing.stdout.contains("blocks available"),
        "ls output:\n{}",
        listing.stdout
    );

    check_mkdir_rmdir(&client, &share);
    check_put_get_rename_rm(&client, &share, local.path());
    check_deltree(&client, &share, local.path());

    server.assert_running();
}

fn check_mkdir_rmdir(client: &Smbclient, share: &Path) {
    client.run("mkdir newdir").assert_ok();
    assert!(
        share.join("newdir").is_dir(),
        "mkdir did not create a directory on disk"
    );
    let listing = client.run("ls");
    listing.assert_ok();
    assert!(
        listing.stdout.contains("newdir"),
        "ls does not show newdir:\n{}",
        listing.stdout
    );

    client.run("rmdir newdir").assert_ok();
    assert!(
        !share.join("newdir").exists(),
        "rmdir left the directory on disk"
    );
}

fn check_put_get_rename_rm(client: &Smbclient, share: &Path, local: &Path) {
    let source = pseudo_random_bytes(BIG_FILE_LEN_BYTES, 0x5eed_0001);
    fs::write(local.join("source.bin"), &source).expect("write source file");

    client.run("put source.bin big.bin").assert_ok();
    let on_disk = fs::read(share.join("big.bin")).expect("big.bin missing on disk after put");
    assert_same_bytes(&on_disk, &source, "file on disk after put");

    client.run("get big.bin fetched.bin").assert_ok();
    let fetched = fs::read(local.join("fetched.bin")).expect("get did not write the local file");
    assert_same_bytes(&fetched, &source, "file fetched with get");

    client.run("rename big.bin renamed.bin").assert_ok();
    assert!(
        !share.join("big.bin").exists(),
        "rename left the old name on disk"
    );
    let renamed = fs::read(share.join("renamed.bin")).expect("renamed.bin missing on disk");
    assert_same_bytes(&renamed, &source, "file on disk after rename");
    let listing = client.run("ls");
    listing.assert_ok();
    assert!(
        listing.stdout.contains("renamed.bin"),
        "ls does not show renamed.bin:\n{}",
        listing.stdout
    );
    assert!(
        !listing.stdout.contains("big.bin"),
        "ls still shows big.bin:\n{}",
        listing.stdout
    );

    let info = client.run("allinfo renamed.bin");
    info.assert_ok();
    for field in ["create_time:", "write_time:", "change_time:", "attributes:"] {
        assert!(
            info.stdout.contains(field),
            "allinfo lacks {field}:\n{}",
            info.stdout
        );
    }
    let size_text = format!("{BIG_FILE_LEN_BYTES} bytes");
    assert!(
        info.stdout.contains(&size_text),
        "allinfo does not give the size:\n{}",
        info.stdout
    );

    client.run("rm renamed.bin").assert_ok();
    assert!(
        !share.join("renamed.bin").exists(),
        "rm left the file on disk"
    );
    let missing = client.run("get renamed.bin again.bin");
    assert!(!missing.success, "get of a removed file succeeded");
    assert!(
        missing
            .all_output()
            .contains("NT_STATUS_OBJECT_NAME_NOT_FOUND"),
        "unexpected error for a removed file:\n{}",
        missing.all_output()
    );
}

fn check_deltree(client: &Smbclient, share: &Path, local: &Path) {
    fs::write(local.join("small.txt"), b"leaf file\n").expect("write small file");
    client
        .run(r"mkdir tree; mkdir tree\sub; put small.txt tree\sub\leaf.txt; put small.txt tree\top.txt")
        .assert_ok();
    assert_eq!(
        fs::read(share.join("tree/sub/leaf.txt")).expect("leaf.txt missing on disk"),
        b"leaf file\n"
    );
    let listing = client.run(r"ls tree\*");
    listing.assert_ok();
    assert!(
        listing.stdout.contains("sub"),
        "ls tree does not show sub:\n{}",
        listing.stdout
    );
    assert!(
        listing.stdout.contains("top.txt"),
        "ls tree does not show top.txt:\n{}",
        listing.stdout
    );

    client.run("deltree tree").assert_ok();
    assert!(
        !share.join("tree").exists(),
        "deltree left the tree on disk"
    );
}

macro_rules! matrix_test {
    ($name:ident, $dialect:literal, $protection:literal) => {
        #[test]
        fn $name() {
            exercise_file_operations($dialect, $protection);
        }
    };
}

matrix_test!(smb2_02_plain, "SMB2_02", "off");
matrix_test!(smb2_02_signed, "SMB2_02", "sign");
matrix_test!(smb2_10_plain, "SMB2_10", "off");
matrix_test!(smb2_10_signed, "SMB2_10", "sign");
matrix_test!(smb3_00_plain, "SMB3_00", "off");
matrix_test!(smb3_00_signed, "SMB3_00", "sign");
matrix_test!(smb3_00_encrypted, "SMB3_00", "encrypt");
matrix_test!(smb3_02_plain, "SMB3_02", "off");
matrix_test!(smb3_02_signed, "SMB3_02", "sign");
matrix_test!(smb3_02_encrypted, "SMB3_02", "encrypt");
matrix_test!(smb3_11_plain, "SMB3_11", "off");
matrix_test!(smb3_11_signed, "SMB3_11", "sign");
matrix_test!(smb3_11_encrypted, "SMB3_11", "encrypt");

#[test]
fn wrong_password_is_refused() {
    let mut server = TestServer::start(&[]);
    let local = TempDir::new("smb3d-it-client");
    let mut client = Smbclient::new(&server, "SMB3_11", "off", local.path());
    client.password = "not-the-password".to_string();
    let run = client.run("ls");
    assert!(
        !run.success,
        "smbclient with a wrong password succeeded:\n{}",
        run.stdout
    );
    assert!(
        run.all_output().contains("NT_STATUS_LOGON_FAILURE"),
        "wrong password did not give NT_STATUS_LOGON_FAILURE:\n{}",
        run.all_output()
    );
    server.assert_running();
}

#[test]
fn unknown_user_is_refused() {
    let mut server = TestServer::start(&[]);
    let local = TempDir::new("smb3d-it-client");
    let mut client = Smbclient::new(&server, "SMB3_11", "off", local.path());
    client.user = "nosuchuser".to_string();
    let run = client.run("ls");
    assert!(
        !run.success,
        "smbclient as an unknown user succeeded:\n{}",
        run.stdout
    );
    assert!(
        run.all_output().contains("NT_STATUS_LOGON_FAILURE"),
        "unknown user did not give NT_STATUS_LOGON_FAILURE:\n{}",
        run.all_output()
    );
    server.assert_running();
}
