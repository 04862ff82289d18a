//! One client connection: reads requests, runs them, writes the replies in
//! request order.
//!
//! Pipelining: every request already buffered is decoded and started before
//! anything is flushed, and replies that complete together go out in one
//! write. Writes are handed to the node in request order and may be in
//! flight together (the driver commits them in one fsync), up to
//! `Limits::pipeline_inflight_max`. A read waits for the connection's
//! earlier writes and a write for its earlier reads, so a pipeline gives the
//! same replies as running its requests one by one.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::BytesMut;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::backend::Backend;
use super::cmd::{request_slot, Command, Context, Execution};
use super::session::Session;
use super::state::ServerState;
use super::{Frame, FrameError};
use crate::log_events;

/// Initial size of a connection's read and write buffers; they grow (by
/// doubling) only while a large request or reply needs it.
const BUFFER_BYTES_INITIAL: usize = 4 * 1024;
/// An empty buffer that grew beyond this is given back, so one large request
/// does not pin memory for the rest of a long-lived connection.
const BUFFER_BYTES_RETAINED_MAX: usize = 1024 * 1024;
/// After shutdown or end of input, how long requests already in flight may
/// take to finish before the connection is closed without their replies.
const CLOSE_DRAIN_MS_MAX: u64 = 5_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Now,
    Read,
    Write,
}

/// A finished request: its reply and how to encode it.
struct Completed {
    frame: Frame,
    /// The protocol of the connection when the request was made.
    resp3: bool,
    kind: Kind,
}

/// A request in flight: its reply future with how to encode the reply, or
/// the reply itself when it was ready at once (one allocation per request,
/// the command's own future).
enum InFlight {
    Running {
        future: BoxFuture<'static, Frame>,
        resp3: bool,
        kind: Kind,
    },
    Done(Option<Completed>),
}

impl Future for InFlight {
    type Output = Completed;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Completed> {
        let this = self.get_mut();
        match this {
            InFlight::Running {
                future,
                resp3,
                kind,
            } => match future.as_mut().poll(cx) {
                Poll::Ready(frame) => Poll::Ready(Completed {
                    frame,
                    resp3: *resp3,
                    kind: *kind,
                }),
                Poll::Pending => Poll::Pending,
            },
            InFlight::Done(done) => match done.take() {
                Some(done) => Poll::Ready(done),
                // FuturesOrdered never polls a finished future again.
                None => Poll::Pending,
            },
        }
    }
}

enum Flow {
    Continue,
    Close,
}

struct Connection<B: Backend> {
    stream: TcpStream,
    read_buf: BytesMut,
    write_buf: BytesMut,
    in_flight: FuturesOrdered<InFlight>,
    reads_in_flight: usize,
    writes_in_flight: usize,
    session: Session,
    state: Arc<ServerState<B>>,
    shutdown: CancellationToken,
}

/// Serves one connection until the client leaves, sends QUIT, breaks the
/// protocol, or the server shuts down.
pub(crate) async fn run<B: Backend>(
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<ServerState<B>>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let local = stream
        .local_addr()
        .map(|addr| addr.to_string())
        .unwrap_or_default();
    let mut session = Session::new(state.next_client_id(), peer.to_string(), local);
    session.authenticated = state.limits.requirepass.is_none();
    let id = session.id;
    debug!(event = log_events::CLIENT_CONNECTED, id, peer = %peer);
    let mut connection = Connection {
        stream,
        read_buf: BytesMut::with_capacity(BUFFER_BYTES_INITIAL),
        write_buf: BytesMut::with_capacity(BUFFER_BYTES_INITIAL),
        in_flight: FuturesOrdered::new(),
        reads_in_flight: 0,
        writes_in_flight: 0,
        session,
        state,
        shutdown,
    };
    let result = connection.serve().await;
    connection.close().await;
    match result {
        Ok(()) => debug!(event = log_events::CLIENT_DISCONNECTED, id),
        Err(error) => debug!(event = log_events::CLIENT_DISCONNECTED, id, %error),
    }
}

