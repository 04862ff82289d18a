//! RESP2/RESP3 frames: a two-step decoder (`check` walks the buffered bytes
//! without allocating and says `Incomplete` when more are needed, then
//! `parse` builds the value) and an encoder for either protocol version.
//!
//! Every length is compared with its limit as soon as its header is read, so
//! an oversized bulk or array is refused before any of its bytes are buffered.
//!
//! Two entry points: `check`/`parse` accept any RESP2 or RESP3 value (the
//! client reads replies with them); `check_request`/`parse_request` accept
//! what a server reads: an array of bulk strings, or an inline command line
//! such as `PING\r\n` as typed into telnet.

use std::io::Cursor;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::Limits;

/// One RESP value. RESP3-only variants are encoded as their nearest RESP2
/// form when the connection speaks RESP2 (see [`Frame::write_to`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// `+text\r\n`
    Simple(String),
    /// `-ERR text\r\n` (also RESP3 blob errors `!len\r\n...`).
    Error(String),
    /// `:123\r\n` (signed 64 bit).
    Integer(i64),
    /// `$len\r\nbytes\r\n`
    Bulk(Bytes),
    /// RESP3 `_\r\n`; RESP2 `$-1\r\n` (and `*-1\r\n` when read).
    Null,
    /// `*n\r\n` followed by n frames.
    Array(Vec<Frame>),
    /// RESP3 `%n\r\n` followed by n key/value pairs; RESP2: a flat array of 2n.
    Map(Vec<(Frame, Frame)>),
    /// RESP3 `~n\r\n`; RESP2: an array.
    Set(Vec<Frame>),
    /// RESP3 `#t\r\n` / `#f\r\n`; RESP2: `:1` / `:0`.
    Boolean(bool),
    /// RESP3 `,1.5\r\n`; RESP2: a bulk string of the number.
    Double(f64),
    /// RESP3 `(12345678901234567890\r\n`; RESP2: a bulk string.
    BigNumber(String),
    /// RESP3 `=len\r\ntxt:text\r\n`; RESP2: a bulk string of `text`.
    /// `format` is three bytes (`txt`, `mkd`).
    Verbatim { format: String, text: Bytes },
    /// RESP3 out-of-band `>n\r\n`; RESP2: an array.
    Push(Vec<Frame>),
}

/// Why bytes could not be decoded as a frame. Everything except `Incomplete`
/// is a protocol error: the connection replies `-ERR Protocol error: <this>`
/// and closes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not enough bytes are buffered yet; read more and try again.
    #[error("incomplete frame")]
    Incomplete,
    /// A type byte that does not start any frame allowed here.
    #[error("expected {expected}, got '{}'", (*.got as char).escape_default())]
    UnexpectedType { expected: &'static str, got: u8 },
    /// A bulk or blob length header that is not -1 or a non-negative integer.
    #[error("invalid bulk length")]
    InvalidBulkLength,
    /// An aggregate count header that is not -1 or a non-negative integer.
    #[error("invalid multibulk length")]
    InvalidMultibulkLength,
    /// A bulk string larger than `Limits::bulk_bytes_max`.
    #[error("bulk length {length_bytes} exceeds the limit of {max_bytes} bytes")]
    BulkTooLarge { length_bytes: u64, max_bytes: usize },
    /// An aggregate with more elements than `Limits::arguments_max`.
    #[error("{count} elements exceed the limit of {max} arguments")]
    TooManyElements { count: u64, max: usize },
    /// A header, simple string or inline command longer than `Limits::line_bytes_max`.
    #[error("line longer than {max_bytes} bytes (too big inline request or header)")]
    LineTooLong { max_bytes: usize },
    /// Aggregates nested deeper than `Limits::nesting_depth_max`.
    #[error("frame nested deeper than {max} levels")]
    NestingTooDeep { max: usize },
    /// One frame larger than `Limits::frame_bytes_max`.
    #[error("request larger than {max_bytes} bytes")]
    FrameTooLarge { max_bytes: usize },
    /// A line or bulk payload not followed by `\r\n`.
    #[error("expected CRLF line terminator")]
    MissingCrlf,
    /// `:` or `(` with a value that is not an integer.
    #[error("invalid integer")]
    InvalidInteger,
    /// `,` with a value that is not a floating point number.
    #[error("invalid double")]
    InvalidDouble,
    /// `#` with a value other than `t` or `f`.
    #[error("invalid boolean")]
    InvalidBoolean,
    /// `_` followed by anything but `\r\n`.
    #[error("invalid null")]
    InvalidNull,
    /// A verbatim string without its `xxx:` format prefix.
    #[error("invalid verbatim string")]
    InvalidVerbatim,
    /// A simple string or error that is not UTF-8.
    #[error("invalid UTF-8 in simple string")]
    InvalidUtf8,
    /// An inline command with an unterminated or misplaced quote.
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
}

