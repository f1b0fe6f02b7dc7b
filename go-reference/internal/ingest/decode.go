package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/parallax-dev/parallax/go-reference/internal/httpx"
	ingestv1 "github.com/parallax-dev/parallax/go-reference/internal/pb/ingestv1"
)

const (
	// MaxBodyBytes bounds a request body, declared or counted.
	MaxBodyBytes = 8 << 20
	// MaxEvents bounds the events of one batch.
	MaxEvents = 10_000
)

// binaryOptions drops unknown fields so that re-encoding an event for Kafka
// yields exactly its known fields. The runtime's reading is the contract
// ("Protobuf bodies: unknown fields and wire types"): a known field with an
// unexpected wire type is an unknown field, groups are skipped whole up to
// 10,001 deep; the Rust twin's wire.rs decodes by the same rules.
var binaryOptions = proto.UnmarshalOptions{DiscardUnknown: true}

// jsonOptions is protojson's default: unknown fields are an error.
var jsonOptions = protojson.UnmarshalOptions{}

// errInvalidJSON: the body is not JSON (RFC 8259) at all.
var errInvalidJSON = errors.New("ingest: body is not valid JSON")

// readBody reads the whole request body, at most MaxBodyBytes of it. A
// declared Content-Length over the limit is refused before reading.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, *httpx.Error) {
	if r.ContentLength > MaxBodyBytes {
		return nil, errBodyTooLarge
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		// +1 so ReadFrom sees EOF without growing the buffer.
		buf.Grow(int(r.ContentLength) + 1)
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			return nil, errBodyTooLarge
		}
		return nil, errMalformedBody
	}
	return buf.Bytes(), nil
}

// DecodeBatch decodes body as an EventBatch in media m. An empty protobuf
// body is an empty batch; an empty JSON body is malformed.
func DecodeBatch(m Media, body []byte) (*ingestv1.EventBatch, error) {
	batch := new(ingestv1.EventBatch)
	var err error
	switch m {
	case MediaProtobuf:
		err = binaryOptions.Unmarshal(body, batch)
	case MediaJSON:
		// protojson's tokenizer takes a number with an empty exponent
		// (`1e`, `-0E`) for a number; JSON does not, nor does the Rust
		// twin. One extra pass over the body makes it strict.
		if !json.Valid(body) {
			return nil, errInvalidJSON
		}
		err = jsonOptions.Unmarshal(body, batch)
	default:
		err = errors.New("ingest: unsupported media")
	}
	if err != nil {
		return nil, err
	}
	return batch, nil
}
