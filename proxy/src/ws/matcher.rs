//! Pairing the primary's frames with the shadow's on one connection.
//!
//! Every data message either side sends gets a key: the value at the
//! configured JSON pointer (`/id` by default) when the message is JSON and
//! has one, otherwise its position among that side's messages without a key
//! (in `sequence` mode every message is keyed by position). A message waits
//! in its side's pending list until the other side sends the same key; the
//! pair is handed back to be compared. A message still unpaired `window`
//! after it arrived is `missing` (a primary message) or `extra` (a shadow
//! message).
//!
//! Reordering: when both sides send in the same order, pairs complete in
//! that order too (a pair completes when its later half arrives, and both
//! halves come after the previous pair's). So a pair that completes with a
//! position below one already paired, on either side, is `reordered`.
//!
//! Bounds: at most `max_frames` messages per side and `max_bytes` of
//! payload for both sides together wait at once. A message that does not
//! fit is counted `overflow` and leaves only its key (no payload) when a
//! slot is free, so its counterpart is recognised and dropped instead of
//! being counted `extra`/`missing` as well. Time is passed in, so the
//! matcher is plain synchronous code.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How messages are keyed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchBy {
    /// The value at this JSON pointer (e.g. `/id`); messages without one
    /// are keyed by position among such messages.
    Pointer(String),
    /// Every message by its position.
    Sequence,
}

impl MatchBy {
    /// `"sequence"` or a JSON pointer starting with `/`.
    pub fn parse(text: &str) -> Option<Self> {
        if text == "sequence" {
            Some(MatchBy::Sequence)
        } else if text.starts_with('/') && text.split('/').all(|seg| seg != "*" && seg != "**") {
            Some(MatchBy::Pointer(text.to_owned()))
        } else {
            None
        }
    }
}

/// A message's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Id(Box<str>),
    Position(u64),
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Id(id) => f.write_str(id),
            Key::Position(n) => write!(f, "#{n}"),
        }
    }
}

/// A data message of one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub opcode: u8,
    pub payload: Vec<u8>,
    pub key: Key,
    /// Position among this side's messages.
    pub index: u64,
}

/// What the matcher decided.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// Both sides sent the key; compare the payloads. `skew_seconds` is the
    /// shadow's arrival minus the primary's (negative: shadow first).
    Paired {
        primary: Frame,
        shadow: Frame,
        skew_seconds: f64,
        reordered: bool,
    },
    Missing(Frame),
    Extra(Frame),
    /// Not kept for comparison (over a bound).
    Overflow,
    /// Still waiting when the connection ended.
    Unresolved,
}

#[derive(Debug)]
struct Pending {
    /// Arrival, for the skew.
    at: Instant,
    /// Start of its window: the arrival, or the shadow's upgrade if later.
    since: Instant,
    /// `None`: an overflowed message; only its key is kept.
    frame: Option<Frame>,
    /// An overflowed message's key (a kept frame holds its own: one copy
    /// of the key per message, not two).
    key: Option<Key>,
}

impl Pending {
    fn key(&self) -> &Key {
        match (&self.frame, &self.key) {
            (Some(frame), _) => &frame.key,
            (None, Some(key)) => key,
            (None, None) => unreachable!("a pending message has a frame or a key"),
        }
    }
}

#[derive(Debug, Default)]
struct Side {
    pending: VecDeque<Pending>,
    /// Messages seen.
    count: u64,
    /// Messages seen without a key of their own.
    unkeyed: u64,
    /// Highest position of this side in a completed pair.
    max_paired: Option<u64>,
}

/// The matcher of one connection.
#[derive(Debug)]
pub struct Matcher {
    by: MatchBy,
    window: Duration,
    max_frames: usize,
    max_bytes: usize,
    bytes: usize,
    primary: Side,
    shadow: Side,
    /// The shadow is gone: no new primary message waits for it.
    shadow_gone: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Primary,
    Shadow,
}

impl Matcher {
    pub fn new(by: MatchBy, window: Duration, max_frames: usize, max_bytes: usize) -> Self {
        Self {
            by,
            window,
            max_frames,
            max_bytes,
            bytes: 0,
            primary: Side::default(),
            shadow: Side::default(),
            shadow_gone: false,
        }
    }

    /// A message from the primary.
    pub fn primary(&mut self, now: Instant, opcode: u8, payload: Vec<u8>, out: &mut Vec<Decision>) {
        self.arrive(Which::Primary, now, opcode, Some(payload), out);
    }

