//! Reading written keys back from one node's own state and judging them: the
//! one [`KeyCheck`] and the one verifier ([`read_back`]) behind both the
//! dashboard's `v` and the gate's read-backs (steps 2.4, 5.2 and 6.3).
//!
//! [`KeyCheck`] and its comparison are pure; [`read_back`] is the only part
//! that touches the network.

use std::time::Duration;

use raftkv_node::client::{Connection, NODE_QUERY_TIMEOUT_MS};
use raftkv_node::resp::Frame;

/// Keys asked for in one MGET: the dashboard may verify many thousands of
/// keys, the gate at most a hundred (so it sends exactly one MGET).
pub const READ_BACK_KEYS_PER_REQUEST_MAX: usize = 256;
/// Bad keys of each kind (missing, wrong) a [`KeyCheck`] keeps as examples.
pub const KEY_PROBLEM_EXAMPLES_PER_KIND_MAX: usize = 3;

/// One key a node does not hold as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyProblem {
    Missing { key: String },
    Wrong { key: String, found: String },
}

/// How one node's copy of some keys compares with what was written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyCheck {
    /// Keys the node holds with the value written.
    pub right: u64,
    /// Keys the node does not hold at all.
    pub missing: u64,
    /// Keys the node holds with another value.
    pub wrong: u64,
    /// The first bad keys in the order they were asked for: at most
    /// [`KEY_PROBLEM_EXAMPLES_PER_KIND_MAX`] of each kind, so the first few
    /// of either kind and the first few overall are all here.
    pub examples: Vec<KeyProblem>,
}

impl KeyCheck {
    pub fn is_complete(&self) -> bool {
        self.missing == 0 && self.wrong == 0
    }

    /// Adds values read back (in key order, `None` = missing) compared with
    /// the expected (key, value) pairs; a short reply counts the rest as
    /// missing.
    pub fn compare(&mut self, expected: &[(String, String)], found: &[Option<Vec<u8>>]) {
        for (i, (key, value)) in expected.iter().enumerate() {
            let value_found = found.get(i).and_then(|v| v.as_deref());
            self.record(key, value, value_found);
        }
    }

    /// Judges one key: `found` is the node's value, `None` when it has none.
    fn record(&mut self, key: &str, expected_value: &str, found: Option<&[u8]>) {
        let problem = match found {
            Some(bytes) if bytes == expected_value.as_bytes() => {
                self.right += 1;
                return;
            }
            None => {
                self.missing += 1;
                (self.missing as usize <= KEY_PROBLEM_EXAMPLES_PER_KIND_MAX).then(|| {
                    KeyProblem::Missing {
                        key: key.to_string(),
                    }
                })
            }
            Some(bytes) => {
                self.wrong += 1;
                (self.wrong as usize <= KEY_PROBLEM_EXAMPLES_PER_KIND_MAX).then(|| {
                    KeyProblem::Wrong {
                        key: key.to_string(),
                        found: String::from_utf8_lossy(bytes).into_owned(),
                    }
                })
            }
        };
        self.examples.extend(problem);
    }

    fn missing_examples(&self) -> impl Iterator<Item = &str> {
        self.examples.iter().filter_map(|problem| match problem {
            KeyProblem::Missing { key } => Some(key.as_str()),
            KeyProblem::Wrong { .. } => None,
        })
    }

    fn first_wrong(&self) -> Option<(&str, &str)> {
        self.examples.iter().find_map(|problem| match problem {
            KeyProblem::Wrong { key, found } => Some((key.as_str(), found.as_str())),
            KeyProblem::Missing { .. } => None,
        })
    }

    /// The gate's form: `48/50 right; 2 missing (key:0049, key:0050)`.
    pub fn describe(&self, total: u64) -> String {
        let mut text = format!("{}/{total} right", self.right);
        if self.missing > 0 {
            let shown: Vec<&str> = self.missing_examples().take(3).collect();
            text.push_str(&format!("; {} missing ({}", self.missing, shown.join(", ")));
            text.push_str(if self.missing > 3 { ", ...)" } else { ")" });
        }
        if let Some((key, value)) = self.first_wrong() {
            text.push_str(&format!("; {} wrong ({key} = '{value}')", self.wrong));
        }
        text
    }

    /// The dashboard's form: the first `count` bad keys in order,
    /// `dash:1:000007 missing, dash:1:000009 wrong value`.
    pub fn examples_text(&self, count: usize) -> String {
        let shown: Vec<String> = self
            .examples
            .iter()
            .take(count)
            .map(|problem| match problem {
                KeyProblem::Missing { key } => format!("{key} missing"),
                KeyProblem::Wrong { key, .. } => format!("{key} wrong value"),
            })
            .collect();
        shown.join(", ")
    }
}

