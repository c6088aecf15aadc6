//! Information classes decoded from peer data: SET_INFO buffers (rename, basic, disposition,
//! end of file, allocation, position, mode, EAs, security descriptors, fs control) and the
//! QUERY_INFO EA name list. Input: `[selector, buffer...]` (see `smb3d_fuzz::INFO_DECODERS`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use smb3d_fuzz::{InfoDecoder, INFO_DECODERS};
use smb3d_protocol::info::{ea, file, fs, security};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, b)) = data.split_first() else {
        return;
    };
    match INFO_DECODERS[usize::from(selector) % INFO_DECODERS.len()] {
        InfoDecoder::Rename => drop(file::RenameInformation::decode(b)),
        InfoDecoder::Basic => drop(file::BasicInformation::decode(b)),
        InfoDecoder::Disposition => drop(file::DispositionInformation::decode(b)),
        InfoDecoder::DispositionEx => drop(file::DispositionInformationEx::decode(b)),
        InfoDecoder::EndOfFile => drop(file::EndOfFileInformation::decode(b)),
        InfoDecoder::Allocation => drop(file::AllocationInformation::decode(b)),
        InfoDecoder::Position => drop(file::PositionInformation::decode(b)),
        InfoDecoder::Mode => drop(file::ModeInformation::decode(b)),
        InfoDecoder::FullEaList => drop(ea::decode_list(b)),
        InfoDecoder::GetEaList => drop(ea::decode_get_list(b)),
        InfoDecoder::SecurityDescriptor => drop(security::RawDescriptor::decode(b)),
        InfoDecoder::FsControl => drop(fs::ControlInformation::decode(b)),
        InfoDecoder::Name => drop(file::NameInformation::decode(b)),
    }
});
