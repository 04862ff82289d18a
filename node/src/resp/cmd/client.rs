//! CLIENT SETNAME | GETNAME | ID | INFO | SETINFO | HELP: this connection's
//! name and identity.

use bytes::Bytes;

use super::{Args, CommandError, Context, Execution, Spec};
use crate::resp::backend::Backend;
use crate::resp::session::Session;
use crate::resp::Frame;

pub(crate) const SPEC: Spec = Spec::keyless("client", -2, &["stale", "loading"]);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Client {
    SetName(Bytes),
    GetName,
    Id,
    Info,
    SetInfo {
        attribute: LibraryAttribute,
        value: Bytes,
    },
    Help,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LibraryAttribute {
    Name,
    Version,
}

impl Client {
    pub(crate) fn from_args(args: &mut Args) -> Result<Client, CommandError> {
        let subcommand = args.next_bytes()?;
        let upper = subcommand.to_ascii_uppercase();
        // (subcommand, its Redis arity counting "CLIENT" and the subcommand)
        let arity: i64 = match upper.as_slice() {
            b"SETNAME" => 3,
            b"GETNAME" | b"ID" | b"INFO" | b"HELP" => 2,
            b"SETINFO" => 4,
            _ => {
                return Err(CommandError::UnknownSubcommand {
                    command: "CLIENT".into(),
                    subcommand: String::from_utf8_lossy(&subcommand).into_owned(),
                })
            }
        };
        if args.remaining() as i64 + 2 != arity {
            return Err(CommandError::WrongArity(format!(
                "client|{}",
                String::from_utf8_lossy(&upper).to_ascii_lowercase()
            )));
        }
        Ok(match upper.as_slice() {
            b"SETNAME" => {
                let name = args.next_bytes()?;
                validate_name(&name)?;
                Client::SetName(name)
            }
            b"GETNAME" => Client::GetName,
            b"ID" => Client::Id,
            b"INFO" => Client::Info,
            b"HELP" => Client::Help,
            _ => {
                let attribute = args.next_bytes()?;
                let value = args.next_bytes()?;
                let attribute = match attribute.to_ascii_uppercase().as_slice() {
                    b"LIB-NAME" => LibraryAttribute::Name,
                    b"LIB-VER" => LibraryAttribute::Version,
                    _ => {
                        return Err(CommandError::Other(format!(
                            "ERR Unrecognized option '{}'",
                            String::from_utf8_lossy(&attribute)
                        )))
                    }
                };
                validate_name(&value)?;
                Client::SetInfo { attribute, value }
            }
        })
    }

    pub(crate) fn execute<B: Backend>(self, context: &mut Context<'_, B>) -> Execution {
        let session = &mut *context.session;
        Execution::Now(match self {
            Client::SetName(name) => {
                session.name = (!name.is_empty()).then_some(name);
                Frame::ok()
            }
            Client::GetName => session.name.clone().map(Frame::Bulk).unwrap_or(Frame::Null),
            Client::Id => Frame::Integer(session.id as i64),
            Client::Info => Frame::Verbatim {
                format: "txt".into(),
                text: Bytes::from(client_info_line(session)),
            },
            Client::SetInfo { attribute, value } => {
                let value = (!value.is_empty()).then_some(value);
                match attribute {
                    LibraryAttribute::Name => session.library_name = value,
                    LibraryAttribute::Version => session.library_version = value,
                }
                Frame::ok()
            }
            Client::Help => Frame::Array(
                [
                    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                    "GETNAME",
                    "    Return the name of the current connection.",
                    "ID",
                    "    Return the ID of the current connection.",
                    "INFO",
                    "    Return information about the current client connection.",
                    "SETINFO <option> <value>",
                    "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
                    "SETNAME <name>",
                    "    Assign the name <name> to the current connection.",
                    "HELP",
                    "    Print this help.",
                ]
                .into_iter()
                .map(|line| Frame::Simple(line.into()))
                .collect(),
            ),
        })
    }
}

/// Redis's rule for client names and library attributes: printable ASCII, no spaces.
pub(crate) fn validate_name(name: &[u8]) -> Result<(), CommandError> {
    if name.iter().all(|&byte| (b'!'..=b'~').contains(&byte)) {
        Ok(())
    } else {
        Err(CommandError::Other(
            "ERR Client names cannot contain spaces, newlines or special characters.".into(),
        ))
    }
}

/// `CLIENT INFO`'s one line, in Redis's `key=value` form.
fn client_info_line(session: &Session) -> String {
    let text = |value: &Option<Bytes>| {
        value
            .as_ref()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    format!(
        "id={} addr={} laddr={} name={} age={} idle=0 flags={} db=0 cmd=client|info user=default resp={} lib-name={} lib-ver={}\n",
        session.id,
        session.peer_addr,
        session.local_addr,
        text(&session.name),
        session.connected_at.elapsed().as_secs(),
        if session.readonly { "r" } else { "N" },
        if session.resp3 { 3 } else { 2 },
        text(&session.library_name),
        text(&session.library_version),
    )
}
