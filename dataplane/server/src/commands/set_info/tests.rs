use super::*;
use crate::commands::info_test_support::Fixture;
use crate::commands::{query_directory, query_info};
use smb3d_protocol::info::dir::{self as dir_info, decode_entries};
use smb3d_protocol::messages::query_directory::{decode_output_response, QueryDirectoryRequest};
use smb3d_protocol::messages::query_info::QueryInfoRequest;

const DAY_TICKS: u64 = 864_000_000_000;
/// 2030-01-01 as a FILETIME.
const SOME_TIME: u64 = 139_067_712_000_000_000;

fn set(fx: &Fixture, open: &Open, c: u8, buffer: &[u8]) -> Result<(), NtStatus> {
    let mut body = Vec::new();
    SetInfoRequest {
        info_type: info_type::FILE,
        file_info_class: c,
        additional_information: 0,
        file_id: open.file_id.encode(),
        buffer,
    }
    .encode(&mut body);
    fx.call(handle, &body).map(|_| ())
}

fn set_basic_info(fx: &Fixture, open: &Open, b: fi::BasicInformation) -> Result<(), NtStatus> {
    let mut buf = Vec::new();
    b.encode(&mut buf);
    set(fx, open, class::BASIC, &buf)
}

fn query_basic(fx: &Fixture, open: &Open) -> fi::BasicInformation {
    let mut body = Vec::new();
    QueryInfoRequest {
        info_type: info_type::FILE,
        file_info_class: class::BASIC,
        output_buffer_length: 1024,
        input_buffer: Vec::new(),
        additional_information: 0,
        flags: 0,
        file_id: open.file_id.encode(),
    }
    .encode(&mut body);
    let (status, resp) = fx.call(query_info::handle, &body).unwrap();
    assert_eq!(status, NtStatus::SUCCESS);
    fi::BasicInformation::decode(&resp[8..]).unwrap()
}

fn listed_change_time(fx: &Fixture, dir: &Open, name: &str) -> u64 {
    let mut body = Vec::new();
    QueryDirectoryRequest {
        file_information_class: dir_info::class::BOTH_DIRECTORY,
        flags: smb3d_protocol::messages::query_directory::flags::RESTART_SCANS,
        file_index: 0,
        file_id: dir.file_id.encode(),
        file_name: name.into(),
        output_buffer_length: 4096,
    }
    .encode(&mut body);
    let (_, resp) = fx.call(query_directory::handle, &body).unwrap();
    let entries = decode_entries(
        dir_info::class::BOTH_DIRECTORY,
        decode_output_response(&resp).unwrap(),
    )
    .unwrap();
    entries[0].times.change
}

fn times(creation: u64, access: u64, write: u64, change: u64, attrs: u32) -> fi::BasicInformation {
    fi::BasicInformation {
        creation_time: creation as i64,
        last_access_time: access as i64,
        last_write_time: write as i64,
        change_time: change as i64,
        file_attributes: attrs,
    }
}

const RW: u32 = access::FILE_READ_DATA
    | access::FILE_WRITE_DATA
    | access::FILE_READ_ATTRIBUTES
    | access::FILE_WRITE_ATTRIBUTES
    | access::FILE_WRITE_EA;

#[test]
fn basic_information_sets_every_time_including_change_time() {
    let fx = Fixture::new();
    fx.write_file("f", b"abc");
    let f = fx.open("f", RW);
    let d = fx.open("", access::FILE_READ_DATA | access::FILE_READ_ATTRIBUTES);
    let (c, a, w, ch) = (
        SOME_TIME + 9 * DAY_TICKS,
        SOME_TIME + 6 * DAY_TICKS,
        SOME_TIME + 3 * DAY_TICKS,
        SOME_TIME + DAY_TICKS,
    );
    set_basic_info(&fx, &f, times(c, a, w, ch, attr::NORMAL)).unwrap();
    let got = query_basic(&fx, &f);
    assert_eq!(got, times(c, a, w, ch, attr::NORMAL));
    // Directory listings and other opens report the same change time.
    assert_eq!(listed_change_time(&fx, &d, "f"), ch);
    let other = fx.open("f", access::FILE_READ_ATTRIBUTES);
    assert_eq!(query_basic(&fx, &other).change_time as u64, ch);

    // Later changes through the same open keep it (zero times mean "unchanged").
    set_basic_info(&fx, &f, times(0, 0, 0, 0, attr::HIDDEN)).unwrap();
    let mut eas = Vec::new();
    ea_info::encode_list(
        &[ea_info::FullEa {
            flags: 0,
            name: b"NEWEA".to_vec(),
            value: b"testme".to_vec(),
        }],
        &mut eas,
    );
    set(&fx, &f, class::FULL_EA, &eas).unwrap();
    let got = query_basic(&fx, &f);
    assert_eq!(got, times(c, a, w, ch, attr::HIDDEN));
}

#[test]
fn set_change_time_gives_way_to_later_changes() {
    let fx = Fixture::new();
    fx.write_file("f", b"abc");
    let f = fx.open("f", RW);
    set_basic_info(&fx, &f, times(0, 0, 0, SOME_TIME, 0)).unwrap();
    assert_eq!(query_basic(&fx, &f).change_time as u64, SOME_TIME);

    // A change through another open supersedes it: the real ctime is reported again.
    let other = fx.open("f", RW);
    set_basic_info(&fx, &other, times(0, 0, 0, 0, attr::SYSTEM)).unwrap();
    let real = crate::storage::metadata::stat_fd(f.fd.as_fd())
        .unwrap()
        .change_time;
    assert_eq!(query_basic(&fx, &f).change_time as u64, real);
    assert_ne!(real, SOME_TIME);

    // So does a change made outside SMB (the real ctime moves).
    set_basic_info(&fx, &f, times(0, 0, 0, SOME_TIME, 0)).unwrap();
    // Past the coarsest ctime granularity (one 100 Hz tick), so the real ctime does move.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(fx.host("f"), b"outside").unwrap();
    assert_ne!(query_basic(&fx, &f).change_time as u64, SOME_TIME);

    // Without opens nothing is kept.
    set_basic_info(&fx, &f, times(0, 0, 0, SOME_TIME, 0)).unwrap();
    fx.close(&f);
    fx.close(&other);
    let again = fx.open("f", access::FILE_READ_ATTRIBUTES);
    assert_ne!(query_basic(&fx, &again).change_time as u64, SOME_TIME);
}

#[test]
fn basic_information_rejects_bad_values() {
    let fx = Fixture::new();
    fx.write_file("f", b"abc");
    let f = fx.open("f", RW);
    assert_eq!(
        set_basic_info(&fx, &f, times(0, 0, 0, 0, attr::DIRECTORY)),
        Err(NtStatus::INVALID_PARAMETER)
    );
    let mut b = times(0, 0, 0, 0, 0);
    b.change_time = -3;
    assert_eq!(set_basic_info(&fx, &f, b), Err(NtStatus::INVALID_PARAMETER));
    let ro = fx.open("f", access::FILE_READ_ATTRIBUTES);
    assert_eq!(
        set_basic_info(&fx, &ro, times(0, 0, 0, SOME_TIME, 0)),
        Err(NtStatus::ACCESS_DENIED)
    );
}
