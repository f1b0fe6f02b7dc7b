package grpcx

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/status"

	"github.com/parallax-dev/parallax/go-reference/internal/httpx"
)

// Metrics count the calls that reach a method's handler, under the names
// of the gRPC ecosystem's Prometheus middleware (so its dashboards work):
// grpc_server_handled_total{grpc_service, grpc_method, grpc_code} and
// grpc_server_handling_seconds{grpc_service, grpc_method}. Calls refused
// before the handler (content type, method, path, compression) are not
// counted, on either twin. The labels are bounded: services and methods
// are the ones a server registers, codes are gRPC's 17.
type Metrics struct {
	handled *prometheus.CounterVec
	seconds *prometheus.HistogramVec
}

// NewMetrics registers the metrics with reg, or returns the ones already
// registered there.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return &Metrics{
		handled: registered(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_handled_total",
			Help: "gRPC calls completed by a method's handler, by service, method and status code.",
		}, []string{"grpc_service", "grpc_method", "grpc_code"})),
		seconds: registered(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "grpc_server_handling_seconds",
			Help:    "Time from a call reaching its handler to its status, by service and method.",
			Buckets: httpx.LatencyBuckets,
		}, []string{"grpc_service", "grpc_method"})),
	}
}

// Observe counts a call of service/method that started at start and ended
// with *err (nil: OK). Deferred by handlers with a named error result.
func (m *Metrics) Observe(service, method string, start time.Time, err *error) {
	m.handled.WithLabelValues(service, method, status.Code(*err).String()).Inc()
	m.seconds.WithLabelValues(service, method).Observe(time.Since(start).Seconds())
}

// Handled is the counter of service/method's calls that ended with code
// (for tests).
func (m *Metrics) Handled(service, method, code string) prometheus.Counter {
	return m.handled.WithLabelValues(service, method, code)
}

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