/// Type bytes that start a RESP frame; in a request only `*` (or an inline
/// line) is allowed, so these are refused there rather than read as inline.
const RESP_TYPE_BYTES: &[u8] = b"+-:$*_#,(!=%~>|";

/// `check` and `parse` share one walker; `Check` skips, `Parse` builds.
#[derive(Clone, Copy)]
struct Bounds<'a> {
    limits: &'a Limits,
    /// Position of the frame's first byte in the buffer.
    frame_start: usize,
}

impl Frame {
    /// `+OK`
    pub fn ok() -> Frame {
        Frame::Simple("OK".to_string())
    }

    /// An error reply; `message` starts with its code (`ERR ...`, `MOVED ...`).
    pub fn error(message: impl Into<String>) -> Frame {
        Frame::Error(message.into())
    }

    /// A bulk string from anything byte-like.
    pub fn bulk(bytes: impl Into<Bytes>) -> Frame {
        Frame::Bulk(bytes.into())
    }

    /// Checks that `src` (from its position) starts with one whole RESP2/RESP3
    /// value within `limits`, leaving the cursor just past it. Allocates
    /// nothing. `Err(Incomplete)` means more bytes are needed.
    pub fn check(src: &mut Cursor<&[u8]>, limits: &Limits) -> Result<(), FrameError> {
        let bounds = Bounds {
            limits,
            frame_start: src.position() as usize,
        };
        check_value(src, bounds, 0)
    }

    /// Parses one value that `check` accepted, leaving the cursor past it.
    pub fn parse(src: &mut Cursor<&[u8]>) -> Result<Frame, FrameError> {
        parse_value(src)
    }

    /// Checks that `src` starts with one whole client request: an array of
    /// bulk strings, or an inline command line. Allocates nothing.
    pub fn check_request(src: &mut Cursor<&[u8]>, limits: &Limits) -> Result<(), FrameError> {
        let bounds = Bounds {
            limits,
            frame_start: src.position() as usize,
        };
        match peek_u8(src)? {
            b'*' => {
                src.advance(1);
                let Some(count) = read_count(src, bounds)? else {
                    return Ok(());
                };
                for _ in 0..count {
                    match get_u8(src)? {
                        // A request argument is never null (Redis: invalid bulk length).
                        b'$' => check_blob(src, bounds, b'$', false)?,
                        got => {
                            return Err(FrameError::UnexpectedType {
                                expected: "'$'",
                                got,
                            })
                        }
                    }
                }
                Ok(())
            }
            got if RESP_TYPE_BYTES.contains(&got) => Err(FrameError::UnexpectedType {
                expected: "'*'",
                got,
            }),
            _ => {
                let line = get_inline_line(src, limits.line_bytes_max)?;
                let count = split_inline(line, None)?;
                if count > limits.arguments_max {
                    return Err(FrameError::TooManyElements {
                        count: count as u64,
                        max: limits.arguments_max,
                    });
                }
                Ok(())
            }
        }
    }

