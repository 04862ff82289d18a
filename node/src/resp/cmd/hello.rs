//! HELLO [protover [AUTH user pass] [SETNAME name]]: switches the
//! connection to RESP2 or RESP3 and describes the server. raftkv has no
//! users, so AUTH is accepted with any credentials, like Redis's default
//! user without a password.

use bytes::Bytes;

use super::client::validate_name;
use super::info::redis_role;
use super::{Args, CommandError, Context, Execution, Spec};
use crate::resp::backend::Backend;
use crate::resp::Frame;

pub(crate) const SPEC: Spec = Spec {
    name: "hello",
    arity: -1,
    flags: &["fast", "stale", "noauth"],
    first_key: 0,
    last_key: 0,
    key_step: 0,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Hello {
    /// `None`: keep the current protocol.
    pub protocol: Option<i64>,
    pub name: Option<Bytes>,
}

impl Hello {
    pub(crate) fn from_args(args: &mut Args) -> Result<Hello, CommandError> {
        let mut hello = Hello {
            protocol: None,
            name: None,
        };
        let Some(version) = args.next_optional() else {
            return Ok(hello);
        };
        let version = super::args::parse_i64(&version).ok_or_else(|| {
            CommandError::Other("ERR Protocol version is not an integer or out of range".into())
        })?;
        hello.protocol = Some(version);
        while let Some(option) = args.next_optional() {
            match option.to_ascii_uppercase().as_slice() {
                b"AUTH" if args.remaining() >= 2 => {
                    args.next_bytes()?;
                    args.next_bytes()?;
                }
                b"SETNAME" if args.remaining() >= 1 => {
                    let name = args.next_bytes()?;
                    validate_name(&name)?;
                    hello.name = Some(name);
                }
                _ => {
                    return Err(CommandError::Other(format!(
                        "ERR Syntax error in HELLO option '{}'",
                        String::from_utf8_lossy(&option)
                    )))
                }
            }
        }
        Ok(hello)
    }

    pub(crate) fn execute<B: Backend>(self, context: &mut Context<'_, B>) -> Execution {
        match self.protocol {
            Some(2) => context.session.resp3 = false,
            Some(3) => context.session.resp3 = true,
            Some(_) => return Execution::Now(CommandError::NoProto.to_frame()),
            None => {}
        }
        if let Some(name) = self.name {
            context.session.name = (!name.is_empty()).then_some(name);
        }
        let status = context.server.backend.status();
        let protocol = if context.session.resp3 { 3 } else { 2 };
        Execution::Now(Frame::Map(vec![
            (Frame::bulk("server"), Frame::bulk("raftkv")),
            (
                Frame::bulk("version"),
                Frame::bulk(env!("CARGO_PKG_VERSION")),
            ),
            (Frame::bulk("proto"), Frame::Integer(protocol)),
            (Frame::bulk("id"), Frame::Integer(context.session.id as i64)),
            (Frame::bulk("mode"), Frame::bulk("standalone")),
            (Frame::bulk("role"), Frame::bulk(redis_role(status.role))),
            (Frame::bulk("modules"), Frame::Array(Vec::new())),
        ]))
    }
}
