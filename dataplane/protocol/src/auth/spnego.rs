//! SPNEGO (RFC 4178, MS-SPNG) tokens: the server's NegTokenInit2 hint, the client's
//! NegTokenInit and NegTokenResp, and the server's NegTokenResp.
//!
//! ```text
//! InitialContextToken ::= [APPLICATION 0] IMPLICIT SEQUENCE { thisMech OID, NegotiationToken }
//! NegotiationToken ::= CHOICE { negTokenInit [0] NegTokenInit, negTokenResp [1] NegTokenResp }
//! NegTokenInit  ::= SEQUENCE { mechTypes [0] MechTypeList, reqFlags [1] ContextFlags OPTIONAL,
//!                              mechToken [2] OCTET STRING OPTIONAL, mechListMIC [3] OCTET STRING OPTIONAL }
//! NegTokenInit2 ::= SEQUENCE { mechTypes [0], reqFlags [1], mechToken [2],
//!                              negHints [3] NegHints OPTIONAL, mechListMIC [4] OPTIONAL }  -- MS-SPNG 2.2.1
//! NegTokenResp  ::= SEQUENCE { negState [0] ENUMERATED OPTIONAL, supportedMech [1] OID OPTIONAL,
//!                              responseToken [2] OCTET STRING OPTIONAL, mechListMIC [3] OCTET STRING OPTIONAL }
//! ```

use super::der::{self, context, Tlv};
use crate::status::NtStatus;

pub type Result<T> = std::result::Result<T, NtStatus>;

/// Contents octets of OID 1.3.6.1.5.5.2 (SPNEGO).
pub const OID_SPNEGO: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x02];
/// Contents octets of OID 1.3.6.1.4.1.311.2.2.10 (NTLMSSP).
pub const OID_NTLMSSP: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a];

/// The negHints principal Windows and Samba send (MS-SPNG 3.2.5.2).
const NEG_HINTS_NAME: &[u8] = b"not_defined_in_RFC4178@please_ignore";

/// Most mechanisms accepted in a client's mechTypes list.
const MAX_MECH_TYPES: usize = 32;

/// RFC 4178 4.2.2 negState.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NegState {
    AcceptCompleted = 0,
    AcceptIncomplete = 1,
    Reject = 2,
    RequestMic = 3,
}

/// A client's NegTokenInit, borrowed from the security buffer.
#[derive(Debug)]
pub struct NegTokenInit<'a> {
    /// Mechanism OIDs (contents octets), client's preference first.
    pub mech_types: Vec<&'a [u8]>,
    /// The DER encoding of the MechTypeList, as the client sent it: the input of mechListMIC.
    pub mech_types_der: &'a [u8],
    pub mech_token: Option<&'a [u8]>,
}

/// A NegTokenResp, borrowed from the security buffer.
#[derive(Debug, Default)]
pub struct NegTokenResp<'a> {
    pub neg_state: Option<u8>,
    pub supported_mech: Option<&'a [u8]>,
    pub response_token: Option<&'a [u8]>,
    pub mech_list_mic: Option<&'a [u8]>,
}

/// What a client sent in SESSION_SETUP, as far as SPNEGO is concerned.
#[derive(Debug)]
pub enum ClientToken<'a> {
    Init(NegTokenInit<'a>),
    Resp(NegTokenResp<'a>),
}

/// The server's NegTokenInit2 for the NEGOTIATE response: NTLMSSP only, plus the negHints
/// principal.
pub fn server_init_token() -> Vec<u8> {
    let mech_list = der::encode(der::TAG_SEQUENCE, &der::encode(der::TAG_OID, OID_NTLMSSP));
    let hint_name = der::encode(
        context(0),
        &der::encode(der::TAG_GENERAL_STRING, NEG_HINTS_NAME),
    );
    let neg_hints = der::encode(context(3), &der::encode(der::TAG_SEQUENCE, &hint_name));
    let init2 = der::encode_parts(
        der::TAG_SEQUENCE,
        &[&der::encode(context(0), &mech_list), &neg_hints],
    );
    der::encode_parts(
        der::TAG_APPLICATION_0,
        &[
            &der::encode(der::TAG_OID, OID_SPNEGO),
            &der::encode(context(0), &init2),
        ],
    )
}

/// Decodes a client's SPNEGO token: a GSS-API wrapped NegTokenInit or a bare NegTokenResp.
pub fn parse_client_token(buf: &[u8]) -> Result<ClientToken<'_>> {
    let (outer, _trailing) = der::read_tlv(buf)?;
    match outer.tag {
        der::TAG_APPLICATION_0 => {
            let (oid, rest) = der::read_expect(outer.value, der::TAG_OID)?;
            if oid.value != OID_SPNEGO {
                return Err(NtStatus::NOT_SUPPORTED);
            }
            let choice = der::read_only(rest, context(0))?;
            parse_neg_token_init(choice.value).map(ClientToken::Init)
        }
        // Some clients send a NegTokenInit without the GSS-API header.
        t if t == context(0) => parse_neg_token_init(outer.value).map(ClientToken::Init),
        t if t == context(1) => parse_neg_token_resp(outer.value).map(ClientToken::Resp),
        _ => Err(NtStatus::INVALID_PARAMETER),
    }
}

