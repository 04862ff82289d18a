//! SET key value [NX | XX] [GET]: replicated. `+OK`, or null when NX/XX is
//! not met; with GET the old value (or null). Expiry options (EX, PX, EXAT,
//! PXAT, KEEPTTL) are refused with an error naming the option, so a client
//! never believes a TTL took effect.

use raftkv::kv::{Command as KvCommand, SetCondition};

use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec {
    name: "set",
    arity: -3,
    flags: &["write", "denyoom"],
    first_key: 1,
    last_key: 1,
    key_step: 1,
};

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    let key = args.next_bytes()?;
    let value = args.next_bytes()?;
    let mut condition = SetCondition::Always;
    let mut get = false;
    while let Some(option) = args.next_optional() {
        match option.to_ascii_uppercase().as_slice() {
            b"NX" if condition != SetCondition::IfPresent => condition = SetCondition::IfAbsent,
            b"XX" if condition != SetCondition::IfAbsent => condition = SetCondition::IfPresent,
            b"NX" | b"XX" => return Err(CommandError::Syntax),
            b"GET" => get = true,
            b"EX" | b"PX" | b"EXAT" | b"PXAT" | b"KEEPTTL" => {
                return Err(CommandError::Other(format!(
                    "ERR SET option '{}' is not supported: raftkv keys do not expire",
                    String::from_utf8_lossy(&option)
                )))
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
        if condition == SetCondition::Always && !get {
            KvCommand::Set { key, value }
        } else {
            KvCommand::SetWith {
                key,
                value,
                condition,
                get,
            }
        },
    ))
}
