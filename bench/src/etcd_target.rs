//! The etcd backend of the load generator (cargo feature `etcd`): the same
//! clients, key space and values as against raftkv, sent to the etcd leader
//! as v3 `Put`s and linearizable `Range`s through the etcd-client crate.
//!
//! Like etcd's own benchmark tools, sessions share HTTP/2 connections:
//! `SESSIONS_PER_CONNECTION` clients per connection (gRPC multiplexes their
//! requests). Each session keeps its window of requests in flight on its
//! connection and hands outcomes back in order.

use std::collections::HashMap;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, KvClient};
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use tokio::sync::Mutex;

use super::load::{ErrorKind, Op, OpFailure, OpKind, Session, Target, Workload};

/// Client sessions sharing one HTTP/2 connection (etcd's benchmark tool
/// and the reference figures use 8 connections for 64 clients).
pub(crate) const SESSIONS_PER_CONNECTION: usize = 8;
/// Longest a leader lookup waits for one member's status.
const LEADER_LOOKUP_TIMEOUT_MS_MAX: u64 = 1_000;

/// An etcd cluster reached through its members' client addresses.
pub(crate) struct EtcdTarget {
    endpoints: Vec<String>,
    io_timeout: Duration,
    /// Open connections per endpoint; session `n` to an endpoint uses
    /// connection `n / SESSIONS_PER_CONNECTION`.
    connections: Mutex<HashMap<String, Connections>>,
}

/// The connections to one endpoint and how many sessions were opened on them.
#[derive(Default)]
struct Connections {
    clients: Vec<Client>,
    sessions_opened: usize,
}

impl EtcdTarget {
    pub(crate) fn new(endpoints: Vec<String>, io_timeout: Duration) -> EtcdTarget {
        EtcdTarget {
            endpoints,
            io_timeout,
            connections: Mutex::new(HashMap::new()),
        }
    }

    fn options(&self) -> ConnectOptions {
        ConnectOptions::new()
            .with_connect_timeout(self.io_timeout)
            .with_timeout(self.io_timeout)
    }

    /// A connection to `endpoint` for the next session.
    async fn connection(&self, endpoint: &str) -> Result<Client, OpFailure> {
        let mut connections = self.connections.lock().await;
        let open = connections.entry(endpoint.to_string()).or_default();
        let wanted = open.sessions_opened / SESSIONS_PER_CONNECTION;
        let client = match open.clients.get(wanted) {
            Some(client) => client.clone(),
            None => {
                let client = Client::connect([endpoint], Some(self.options()))
                    .await
                    .map_err(|e| classify(endpoint, e))?;
                open.clients.push(client.clone());
                client
            }
        };
        open.sessions_opened += 1;
        Ok(client)
    }

    /// The client address of the member that says it leads.
    async fn find_leader(&self) -> Result<String, OpFailure> {
        let timeout = self
            .io_timeout
            .min(Duration::from_millis(LEADER_LOOKUP_TIMEOUT_MS_MAX));
        let answers = futures::future::join_all(self.endpoints.iter().map(|endpoint| async move {
            let status = async {
                let mut client = Client::connect([endpoint], Some(self.options())).await?;
                client.status().await
            };
            match tokio::time::timeout(timeout, status).await {
                Ok(Ok(status)) => Ok(status
                    .header()
                    .is_some_and(|header| header.member_id() == status.leader())),
                Ok(Err(error)) => Err(error.to_string()),
                Err(_) => Err(format!("no status within {} ms", timeout.as_millis())),
            }
        }))
        .await;
        pick_leader(&self.endpoints, &answers)
    }
}

/// The endpoint whose status says it leads; else why none could be found.
fn pick_leader(
    endpoints: &[String],
    answers: &[Result<bool, String>],
) -> Result<String, OpFailure> {
    if let Some((endpoint, _)) = endpoints
        .iter()
        .zip(answers)
        .find(|(_, answer)| matches!(answer, Ok(true)))
    {
        return Ok(endpoint.clone());
    }
    let errors: Vec<String> = endpoints
        .iter()
        .zip(answers)
        .filter_map(|(endpoint, answer)| answer.as_ref().err().map(|e| format!("{endpoint}: {e}")))
        .collect();
    if !errors.is_empty() && errors.len() == endpoints.len() {
        Err(OpFailure::new(ErrorKind::ConnectFailed, errors.join("; ")))
    } else {
        Err(OpFailure::new(
            ErrorKind::NoLeader,
            format!("no etcd member among {} says it leads", endpoints.join(",")),
        ))
    }
}

impl Target for EtcdTarget {
    type Session = EtcdSession;

    async fn connect(&self, hint: Option<String>) -> Result<EtcdSession, OpFailure> {
        let endpoint = match hint {
            Some(endpoint) => endpoint,
            None => self.find_leader().await?,
        };
        let client = self.connection(&endpoint).await?;
        Ok(EtcdSession {
            kv: client.kv_client(),
            addr: endpoint,
            io_timeout: self.io_timeout,
            queued: Vec::new(),
            in_flight: FuturesOrdered::new(),
        })
    }
}

/// One client of the generator: its requests go out on a shared connection.
pub(crate) struct EtcdSession {
    addr: String,
    kv: KvClient,
    io_timeout: Duration,
    queued: Vec<BoxFuture<'static, Result<(), OpFailure>>>,
    in_flight: FuturesOrdered<BoxFuture<'static, Result<(), OpFailure>>>,
}