/// The members of a SEQUENCE of context-tagged fields, with each tag at most once and in
/// increasing order (X.690 DER for SEQUENCE with tagged OPTIONAL members).
fn tagged_fields(seq_contents: &[u8]) -> Result<Vec<Tlv<'_>>> {
    let fields = der::read_all(seq_contents, 8)?;
    let mut last: Option<u8> = None;
    for f in &fields {
        if f.tag & 0xe0 != 0xa0 || last.is_some_and(|l| f.tag <= l) {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        last = Some(f.tag);
    }
    Ok(fields)
}

fn parse_neg_token_init(choice_contents: &[u8]) -> Result<NegTokenInit<'_>> {
    let seq = der::read_only(choice_contents, der::TAG_SEQUENCE)?;
    let mut mech_types = Vec::new();
    let mut mech_types_der: Option<&[u8]> = None;
    let mut mech_token = None;
    for field in tagged_fields(seq.value)? {
        match field.tag {
            t if t == context(0) => {
                let list = der::read_only(field.value, der::TAG_SEQUENCE)?;
                for oid in der::read_all(list.value, MAX_MECH_TYPES)? {
                    if oid.tag != der::TAG_OID {
                        return Err(NtStatus::INVALID_PARAMETER);
                    }
                    mech_types.push(oid.value);
                }
                mech_types_der = Some(list.encoded);
            }
            t if t == context(2) => {
                mech_token = Some(der::read_only(field.value, der::TAG_OCTET_STRING)?.value);
            }
            // reqFlags, negHints and mechListMIC in a NegTokenInit are not used by the server
            // (RFC 4178 4.2.1: the initiator's MIC there is not verified; MS-SPNG never sends it).
            _ => {}
        }
    }
    let mech_types_der = mech_types_der.ok_or(NtStatus::INVALID_PARAMETER)?;
    Ok(NegTokenInit {
        mech_types,
        mech_types_der,
        mech_token,
    })
}

fn parse_neg_token_resp(choice_contents: &[u8]) -> Result<NegTokenResp<'_>> {
    let seq = der::read_only(choice_contents, der::TAG_SEQUENCE)?;
    let mut resp = NegTokenResp::default();
    for field in tagged_fields(seq.value)? {
        match field.tag {
            t if t == context(0) => {
                let state = der::read_only(field.value, der::TAG_INTEGER_ENUMERATED)?;
                match state.value {
                    [v] => resp.neg_state = Some(*v),
                    _ => return Err(NtStatus::INVALID_PARAMETER),
                }
            }
            t if t == context(1) => {
                resp.supported_mech = Some(der::read_only(field.value, der::TAG_OID)?.value);
            }
            t if t == context(2) => {
                resp.response_token =
                    Some(der::read_only(field.value, der::TAG_OCTET_STRING)?.value);
            }
            t if t == context(3) => {
                resp.mech_list_mic =
                    Some(der::read_only(field.value, der::TAG_OCTET_STRING)?.value);
            }
            _ => return Err(NtStatus::INVALID_PARAMETER),
        }
    }
    Ok(resp)
}

