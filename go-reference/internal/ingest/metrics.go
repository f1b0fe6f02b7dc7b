package ingest

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the ingest_* metrics.
type Metrics struct {
	accepted      prometheus.Counter
	rejected      prometheus.Counter
	failed        prometheus.Counter
	produceErrors prometheus.Counter
}

// NewMetrics registers ingest_events_total (all three outcomes, from 0) and
// ingest_kafka_produce_errors_total with reg; when reg already holds them
// (the HTTP handler and the gRPC server share one registry) it returns the
// registered ones, so both surfaces count into the same series.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	events := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ingest_events_total",
		Help: "Events by outcome: accepted (acknowledged by Kafka), rejected (by validation), failed (in a batch Kafka did not acknowledge).",
	}, []string{"outcome"})
	produceErrors := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ingest_kafka_produce_errors_total",
		Help: "Records Kafka did not acknowledge.",
	})
	events = registered(reg, events)
	produceErrors = registered(reg, produceErrors)
	return &Metrics{
		accepted:      events.WithLabelValues("accepted"),
		rejected:      events.WithLabelValues("rejected"),
		failed:        events.WithLabelValues("failed"),
		produceErrors: produceErrors,
	}
}

// registered registers c with reg, or returns the collector reg already
// holds under c's description.
func registered[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}
