//! Expiry arguments shared by SET, SETEX, PSETEX, GETEX and the EXPIRE
//! family: relative times become absolute on this node's clock, which is
//! the leader's when the write is accepted (writes are only proposed by the
//! leader, stamped with the same clock; see `kv::Command::At`).

use bytes::Bytes;
use raftkv::kv::{Command as KvCommand, ExpireCondition, SetCondition, TtlChange};

use super::{Args, CommandError, DataOp};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unit {
    Seconds,
    Milliseconds,
}

/// This node's clock, in ms since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn invalid(command: &str) -> CommandError {
    CommandError::Other(format!("ERR invalid expire time in '{command}' command"))
}

/// An absolute expiry in ms from `amount` in `unit`, relative to now unless
/// `absolute`; `None` when it overflows.
fn expiry_ms(amount: i64, unit: Unit, absolute: bool) -> Option<i64> {
    let ms = match unit {
        Unit::Seconds => amount.checked_mul(1000)?,
        Unit::Milliseconds => amount,
    };
    if absolute {
        Some(ms)
    } else {
        ms.checked_add(i64::try_from(now_ms()).ok()?)
    }
}

/// The TTL of SET's EX/PX/EXAT/PXAT and SETEX/PSETEX/GETEX: must be positive.
pub(crate) fn positive_ttl(
    amount: i64,
    unit: Unit,
    absolute: bool,
    command: &str,
) -> Result<TtlChange, CommandError> {
    if amount <= 0 {
        return Err(invalid(command));
    }
    let at = expiry_ms(amount, unit, absolute).ok_or_else(|| invalid(command))?;
    Ok(TtlChange::At(at as u64))
}

/// SET's expiry option `option` (upper case), with its argument taken from `args`.
pub(crate) fn set_option_ttl(
    option: &[u8],
    args: &mut Args,
    command: &str,
) -> Result<Option<TtlChange>, CommandError> {
    let (unit, absolute) = match option {
        b"EX" => (Unit::Seconds, false),
        b"PX" => (Unit::Milliseconds, false),
        b"EXAT" => (Unit::Seconds, true),
        b"PXAT" => (Unit::Milliseconds, true),
        _ => return Ok(None),
    };
    if args.remaining() == 0 {
        return Err(CommandError::Syntax);
    }
    let amount = args.next_i64()?;
    positive_ttl(amount, unit, absolute, command).map(Some)
}

/// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT.
pub(crate) fn expire(
    args: &mut Args,
    command: &str,
    unit: Unit,
    absolute: bool,
) -> Result<DataOp, CommandError> {
    let key = args.next_bytes()?;
    let amount = args.next_i64()?;
    let mut condition = ExpireCondition::Always;
    while let Some(option) = args.next_optional() {
        let next = match option.to_ascii_uppercase().as_slice() {
            b"NX" => ExpireCondition::IfNone,
            b"XX" => ExpireCondition::IfSome,
            b"GT" => ExpireCondition::IfLater,
            b"LT" => ExpireCondition::IfEarlier,
            _ => {
                return Err(CommandError::Other(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(&option)
                )))
            }
        };
        let compatible = condition == ExpireCondition::Always
            || condition == next
            || (matches!(condition, ExpireCondition::IfSome)
                && matches!(next, ExpireCondition::IfLater | ExpireCondition::IfEarlier))
            || (matches!(next, ExpireCondition::IfSome)
                && matches!(
                    condition,
                    ExpireCondition::IfLater | ExpireCondition::IfEarlier
                ));
        if !compatible {
            return Err(CommandError::Other(
                "ERR NX and XX, GT or LT options at the same time are not compatible".into(),
            ));
        }
        // XX with GT or LT: GT/LT already require an expiry or treat none as
        // infinite; keep the stricter of the two.
        if condition == ExpireCondition::Always || next != ExpireCondition::IfSome {
            condition = next;
        }
    }
    let at = expiry_ms(amount, unit, absolute).ok_or_else(|| invalid(command))?;
    Ok(DataOp::Write(KvCommand::Expire {
        key,
        // A time before the epoch is in the past all the same.
        at_ms: at.max(0) as u64,
        condition,
    }))
}

/// SETEX / PSETEX key amount value.
pub(crate) fn set_with_ttl(
    args: &mut Args,
    command: &str,
    unit: Unit,
) -> Result<DataOp, CommandError> {
    let key = args.next_bytes()?;
    let amount = args.next_i64()?;
    let value: Bytes = args.next_bytes()?;
    let ttl = positive_ttl(amount, unit, false, command)?;
    Ok(DataOp::Write(KvCommand::SetTtl {
        key,
        value,
        condition: SetCondition::Always,
        get: false,
        ttl,
    }))
}

/// GETEX key [EX | PX | EXAT | PXAT | PERSIST].
pub(crate) fn get_ex(args: &mut Args) -> Result<DataOp, CommandError> {
    let key = args.next_bytes()?;
    let ttl = match args.next_optional() {
        None => TtlChange::Keep,
        Some(option) => {
            let upper = option.to_ascii_uppercase();
            if upper == b"PERSIST" {
                TtlChange::Clear
            } else {
                set_option_ttl(&upper, args, "getex")?.ok_or(CommandError::Syntax)?
            }
        }
    };
    if args.remaining() > 0 {
        return Err(CommandError::Syntax);
    }
    Ok(DataOp::Write(KvCommand::GetEx { key, ttl }))
}