/// Encodes a NegTokenResp (`[1]`-wrapped, no GSS-API header, as every reply after the first
/// NegTokenInit is sent).
pub fn encode_neg_token_resp(
    neg_state: NegState,
    supported_mech: Option<&[u8]>,
    response_token: Option<&[u8]>,
    mech_list_mic: Option<&[u8]>,
) -> Vec<u8> {
    let mut fields = der::encode(
        context(0),
        &der::encode(der::TAG_INTEGER_ENUMERATED, &[neg_state as u8]),
    );
    if let Some(oid) = supported_mech {
        fields.extend(der::encode(context(1), &der::encode(der::TAG_OID, oid)));
    }
    if let Some(token) = response_token {
        fields.extend(der::encode(
            context(2),
            &der::encode(der::TAG_OCTET_STRING, token),
        ));
    }
    if let Some(mic) = mech_list_mic {
        fields.extend(der::encode(
            context(3),
            &der::encode(der::TAG_OCTET_STRING, mic),
        ));
    }
    der::encode(context(1), &der::encode(der::TAG_SEQUENCE, &fields))
}

/// Encodes a client NegTokenInit with the GSS-API header (used by tests playing the client).
pub fn encode_neg_token_init(mech_types: &[&[u8]], mech_token: Option<&[u8]>) -> Vec<u8> {
    let oids: Vec<u8> = mech_types
        .iter()
        .flat_map(|oid| der::encode(der::TAG_OID, oid))
        .collect();
    let mut fields = der::encode(context(0), &der::encode(der::TAG_SEQUENCE, &oids));
    if let Some(token) = mech_token {
        fields.extend(der::encode(
            context(2),
            &der::encode(der::TAG_OCTET_STRING, token),
        ));
    }
    let init = der::encode(context(0), &der::encode(der::TAG_SEQUENCE, &fields));
    der::encode_parts(
        der::TAG_APPLICATION_0,
        &[&der::encode(der::TAG_OID, OID_SPNEGO), &init],
    )
}

/// The DER MechTypeList for `mech_types` (what mechListMIC covers).
pub fn encode_mech_type_list(mech_types: &[&[u8]]) -> Vec<u8> {
    let oids: Vec<u8> = mech_types
        .iter()
        .flat_map(|oid| der::encode(der::TAG_OID, oid))
        .collect();
    der::encode(der::TAG_SEQUENCE, &oids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_init_token_matches_known_layout() {
        let token = server_init_token();
        // GSS-API header with the SPNEGO OID, then NegTokenInit2 with NTLMSSP and the hint.
        assert_eq!(&token[..2], &[0x60, token.len() as u8 - 2]);
        assert_eq!(
            &token[2..10],
            &[0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02]
        );
        let ntlm_oid = [
            0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a,
        ];
        assert!(token.windows(12).any(|w| w == ntlm_oid));
        assert!(token.ends_with(NEG_HINTS_NAME));
        let ClientToken::Init(init) = parse_client_token(&token).unwrap() else {
            panic!("not an init token");
        };
        assert_eq!(init.mech_types, vec![OID_NTLMSSP]);
        assert!(init.mech_token.is_none());
    }

    #[test]
    fn init_and_resp_round_trip() {
        let krb5: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];
        let token = encode_neg_token_init(&[krb5, OID_NTLMSSP], Some(b"hello"));
        let ClientToken::Init(init) = parse_client_token(&token).unwrap() else {
            panic!("not an init token");
        };
        assert_eq!(init.mech_types, vec![krb5, OID_NTLMSSP]);
        assert_eq!(init.mech_token, Some(&b"hello"[..]));
        assert_eq!(
            init.mech_types_der,
            &encode_mech_type_list(&[krb5, OID_NTLMSSP])[..]
        );

        let resp = encode_neg_token_resp(
            NegState::AcceptIncomplete,
            Some(OID_NTLMSSP),
            Some(&[7; 300]),
            Some(&[9; 16]),
        );
        let ClientToken::Resp(r) = parse_client_token(&resp).unwrap() else {
            panic!("not a resp token");
        };
        assert_eq!(r.neg_state, Some(1));
        assert_eq!(r.supported_mech, Some(OID_NTLMSSP));
        assert_eq!(r.response_token, Some(&[7u8; 300][..]));
        assert_eq!(r.mech_list_mic, Some(&[9u8; 16][..]));
    }

    #[test]
    fn truncations_never_panic() {
        let token = encode_neg_token_init(&[OID_NTLMSSP], Some(&[1; 200]));
        for n in 0..token.len() {
            assert!(parse_client_token(&token[..n]).is_err());
        }
    }
}
