// Package ingesttest builds realistic event batches for tests, benchmarks
// and load generators.
package ingesttest

import (
	"fmt"
	"math/rand/v2"

	"google.golang.org/protobuf/proto"

	ingestv1 "github.com/parallax-dev/parallax/go-reference/internal/pb/ingestv1"
)

// Shape of a realistic event.
const (
	EventIDBytes = 16
	Attributes   = 3
	PayloadBytes = 200
	Tenants      = 64
)

var eventTypes = [...]string{"page_view", "click", "add_to_cart", "purchase"}

// Event returns the i-th event of a batch built from seed: a 16-byte
// event_id unique per (seed, i), one of 64 tenants, one of four types,
// three attributes and a 200-byte pseudo-random payload. The same (seed, i)
// always gives the same event.
func Event(seed uint64, i int) *ingestv1.Event {
	rng := rand.New(rand.NewPCG(seed, uint64(i)))
	payload := make([]byte, PayloadBytes)
	for j := range payload {
		payload[j] = byte(rng.Uint32())
	}
	return &ingestv1.Event{
		EventId:          fmt.Sprintf("%08x%08x", uint32(seed), uint32(i)),
		TenantId:         fmt.Sprintf("tenant-%04d", rng.IntN(Tenants)),
		Type:             eventTypes[rng.IntN(len(eventTypes))],
		OccurredAtUnixMs: 1_767_225_600_000 + int64(i)*17,
		Attributes: map[string]string{
			"country": [...]string{"DE", "FR", "US", "JP"}[rng.IntN(4)],
			"device":  [...]string{"desktop", "mobile", "tablet"}[rng.IntN(3)],
			"session": fmt.Sprintf("s-%016x", rng.Uint64()),
		},
		Payload: payload,
	}
}

// Batch returns n events built from seed, all of them valid.
func Batch(seed uint64, n int) *ingestv1.EventBatch {
	b := &ingestv1.EventBatch{Events: make([]*ingestv1.Event, n)}
	for i := range n {
		b.Events[i] = Event(seed, i)
	}
	return b
}

// EncodedBatch is Batch encoded as the binary protobuf body of POST
// /v1/events.
func EncodedBatch(seed uint64, n int) []byte {
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(Batch(seed, n))
	if err != nil {
		panic(err) // only valid UTF-8 strings: cannot fail
	}
	return body
}
