//! Byte-level tests of the frame decoder and encoder.

use std::io::Cursor;

use bytes::{Bytes, BytesMut};

use crate::resp::{Frame, FrameError, Limits};

fn decode_all(bytes: &[u8], limits: &Limits) -> Result<(Vec<Frame>, usize), FrameError> {
    let mut buf = BytesMut::from(bytes);
    let mut frames = Vec::new();
    while let Some(frame) = Frame::decode(&mut buf, limits)? {
        frames.push(frame);
    }
    Ok((frames, buf.len()))
}

fn decode_requests(bytes: &[u8], limits: &Limits) -> Result<(Vec<Frame>, usize), FrameError> {
    let mut buf = BytesMut::from(bytes);
    let mut frames = Vec::new();
    while let Some(frame) = Frame::decode_request(&mut buf, limits)? {
        frames.push(frame);
    }
    Ok((frames, buf.len()))
}

fn request(args: &[&str]) -> Frame {
    Frame::Array(
        args.iter()
            .map(|arg| Frame::Bulk(Bytes::copy_from_slice(arg.as_bytes())))
            .collect(),
    )
}

fn sample_frames() -> Vec<Frame> {
    vec![
        Frame::ok(),
        Frame::error("ERR something went wrong"),
        Frame::Integer(0),
        Frame::Integer(i64::MIN),
        Frame::Integer(i64::MAX),
        Frame::bulk("hello"),
        Frame::bulk(Bytes::from_static(b"bin\r\n\0ary")),
        Frame::bulk(""),
        Frame::Null,
        Frame::Array(vec![]),
        Frame::Array(vec![
            Frame::bulk("a"),
            Frame::Integer(-7),
            Frame::Array(vec![Frame::Null]),
        ]),
        Frame::Map(vec![
            (Frame::bulk("role"), Frame::bulk("leader")),
            (Frame::Simple("term".into()), Frame::Integer(3)),
        ]),
        Frame::Set(vec![Frame::bulk("x")]),
        Frame::Boolean(true),
        Frame::Boolean(false),
        Frame::Double(1.5),
        Frame::Double(f64::NEG_INFINITY),
        Frame::BigNumber("-123456789012345678901234567890".into()),
        Frame::Verbatim {
            format: "txt".into(),
            text: Bytes::from_static(b"some text"),
        },
        Frame::Push(vec![Frame::bulk("message"), Frame::bulk("payload")]),
    ]
}

#[test]
fn resp3_encoding_round_trips_every_frame_type() {
    let limits = Limits::default();
    for frame in sample_frames() {
        let bytes = frame.to_bytes(true);
        let (frames, left) = decode_all(&bytes, &limits).unwrap();
        assert_eq!(
            frames,
            vec![frame.clone()],
            "round trip of {:?} via {:?}",
            frame,
            bytes
        );
        assert_eq!(left, 0);
    }
}

#[test]
fn resp2_encoding_uses_resp2_forms() {
    let map = Frame::Map(vec![(Frame::bulk("a"), Frame::Integer(1))]);
    assert_eq!(&map.to_bytes(false)[..], b"*2\r\n$1\r\na\r\n:1\r\n");
    assert_eq!(&map.to_bytes(true)[..], b"%1\r\n$1\r\na\r\n:1\r\n");
    assert_eq!(&Frame::Null.to_bytes(false)[..], b"$-1\r\n");
    assert_eq!(&Frame::Null.to_bytes(true)[..], b"_\r\n");
    assert_eq!(&Frame::Boolean(true).to_bytes(false)[..], b":1\r\n");
    assert_eq!(&Frame::Boolean(false).to_bytes(true)[..], b"#f\r\n");
    assert_eq!(&Frame::Double(2.5).to_bytes(false)[..], b"$3\r\n2.5\r\n");
    assert_eq!(&Frame::Double(2.5).to_bytes(true)[..], b",2.5\r\n");
    assert_eq!(
        &Frame::Set(vec![Frame::Integer(1)]).to_bytes(false)[..],
        b"*1\r\n:1\r\n"
    );
    assert_eq!(
        &Frame::Set(vec![Frame::Integer(1)]).to_bytes(true)[..],
        b"~1\r\n:1\r\n"
    );
    let verbatim = Frame::Verbatim {
        format: "txt".into(),
        text: Bytes::from_static(b"hi"),
    };
    assert_eq!(&verbatim.to_bytes(false)[..], b"$2\r\nhi\r\n");
    assert_eq!(&verbatim.to_bytes(true)[..], b"=6\r\ntxt:hi\r\n");
    // A nested map inside an array is flattened too.
    let nested = Frame::Array(vec![map]);
    assert_eq!(
        &nested.to_bytes(false)[..],
        b"*1\r\n*2\r\n$1\r\na\r\n:1\r\n"
    );
}

