package fanout

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parallax-dev/parallax/go-reference/internal/httpx"
)

// Metrics are the fanout_* metrics of the contract.
type Metrics struct {
	connections  prometheus.Gauge
	sent         prometheus.Counter
	queueFull    prometheus.Counter
	slowConsumer prometheus.Counter
	deliveryLag  prometheus.Histogram
}

// NewMetrics registers the fanout_* metrics with reg, both drop reasons
// from 0.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fanout_dropped_total",
		Help: "Frames dropped by reason: queue_full (the oldest queued frame of a full connection queue) or slow_consumer_closed (connections closed with 1013 after too many drops in a row).",
	}, []string{"reason"})
	m := &Metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fanout_connections",
			Help: "Open WebSocket connections.",
		}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fanout_messages_sent_total",
			Help: "Notification frames written to sockets.",
		}),
		queueFull:    dropped.WithLabelValues("queue_full"),
		slowConsumer: dropped.WithLabelValues("slow_consumer_closed"),
		deliveryLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "fanout_delivery_lag_seconds",
			Help:    "Time from a notification's broadcast (enqueue) until its frame was written to a connection's socket.",
			Buckets: httpx.LatencyBuckets,
		}),
	}
	reg.MustRegister(m.connections, m.sent, dropped, m.deliveryLag)
	return m
}