impl Session for EtcdSession {
    fn addr(&self) -> &str {
        &self.addr
    }

    fn submit(&mut self, op: &Op, workload: &Workload) {
        let mut kv = self.kv.clone();
        let key = op.key.to_vec();
        let addr = self.addr.clone();
        let timeout = self.io_timeout;
        let request = match op.kind {
            OpKind::Write => {
                let value = workload.value().to_vec();
                async move {
                    let put = kv.put(key, value, None);
                    match tokio::time::timeout(timeout, put).await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(error)) => Err(classify(&addr, error)),
                        Err(_) => Err(timed_out(&addr, timeout)),
                    }
                }
                .boxed()
            }
            // etcd's default Range is linearizable (ReadIndex), like a raftkv GET.
            OpKind::Read => async move {
                match tokio::time::timeout(timeout, kv.get(key, None)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(error)) => Err(classify(&addr, error)),
                    Err(_) => Err(timed_out(&addr, timeout)),
                }
            }
            .boxed(),
        };
        self.queued.push(request);
    }

    async fn next_outcome(&mut self, _kind: OpKind) -> Result<(), OpFailure> {
        for request in self.queued.drain(..) {
            self.in_flight.push_back(request);
        }
        match self.in_flight.next().await {
            Some(outcome) => outcome,
            None => Err(OpFailure::broken(
                ErrorKind::Protocol,
                format!("{}: no request in flight", self.addr),
            )),
        }
    }
}

fn timed_out(addr: &str, timeout: Duration) -> OpFailure {
    OpFailure::broken(
        ErrorKind::Timeout,
        format!("{addr}: no reply within {} ms", timeout.as_millis()),
    )
}

/// Sorts an etcd error the way the report groups raftkv's.
fn classify(addr: &str, error: etcd_client::Error) -> OpFailure {
    match error {
        etcd_client::Error::GRpcStatus(status) => classify_status(
            addr,
            status.code() as i32,
            &format!("{:?}", status.code()),
            status.message(),
        ),
        etcd_client::Error::TransportError(error) => OpFailure::broken(
            ErrorKind::ConnectionLost,
            format!("{addr}: transport: {error}"),
        ),
        etcd_client::Error::IoError(error) => {
            OpFailure::broken(ErrorKind::ConnectionLost, format!("{addr}: {error}"))
        }
        other => OpFailure::new(
            ErrorKind::ServerError("CLIENT".into()),
            format!("{addr}: {other}"),
        ),
    }
}

/// gRPC status codes (the same numbers in every gRPC implementation).
const GRPC_DEADLINE_EXCEEDED: i32 = 4;
const GRPC_UNAVAILABLE: i32 = 14;

fn classify_status(addr: &str, code: i32, code_name: &str, message: &str) -> OpFailure {
    let detail = format!("{addr}: {message} ({code_name})");
    if message.contains("leader changed") || message.contains("no leader") {
        // The member lost or never had a leader: the request may or may not
        // have been applied (as raftkv's UNCERTAIN); go find the leader.
        return OpFailure::broken(ErrorKind::Uncertain, detail);
    }
    match code {
        GRPC_UNAVAILABLE => OpFailure::broken(ErrorKind::ConnectionLost, detail),
        GRPC_DEADLINE_EXCEEDED => OpFailure::broken(ErrorKind::Timeout, detail),
        _ => OpFailure::new(ErrorKind::ServerError(code_name.to_uppercase()), detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints() -> Vec<String> {
        vec!["a:1".into(), "b:2".into(), "c:3".into()]
    }

    #[test]
    fn the_member_that_says_it_leads_is_picked() {
        let answers = vec![Ok(false), Ok(true), Err("refused".into())];
        assert_eq!(pick_leader(&endpoints(), &answers).unwrap(), "b:2");
    }

    #[test]
    fn no_leader_and_no_answer_are_told_apart() {
        let answers = vec![Ok(false), Ok(false), Err("refused".into())];
        let failure = pick_leader(&endpoints(), &answers).unwrap_err();
        assert_eq!(failure.kind, ErrorKind::NoLeader);
        let answers = vec![
            Err("refused".into()),
            Err("refused".into()),
            Err("x".into()),
        ];
        let failure = pick_leader(&endpoints(), &answers).unwrap_err();
        assert_eq!(failure.kind, ErrorKind::ConnectFailed);
        assert!(
            failure.detail.contains("a:1: refused"),
            "{}",
            failure.detail
        );
    }

    #[test]
    fn etcd_errors_map_to_the_report_kinds() {
        let lost = classify_status("e:1", 14, "Unavailable", "connection refused");
        assert_eq!(lost.kind, ErrorKind::ConnectionLost);
        assert!(lost.session_broken);
        let changed = classify_status("e:1", 14, "Unavailable", "etcdserver: leader changed");
        assert_eq!(changed.kind, ErrorKind::Uncertain);
        let slow = classify_status("e:1", 4, "DeadlineExceeded", "context deadline exceeded");
        assert_eq!(slow.kind, ErrorKind::Timeout);
        let other = classify_status(
            "e:1",
            8,
            "ResourceExhausted",
            "etcdserver: too many requests",
        );
        assert_eq!(
            other.kind,
            ErrorKind::ServerError("RESOURCEEXHAUSTED".into())
        );
        assert!(!other.session_broken);
        assert!(
            other.detail.contains("e:1: etcdserver: too many requests"),
            "{}",
            other.detail
        );
    }
}