    /// Parses one request that `check_request` accepted into an `Array` of
    /// `Bulk`s (empty for `*0`, `*-1` or a blank inline line).
    pub fn parse_request(src: &mut Cursor<&[u8]>) -> Result<Frame, FrameError> {
        if peek_u8(src)? == b'*' {
            src.advance(1);
            let count = match parse_length(get_line(src, usize::MAX)?) {
                Some(count) if count > 0 => count as usize,
                Some(_) => return Ok(Frame::Array(Vec::new())),
                None => return Err(FrameError::InvalidMultibulkLength),
            };
            let mut args = Vec::with_capacity(count);
            for _ in 0..count {
                match get_u8(src)? {
                    b'$' => args.push(parse_blob(src, b'$')?),
                    got => {
                        return Err(FrameError::UnexpectedType {
                            expected: "'$'",
                            got,
                        })
                    }
                }
            }
            return Ok(Frame::Array(args));
        }
        let line = get_inline_line(src, usize::MAX)?;
        let mut args = Vec::new();
        split_inline(line, Some(&mut args))?;
        Ok(Frame::Array(args.into_iter().map(Frame::Bulk).collect()))
    }

    /// Removes one whole value from the front of `buf` if it is there.
    /// `Ok(None)`: more bytes are needed.
    pub fn decode(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Frame>, FrameError> {
        decode_with(buf, |src| Frame::check(src, limits), Frame::parse)
    }

    /// Removes one whole request from the front of `buf` if it is there.
    pub fn decode_request(
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Option<Frame>, FrameError> {
        decode_with(
            buf,
            |src| Frame::check_request(src, limits),
            Frame::parse_request,
        )
    }

    /// Appends this frame's encoding. With `resp3 == false`, RESP3-only types
    /// take their RESP2 form: Map becomes a flat array, Null `$-1`, Boolean
    /// an integer, Double/BigNumber/Verbatim a bulk string, Set/Push an array.
    /// CR and LF inside simple strings and errors become spaces, so a reply
    /// can never inject a frame.
    pub fn write_to(&self, buf: &mut BytesMut, resp3: bool) {
        match self {
            Frame::Simple(text) => put_text_line(buf, b'+', text),
            Frame::Error(text) => put_text_line(buf, b'-', text),
            Frame::Integer(value) => put_header(buf, b':', *value),
            Frame::Bulk(bytes) => put_blob(buf, b'$', bytes),
            Frame::Null if resp3 => buf.put_slice(b"_\r\n"),
            Frame::Null => buf.put_slice(b"$-1\r\n"),
            Frame::Array(items) => put_aggregate(buf, b'*', items, resp3),
            Frame::Set(items) => put_aggregate(buf, if resp3 { b'~' } else { b'*' }, items, resp3),
            Frame::Push(items) => put_aggregate(buf, if resp3 { b'>' } else { b'*' }, items, resp3),
            Frame::Map(pairs) => {
                if resp3 {
                    put_header(buf, b'%', pairs.len() as i64);
                } else {
                    put_header(buf, b'*', 2 * pairs.len() as i64);
                }
                for (key, value) in pairs {
                    key.write_to(buf, resp3);
                    value.write_to(buf, resp3);
                }
            }
            Frame::Boolean(value) if resp3 => {
                buf.put_slice(if *value { b"#t\r\n" } else { b"#f\r\n" })
            }
            Frame::Boolean(value) => put_header(buf, b':', i64::from(*value)),
            Frame::Double(value) => {
                let text = format_double(*value);
                if resp3 {
                    put_text_line(buf, b',', &text);
                } else {
                    put_blob(buf, b'$', text.as_bytes());
                }
            }
            Frame::BigNumber(text) if resp3 => put_text_line(buf, b'(', text),
            Frame::BigNumber(text) => put_blob(buf, b'$', text.as_bytes()),
            Frame::Verbatim { format, text } if resp3 => {
                let format = if format.len() == 3 {
                    format.as_bytes()
                } else {
                    b"txt".as_slice()
                };
                put_header(buf, b'=', (text.len() + 4) as i64);
                buf.put_slice(format);
                buf.put_u8(b':');
                buf.put_slice(text);
                buf.put_slice(b"\r\n");
            }
            Frame::Verbatim { text, .. } => put_blob(buf, b'$', text),
        }
    }

    /// This frame's encoding as one buffer.
    pub fn to_bytes(&self, resp3: bool) -> Bytes {
        let mut buf = BytesMut::new();
        self.write_to(&mut buf, resp3);
        buf.freeze()
    }
}

fn decode_with(
    buf: &mut BytesMut,
    check: impl FnOnce(&mut Cursor<&[u8]>) -> Result<(), FrameError>,
    parse: impl FnOnce(&mut Cursor<&[u8]>) -> Result<Frame, FrameError>,
) -> Result<Option<Frame>, FrameError> {
    let mut cursor = Cursor::new(&buf[..]);
    match check(&mut cursor) {
        Ok(()) => {}
        Err(FrameError::Incomplete) => return Ok(None),
        Err(error) => return Err(error),
    }
    let length = cursor.position() as usize;
    cursor.set_position(0);
    let frame = parse(&mut cursor)?;
    debug_assert_eq!(
        cursor.position() as usize,
        length,
        "parse must consume what check accepted"
    );
    buf.advance(length);
    Ok(Some(frame))
}

// ---------------------------------------------------------------- checking

fn check_value(src: &mut Cursor<&[u8]>, bounds: Bounds, depth: usize) -> Result<(), FrameError> {
    if depth > bounds.limits.nesting_depth_max {
        return Err(FrameError::NestingTooDeep {
            max: bounds.limits.nesting_depth_max,
        });
    }
    let line_max = bounds.limits.line_bytes_max;
    match get_u8(src)? {
        b'+' | b'-' => {
            std::str::from_utf8(get_line(src, line_max)?).map_err(|_| FrameError::InvalidUtf8)?;
        }
        b':' => {
            parse_integer(get_line(src, line_max)?)?;
        }
        b'(' => {
            check_big_number(get_line(src, line_max)?)?;
        }
        b',' => {
            parse_double(get_line(src, line_max)?)?;
        }
        b'#' => {
            parse_boolean(get_line(src, line_max)?)?;
        }
        b'_' => {
            if !get_line(src, line_max)?.is_empty() {
                return Err(FrameError::InvalidNull);
            }
        }
        kind @ (b'$' | b'!' | b'=') => check_blob(src, bounds, kind, kind == b'$')?,
        b'*' | b'~' | b'>' => {
            if let Some(count) = read_count(src, bounds)? {
                for _ in 0..count {
                    check_value(src, bounds, depth + 1)?;
                }
            }
        }
        kind @ (b'%' | b'|') => {
            if let Some(count) = read_count(src, bounds)? {
                for _ in 0..count {
                    check_value(src, bounds, depth + 1)?;
                    check_value(src, bounds, depth + 1)?;
                }
            }
            if kind == b'|' {
                // An attribute annotates the value that follows it.
                check_value(src, bounds, depth)?;
            }
        }
        got => {
            return Err(FrameError::UnexpectedType {
                expected: "a RESP type byte",
                got,
            })
        }
    }
    check_frame_size(src, bounds)
}

/// Reads an aggregate count header; `None` for a null (`-1`) aggregate.
fn read_count(src: &mut Cursor<&[u8]>, bounds: Bounds) -> Result<Option<u64>, FrameError> {
    let line = get_line(src, bounds.limits.line_bytes_max)?;
    let count = parse_length(line).ok_or(FrameError::InvalidMultibulkLength)?;
    if count < 0 {
        return Ok(None);
    }
    let count = count as u64;
    if count > bounds.limits.arguments_max as u64 {
        return Err(FrameError::TooManyElements {
            count,
            max: bounds.limits.arguments_max,
        });
    }
    Ok(Some(count))
}

/// Checks a `$`, `!` or `=` blob after its type byte: the length against the
/// limits first, then that the payload and its CRLF are buffered.
fn check_blob(
    src: &mut Cursor<&[u8]>,
    bounds: Bounds,
    kind: u8,
    null_allowed: bool,
) -> Result<(), FrameError> {
    let line = get_line(src, bounds.limits.line_bytes_max)?;
    let length = parse_length(line).ok_or(FrameError::InvalidBulkLength)?;
    if length < 0 {
        // `$-1` is RESP2's null; a null blob error or verbatim string does not exist.
        return if null_allowed {
            Ok(())
        } else {
            Err(FrameError::InvalidBulkLength)
        };
    }
    let length_bytes = length as u64;
    if length_bytes > bounds.limits.bulk_bytes_max as u64 {
        return Err(FrameError::BulkTooLarge {
            length_bytes,
            max_bytes: bounds.limits.bulk_bytes_max,
        });
    }
    let payload_start = src.position() as usize;
    let payload_end = payload_start + length_bytes as usize;
    if payload_end + 2 - bounds.frame_start > bounds.limits.frame_bytes_max {
        return Err(FrameError::FrameTooLarge {
            max_bytes: bounds.limits.frame_bytes_max,
        });
    }
    check_blob_payload(src.get_ref(), kind, payload_start..payload_end)?;
    src.set_position((payload_end + 2) as u64);
    Ok(())
}

/// A blob's payload at `payload` is all buffered and followed by CRLF; a
/// verbatim string's (`=`) starts with its three-letter format and `:`.
/// Shared by `check` and `parse`, so parsing sees what checking passed.
fn check_blob_payload(
    buffered: &[u8],
    kind: u8,
    payload: std::ops::Range<usize>,
) -> Result<(), FrameError> {
    if buffered.len() < payload.end + 2 {
        return Err(FrameError::Incomplete);
    }
    if &buffered[payload.end..payload.end + 2] != b"\r\n" {
        return Err(FrameError::MissingCrlf);
    }
    if kind == b'=' && (payload.len() < 4 || buffered[payload.start + 3] != b':') {
        return Err(FrameError::InvalidVerbatim);
    }
    Ok(())
}

fn check_frame_size(src: &Cursor<&[u8]>, bounds: Bounds) -> Result<(), FrameError> {
    if src.position() as usize - bounds.frame_start > bounds.limits.frame_bytes_max {
        return Err(FrameError::FrameTooLarge {
            max_bytes: bounds.limits.frame_bytes_max,
        });
    }
    Ok(())
}

fn check_big_number(line: &[u8]) -> Result<(), FrameError> {
    let digits = line
        .strip_prefix(b"-")
        .or_else(|| line.strip_prefix(b"+"))
        .unwrap_or(line);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(FrameError::InvalidInteger);
    }
    Ok(())
}

// ----------------------------------------------------------------- parsing

fn parse_value(src: &mut Cursor<&[u8]>) -> Result<Frame, FrameError> {
    let frame = match get_u8(src)? {
        b'+' => Frame::Simple(line_string(get_line(src, usize::MAX)?)?),
        b'-' => Frame::Error(line_string(get_line(src, usize::MAX)?)?),
        b':' => Frame::Integer(parse_integer(get_line(src, usize::MAX)?)?),
        b'(' => {
            let line = get_line(src, usize::MAX)?;
            check_big_number(line)?;
            Frame::BigNumber(line_string(line)?)
        }
        b',' => Frame::Double(parse_double(get_line(src, usize::MAX)?)?),
        b'#' => Frame::Boolean(parse_boolean(get_line(src, usize::MAX)?)?),
        b'_' => {
            get_line(src, usize::MAX)?;
            Frame::Null
        }
        b'$' => parse_blob(src, b'$')?,
        b'!' => match parse_blob(src, b'!')? {
            Frame::Bulk(bytes) => Frame::Error(String::from_utf8_lossy(&bytes).into_owned()),
            other => other,
        },
        b'=' => match parse_blob(src, b'=')? {
            Frame::Bulk(bytes) => Frame::Verbatim {
                format: String::from_utf8_lossy(&bytes[..3]).into_owned(),
                text: bytes.slice(4..),
            },
            other => other,
        },
        kind @ (b'*' | b'~' | b'>') => {
            let Some(count) = parse_count(src)? else {
                return Ok(Frame::Null);
            };
            let mut items = Vec::with_capacity(count);
            for _ in 0..count {
                items.push(parse_value(src)?);
            }
            match kind {
                b'*' => Frame::Array(items),
                b'~' => Frame::Set(items),
                _ => Frame::Push(items),
            }
        }
        kind @ (b'%' | b'|') => {
            let count = parse_count(src)?.unwrap_or(0);
            let mut pairs = Vec::with_capacity(count);
            for _ in 0..count {
                let key = parse_value(src)?;
                let value = parse_value(src)?;
                pairs.push((key, value));
            }
            if kind == b'|' {
                // Attributes are metadata raftkv does not use: return the annotated value.
                return parse_value(src);
            }
            Frame::Map(pairs)
        }
        got => {
            return Err(FrameError::UnexpectedType {
                expected: "a RESP type byte",
                got,
            })
        }
    };
    Ok(frame)
}

fn parse_count(src: &mut Cursor<&[u8]>) -> Result<Option<usize>, FrameError> {
    let count =
        parse_length(get_line(src, usize::MAX)?).ok_or(FrameError::InvalidMultibulkLength)?;
    Ok(usize::try_from(count).ok())
}

/// Parses a blob after its type byte; `$-1` gives `Null`, otherwise `Bulk`.
fn parse_blob(src: &mut Cursor<&[u8]>, kind: u8) -> Result<Frame, FrameError> {
    let length = parse_length(get_line(src, usize::MAX)?).ok_or(FrameError::InvalidBulkLength)?;
    if length < 0 {
        return if kind == b'$' {
            Ok(Frame::Null)
        } else {
            Err(FrameError::InvalidBulkLength)
        };
    }
    let start = src.position() as usize;
    let end = start
        .checked_add(length as usize)
        .ok_or(FrameError::InvalidBulkLength)?;
    let buffered = *src.get_ref();
    check_blob_payload(buffered, kind, start..end)?;
    let bytes = Bytes::copy_from_slice(&buffered[start..end]);
    src.set_position((end + 2) as u64);
    Ok(Frame::Bulk(bytes))
}

fn line_string(line: &[u8]) -> Result<String, FrameError> {
    std::str::from_utf8(line)
        .map(str::to_string)
        .map_err(|_| FrameError::InvalidUtf8)
}

// --------------------------------------------------------- shared scanning

fn peek_u8(src: &Cursor<&[u8]>) -> Result<u8, FrameError> {
    if !src.has_remaining() {
        return Err(FrameError::Incomplete);
    }
    Ok(src.chunk()[0])
}

fn get_u8(src: &mut Cursor<&[u8]>) -> Result<u8, FrameError> {
    if !src.has_remaining() {
        return Err(FrameError::Incomplete);
    }
    Ok(src.get_u8())
}

/// Returns the bytes up to the next `\r\n` and moves past it. A line with no
/// terminator within `line_max` bytes is an error rather than a reason to
/// keep buffering.
fn get_line<'a>(src: &mut Cursor<&'a [u8]>, line_max: usize) -> Result<&'a [u8], FrameError> {
    let (rest, newline) = find_newline(src, line_max);
    match newline {
        Some(newline) => {
            if newline == 0 || rest[newline - 1] != b'\r' {
                return Err(FrameError::MissingCrlf);
            }
            src.set_position(src.position() + newline as u64 + 1);
            Ok(&rest[..newline - 1])
        }
        None if rest.len() > line_max.saturating_add(1) => Err(FrameError::LineTooLong {
            max_bytes: line_max,
        }),
        None => Err(FrameError::Incomplete),
    }
}