/// Reads `expected`'s keys from the node at `addr`'s own state (READONLY,
/// then MGET of at most [`READ_BACK_KEYS_PER_REQUEST_MAX`] keys at a time)
/// and compares them with the expected values. `Err` when the node could not
/// be asked or answered something other than values.
pub async fn read_back(addr: &str, expected: &[(String, String)]) -> Result<KeyCheck, String> {
    let chunks = expected
        .chunks(READ_BACK_KEYS_PER_REQUEST_MAX)
        .map(<[_]>::to_vec);
    read_back_chunks(addr, chunks).await
}

/// [`read_back`] of (key, value) pairs made one MGET's worth at a time, so
/// verifying millions of keys holds a few hundred in memory, not all.
pub async fn read_back_chunks(
    addr: &str,
    chunks: impl Iterator<Item = Vec<(String, String)>>,
) -> Result<KeyCheck, String> {
    let timeout = Duration::from_millis(NODE_QUERY_TIMEOUT_MS);
    let mut connection = Connection::connect(addr, timeout)
        .await
        .map_err(|e| e.to_string())?;
    match connection
        .request(&[b"READONLY"])
        .await
        .map_err(|e| e.to_string())?
    {
        Frame::Simple(ok) if ok == "OK" => {}
        other => return Err(format!("{addr} answered READONLY with {other:?}")),
    }
    let mut check = KeyCheck::default();
    for chunk in chunks {
        let values = mget(&mut connection, addr, &chunk).await?;
        check.compare(&chunk, &values);
    }
    Ok(check)
}

/// One MGET of `expected`'s keys: the values in key order, `None` = missing.
async fn mget(
    connection: &mut Connection,
    addr: &str,
    expected: &[(String, String)],
) -> Result<Vec<Option<Vec<u8>>>, String> {
    let mut args: Vec<&[u8]> = vec![b"MGET"];
    args.extend(expected.iter().map(|(key, _)| key.as_bytes()));
    match connection.request(&args).await.map_err(|e| e.to_string())? {
        Frame::Array(items) if items.len() == expected.len() => items
            .into_iter()
            .map(|item| match item {
                Frame::Bulk(bytes) => Ok(Some(bytes.to_vec())),
                Frame::Null => Ok(None),
                other => Err(format!("{addr} answered MGET with an element {other:?}")),
            })
            .collect(),
        Frame::Error(message) => Err(format!("{addr} refused MGET: {message}")),
        other => Err(format!(
            "{addr} answered MGET of {} keys with {other:?}",
            expected.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::key_name;

    fn compare_values(expected: &[(String, String)], found: &[Option<Vec<u8>>]) -> KeyCheck {
        let mut check = KeyCheck::default();
        check.compare(expected, found);
        check
    }

    #[test]
    fn read_back_values_are_compared_key_by_key() {
        let expected: Vec<(String, String)> = (1..=4)
            .map(|n| (key_name(n), format!("value-{n}")))
            .collect();
        let found = vec![
            Some(b"value-1".to_vec()),
            None,
            Some(b"value-9".to_vec()),
            Some(b"value-4".to_vec()),
        ];
        let check = compare_values(&expected, &found);
        assert_eq!((check.right, check.missing, check.wrong), (2, 1, 1));
        assert_eq!(
            check.examples,
            vec![
                KeyProblem::Missing {
                    key: "key:0002".to_string()
                },
                KeyProblem::Wrong {
                    key: "key:0003".to_string(),
                    found: "value-9".to_string()
                },
            ]
        );
        assert!(!check.is_complete());
        assert_eq!(
            check.describe(4),
            "2/4 right; 1 missing (key:0002); 1 wrong (key:0003 = 'value-9')"
        );
        assert_eq!(
            check.examples_text(3),
            "key:0002 missing, key:0003 wrong value"
        );
        // A short reply counts the rest as missing, never panics.
        assert_eq!(compare_values(&expected, &[]).missing, 4);
    }

    #[test]
    fn examples_are_bounded_per_kind_and_keep_the_first_bad_keys_in_order() {
        let expected: Vec<(String, String)> = (1..=10)
            .map(|n| (key_name(n), format!("value-{n}")))
            .collect();
        // Keys 1-5 missing, 6-10 wrong.
        let found: Vec<Option<Vec<u8>>> = (1..=10)
            .map(|n| (n > 5).then(|| b"other".to_vec()))
            .collect();
        let check = compare_values(&expected, &found);
        assert_eq!((check.right, check.missing, check.wrong), (0, 5, 5));
        assert_eq!(check.examples.len(), 2 * KEY_PROBLEM_EXAMPLES_PER_KIND_MAX);
        assert_eq!(
            check.describe(10),
            "0/10 right; 5 missing (key:0001, key:0002, key:0003, ...); \
             5 wrong (key:0006 = 'other')"
        );
        assert_eq!(
            check.examples_text(3),
            "key:0001 missing, key:0002 missing, key:0003 missing"
        );
    }
}
