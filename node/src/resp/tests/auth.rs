//! AUTH and HELLO ... AUTH against `requirepass`, and their refusal when no
//! password is configured.

use super::fake::TestServer;
use crate::resp::{Frame, Limits};

const NOAUTH: &str = "NOAUTH Authentication required.";
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
const NO_PASSWORD: &str = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";

fn with_password() -> Limits {
    Limits {
        requirepass: Some("s3cret".into()),
        ..Limits::default()
    }
}

#[tokio::test]
async fn every_command_needs_auth_when_a_password_is_set() {
    let server = TestServer::start(with_password()).await;
    let mut c = server.connect().await;
    for words in [
        &["GET", "k"][..],
        &["SET", "k", "v"],
        &["PING"],
        &["CLUSTER", "SLOTS"],
    ] {
        assert_eq!(c.call(words).await, Frame::error(NOAUTH), "{words:?}");
    }
    assert!(matches!(c.call(&["HELLO", "3"]).await, Frame::Error(e) if e.starts_with("NOAUTH")));
    assert_eq!(c.call(&["AUTH", "wrong"]).await, Frame::error(WRONGPASS));
    assert_eq!(
        c.call(&["AUTH", "someone", "s3cret"]).await,
        Frame::error(WRONGPASS)
    );
    assert_eq!(c.call(&["GET", "k"]).await, Frame::error(NOAUTH));
    assert_eq!(c.call(&["AUTH", "s3cret"]).await, Frame::ok());
    assert_eq!(c.call(&["SET", "k", "v"]).await, Frame::ok());

    let mut named = server.connect().await;
    assert_eq!(
        named.call(&["AUTH", "default", "s3cret"]).await,
        Frame::ok()
    );
    assert_eq!(named.call(&["PING"]).await, Frame::Simple("PONG".into()));

    let mut hello = server.connect().await;
    assert_eq!(
        hello.call(&["HELLO", "2", "AUTH", "default", "nope"]).await,
        Frame::error(WRONGPASS)
    );
    assert!(matches!(
        hello
            .call(&["HELLO", "2", "AUTH", "default", "s3cret"])
            .await,
        Frame::Array(_)
    ));
    assert_eq!(hello.call(&["GET", "k"]).await, Frame::bulk("v"));
    server.stop().await;
}

#[tokio::test]
async fn a_password_without_requirepass_is_refused_not_ignored() {
    let server = TestServer::start(Limits::default()).await;
    let mut c = server.connect().await;
    assert_eq!(
        c.call(&["AUTH", "anything"]).await,
        Frame::error(NO_PASSWORD)
    );
    assert_eq!(
        c.call(&["AUTH", "default", "anything"]).await,
        Frame::error(NO_PASSWORD)
    );
    assert_eq!(
        c.call(&["HELLO", "3", "AUTH", "default", "anything"]).await,
        Frame::error(NO_PASSWORD)
    );
    assert_eq!(c.call(&["PING"]).await, Frame::Simple("PONG".into()));
    server.stop().await;
}
