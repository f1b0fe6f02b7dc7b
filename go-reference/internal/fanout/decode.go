package fanout

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// The JSON read by this service — notify bodies and client ops — is decoded
// with encoding/json plus the checks that make it as strict as the Rust
// twin's serde_json, byte for byte:
//   - the input must be valid UTF-8 (encoding/json would silently replace
//     bad bytes with U+FFFD);
//   - object members are matched by exact name (encoding/json matches
//     struct fields case-insensitively, so objects are decoded into
//     map[string]json.RawMessage and the names checked here);
//   - strings that are kept (ids) must not hold a lone surrogate escape
//     (encoding/json would turn "\ud800" into U+FFFD);
//   - null is never a string, array or integer (encoding/json would leave
//     the target untouched).

// MaxIDBytes bounds a notification id.
const MaxIDBytes = 128

// decodeObject decodes data, a JSON text whose top level must be an object,
// into its members, each value held as its exact bytes. A repeated member
// keeps its last value (repeated members are outside the contract).
func decodeObject(data []byte) (map[string]json.RawMessage, bool) {
	if !utf8.Valid(data) {
		return nil, false
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil || members == nil { // nil: the text was null
		return nil, false
	}
	return members, true
}

// decodeString decodes raw, which must be a JSON string without lone
// surrogate escapes.
func decodeString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' || hasLoneSurrogate(raw) {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// decodeStrings decodes raw, which must be a JSON array of strings (null
// elements included in "not a string").
func decodeStrings(raw json.RawMessage) ([]string, bool) {
	if len(raw) == 0 || raw[0] != '[' {
		return nil, false
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, false
	}
	out := make([]string, len(elems))
	for i, e := range elems {
		s, ok := decodeString(e)
		if !ok {
			return nil, false
		}
		out[i] = s
	}
	return out, true
}

// decodeNonNegativeInt decodes raw, which must be a JSON number written as
// a plain non-negative integer — no sign, fraction or exponent (so "-0",
// "1.0" and "1e3" are refused) — no larger than the int64 maximum.
func decodeNonNegativeInt(raw json.RawMessage) (int64, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	// JSON forbids leading zeros, and the whole text already parsed as
	// JSON, so the digits are canonical.
	n, err := strconv.ParseInt(string(raw), 10, 64)
	return n, err == nil
}

// hasLoneSurrogate reports whether the JSON string token raw holds a \u
// escape of a UTF-16 surrogate that is not part of a high+low pair.
func hasLoneSurrogate(raw []byte) bool {
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		i++ // the escaped byte
		if i >= len(raw) || raw[i] != 'u' {
			continue
		}
		r, ok := hex4(raw[i+1:])
		if !ok {
			return false // not valid JSON; the decoder refuses it
		}
		i += 4
		switch {
		case r >= 0xdc00 && r <= 0xdfff:
			return true // a low surrogate without a high one before it
		case r >= 0xd800 && r <= 0xdbff:
			if i+6 >= len(raw) || raw[i+1] != '\\' || raw[i+2] != 'u' {
				return true
			}
			low, ok := hex4(raw[i+3:])
			if !ok || low < 0xdc00 || low > 0xdfff {
				return true
			}
			i += 6
		}
	}
	return false
}

// hex4 reads four hex digits.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// ParseNotification decodes and validates a POST /v1/notify body: a JSON
// object with exactly the members
//
//	topic                 required, a valid topic name
//	body                  required, any JSON value (null included), kept verbatim
//	id                    optional, a string of 1–128 bytes; absent → newID()
//	published_at_unix_us  optional, an integer ≥ 0; absent → now in µs
//
// Any other member, a member of the wrong type (null included: only an
// absent id or published_at_unix_us takes the default) or invalid JSON
// makes it invalid.
func ParseNotification(data []byte, now func() time.Time, newID func() string) (Notification, bool) {
	members, ok := decodeObject(data)
	if !ok {
		return Notification{}, false
	}
	var n Notification
	var haveTopic, haveBody, haveID, haveAt bool
	for name, raw := range members {
		switch name {
		case "topic":
			n.Topic, haveTopic = decodeString(raw)
			if !haveTopic || !ValidTopic(n.Topic) {
				return Notification{}, false
			}
		case "body":
			n.Body, haveBody = raw, true
		case "id":
			n.ID, haveID = decodeString(raw)
			if !haveID || len(n.ID) == 0 || len(n.ID) > MaxIDBytes {
				return Notification{}, false
			}
		case "published_at_unix_us":
			n.PublishedAtUnixUS, haveAt = decodeNonNegativeInt(raw)
			if !haveAt {
				return Notification{}, false
			}
		default:
			return Notification{}, false
		}
	}
	if !haveTopic || !haveBody {
		return Notification{}, false
	}
	if !haveID {
		n.ID = newID()
	}
	if !haveAt {
		n.PublishedAtUnixUS = now().UnixMicro()
	}
	return n, true
}

// NewID returns 32 lower-case hex characters of a random 128-bit number.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// Op is a client → server operation.
type Op struct {
	// Subscribe is true for "subscribe", false for "unsubscribe".
	Subscribe bool
	// Topics are the op's names, valid, possibly empty, possibly repeated.
	Topics []string
}

// ParseOp decodes a client text frame: exactly
//
//	{"op":"subscribe"|"unsubscribe","topics":[<valid names>]}
//
// (members in any order, the array possibly empty). Anything else — invalid
// JSON, another top level, an unknown op or member, a missing or non-array
// topics, an invalid name — is not an op; the caller closes with 1003. The
// 64-topic limit is checked against the connection's set, not here.
func ParseOp(data []byte) (Op, bool) {
	members, ok := decodeObject(data)
	if !ok || len(members) != 2 {
		return Op{}, false
	}
	opRaw, haveOp := members["op"]
	topicsRaw, haveTopics := members["topics"]
	if !haveOp || !haveTopics {
		return Op{}, false
	}
	var op Op
	switch name, _ := decodeString(opRaw); name {
	case "subscribe":
		op.Subscribe = true
	case "unsubscribe":
	default:
		return Op{}, false
	}
	if op.Topics, ok = decodeStrings(topicsRaw); !ok {
		return Op{}, false
	}
	for _, t := range op.Topics {
		if !ValidTopic(t) {
			return Op{}, false
		}
	}
	return op, true
}