    /// A message from the shadow.
    pub fn shadow(&mut self, now: Instant, opcode: u8, payload: Vec<u8>, out: &mut Vec<Decision>) {
        self.arrive(Which::Shadow, now, opcode, Some(payload), out);
    }

    /// A message too large to collect: keyed by position only (its payload
    /// was never read), counted `overflow`.
    pub fn oversize(&mut self, primary: bool, now: Instant, opcode: u8, out: &mut Vec<Decision>) {
        let which = if primary {
            Which::Primary
        } else {
            Which::Shadow
        };
        self.arrive(which, now, opcode, None, out);
    }

    /// When the next pending message expires.
    pub fn deadline(&self) -> Option<Instant> {
        let first = |s: &Side| s.pending.front().map(|p| p.since + self.window);
        match (first(&self.primary), first(&self.shadow)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether anything is waiting.
    pub fn is_idle(&self) -> bool {
        self.primary.pending.is_empty() && self.shadow.pending.is_empty()
    }

    /// Expires messages that waited a whole window.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<Decision>) {
        for which in [Which::Primary, Which::Shadow] {
            while let Some(p) = self.side(which).pending.front() {
                if p.since + self.window > now {
                    break;
                }
                let p = self.side(which).pending.pop_front().expect("a front");
                if let Some(frame) = p.frame {
                    self.bytes -= frame.payload.len();
                    out.push(match which {
                        Which::Primary => Decision::Missing(frame),
                        Which::Shadow => Decision::Extra(frame),
                    });
                }
            }
        }
    }

    /// The shadow's upgrade completed: what the primary sent before starts
    /// its window now (a shadow cannot deliver before it is connected).
    pub fn shadow_opened(&mut self, now: Instant) {
        for p in &mut self.primary.pending {
            p.since = p.since.max(now);
        }
    }

    /// The shadow will send nothing more: what the primary sent so far can
    /// no longer be paired (`missing`), and later primary messages are only
    /// paired with shadow messages already waiting.
    pub fn shadow_gone(&mut self, out: &mut Vec<Decision>) {
        self.shadow_gone = true;
        for p in std::mem::take(&mut self.primary.pending) {
            if let Some(frame) = p.frame {
                self.bytes -= frame.payload.len();
                out.push(Decision::Missing(frame));
            }
        }
    }

    /// The connection ended: whatever waits is unresolved.
    pub fn finish(&mut self, out: &mut Vec<Decision>) {
        for p in self
            .primary
            .pending
            .drain(..)
            .chain(self.shadow.pending.drain(..))
        {
            if p.frame.is_some() {
                out.push(Decision::Unresolved);
            }
        }
        self.bytes = 0;
    }

    fn side(&mut self, which: Which) -> &mut Side {
        match which {
            Which::Primary => &mut self.primary,
            Which::Shadow => &mut self.shadow,
        }
    }

    fn key(&mut self, which: Which, payload: Option<&[u8]>) -> Key {
        let id = match (&self.by, payload) {
            (MatchBy::Pointer(pointer), Some(payload)) => id_at(payload, pointer),
            _ => None,
        };
        match id {
            Some(id) => Key::Id(id.into_boxed_str()),
            None => {
                let side = self.side(which);
                side.unkeyed += 1;
                Key::Position(side.unkeyed - 1)
            }
        }
    }

    /// The key of a message of `other`'s, waiting, with exactly these
    /// bytes, when it was keyed by its id: an id is read from the bytes
    /// alone, so this message's is the same, and the second half of a pair
    /// that matches (nearly every pair) is not parsed again. Position keys
    /// depend on what each side sent before and are never taken over.
    fn waiting_twin_key(&mut self, other: Which, payload: Option<&[u8]>) -> Option<Key> {
        let (MatchBy::Pointer(_), Some(bytes)) = (&self.by, payload) else {
            return None;
        };
        self.side(other)
            .pending
            .iter()
            .find_map(|p| match &p.frame {
                Some(f) if matches!(f.key, Key::Id(_)) && f.payload == bytes => Some(f.key.clone()),
                _ => None,
            })
    }

    fn arrive(
        &mut self,
        which: Which,
        now: Instant,
        opcode: u8,
        payload: Option<Vec<u8>>,
        out: &mut Vec<Decision>,
    ) {
        self.expire(now, out);
        let other = match which {
            Which::Primary => Which::Shadow,
            Which::Shadow => Which::Primary,
        };
        let key = match self.waiting_twin_key(other, payload.as_deref()) {
            Some(key) => key,
            None => self.key(which, payload.as_deref()),
        };
        let index = {
            let side = self.side(which);
            side.count += 1;
            side.count - 1
        };
        let found = self
            .side(other)
            .pending
            .iter()
            .position(|p| *p.key() == key);
        if let Some(at) = found {
            let waiting = self.side(other).pending.remove(at).expect("found");
            let (payload, theirs) = match (payload, waiting.frame) {
                (Some(payload), Some(theirs)) => (payload, theirs),
                (None, Some(theirs)) => {
                    // This half is too large to compare: the pair counts
                    // once, as overflow.
                    self.bytes -= theirs.payload.len();
                    out.push(Decision::Overflow);
                    return;
                }
                // The waiting half overflowed and was counted then.
                _ => return,
            };
            self.bytes -= theirs.payload.len();
            let mine = Frame {
                opcode,
                payload,
                key,
                index,
            };
            let (primary, shadow, p_at, s_at) = match which {
                Which::Primary => (mine, theirs, now, waiting.at),
                Which::Shadow => (theirs, mine, waiting.at, now),
            };
            let reordered = self.primary.max_paired.is_some_and(|m| primary.index < m)
                || self.shadow.max_paired.is_some_and(|m| shadow.index < m);
            self.primary.max_paired = self.primary.max_paired.max(Some(primary.index));
            self.shadow.max_paired = self.shadow.max_paired.max(Some(shadow.index));
            let skew_seconds = if s_at >= p_at {
                (s_at - p_at).as_secs_f64()
            } else {
                -(p_at - s_at).as_secs_f64()
            };
            out.push(Decision::Paired {
                primary,
                shadow,
                skew_seconds,
                reordered,
            });
            return;
        }
        if which == Which::Primary && self.shadow_gone {
            return;
        }
        let full = self.side(which).pending.len() >= self.max_frames;
        let fits = payload
            .as_ref()
            .is_some_and(|p| self.bytes + p.len() <= self.max_bytes);
        let (frame, key) = match payload {
            Some(payload) if fits && !full => {
                self.bytes += payload.len();
                let frame = Frame {
                    opcode,
                    payload,
                    key,
                    index,
                };
                (Some(frame), None)
            }
            _ => {
                out.push(Decision::Overflow);
                (None, Some(key))
            }
        };
        if !full {
            self.side(which).pending.push_back(Pending {
                at: now,
                since: now,
                frame,
                key,
            });
        }
    }
}

/// The value at `pointer` of a JSON message, as text: a string as itself,
/// anything else (a number) as its JSON. `None` for non-JSON messages or
/// when the pointer finds nothing (or `null`).
///
/// Every message of a compared connection goes through here, so the common
/// case — a pointer of one segment into an object, like `/id` — skips the
/// other fields without building them (serde's `IgnoredAny`); deeper
/// pointers parse the whole message.
pub fn id_at(payload: &[u8], pointer: &str) -> Option<String> {
    // Cheap refusal of what cannot be a JSON object or array.
    let first = payload.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' && *first != b'[' {
        return None;
    }
    let segment = &pointer[1..];
    let value = if *first == b'{' && !segment.contains(['/', '~']) {
        let mut de = serde_json::Deserializer::from_slice(payload);
        let value = serde::Deserializer::deserialize_map(&mut de, Field(segment)).ok()?;
        de.end().ok()?;
        value?
    } else {
        let value: Value = serde_json::from_slice(payload).ok()?;
        value.pointer(pointer)?.clone()
    };
    match value {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

/// Visits a JSON object for one field's value, skipping the others.
struct Field<'a>(&'a str);

impl<'de> serde::de::Visitor<'de> for Field<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(is_it) = map.next_key_seed(IsKey(self.0))? {
            if found.is_none() && is_it {
                found = Some(map.next_value::<Value>()?);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Reads an object key as whether it is this one, without keeping it: a
/// `Cow<str>` key is always deserialised owned (a `String` per key of
/// every compared message), where this compares the text the
/// deserialiser holds (escapes already resolved).
struct IsKey<'a>(&'a str);

impl<'de> serde::de::DeserializeSeed<'de> for IsKey<'_> {
    type Value = bool;

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<bool, D::Error> {
        de.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for IsKey<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(2);

    fn matcher() -> Matcher {
        Matcher::new(MatchBy::Pointer("/id".into()), W, 8, 1024)
    }

    fn msg(id: &str, body: &str) -> Vec<u8> {
        format!(r#"{{"id":"{id}","body":{body}}}"#).into_bytes()
    }

    /// Results as short names, in order.
    fn names(out: &[Decision]) -> Vec<String> {
        out.iter()
            .map(|d| match d {
                Decision::Paired {
                    primary,
                    shadow,
                    reordered,
                    ..
                } => {
                    let same = if primary.payload == shadow.payload {
                        ""
                    } else {
                        "!"
                    };
                    let r = if *reordered { "~" } else { "" };
                    format!("pair {}{same}{r}", primary.key)
                }
                Decision::Missing(f) => format!("missing {}", f.key),
                Decision::Extra(f) => format!("extra {}", f.key),
                Decision::Overflow => "overflow".into(),
                Decision::Unresolved => "unresolved".into(),
            })
            .collect()
    }

    #[test]
    fn messages_pair_by_id_whichever_side_comes_first_with_signed_skew() {
        let t = Instant::now();
        let mut m = matcher();
        let mut out = Vec::new();
        m.primary(t, 1, msg("a", "1"), &mut out);
        m.shadow(t + Duration::from_millis(30), 1, msg("a", "1"), &mut out);
        m.shadow(t + Duration::from_millis(40), 1, msg("b", "2"), &mut out);
        m.primary(t + Duration::from_millis(50), 1, msg("b", "3"), &mut out);
        assert_eq!(names(&out), ["pair a", "pair b!"]);
        let skews: Vec<f64> = out
            .iter()
            .map(|d| match d {
                Decision::Paired { skew_seconds, .. } => *skew_seconds,
                _ => unreachable!(),
            })
            .collect();
        assert!(
            (skews[0] - 0.030).abs() < 1e-9 && (skews[1] + 0.010).abs() < 1e-9,
            "{skews:?}"
        );
        assert!(m.is_idle());
    }

    #[test]
    fn a_message_without_counterpart_within_the_window_is_missing_or_extra() {
        let t = Instant::now();
        let mut m = matcher();
        let mut out = Vec::new();
        m.primary(t, 1, msg("a", "1"), &mut out);
        m.shadow(t, 1, msg("x", "1"), &mut out);
        assert_eq!(m.deadline(), Some(t + W));
        m.expire(t + W - Duration::from_millis(1), &mut out);
        assert!(out.is_empty());
        m.expire(t + W, &mut out);
        assert_eq!(names(&out), ["missing a", "extra x"]);
        // A counterpart arriving after the window finds nothing.
        out.clear();
        m.shadow(t + W, 1, msg("a", "1"), &mut out);
        m.expire(t + W + W, &mut out);
        assert_eq!(names(&out), ["extra a"]);
    }

    #[test]
    fn pairs_completing_out_of_order_are_reordered() {
        let t = Instant::now();
        let mut m = matcher();
        let mut out = Vec::new();
        for id in ["a", "b", "c"] {
            m.primary(t, 1, msg(id, "0"), &mut out);
        }
        for id in ["b", "a", "c"] {
            m.shadow(t, 1, msg(id, "0"), &mut out);
        }
        assert_eq!(names(&out), ["pair b", "pair a~", "pair c"]);
        // A skipped message is missing, not a reordering of the rest.
        let mut m = matcher();
        out.clear();
        for id in ["a", "b", "c"] {
            m.primary(t, 1, msg(id, "0"), &mut out);
        }
        for id in ["a", "c"] {
            m.shadow(t, 1, msg(id, "0"), &mut out);
        }
        m.expire(t + W, &mut out);
        assert_eq!(names(&out), ["pair a", "pair c", "missing b"]);
    }

    #[test]
    fn messages_without_an_id_pair_by_position_among_themselves() {
        let t = Instant::now();
        let mut m = matcher();
        let mut out = Vec::new();
        m.primary(t, 1, br#"{"op":"subscribed"}"#.to_vec(), &mut out);
        m.primary(t, 1, msg("a", "1"), &mut out);
        m.shadow(t, 1, msg("a", "1"), &mut out);
        m.shadow(t, 1, br#"{"op":"subscribed","x":1}"#.to_vec(), &mut out);
        assert_eq!(names(&out), ["pair a", "pair #0!~"]);
        let mut m = Matcher::new(MatchBy::Sequence, W, 8, 1024);
        out.clear();
        m.primary(t, 1, msg("a", "1"), &mut out);
        m.shadow(t, 1, msg("b", "1"), &mut out);
        assert_eq!(names(&out), ["pair #0!"]);
    }

    #[test]
    fn bounds_count_overflow_once_per_pair_and_buffer_nothing() {
        let t = Instant::now();
        let mut m = Matcher::new(MatchBy::Pointer("/id".into()), W, 2, 40);
        let mut out = Vec::new();
        m.primary(t, 1, msg("a", "1"), &mut out); // 20 bytes
        m.primary(t, 1, msg("b", "12345678901234567890"), &mut out); // too many bytes
        m.primary(t, 1, msg("c", "1"), &mut out); // third on this side: no slot
        assert_eq!(names(&out), ["overflow", "overflow"]);
        out.clear();
        m.shadow(t, 1, msg("b", "12345678901234567890"), &mut out);
        m.shadow(t, 1, msg("a", "1"), &mut out);
        assert_eq!(
            names(&out),
            ["pair a"],
            "b's overflow was counted with the primary's"
        );
        m.oversize(false, t, 1, &mut out);
        m.expire(t + W, &mut out);
        assert_eq!(names(&out), ["pair a", "overflow"]);
    }

    #[test]
    fn windows_start_no_earlier_than_the_shadows_upgrade() {
        let t = Instant::now();
        let mut m = matcher();
        let mut out = Vec::new();
        m.primary(t, 1, msg("a", "1"), &mut out);
        m.shadow_opened(t + W);
        m.expire(t + W + W / 2, &mut out);
        assert!(out.is_empty());
        m.shadow(t + W + W / 2, 1, msg("a", "1"), &mut out);
        assert_eq!(names(&out), ["pair a"]);
    }

    #[test]
    fn a_gone_shadow_makes_waiting_primary_messages_missing_and_ends_cleanly() {
        let t = Instant::now();
        let mut m = matcher();
        let mut out = Vec::new();
        m.primary(t, 1, msg("a", "1"), &mut out);
        m.shadow(t, 1, msg("z", "1"), &mut out);
        m.shadow_gone(&mut out);
        m.primary(t, 1, msg("b", "1"), &mut out);
        assert_eq!(names(&out), ["missing a"]);
        m.finish(&mut out);
        assert_eq!(names(&out), ["missing a", "unresolved"]);
        assert!(m.is_idle());
    }

    #[test]
    fn a_message_identical_to_a_waiting_one_is_keyed_as_before() {
        let t = Instant::now();
        let mut m = matcher();
        let mut out = Vec::new();
        // Keyed by id: the shadow's identical bytes pair with it.
        m.primary(t, 1, msg("a", "1"), &mut out);
        m.shadow(t, 1, msg("a", "1"), &mut out);
        // Unkeyed messages pair by position even when the shadow's first
        // message is byte-identical to the primary's second: taking that
        // waiting message's key would pair #1 with #0's counterpart.
        m.primary(t, 1, br#"{"n":1}"#.to_vec(), &mut out);
        m.primary(t, 1, br#"{"n":2}"#.to_vec(), &mut out);
        m.shadow(t, 1, br#"{"n":2}"#.to_vec(), &mut out);
        m.shadow(t, 1, br#"{"n":1}"#.to_vec(), &mut out);
        // The same id with other bytes still pairs by id.
        m.primary(t, 1, msg("b", "1"), &mut out);
        m.shadow(t, 1, msg("b", "2"), &mut out);
        assert_eq!(
            names(&out),
            ["pair a", "pair #0!", "pair #1!", "pair b!"],
            "{out:?}"
        );
    }

    #[test]
    fn ids_are_strings_or_json_and_match_by_parses() {
        assert_eq!(id_at(br#"{"id":"n-1"}"#, "/id").as_deref(), Some("n-1"));
        assert_eq!(id_at(br#"{"id":7}"#, "/id").as_deref(), Some("7"));
        assert_eq!(
            id_at(br#"{"m":{"id":[1]}}"#, "/m/id").as_deref(),
            Some("[1]")
        );
        assert_eq!(id_at(br#"{"id":null}"#, "/id"), None);
        assert_eq!(id_at(b"hello", "/id"), None);
        assert_eq!(
            id_at(br#"{"a":{"id":1},"id":"x","b":[{}]}"#, "/id").as_deref(),
            Some("x")
        );
        assert_eq!(id_at(br#"{"id":"x"} trailing"#, "/id"), None);
        assert_eq!(
            id_at(br#"{"i\u0064":"esc"}"#, "/id").as_deref(),
            Some("esc")
        );
        assert_eq!(id_at(br#"[{"id":"x"}]"#, "/0/id").as_deref(), Some("x"));
        assert_eq!(id_at(br#"{"a/b":1}"#, "/a~1b").as_deref(), Some("1"));
        assert_eq!(MatchBy::parse("sequence"), Some(MatchBy::Sequence));
        assert_eq!(
            MatchBy::parse("/a/b"),
            Some(MatchBy::Pointer("/a/b".into()))
        );
        assert_eq!(MatchBy::parse("/*/id"), None);
        assert_eq!(MatchBy::parse("id"), None);
    }
}
