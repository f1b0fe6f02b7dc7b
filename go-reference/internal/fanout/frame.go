package fanout

import (
	"strconv"

	"github.com/parallax-dev/parallax/go-reference/internal/httpx"
)

// Notification is one accepted POST /v1/notify.
type Notification struct {
	ID                string
	Topic             string
	PublishedAtUnixUS int64
	// Body is the notification's body exactly as it appeared in the
	// request: the bytes of that JSON value, never re-encoded.
	Body []byte
}

// AppendFrame appends the notification frame of n to dst:
//
//	{"id":"<id>","topic":"<topic>","published_at_unix_us":<int>,"body":<body>}
//
// with the fields in this order, no whitespace added, id and topic escaped
// with the shared JSON string rules (httpx.AppendString) and the body copied
// verbatim. encoding/json is not used on purpose: it compacts and re-escapes
// a json.RawMessage, and the contract wants the body's bytes as sent.
func AppendFrame(dst []byte, n *Notification) []byte {
	dst = append(dst, `{"id":`...)
	dst = httpx.AppendString(dst, n.ID)
	dst = append(dst, `,"topic":`...)
	dst = httpx.AppendString(dst, n.Topic)
	dst = append(dst, `,"published_at_unix_us":`...)
	dst = strconv.AppendInt(dst, n.PublishedAtUnixUS, 10)
	dst = append(dst, `,"body":`...)
	dst = append(dst, n.Body...)
	return append(dst, '}')
}

// Frame returns the notification frame of n in a buffer of exactly its
// size.
func Frame(n *Notification) []byte {
	size := len(`{"id":"","topic":"","published_at_unix_us":,"body":}`) + 20 + len(n.Body) +
		len(n.Topic) + 2*len(n.ID) // ids rarely need escapes; AppendFrame grows it if they do
	return AppendFrame(make([]byte, 0, size), n)
}

// AppendSubscribedFrame appends the subscription frame of a connection whose
// whole current set is topics (sorted by byte order, no duplicates):
//
//	{"op":"subscribed","topics":["a","b"]}
func AppendSubscribedFrame(dst []byte, topics []string) []byte {
	dst = append(dst, `{"op":"subscribed","topics":[`...)
	for i, t := range topics {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = httpx.AppendString(dst, t)
	}
	return append(dst, "]}"...)
}