/// The unread bytes, and where the first `\n` stands among them when it is
/// within a line of `line_max` bytes and its terminator (searching no
/// further, so a long line costs no more than its bound).
fn find_newline<'a>(src: &Cursor<&'a [u8]>, line_max: usize) -> (&'a [u8], Option<usize>) {
    let buffered: &'a [u8] = src.get_ref();
    let start = src.position() as usize;
    let rest = &buffered[start.min(buffered.len())..];
    let search_bytes = rest.len().min(line_max.saturating_add(2));
    let newline = rest[..search_bytes].iter().position(|&byte| byte == b'\n');
    (rest, newline)
}

/// An inline command line ends at `\n`, with an optional `\r` before it.
fn get_inline_line<'a>(
    src: &mut Cursor<&'a [u8]>,
    line_max: usize,
) -> Result<&'a [u8], FrameError> {
    let (rest, newline) = find_newline(src, line_max);
    match newline {
        Some(newline) => {
            src.set_position(src.position() + newline as u64 + 1);
            let line = &rest[..newline];
            Ok(line.strip_suffix(b"\r").unwrap_or(line))
        }
        None if rest.len() > line_max => Err(FrameError::LineTooLong {
            max_bytes: line_max,
        }),
        None => Err(FrameError::Incomplete),
    }
}

