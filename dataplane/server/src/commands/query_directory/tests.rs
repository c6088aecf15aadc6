use super::*;
use crate::commands::info_test_support::Fixture;
use smb3d_protocol::info::dir::{class, decode_entries};
use smb3d_protocol::messages::query_directory::decode_output_response;
use std::sync::Arc;

fn pat(p: &str) -> Vec<char> {
    p.chars().map(upcase).collect()
}

#[test]
fn wildcards_follow_is_in_expression() {
    let m = |p: &str, n: &str| matches(&pat(p), n);
    assert!(m("*", "anything.txt"));
    assert!(m("*.TXT", "a.txt"));
    assert!(!m("*.txt", "a.txt.bak"));
    assert!(m("a?c", "ABC"));
    assert!(!m("a?c", "ac"));
    assert!(m("*a*b*", "xxaYYbzz"));
    assert!(!m("*a*b*", "xxbYYazz"));
    // DOS_STAR/DOS_DOT ("*.*" as converted by Windows): matches names with or without a dot.
    assert!(m("<\"*", "readme"));
    assert!(m("<\"*", "a.b.c"));
    assert!(m("<.TXT", "x.y.txt"));
    assert!(!m("<.TXT", "x.txt.y"));
    // DOS_QM: one character, or nothing before a '.' or at the end ("ab??" as DOS sends it).
    assert!(m("ab>>", "ab"));
    assert!(m("ab>>", "abcd"));
    assert!(!m("ab>>", "abcde"));
    assert!(m("a>>.t", "a.t"));
    assert!(m("ß", "ß"));
}

#[test]
fn short_names() {
    assert_eq!(short_name("bufsize.txt"), "BUFSIZE.TXT");
    let s = short_name("torture_search.txt");
    assert!(
        s.starts_with("TORTU~") && s.ends_with(".TXT") && s.len() == 12,
        "{s}"
    );
    assert_ne!(short_name("torture_a.txt"), short_name("torture_b.txt"));
    assert!(short_name(".bashrc").starts_with("_~") || short_name(".bashrc").starts_with("BASHR"));
}

fn query(
    fx: &Fixture,
    open: &Open,
    class: u8,
    flags_: u8,
    pattern: &str,
    len: u32,
) -> Result<(NtStatus, Vec<String>), NtStatus> {
    let mut body = Vec::new();
    QueryDirectoryRequest {
        file_information_class: class,
        flags: flags_,
        file_index: 0,
        file_id: open.file_id.encode(),
        file_name: pattern.into(),
        output_buffer_length: len,
    }
    .encode(&mut body);
    let (status, resp) = fx.call(handle, &body)?;
    let buf = decode_output_response(&resp).unwrap();
    if status == NtStatus::BUFFER_OVERFLOW {
        return Ok((status, Vec::new()));
    }
    let names = decode_entries(class, buf)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    Ok((status, names))
}

fn setup() -> (Fixture, Arc<Open>) {
    let fx = Fixture::new();
    std::fs::create_dir(fx.host("d")).unwrap();
    for n in ["b.txt", "A.txt", "c.dat", ".hidden"] {
        fx.write_file(&format!("d/{n}"), b"xy");
    }
    std::fs::create_dir(fx.host("d/sub")).unwrap();
    let open = fx.open("d", access::FILE_READ_DATA | access::FILE_READ_ATTRIBUTES);
    (fx, open)
}

#[test]
fn lists_everything_sorted_with_dots_first_then_no_more_files() {
    let (fx, d) = setup();
    let (st, names) = query(&fx, &d, class::ID_BOTH_DIRECTORY, 0, "*", 65536).unwrap();
    assert_eq!(st, NtStatus::SUCCESS);
    assert_eq!(
        names,
        [".", "..", ".hidden", "A.txt", "b.txt", "c.dat", "sub"]
    );
    assert_eq!(
        query(&fx, &d, class::ID_BOTH_DIRECTORY, 0, "*", 65536),
        Err(NtStatus::NO_MORE_FILES)
    );
    // RESTART_SCANS starts over.
    let (_, again) = query(&fx, &d, 1, flags::RESTART_SCANS, "", 65536).unwrap();
    assert_eq!(again.len(), 7);
}

