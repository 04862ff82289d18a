//! One RESP2 connection to one node: send requests, read reply frames.
//!
//! Error replies (`-ERR ...`, `-MOVED ...`) are ordinary `Frame::Error`
//! values at this level; `ClusterClient` decides what they mean.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::ClientError;
use crate::resp::{Frame, Limits};

/// Bytes reserved in the read buffer before each socket read.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// The password every new connection of this process sends with AUTH
/// (`raftkv up|tui|demo --requirepass`); None: no AUTH.
static PASSWORD: std::sync::RwLock<Option<String>> = std::sync::RwLock::new(None);

/// Makes every connection this process opens from now on authenticate with
/// `password` (the dashboard, the gate and the benchmarks share this client).
pub fn use_password(password: Option<String>) {
    *PASSWORD
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = password;
}

fn password() -> Option<String> {
    PASSWORD
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
}

/// A connected RESP client socket.
pub struct Connection {
    addr: String,
    stream: TcpStream,
    read_buffer: BytesMut,
    /// Longest a single socket read or write may wait for progress.
    io_timeout: Duration,
    /// Bounds on reply frames (a reply over them is a protocol error).
    limits: Limits,
    /// Set while a request's reply is still to be read. Still set when a
    /// request future was dropped half-way (cancelled, timed out) or failed:
    /// its late reply would be taken for the next one's, so the connection
    /// refuses further requests.
    in_flight: bool,
}

impl Connection {
    /// Connects to `addr` ("host:port"), waiting at most `timeout`. The same
    /// `timeout` then bounds every later wait for socket progress (see
    /// `set_io_timeout`).
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Connection, ClientError> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => {
                return Err(ClientError::Connect {
                    addr: addr.to_string(),
                    source,
                })
            }
            Err(_) => {
                return Err(ClientError::ConnectTimeout {
                    addr: addr.to_string(),
                    timeout_ms: timeout.as_millis() as u64,
                })
            }
        };
        stream.set_nodelay(true).map_err(|source| ClientError::Io {
            addr: addr.to_string(),
            source,
        })?;
        let mut connection = Connection {
            addr: addr.to_string(),
            stream,
            read_buffer: BytesMut::with_capacity(READ_CHUNK_BYTES),
            io_timeout: timeout,
            limits: Limits::default(),
            in_flight: false,
        };
        if let Some(password) = password() {
            match connection.request(&[b"AUTH", password.as_bytes()]).await? {
                Frame::Simple(_) => {}
                reply => {
                    return Err(ClientError::Server {
                        addr: addr.to_string(),
                        message: format!("AUTH refused: {reply:?}"),
                    })
                }
            }
        }
        Ok(connection)
    }

    /// The address this connection was opened to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sets how long one socket read or write may wait for progress before
    /// the request fails with `ClientError::Timeout`.
    pub fn set_io_timeout(&mut self, timeout: Duration) {
        self.io_timeout = timeout;
    }

    /// Sends one request (an array of bulk strings) and reads its reply.
    pub async fn request(&mut self, args: &[&[u8]]) -> Result<Frame, ClientError> {
        self.begin()?;
        let mut encoded = BytesMut::new();
        encode_request(&mut encoded, args.iter().copied());
        let (reader, writer) = self.stream.split();
        write_all(writer, &self.addr, self.io_timeout, encoded.freeze()).await?;
        let reply = read_frame(
            reader,
            &mut self.read_buffer,
            &self.limits,
            &self.addr,
            self.io_timeout,
        )
        .await?;
        self.in_flight = false;
        Ok(reply)
    }

    /// Sends every request, then reads one reply per request, in order.
    /// Writing and reading run together, so a pipeline larger than the
    /// socket buffers cannot deadlock against a server that stops reading
    /// until its replies drain.
    pub async fn pipeline(&mut self, requests: &[Vec<Bytes>]) -> Result<Vec<Frame>, ClientError> {
        self.begin()?;
        let mut encoded = BytesMut::new();
        for request in requests {
            encode_request(&mut encoded, request.iter().map(|arg| &arg[..]));
        }
        let Connection {
            addr,
            stream,
            read_buffer,
            io_timeout,
            limits,
            ..
        } = self;
        let (mut reader, writer) = stream.split();
        let write = write_all(writer, addr, *io_timeout, encoded.freeze());
        let read = async {
            let mut replies = Vec::with_capacity(requests.len());
            for _ in 0..requests.len() {
                replies
                    .push(read_frame(&mut reader, read_buffer, limits, addr, *io_timeout).await?);
            }
            Ok(replies)
        };
        let ((), replies) = tokio::try_join!(write, read)?;
        self.in_flight = false;
        Ok(replies)
    }

    /// Marks a request as started, refusing when an earlier one never finished.
    fn begin(&mut self) -> Result<(), ClientError> {
        if self.in_flight {
            return Err(ClientError::Interrupted {
                addr: self.addr.clone(),
            });
        }
        self.in_flight = true;
        Ok(())
    }

    /// True when the next request can be sent on this connection: no
    /// earlier request was left unfinished and the server has not closed it.
    /// Never waits.
    pub fn is_reusable(&self) -> bool {
        !self.in_flight && !self.is_closed_by_peer()
    }

    /// True when the server has closed this connection (or sent bytes
    /// nobody asked for), so it must not be reused. Never waits.
    pub fn is_closed_by_peer(&self) -> bool {
        if !self.read_buffer.is_empty() {
            return true;
        }
        let mut probe = [0u8; 1];
        match self.stream.try_read(&mut probe) {
            Ok(_) => true, // 0 = closed; more = an unsolicited reply
            Err(error) => error.kind() != std::io::ErrorKind::WouldBlock,
        }
    }
}

