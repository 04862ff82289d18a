//! The accept loop: one task per connection, at most `connections_max` at
//! once, and a graceful stop when the shutdown future completes.

use std::future::Future;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::backend::Backend;
use super::connection;
use super::state::ServerState;
use super::Limits;
use crate::log_events;

/// First wait after a failed accept (out of file descriptors, ...); doubled
/// on each further failure up to the max.
const ACCEPT_BACKOFF_MS_MIN: u64 = 10;
const ACCEPT_BACKOFF_MS_MAX: u64 = 1_000;

/// Serves the Redis protocol on `listener` until `shutdown` completes, then
/// stops accepting, lets every connection finish the requests it has in
/// flight and send their replies, and returns once all connections closed.
pub async fn serve<B: Backend>(
    listener: TcpListener,
    node: B,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let state = Arc::new(ServerState::new(
        node,
        limits,
        listener.local_addr()?.port(),
    ));
    let stop_connections = CancellationToken::new();
    let connections = TaskTracker::new();
    let mut backoff_ms = ACCEPT_BACKOFF_MS_MIN;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((socket, peer)) => {
                backoff_ms = ACCEPT_BACKOFF_MS_MIN;
                match state.admit_connection() {
                    Ok(permit) => {
                        let state = state.clone();
                        let stop = stop_connections.clone();
                        connections.spawn(async move {
                            connection::run(socket, peer, state, stop).await;
                            drop(permit);
                        });
                    }
                    Err(_) => refuse_over_limit(socket, state.limits.connections_max),
                }
            }
            Err(error) => {
                warn!(event = log_events::CLIENT_ACCEPT_FAILED, %error, retry_ms = backoff_ms);
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(Duration::from_millis(backoff_ms)) => {}
                }
                backoff_ms = (backoff_ms * 2).min(ACCEPT_BACKOFF_MS_MAX);
            }
        }
    }
    // Free the port first, so a restarted node can bind it at once.
    drop(listener);
    stop_connections.cancel();
    connections.close();
    connections.wait().await;
    debug!(event = log_events::CLIENT_SERVER_STOPPED);
    Ok(())
}

/// Tells a client over `connections_max` why, and closes. The socket is
/// fresh, so the short write lands in its empty send buffer without
/// blocking the accept loop.
fn refuse_over_limit(socket: TcpStream, connections_max: usize) {
    debug!(
        event = log_events::CLIENT_REFUSED,
        reason = "connections_max",
        connections_max
    );
    if let Ok(mut socket) = socket.into_std() {
        let _ = socket.write_all(b"-ERR max number of clients reached\r\n");
        let _ = socket.shutdown(std::net::Shutdown::Write);
    }
}
