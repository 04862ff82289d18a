//! The bounds every RESP connection enforces, so no client can make a node
//! buffer, allocate or recurse without limit.

/// Per-connection and per-server bounds of the RESP server. The defaults
/// match `raftkv node`'s flags (DESIGN.md "Client protocol").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk string accepted, in bytes (refused from its length header).
    pub bulk_bytes_max: usize,
    /// Largest element count of one array, map, set or push (refused from its header).
    pub arguments_max: usize,
    /// Largest number of simultaneous client connections; one more is told
    /// `-ERR max number of clients reached` and closed.
    pub connections_max: usize,
    /// Longest header, simple string or inline command line, in bytes.
    pub line_bytes_max: usize,
    /// Deepest nesting of aggregates (arrays inside arrays ...) a frame may have.
    pub nesting_depth_max: usize,
    /// Largest whole frame (one request or reply), in bytes. The read buffer
    /// of a connection never holds more than this of one unfinished frame.
    pub frame_bytes_max: usize,
    /// Largest number of requests of one connection executing at once
    /// (pipelined writes go to the driver concurrently, replies stay in order).
    pub pipeline_inflight_max: usize,
    /// Encoded replies are flushed to the socket once this many bytes are
    /// pending, even in the middle of a pipelined batch.
    pub write_buffer_bytes_max: usize,
    /// Not a bound but the one other setting every connection reads: the
    /// password clients must AUTH with (`--requirepass`); None: no AUTH.
    pub requirepass: Option<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            bulk_bytes_max: BULK_BYTES_MAX_DEFAULT,
            arguments_max: 1024 * 1024,
            connections_max: 10_000,
            line_bytes_max: 64 * 1024,
            nesting_depth_max: 32,
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            pipeline_inflight_max: 128,
            write_buffer_bytes_max: 64 * 1024,
            requirepass: None,
        }
    }
}

/// Default of `Limits::bulk_bytes_max` (DESIGN.md: 16 MiB).
pub const BULK_BYTES_MAX_DEFAULT: usize = 16 * 1024 * 1024;
/// Default of `Limits::frame_bytes_max`.
pub const FRAME_BYTES_MAX_DEFAULT: usize = 128 * 1024 * 1024;

// A SET of one maximal key and one maximal value must fit in one frame.
const _: () = assert!(2 * BULK_BYTES_MAX_DEFAULT + 64 <= FRAME_BYTES_MAX_DEFAULT);