impl<B: Backend> Connection<B> {
    async fn serve(&mut self) -> io::Result<()> {
        // Registered once for the connection, not on every wait.
        let shutdown = self.shutdown.clone();
        let cancelled = shutdown.cancelled();
        tokio::pin!(cancelled);
        loop {
            if let Flow::Close = self.dispatch_buffered().await? {
                return Ok(());
            }
            self.collect_ready();
            self.flush().await?;
            self.prepare_read_buffer();
            // Biased: a finished reply is taken without polling the
            // shutdown signal again (it stays registered); the signal comes
            // before new bytes, so a client that never stops sending cannot
            // hold the connection open through a shutdown.
            tokio::select! {
                biased;
                Some(done) = self.in_flight.next(), if !self.in_flight.is_empty() => self.emit(done),
                _ = &mut cancelled => return Ok(()),
                read = self.stream.read_buf(&mut self.read_buf) => {
                    if read? == 0 {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Decodes and starts every request already buffered.
    async fn dispatch_buffered(&mut self) -> io::Result<Flow> {
        loop {
            let limits = &self.state.limits;
            let frame = match Frame::decode_request(&mut self.read_buf, limits) {
                Ok(Some(frame)) => frame,
                Ok(None)
                    if self.read_buf.len() > limits.frame_bytes_max + limits.line_bytes_max =>
                {
                    // `check` refuses oversized frames from their headers, so
                    // this is a second line of defence for the buffer bound.
                    return Ok(self.protocol_error(FrameError::FrameTooLarge {
                        max_bytes: limits.frame_bytes_max,
                    }));
                }
                Ok(None) => return Ok(Flow::Continue),
                Err(error) => return Ok(self.protocol_error(error)),
            };
            match &frame {
                // Redis ignores empty requests (`*0`, blank inline lines).
                Frame::Array(words) if words.is_empty() => continue,
                Frame::Array(words) if is_http(&words[0]) => {
                    // As Redis does: an HTTP request sent to this port (a
                    // cross-protocol attack from a browser) is cut off unanswered.
                    debug!(
                        event = log_events::CLIENT_HTTP_REQUEST_REFUSED,
                        id = self.session.id
                    );
                    return Ok(Flow::Close);
                }
                _ => {}
            }
            let slot = request_slot(&frame);
            let execution = match Command::from_frame(frame) {
                Ok(command) => {
                    let mut context = Context {
                        server: &self.state,
                        session: &mut self.session,
                        slot,
                    };
                    command.execute(&mut context)
                }
                Err(error) => {
                    // Inside MULTI, a command refused while queueing makes EXEC fail.
                    if let Some(transaction) = self.session.transaction.as_mut() {
                        transaction.failed = true;
                    }
                    Execution::Now(error.to_frame())
                }
            };
            let resp3 = self.session.resp3;
            match execution {
                Execution::Now(frame) if self.in_flight.is_empty() => {
                    frame.write_to(&mut self.write_buf, resp3)
                }
                Execution::Now(frame) => {
                    if !self.make_room().await? {
                        return Ok(Flow::Close);
                    }
                    self.push(futures::future::ready(frame).boxed(), resp3, Kind::Now);
                }
                Execution::Quit(frame) => {
                    self.push(futures::future::ready(frame).boxed(), resp3, Kind::Now);
                    return Ok(Flow::Close);
                }
                Execution::Read(future) => {
                    if !self.wait_until(|c| c.writes_in_flight == 0).await?
                        || !self.make_room().await?
                    {
                        return Ok(Flow::Close);
                    }
                    self.push(future, resp3, Kind::Read);
                }
                Execution::Write(future) => {
                    if !self.wait_until(|c| c.reads_in_flight == 0).await?
                        || !self.make_room().await?
                    {
                        return Ok(Flow::Close);
                    }
                    self.push(future, resp3, Kind::Write);
                }
            }
            if self.write_buf.len() >= self.state.limits.write_buffer_bytes_max {
                self.flush().await?;
            }
        }
    }

    /// Queues `-ERR Protocol error: ...` after the replies still owed, then closes.
    fn protocol_error(&mut self, error: FrameError) -> Flow {
        debug!(event = log_events::CLIENT_PROTOCOL_ERROR, id = self.session.id, %error);
        let frame = Frame::error(format!("ERR Protocol error: {error}"));
        self.push(
            futures::future::ready(frame).boxed(),
            self.session.resp3,
            Kind::Now,
        );
        Flow::Close
    }

    /// Adds a request to the ordered in-flight queue. It is polled once right
    /// away, so a write reaches the driver now, in request order, rather than
    /// whenever the queue is next polled.
    fn push(&mut self, future: BoxFuture<'static, Frame>, resp3: bool, kind: Kind) {
        let mut future = InFlight::Running {
            future,
            resp3,
            kind,
        };
        let mut context = std::task::Context::from_waker(Waker::noop());
        if let Poll::Ready(done) = Pin::new(&mut future).poll(&mut context) {
            future = InFlight::Done(Some(done));
        }
        match kind {
            Kind::Read => self.reads_in_flight += 1,
            Kind::Write => self.writes_in_flight += 1,
            Kind::Now => {}
        }
        self.in_flight.push_back(future);
    }

    /// Encodes a finished request's reply.
    fn emit(&mut self, done: Completed) {
        match done.kind {
            Kind::Read => self.reads_in_flight -= 1,
            Kind::Write => self.writes_in_flight -= 1,
            Kind::Now => {}
        }
        done.frame.write_to(&mut self.write_buf, done.resp3);
    }

    /// Encodes every reply that is already finished, in order, without waiting.
    fn collect_ready(&mut self) {
        while let Some(Some(done)) = self.in_flight.next().now_or_never() {
            self.emit(done);
        }
    }

    /// Waits for the oldest request in flight. `false`: the server is
    /// shutting down.
    async fn complete_one(&mut self) -> io::Result<bool> {
        let done = tokio::select! {
            _ = self.shutdown.cancelled() => return Ok(false),
            done = self.in_flight.next() => done,
        };
        if let Some(done) = done {
            self.emit(done);
            if self.write_buf.len() >= self.state.limits.write_buffer_bytes_max {
                self.flush().await?;
            }
        }
        Ok(true)
    }

    async fn wait_until(&mut self, ready: impl Fn(&Self) -> bool) -> io::Result<bool> {
        while !ready(self) {
            if self.in_flight.is_empty() || !self.complete_one().await? {
                return Ok(ready(self));
            }
        }
        Ok(true)
    }

    async fn make_room(&mut self) -> io::Result<bool> {
        let inflight_max = self.state.limits.pipeline_inflight_max.max(1);
        self.wait_until(|c| c.in_flight.len() < inflight_max).await
    }

    async fn flush(&mut self) -> io::Result<()> {
        if !self.write_buf.is_empty() {
            self.stream.write_all_buf(&mut self.write_buf).await?;
        }
        if self.write_buf.capacity() > BUFFER_BYTES_RETAINED_MAX {
            self.write_buf = BytesMut::with_capacity(BUFFER_BYTES_INITIAL);
        }
        Ok(())
    }

    /// Makes room for the next read: a shrunk buffer when idle after a large
    /// request, otherwise at least `BUFFER_BYTES_INITIAL` free bytes, doubling
    /// while a large frame arrives. The total stays bounded by `check`, which
    /// refuses frames over the limits from their headers.
    fn prepare_read_buffer(&mut self) {
        if self.read_buf.is_empty() && self.read_buf.capacity() > BUFFER_BYTES_RETAINED_MAX {
            self.read_buf = BytesMut::with_capacity(BUFFER_BYTES_INITIAL);
        }
        if self.read_buf.capacity() - self.read_buf.len() < BUFFER_BYTES_INITIAL / 4 {
            self.read_buf
                .reserve(self.read_buf.len().max(BUFFER_BYTES_INITIAL));
        }
    }

    /// Finishes what is in flight (within `CLOSE_DRAIN_MS_MAX`), sends the
    /// replies and closes the socket.
    async fn close(&mut self) {
        let drain = async {
            while let Some(done) = self.in_flight.next().await {
                self.emit(done);
            }
        };
        if tokio::time::timeout(Duration::from_millis(CLOSE_DRAIN_MS_MAX), drain)
            .await
            .is_err()
        {
            debug!(
                event = log_events::CLIENT_CLOSE_DRAIN_TIMEOUT,
                id = self.session.id,
                in_flight = self.in_flight.len()
            );
        }
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
    }
}

/// The first word of an HTTP request line or header, which Redis treats as an attack.
fn is_http(first_word: &Frame) -> bool {
    matches!(first_word, Frame::Bulk(word) if word.eq_ignore_ascii_case(b"POST") || word.eq_ignore_ascii_case(b"Host:"))
}