#[test]
fn resp2_null_array_and_null_bulk_read_as_null() {
    let (frames, _) = decode_all(b"$-1\r\n*-1\r\n_\r\n", &Limits::default()).unwrap();
    assert_eq!(frames, vec![Frame::Null, Frame::Null, Frame::Null]);
}

#[test]
fn simple_strings_and_errors_cannot_inject_frames() {
    let bytes = Frame::error("ERR bad\r\n+OK").to_bytes(false);
    assert_eq!(&bytes[..], b"-ERR bad  +OK\r\n");
    let (frames, _) = decode_all(&bytes, &Limits::default()).unwrap();
    assert_eq!(frames.len(), 1);
}

#[test]
fn blob_error_reads_as_error() {
    let (frames, _) = decode_all(b"!21\r\nSYNTAX invalid syntax\r\n", &Limits::default()).unwrap();
    assert_eq!(frames, vec![Frame::error("SYNTAX invalid syntax")]);
}

#[test]
fn attribute_is_skipped_and_the_annotated_value_returned() {
    let bytes = b"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*1\r\n:2\r\n";
    let (frames, left) = decode_all(bytes, &Limits::default()).unwrap();
    assert_eq!(frames, vec![Frame::Array(vec![Frame::Integer(2)])]);
    assert_eq!(left, 0);
}

/// Every proper prefix of a valid pipeline decodes to the frames wholly
/// inside it and then says "incomplete", never an error.
#[test]
fn every_split_point_of_a_valid_pipeline_is_incomplete_not_an_error() {
    let limits = Limits::default();
    let frames = sample_frames();
    let mut pipeline = BytesMut::new();
    let mut ends = Vec::new();
    for frame in &frames {
        frame.write_to(&mut pipeline, true);
        ends.push(pipeline.len());
    }
    for split in 0..pipeline.len() {
        let (decoded, _) = decode_all(&pipeline[..split], &limits)
            .unwrap_or_else(|error| panic!("prefix of {split} bytes: {error}"));
        let expected = ends.iter().filter(|&&end| end <= split).count();
        assert_eq!(decoded.len(), expected, "prefix of {split} bytes");
        assert_eq!(decoded[..], frames[..expected]);
    }
}

#[test]
fn every_split_point_of_a_request_pipeline_is_incomplete_not_an_error() {
    let limits = Limits::default();
    let pipeline: &[u8] = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\nPING\r\n*1\r\n$4\r\nPING\r\nECHO \"a b\"\r\n*0\r\n";
    let ends = [33, 39, 53, 65, 69];
    let expected_frames = [
        request(&["SET", "key", "value"]),
        request(&["PING"]),
        request(&["PING"]),
        request(&["ECHO", "a b"]),
        Frame::Array(vec![]),
    ];
    assert_eq!(pipeline.len(), *ends.last().unwrap());
    for split in 0..=pipeline.len() {
        let (decoded, _) = decode_requests(&pipeline[..split], &limits)
            .unwrap_or_else(|error| panic!("prefix of {split} bytes: {error}"));
        let expected = ends.iter().filter(|&&end| end <= split).count();
        assert_eq!(
            decoded[..],
            expected_frames[..expected],
            "prefix of {split} bytes"
        );
    }
}

#[test]
fn oversized_bulk_is_refused_from_its_header_alone() {
    let limits = Limits::default();
    let header: &[u8] = b"$999999999999\r\n";
    let error = Frame::check(&mut Cursor::new(header), &limits).unwrap_err();
    assert_eq!(
        error,
        FrameError::BulkTooLarge {
            length_bytes: 999_999_999_999,
            max_bytes: limits.bulk_bytes_max
        }
    );
    let request: &[u8] = b"*2\r\n$3\r\nGET\r\n$999999999999\r\n";
    let error = Frame::check_request(&mut Cursor::new(request), &limits).unwrap_err();
    assert!(
        matches!(error, FrameError::BulkTooLarge { .. }),
        "{error:?}"
    );
    // Just over the limit is refused too; at the limit it waits for the payload.
    let over = format!("${}\r\n", limits.bulk_bytes_max + 1);
    assert!(matches!(
        Frame::check(&mut Cursor::new(over.as_bytes()), &limits),
        Err(FrameError::BulkTooLarge { .. })
    ));
    let at = format!("${}\r\n", limits.bulk_bytes_max);
    assert_eq!(
        Frame::check(&mut Cursor::new(at.as_bytes()), &limits),
        Err(FrameError::Incomplete)
    );
}

