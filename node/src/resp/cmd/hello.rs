//! HELLO [protover [AUTH user pass] [SETNAME name]]: switches the
//! connection to RESP2 or RESP3 and describes the server. AUTH is checked
//! as the AUTH command checks it (refused when no password is configured);
//! an unauthenticated connection must use it.

use bytes::Bytes;

use super::client::validate_name;
use super::info::redis_role;
use super::{Args, CommandError, Context, Execution, Spec};
use crate::resp::backend::Backend;
use crate::resp::Frame;

pub(crate) const SPEC: Spec = Spec::keyless("hello", -1, &["fast", "stale", "noauth"]);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Hello {
    /// `None`: keep the current protocol.
    pub protocol: Option<i64>,
    pub name: Option<Bytes>,
    /// AUTH's (username, password).
    pub auth: Option<(Bytes, Bytes)>,
}

impl Hello {
    pub(crate) fn from_args(args: &mut Args) -> Result<Hello, CommandError> {
        let mut hello = Hello {
            protocol: None,
            name: None,
            auth: None,
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
                    let user = args.next_bytes()?;
                    let password = args.next_bytes()?;
                    hello.auth = Some((user, password));
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
        if let Some((user, password)) = &self.auth {
            let required = context.server.limits.requirepass.as_deref();
            if let Err(message) = super::auth::check(required, Some(user), password) {
                return Execution::Now(Frame::error(message));
            }
            context.session.authenticated = true;
        }
        if !context.session.authenticated {
            return Execution::Now(Frame::error(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
            ));
        }
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
            (Frame::bulk("mode"), Frame::bulk("cluster")),
            (Frame::bulk("role"), Frame::bulk(redis_role(status.role))),
            (Frame::bulk("modules"), Frame::Array(Vec::new())),
        ]))
    }
}