/// A length or count header: `-1` or a non-negative decimal without sign or
/// spaces. Anything else (including other negatives) is `None`.
fn parse_length(line: &[u8]) -> Option<i64> {
    if line == b"-1" {
        return Some(-1);
    }
    if line.is_empty() || line.len() > 19 {
        return None;
    }
    // Every request carries two or more lengths: parsed digit by digit
    // rather than through `str::parse` (a third of a GET's parsing cost).
    line.iter().try_fold(0i64, |value, &byte| {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value.checked_mul(10)?.checked_add(i64::from(digit))
    })
}

fn parse_integer(line: &[u8]) -> Result<i64, FrameError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or(FrameError::InvalidInteger)
}

fn parse_double(line: &[u8]) -> Result<f64, FrameError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or(FrameError::InvalidDouble)
}

fn parse_boolean(line: &[u8]) -> Result<bool, FrameError> {
    match line {
        b"t" => Ok(true),
        b"f" => Ok(false),
        _ => Err(FrameError::InvalidBoolean),
    }
}

/// Splits an inline command like Redis's `sdssplitargs`: whitespace
/// separates arguments; "double quotes" understand `\n \r \t \b \a \\ \"`
/// and `\xHH`; 'single quotes' understand `\'`. A closing quote must be
/// followed by whitespace or the end. Returns the argument count; pushes the
/// arguments into `out` only when given, so `check` allocates nothing.
fn split_inline(line: &[u8], mut out: Option<&mut Vec<Bytes>>) -> Result<usize, FrameError> {
    let mut count = 0;
    let mut index = 0;
    let mut current = Vec::new();
    loop {
        while index < line.len() && line[index].is_ascii_whitespace() {
            index += 1;
        }
        if index >= line.len() {
            return Ok(count);
        }
        let collect = out.is_some();
        current.clear();
        let mut push = |byte: u8| {
            if collect {
                current.push(byte);
            }
        };
        match line[index] {
            quote @ (b'"' | b'\'') => {
                let escape = if quote == b'"' {
                    double_quoted_escape
                } else {
                    single_quoted_escape
                };
                index = split_quoted(line, index + 1, quote, escape, &mut push)?;
            }
            _ => {
                while index < line.len() && !line[index].is_ascii_whitespace() {
                    push(line[index]);
                    index += 1;
                }
            }
        }
        count += 1;
        if let Some(out) = out.as_deref_mut() {
            out.push(Bytes::copy_from_slice(&current));
        }
    }
}