#[test]
fn entries_carry_metadata() {
    let (fx, d) = setup();
    let mut body = Vec::new();
    QueryDirectoryRequest {
        file_information_class: class::ID_FULL_DIRECTORY,
        flags: 0,
        file_index: 0,
        file_id: d.file_id.encode(),
        file_name: "sub".into(),
        output_buffer_length: 4096,
    }
    .encode(&mut body);
    let (_, resp) = fx.call(handle, &body).unwrap();
    let e = decode_entries(
        class::ID_FULL_DIRECTORY,
        decode_output_response(&resp).unwrap(),
    )
    .unwrap();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].file_attributes & 0x10, 0x10);
    let meta = std::fs::metadata(fx.host("d/sub")).unwrap();
    assert_eq!(e[0].file_id, std::os::unix::fs::MetadataExt::ino(&meta));
}

#[test]
fn patterns_are_case_insensitive_and_fixed_until_restart() {
    let (fx, d) = setup();
    let (_, names) = query(&fx, &d, class::NAMES, 0, "*.TXT", 65536).unwrap();
    assert_eq!(names, ["A.txt", "b.txt"]);
    // A new pattern without RESTART is ignored (MS-FSA 2.1.5.6.3): the search is done.
    assert_eq!(
        query(&fx, &d, class::NAMES, 0, "*.dat", 65536),
        Err(NtStatus::NO_MORE_FILES)
    );
    let (_, names) = query(&fx, &d, class::NAMES, flags::RESTART_SCANS, "*.dat", 65536).unwrap();
    assert_eq!(names, ["c.dat"]);
    // REOPEN resets everything, including "first query" status for NO_SUCH_FILE.
    assert_eq!(
        query(&fx, &d, class::NAMES, flags::REOPEN, "nothing*", 65536),
        Err(NtStatus::NO_SUCH_FILE)
    );
    let (_, names) = query(&fx, &d, class::NAMES, flags::REOPEN, "B.TXT", 65536).unwrap();
    assert_eq!(names, ["b.txt"]);
}

#[test]
fn single_entry_and_small_buffers() {
    let (fx, d) = setup();
    let (_, one) = query(
        &fx,
        &d,
        class::BOTH_DIRECTORY,
        flags::RETURN_SINGLE_ENTRY,
        "*",
        65536,
    )
    .unwrap();
    assert_eq!(one, ["."]);
    let (_, next) = query(
        &fx,
        &d,
        class::BOTH_DIRECTORY,
        flags::RETURN_SINGLE_ENTRY,
        "*",
        65536,
    )
    .unwrap();
    assert_eq!(next, [".."]);
    // Room for two short entries only: the rest comes on the next call.
    let room = (94 + 2 * 7usize).next_multiple_of(8) + 94 + 2 * 5;
    let (_, two) = query(&fx, &d, class::BOTH_DIRECTORY, 0, "", room as u32).unwrap();
    assert_eq!(two, [".hidden", "A.txt"]);
    // Below the fixed size: INFO_LENGTH_MISMATCH; name cut short: BUFFER_OVERFLOW.
    assert_eq!(
        query(&fx, &d, class::BOTH_DIRECTORY, 0, "", 93),
        Err(NtStatus::INFO_LENGTH_MISMATCH)
    );
    let (st, _) = query(&fx, &d, class::BOTH_DIRECTORY, 0, "", 95).unwrap();
    assert_eq!(st, NtStatus::BUFFER_OVERFLOW);
}

#[test]
fn deleted_after_snapshot_is_skipped_and_file_open_is_rejected() {
    let (fx, d) = setup();
    let (_, first) = query(&fx, &d, 1, flags::RETURN_SINGLE_ENTRY, "*", 65536).unwrap();
    assert_eq!(first, ["."]);
    std::fs::remove_file(fx.host("d/b.txt")).unwrap();
    let (_, rest) = query(&fx, &d, 1, 0, "*", 65536).unwrap();
    assert_eq!(rest, ["..", ".hidden", "A.txt", "c.dat", "sub"]);

    let f = fx.open("d\\c.dat", access::FILE_READ_DATA);
    assert_eq!(
        query(&fx, &f, 1, 0, "*", 65536),
        Err(NtStatus::INVALID_PARAMETER)
    );
    let no_list = fx.open("d", access::FILE_READ_ATTRIBUTES);
    assert_eq!(
        query(&fx, &no_list, 1, 0, "*", 65536),
        Err(NtStatus::ACCESS_DENIED)
    );
    assert_eq!(
        query(&fx, &d, 1, flags::REOPEN, "a\\b", 65536),
        Err(NtStatus::OBJECT_NAME_INVALID)
    );
}
