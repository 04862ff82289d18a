//! Walks a request's arguments, turning "missing" or "left over" into the
//! command's own arity error.

use std::collections::VecDeque;

use bytes::Bytes;

use super::CommandError;

/// The arguments of one request, after its name.
#[derive(Debug)]
pub(crate) struct Args {
    command: &'static str,
    rest: VecDeque<Bytes>,
}

impl Args {
    /// `words` includes the command name, which is skipped.
    pub(crate) fn new(command: &'static str, words: Vec<Bytes>) -> Args {
        let mut rest = VecDeque::from(words);
        rest.pop_front();
        Args { command, rest }
    }

    pub(crate) fn wrong_arity(&self) -> CommandError {
        CommandError::WrongArity(self.command.to_string())
    }

    /// Arguments not yet taken.
    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    pub(crate) fn next_bytes(&mut self) -> Result<Bytes, CommandError> {
        self.rest.pop_front().ok_or_else(|| self.wrong_arity())
    }

    /// The next argument if there is one.
    pub(crate) fn next_optional(&mut self) -> Option<Bytes> {
        self.rest.pop_front()
    }

    /// Takes every remaining argument.
    pub(crate) fn take_rest(&mut self) -> Vec<Bytes> {
        self.rest.drain(..).collect()
    }

    /// The next argument as an integer (`ERR value is not an integer or out
    /// of range` otherwise).
    pub(crate) fn next_i64(&mut self) -> Result<i64, CommandError> {
        let word = self.next_bytes()?;
        parse_i64(&word).ok_or(CommandError::NotAnInteger)
    }

    /// Every remaining argument; at least one (a key list).
    pub(crate) fn take_at_least_one(&mut self) -> Result<Vec<Bytes>, CommandError> {
        let rest = self.take_rest();
        if rest.is_empty() {
            return Err(self.wrong_arity());
        }
        Ok(rest)
    }

    /// Every remaining argument as key/value pairs; at least one pair.
    pub(crate) fn take_pairs(&mut self) -> Result<Vec<(Bytes, Bytes)>, CommandError> {
        if self.rest.is_empty() || !self.rest.len().is_multiple_of(2) {
            return Err(self.wrong_arity());
        }
        let mut pairs = Vec::with_capacity(self.rest.len() / 2);
        while let (Some(key), Some(value)) = (self.rest.pop_front(), self.rest.pop_front()) {
            pairs.push((key, value));
        }
        Ok(pairs)
    }

    /// Errors if arguments are left over.
    pub(crate) fn finish(&self) -> Result<(), CommandError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.wrong_arity())
        }
    }
}

/// Redis's strict integer syntax: optional `-`, digits, no spaces or `+`.
pub(crate) fn parse_i64(bytes: &[u8]) -> Option<i64> {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}
