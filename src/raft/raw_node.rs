//! RawNode: the public face of the core.

use bytes::Bytes;

use super::{CompactError, Config, ConfigError, InitialState, ProposeError, Ready, ReadyAck, Status, StepError};
use crate::message::{Index, Message, NodeId, Term};

pub struct RawNode {
    _private: (),
}

impl RawNode {
    /// Builds a node from what was durably persisted. `seed` feeds the
    /// election-timeout RNG.
    pub fn new(config: Config, initial: InitialState, seed: u64) -> Result<Self, ConfigError> {
        let _ = (config, initial, seed);
        todo!()
    }
    /// One unit of logical time.
    pub fn tick(&mut self) {
        todo!()
    }
    pub fn step(&mut self, message: Message) -> Result<(), StepError> {
        let _ = message;
        todo!()
    }
    /// Leader only: appends `data` as a new entry; returns its (term, index).
    pub fn propose(&mut self, data: Bytes) -> Result<(Term, Index), ProposeError> {
        let _ = data;
        todo!()
    }
    /// Leader only: asks for a linearizable read point identified by `context`.
    pub fn read_index(&mut self, context: u64) -> Result<(), ProposeError> {
        let _ = context;
        todo!()
    }
    /// Leader only: hands leadership to `to`.
    pub fn transfer_leadership(&mut self, to: NodeId) -> Result<(), ProposeError> {
        let _ = to;
        todo!()
    }
    /// Discards the log through `index` (<= applied), keeping `data` as the
    /// snapshot at that index to send to lagging followers.
    pub fn compact(&mut self, index: Index, data: Bytes) -> Result<(), CompactError> {
        let _ = (index, data);
        todo!()
    }
    pub fn has_ready(&self) -> bool {
        todo!()
    }
    pub fn ready(&mut self) -> Ready {
        todo!()
    }
    pub fn advance(&mut self, ack: ReadyAck) {
        let _ = ack;
        todo!()
    }
    pub fn status(&self) -> Status {
        todo!()
    }
}