#[test]
fn oversized_array_is_refused_from_its_header_alone() {
    let limits = Limits::default();
    let header: &[u8] = b"*2000000\r\n";
    let error = Frame::check(&mut Cursor::new(header), &limits).unwrap_err();
    assert_eq!(
        error,
        FrameError::TooManyElements {
            count: 2_000_000,
            max: limits.arguments_max
        }
    );
    let error = Frame::check_request(&mut Cursor::new(header), &limits).unwrap_err();
    assert_eq!(
        error,
        FrameError::TooManyElements {
            count: 2_000_000,
            max: limits.arguments_max
        }
    );
    let map: &[u8] = b"%2000000\r\n";
    assert!(matches!(
        Frame::check(&mut Cursor::new(map), &limits),
        Err(FrameError::TooManyElements { .. })
    ));
}

#[test]
fn frame_larger_than_frame_bytes_max_is_refused_before_it_is_buffered() {
    let limits = Limits {
        frame_bytes_max: 64,
        ..Limits::default()
    };
    // The third bulk would end past byte 64: refused from its header.
    let request: &[u8] =
        b"*3\r\n$20\r\naaaaaaaaaaaaaaaaaaaa\r\n$20\r\nbbbbbbbbbbbbbbbbbbbb\r\n$20\r\n";
    let error = Frame::check_request(&mut Cursor::new(request), &limits).unwrap_err();
    assert_eq!(error, FrameError::FrameTooLarge { max_bytes: 64 });
}

#[test]
fn line_without_terminator_is_refused_once_longer_than_the_limit() {
    let limits = Limits {
        line_bytes_max: 16,
        ..Limits::default()
    };
    let short = b"PING PING PING";
    assert_eq!(
        Frame::check_request(&mut Cursor::new(&short[..]), &limits),
        Err(FrameError::Incomplete)
    );
    let long = [b'a'; 40];
    assert_eq!(
        Frame::check_request(&mut Cursor::new(&long[..]), &limits),
        Err(FrameError::LineTooLong { max_bytes: 16 })
    );
    let long_header = [b"$".as_slice(), &[b'1'; 40]].concat();
    assert_eq!(
        Frame::check(&mut Cursor::new(&long_header[..]), &limits),
        Err(FrameError::LineTooLong { max_bytes: 16 })
    );
}

#[test]
fn nesting_deeper_than_the_limit_is_refused() {
    let limits = Limits {
        nesting_depth_max: 4,
        ..Limits::default()
    };
    let deep = "*1\r\n".repeat(10) + ":1\r\n";
    assert_eq!(
        Frame::check(&mut Cursor::new(deep.as_bytes()), &limits),
        Err(FrameError::NestingTooDeep { max: 4 })
    );
    let shallow = "*1\r\n".repeat(4) + ":1\r\n";
    assert!(Frame::check(&mut Cursor::new(shallow.as_bytes()), &limits).is_ok());
}