/// Decodes the escape sequence whose backslash is at an index of a line:
/// the byte it stands for and its length, or `None` when it is not one.
type QuotedEscape = fn(&[u8], usize) -> Option<(u8, usize)>;

/// Reads a quoted argument from `index`, just after its opening `quote`,
/// up to the closing one, which must be followed by whitespace or the end.
/// `escape` decodes the backslash at an index into a byte and the length
/// of its sequence, or declines (the backslash then stands for itself).
/// Returns the index after the closing quote.
fn split_quoted(
    line: &[u8],
    mut index: usize,
    quote: u8,
    escape: QuotedEscape,
    push: &mut impl FnMut(u8),
) -> Result<usize, FrameError> {
    loop {
        match line.get(index) {
            None => return Err(FrameError::UnbalancedQuotes),
            Some(&byte) if byte == quote => {
                index += 1;
                if index < line.len() && !line[index].is_ascii_whitespace() {
                    return Err(FrameError::UnbalancedQuotes);
                }
                return Ok(index);
            }
            Some(&byte) => {
                let escaped = if byte == b'\\' {
                    escape(line, index)
                } else {
                    None
                };
                let (byte, length) = escaped.unwrap_or((byte, 1));
                push(byte);
                index += length;
            }
        }
    }
}

/// In "double quotes": `\xHH`, and `\n \r \t \b \a`; any other escaped
/// byte stands for itself.
fn double_quoted_escape(line: &[u8], index: usize) -> Option<(u8, usize)> {
    if line.get(index + 1) == Some(&b'x') && line.get(index + 2..index + 4).is_some_and(is_hex_pair)
    {
        return Some((
            hex_value(line[index + 2]) * 16 + hex_value(line[index + 3]),
            4,
        ));
    }
    let byte = match *line.get(index + 1)? {
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'b' => 0x08,
        b'a' => 0x07,
        other => other,
    };
    Some((byte, 2))
}

