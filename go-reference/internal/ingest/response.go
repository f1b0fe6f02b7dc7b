package ingest

import (
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/parallax-dev/parallax/go-reference/internal/httpx"
	ingestv1 "github.com/parallax-dev/parallax/go-reference/internal/pb/ingestv1"
)

// deterministic is the one binary encoding both twins produce: fields in
// field-number order, map entries sorted by key, default values omitted.
var deterministic = proto.MarshalOptions{Deterministic: true}

// EncodeResponse encodes the 200 body in media m. Protobuf is the
// deterministic binary encoding (an empty response is an empty body); JSON is
// the fixed shape of AppendResponseJSON.
func EncodeResponse(m Media, resp *ingestv1.IngestResponse) ([]byte, error) {
	if m == MediaJSON {
		return AppendResponseJSON(nil, resp), nil
	}
	return deterministic.Marshal(resp)
}

// AppendResponseJSON appends resp as
//
//	{"accepted":2,"rejected":[{"index":1,"eventId":"e-1","reason":"missing_type"}]}
//
// fixed field order, no whitespace, all fields always present, no trailing
// newline, strings escaped by httpx.AppendString.
func AppendResponseJSON(dst []byte, resp *ingestv1.IngestResponse) []byte {
	dst = append(dst, `{"accepted":`...)
	dst = strconv.AppendUint(dst, uint64(resp.GetAccepted()), 10)
	dst = append(dst, `,"rejected":[`...)
	for i, r := range resp.GetRejected() {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"index":`...)
		dst = strconv.AppendUint(dst, uint64(r.GetIndex()), 10)
		dst = append(dst, `,"eventId":`...)
		dst = httpx.AppendString(dst, r.GetEventId())
		dst = append(dst, `,"reason":`...)
		dst = httpx.AppendString(dst, r.GetReason())
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}
