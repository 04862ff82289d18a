//! AUTH [username] password: authenticates the connection against
//! `--requirepass`. raftkv has one user, `default`. Until a connection is
//! authenticated every command but AUTH, HELLO and QUIT gets `-NOAUTH`.
//! Without a configured password AUTH is refused, as Redis refuses it, so a
//! client never believes a password protects the data.

use bytes::Bytes;

use super::{Args, CommandError, Context, Execution, Spec};
use crate::resp::backend::Backend;
use crate::resp::Frame;

pub(crate) const SPEC: Spec = Spec::keyless(
    "auth",
    -2,
    &["noscript", "loading", "stale", "fast", "noauth"],
);

pub(crate) const NOAUTH: &str = "NOAUTH Authentication required.";
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
const NO_PASSWORD_CONFIGURED: &str = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Auth {
    pub user: Option<Bytes>,
    pub password: Bytes,
}

impl Auth {
    pub(crate) fn from_args(args: &mut Args) -> Result<Auth, CommandError> {
        let first = args.next_bytes()?;
        match args.next_optional() {
            None => Ok(Auth {
                user: None,
                password: first,
            }),
            Some(password) if args.remaining() == 0 => Ok(Auth {
                user: Some(first),
                password,
            }),
            Some(_) => Err(CommandError::Syntax),
        }
    }

    pub(crate) fn execute<B: Backend>(self, context: &mut Context<'_, B>) -> Execution {
        Execution::Now(
            match check(
                context.server.limits.requirepass.as_deref(),
                self.user.as_deref(),
                &self.password,
            ) {
                Ok(()) => {
                    context.session.authenticated = true;
                    Frame::ok()
                }
                Err(message) => Frame::error(message),
            },
        )
    }
}

/// Checks credentials against the configured password (shared with HELLO
/// ... AUTH). The comparison is of SHA-256 digests, so its time does not
/// depend on how much of the password matched.
pub(crate) fn check(
    required: Option<&str>,
    user: Option<&[u8]>,
    password: &[u8],
) -> Result<(), &'static str> {
    use sha2::{Digest, Sha256};
    let Some(required) = required else {
        return Err(NO_PASSWORD_CONFIGURED);
    };
    let user_ok = user.is_none_or(|user| user == b"default");
    let given = Sha256::digest(password);
    let expected = Sha256::digest(required.as_bytes());
    if user_ok && given == expected {
        Ok(())
    } else {
        Err(WRONGPASS)
    }
}