/// In 'single quotes' only `\'` is an escape.
fn single_quoted_escape(line: &[u8], index: usize) -> Option<(u8, usize)> {
    (line.get(index + 1) == Some(&b'\'')).then_some((b'\'', 2))
}

fn is_hex_pair(pair: &[u8]) -> bool {
    pair.len() == 2 && pair.iter().all(u8::is_ascii_hexdigit)
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => 0,
    }
}

// ---------------------------------------------------------------- encoding

fn put_header(buf: &mut BytesMut, kind: u8, value: i64) {
    buf.put_u8(kind);
    put_decimal(buf, value);
    buf.put_slice(b"\r\n");
}

fn put_decimal(buf: &mut BytesMut, value: i64) {
    let mut digits = [0u8; 20];
    let mut position = digits.len();
    let mut magnitude = value.unsigned_abs();
    loop {
        position -= 1;
        digits[position] = b'0' + (magnitude % 10) as u8;
        magnitude /= 10;
        if magnitude == 0 {
            break;
        }
    }
    if value < 0 {
        buf.put_u8(b'-');
    }
    buf.put_slice(&digits[position..]);
}

fn put_blob(buf: &mut BytesMut, kind: u8, bytes: &[u8]) {
    buf.reserve(bytes.len() + 16);
    put_header(buf, kind, bytes.len() as i64);
    buf.put_slice(bytes);
    buf.put_slice(b"\r\n");
}

fn put_text_line(buf: &mut BytesMut, kind: u8, text: &str) {
    buf.put_u8(kind);
    for &byte in text.as_bytes() {
        buf.put_u8(if byte == b'\r' || byte == b'\n' {
            b' '
        } else {
            byte
        });
    }
    buf.put_slice(b"\r\n");
}

fn put_aggregate(buf: &mut BytesMut, kind: u8, items: &[Frame], resp3: bool) {
    put_header(buf, kind, items.len() as i64);
    for item in items {
        item.write_to(buf, resp3);
    }
}

fn format_double(value: f64) -> String {
    if value.is_nan() {
        "nan".to_string()
    } else if value.is_infinite() {
        if value > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        value.to_string()
    }
}
