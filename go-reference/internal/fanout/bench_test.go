package fanout

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// BenchmarkBroadcast is one notification broadcast to N in-process
// subscribers of its topic: framing it once (PreparedMessage) and pushing
// it onto every subscriber's queue, as POST /v1/notify does in local mode.
// The subscribers have no sockets; their queues are emptied (outside the
// timing) before they fill, so no frame is dropped. ns/subscriber is the
// cost of one queue push.
func BenchmarkBroadcast(b *testing.B) {
	n := Notification{ID: "n-1", Topic: "news", PublishedAtUnixUS: 1764000000000000,
		Body: []byte(`{"headline":"` + strings.Repeat("x", 160) + `"}`)}
	frame := Frame(&n) // ~250 bytes
	for _, subscribers := range []int{100, 1_000, 10_000} {
		b.Run(fmt.Sprintf("subscribers=%d", subscribers), func(b *testing.B) {
			h, _ := newTestHub(b, HubConfig{QueueCapacity: 256, DropLimit: 64, PingInterval: time.Minute})
			conns := make([]*Conn, subscribers)
			for i := range conns {
				conns[i] = newConn(nil, h)
				h.register(conns[i], []string{"news"})
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if i%128 == 0 {
					b.StopTimer()
					for _, c := range conns {
						for c.q.pop() != nil {
						}
					}
					b.StartTimer()
				}
				h.Broadcast("news", frame)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(subscribers), "ns/subscriber")
		})
	}
}
