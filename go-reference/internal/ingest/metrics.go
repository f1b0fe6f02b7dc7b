package ingest

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the ingest_* metrics.
type Metrics struct {
	accepted      prometheus.Counter
	rejected      prometheus.Counter
	failed        prometheus.Counter
	produceErrors prometheus.Counter
}

// NewMetrics registers ingest_events_total (all three outcomes, from 0) and
// ingest_kafka_produce_errors_total with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	events := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ingest_events_total",
		Help: "Events by outcome: accepted (acknowledged by Kafka), rejected (by validation), failed (in a batch Kafka did not acknowledge).",
	}, []string{"outcome"})
	produceErrors := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ingest_kafka_produce_errors_total",
		Help: "Records Kafka did not acknowledge.",
	})
	reg.MustRegister(events, produceErrors)
	return &Metrics{
		accepted:      events.WithLabelValues("accepted"),
		rejected:      events.WithLabelValues("rejected"),
		failed:        events.WithLabelValues("failed"),
		produceErrors: produceErrors,
	}
}
