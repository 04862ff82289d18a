//! SET key value [NX | XX] [GET] [EX s | PX ms | EXAT unix-s | PXAT unix-ms |
//! KEEPTTL]: replicated. `+OK`, or null when NX/XX is not met; with GET the
//! old value (or null). Without an expiry option the key's expiry is
//! cleared, as in Redis. An unknown option names itself.

use raftkv::kv::{Command as KvCommand, SetCondition, TtlChange};

use super::expiry_args::set_option_ttl;
use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::one_key("set", -3, &["write", "denyoom"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    let key = args.next_bytes()?;
    let value = args.next_bytes()?;
    let mut condition = SetCondition::Always;
    let mut get = false;
    let mut ttl = TtlChange::Clear;
    let mut ttl_given = false;
    while let Some(option) = args.next_optional() {
        let upper = option.to_ascii_uppercase();
        match upper.as_slice() {
            b"NX" if condition != SetCondition::IfPresent => condition = SetCondition::IfAbsent,
            b"XX" if condition != SetCondition::IfAbsent => condition = SetCondition::IfPresent,
            b"NX" | b"XX" => return Err(CommandError::Syntax),
            b"GET" => get = true,
            b"KEEPTTL" if !ttl_given => {
                ttl = TtlChange::Keep;
                ttl_given = true;
            }
            b"EX" | b"PX" | b"EXAT" | b"PXAT" | b"KEEPTTL" if ttl_given => {
                return Err(CommandError::Syntax)
            }
            b"EX" | b"PX" | b"EXAT" | b"PXAT" => {
                ttl = set_option_ttl(&upper, args, "set")?.ok_or(CommandError::Syntax)?;
                ttl_given = true;
            }
            _ => {
                return Err(CommandError::Other(format!(
                    "ERR syntax error: unknown SET option '{}'",
                    String::from_utf8_lossy(&option)
                )))
            }
        }
    }
    Ok(DataOp::Write(
        if condition == SetCondition::Always && !get && ttl == TtlChange::Clear {
            KvCommand::Set { key, value }
        } else {
            KvCommand::SetTtl {
                key,
                value,
                condition,
                get,
                ttl,
            }
        },
    ))
}
