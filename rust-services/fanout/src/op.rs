//! Client ops: `{"op":"subscribe"|"unsubscribe","topics":[…]}`.
//!
//! Anything that is not exactly such an object closes the connection with
//! 1003. Settled where the contract is silent (the Go twin matches):
//! - exactly the two members `op` and `topics`, names matched exactly (Go's
//!   encoding/json would also match `"OP"`); an unknown member is refused; a
//!   repeated member keeps its last value (outside the contract);
//! - `topics` is an array (not `null`) of valid names, possibly empty (the
//!   op then changes nothing and is still answered with the subscription
//!   frame), duplicates ignored; its length is bounded only by the 4096-byte
//!   message;
//! - unsubscribing from a topic the connection does not hold is not an
//!   error;
//! - the set after a subscribe must hold at most 64 topics (checked by the
//!   [`Hub`](crate::hub::Hub), which changes nothing otherwise).

use std::collections::HashMap;

use serde_json::value::RawValue;

use crate::topics::{is_valid_name, TopicSet};

/// A valid client op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Subscribe(TopicSet),
    Unsubscribe(TopicSet),
}

/// The message is not a valid op (close with 1003).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported client message")]
pub struct UnsupportedOp;

/// Parses one text message.
pub fn parse(text: &str) -> Result<Op, UnsupportedOp> {
    // Members by name, each value as its exact bytes; a repeated member
    // keeps its last value, as in the Go twin (outside the contract).
    let members: HashMap<String, &RawValue> =
        serde_json::from_str(text).map_err(|_| UnsupportedOp)?;
    let (Some(op), Some(names), 2) = (members.get("op"), members.get("topics"), members.len())
    else {
        return Err(UnsupportedOp);
    };
    let op: String = serde_json::from_str(op.get()).map_err(|_| UnsupportedOp)?;
    let names: Vec<String> = serde_json::from_str(names.get()).map_err(|_| UnsupportedOp)?;
    let mut topics = TopicSet::new();
    for name in &names {
        if !is_valid_name(name) {
            return Err(UnsupportedOp);
        }
        topics.insert(name);
    }
    match op.as_str() {
        "subscribe" => Ok(Op::Subscribe(topics)),
        "unsubscribe" => Ok(Op::Unsubscribe(topics)),
        _ => Err(UnsupportedOp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> TopicSet {
        TopicSet::from_list(names.iter().copied()).unwrap()
    }

    #[test]
    fn a_long_list_is_an_op_the_hub_may_still_refuse() {
        let names: Vec<String> = (0..100).map(|i| format!("\"t{i}\"")).collect();
        let text = format!(r#"{{"op":"unsubscribe","topics":[{}]}}"#, names.join(","));
        assert!(matches!(parse(&text), Ok(Op::Unsubscribe(set)) if set.len() == 100));
    }

    #[test]
    fn ops_table() {
        let ok = [
            (
                r#"{"op":"subscribe","topics":["c"]}"#,
                Op::Subscribe(set(&["c"])),
            ),
            (
                r#" {"topics":["b","a","b"],"op":"unsubscribe"} "#,
                Op::Unsubscribe(set(&["a", "b"])),
            ),
            (
                r#"{"op":"sub\u0073cribe","topics":["\u0061"]}"#,
                Op::Subscribe(set(&["a"])),
            ),
            (
                r#"{"op":"subscribe","topics":[]}"#,
                Op::Subscribe(TopicSet::new()),
            ),
            (
                r#"{"op":"unsubscribe","topics":[]}"#,
                Op::Unsubscribe(TopicSet::new()),
            ),
        ];
        for (text, op) in ok {
            assert_eq!(parse(text), Ok(op), "{text}");
        }
        let refused = [
            "",
            "subscribe",
            "null",
            "[]",
            r#"["subscribe",["a"]]"#,
            r#"{"op":"subscribe"}"#,
            r#"{"topics":["a"]}"#,
            r#"{"op":"publish","topics":["a"]}"#,
            r#"{"op":"Subscribe","topics":["a"]}"#,
            r#"{"op":null,"topics":["a"]}"#,
            r#"{"op":"subscribe","topics":null}"#,
            r#"{"op":"subscribe","topics":"a"}"#,
            r#"{"op":"subscribe","topics":[1]}"#,
            r#"{"op":"subscribe","topics":[""]}"#,
            r#"{"op":"subscribe","topics":["a b"]}"#,
            r#"{"op":"subscribe","topics":["a"],"x":1}"#,
            r#"{"OP":"subscribe","topics":["a"]}"#,
            r#"{"op":"subscribe","topics":["a"],"op":"publish"}"#,
            r#"{"op":"subscribe","topics":["\ud800"]}"#,
            r#"{"op":"subscribe","topics":["a"]} {}"#,
            r#"{"op":"subscribe","topics":["a",]}"#,
            r#"{"op":"subscribe","topics":["a",null]}"#,
        ];
        // A repeated member keeps its last value.
        assert_eq!(
            parse(r#"{"op":"publish","topics":["a"],"op":"subscribe"}"#),
            Ok(Op::Subscribe(set(&["a"])))
        );
        for text in refused {
            assert_eq!(parse(text), Err(UnsupportedOp), "{text:?}");
        }
    }
}