/// Appends `*n\r\n` and one `$len\r\narg\r\n` per argument: a request as
/// every Redis server reads it.
pub fn encode_request<'a>(buffer: &mut BytesMut, args: impl ExactSizeIterator<Item = &'a [u8]>) {
    put_header(buffer, b'*', args.len());
    for arg in args {
        put_header(buffer, b'$', arg.len());
        buffer.put_slice(arg);
        buffer.put_slice(b"\r\n");
    }
}

fn put_header(buffer: &mut BytesMut, kind: u8, length: usize) {
    buffer.put_u8(kind);
    buffer.put_slice(length.to_string().as_bytes());
    buffer.put_slice(b"\r\n");
}

async fn write_all(
    mut writer: impl AsyncWrite + Unpin,
    addr: &str,
    io_timeout: Duration,
    mut bytes: Bytes,
) -> Result<(), ClientError> {
    while !bytes.is_empty() {
        let written = transfer(addr, io_timeout, writer.write(&bytes)).await?;
        bytes.advance(written);
    }
    Ok(())
}

/// Reads until one whole frame is buffered, then takes it off the buffer.
async fn read_frame(
    mut reader: impl AsyncRead + Unpin,
    buffer: &mut BytesMut,
    limits: &Limits,
    addr: &str,
    io_timeout: Duration,
) -> Result<Frame, ClientError> {
    loop {
        let decoded = Frame::decode(buffer, limits).map_err(|source| ClientError::Protocol {
            addr: addr.to_string(),
            source,
        })?;
        if let Some(frame) = decoded {
            return Ok(frame);
        }
        buffer.reserve(READ_CHUNK_BYTES);
        transfer(addr, io_timeout, reader.read_buf(buffer)).await?;
    }
}

/// One socket read or write (`io`) on the connection to `addr`, within
/// `io_timeout`; the bytes it moved. Moving none means `addr` closed the
/// connection.
async fn transfer(
    addr: &str,
    io_timeout: Duration,
    io: impl std::future::Future<Output = std::io::Result<usize>>,
) -> Result<usize, ClientError> {
    let moved = tokio::time::timeout(io_timeout, io)
        .await
        .map_err(|_| ClientError::Timeout {
            addr: addr.to_string(),
            timeout_ms: io_timeout.as_millis() as u64,
        })?
        .map_err(|source| ClientError::Io {
            addr: addr.to_string(),
            source,
        })?;
    if moved == 0 {
        return Err(ClientError::Closed {
            addr: addr.to_string(),
        });
    }
    Ok(moved)
}