#[test]
fn lengths_parse_as_decimal_digits_only() {
    let limits = Limits::default();
    for (bytes, expected) in [
        (&b"$0\r\n\r\n"[..], Frame::Bulk(Bytes::new())),
        (
            b"$007\r\nabcdefg\r\n",
            Frame::Bulk(Bytes::from_static(b"abcdefg")),
        ),
        (b"$-1\r\n", Frame::Null),
        (b"*0\r\n", Frame::Array(vec![])),
    ] {
        let mut buffer = BytesMut::from(bytes);
        assert_eq!(
            Frame::decode(&mut buffer, &limits),
            Ok(Some(expected)),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn malformed_frames_are_protocol_errors() {
    let limits = Limits::default();
    let cases: &[(&[u8], FrameError)] = &[
        (
            b"?what\r\n",
            FrameError::UnexpectedType {
                expected: "a RESP type byte",
                got: b'?',
            },
        ),
        (b"$abc\r\n", FrameError::InvalidBulkLength),
        (b"$-2\r\n", FrameError::InvalidBulkLength),
        (b"*-5\r\n", FrameError::InvalidMultibulkLength),
        (b"*1x\r\n", FrameError::InvalidMultibulkLength),
        (b"$\r\n", FrameError::InvalidBulkLength),
        (b"$+5\r\n", FrameError::InvalidBulkLength),
        (b"$ 5\r\n", FrameError::InvalidBulkLength),
        (b"$5/\r\n", FrameError::InvalidBulkLength),
        (b"$12345678901234567890\r\n", FrameError::InvalidBulkLength),
        (b"$9999999999999999999\r\n", FrameError::InvalidBulkLength),
        (
            b"*9223372036854775808\r\n",
            FrameError::InvalidMultibulkLength,
        ),
        (b"$3\r\nfooXY", FrameError::MissingCrlf),
        (b"+OK\n", FrameError::MissingCrlf),
        (b":12a\r\n", FrameError::InvalidInteger),
        (b"#x\r\n", FrameError::InvalidBoolean),
        (b",one\r\n", FrameError::InvalidDouble),
        (b"_x\r\n", FrameError::InvalidNull),
        (b"=2\r\nab\r\n", FrameError::InvalidVerbatim),
    ];
    for (bytes, expected) in cases {
        let result = Frame::check(&mut Cursor::new(*bytes), &limits);
        assert_eq!(
            result.as_ref(),
            Err(expected),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn requests_must_be_arrays_of_bulks_or_inline() {
    let limits = Limits::default();
    let bulk: &[u8] = b"$3\r\nfoo\r\n";
    assert_eq!(
        Frame::check_request(&mut Cursor::new(bulk), &limits),
        Err(FrameError::UnexpectedType {
            expected: "'*'",
            got: b'$'
        })
    );
    let integer_argument: &[u8] = b"*1\r\n:1\r\n";
    assert_eq!(
        Frame::check_request(&mut Cursor::new(integer_argument), &limits),
        Err(FrameError::UnexpectedType {
            expected: "'$'",
            got: b':'
        })
    );
    let null_argument: &[u8] = b"*1\r\n$-1\r\n";
    assert_eq!(
        Frame::check_request(&mut Cursor::new(null_argument), &limits),
        Err(FrameError::InvalidBulkLength)
    );
}

#[test]
fn inline_commands_split_like_redis() {
    let limits = Limits::default();
    let (frames, left) = decode_requests(
        b"PING\r\nset  key   value\nECHO \"a\\tb\\x41\" 'it\\'s'\r\n\r\n",
        &limits,
    )
    .unwrap();
    assert_eq!(left, 0);
    assert_eq!(
        frames,
        vec![
            request(&["PING"]),
            request(&["set", "key", "value"]),
            request(&["ECHO", "a\tbA", "it's"]),
            Frame::Array(vec![]),
        ]
    );
}

#[test]
fn inline_escapes_that_are_not_escapes_stand_for_themselves() {
    let limits = Limits::default();
    let (frames, _) =
        decode_requests(b"ECHO 'a\\b' \"q\\\"x\" \"\\xZZ\" \"\\q\"\r\n", &limits).unwrap();
    assert_eq!(frames, vec![request(&["ECHO", "a\\b", "q\"x", "xZZ", "q"])]);
}

#[test]
fn inline_commands_with_unbalanced_quotes_are_refused() {
    let limits = Limits::default();
    for line in [
        &b"ECHO \"abc\r\n"[..],
        b"ECHO 'abc\r\n",
        b"ECHO \"abc\"def\r\n",
    ] {
        assert_eq!(
            Frame::check_request(&mut Cursor::new(line), &limits),
            Err(FrameError::UnbalancedQuotes),
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn protocol_errors_read_like_redis() {
    assert_eq!(
        FrameError::InvalidBulkLength.to_string(),
        "invalid bulk length"
    );
    assert_eq!(
        FrameError::UnexpectedType {
            expected: "'$'",
            got: b':'
        }
        .to_string(),
        "expected '$', got ':'"
    );
    assert_eq!(
        FrameError::UnbalancedQuotes.to_string(),
        "unbalanced quotes in request"
    );
}
