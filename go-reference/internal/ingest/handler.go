package ingest

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parallax-dev/parallax/go-reference/internal/httpx"
	ingestv1 "github.com/parallax-dev/parallax/go-reference/internal/pb/ingestv1"
)

// ReadyTimeout bounds the Kafka metadata request of GET /readyz.
const ReadyTimeout = 2 * time.Second

// Options configure the ingestion handler.
type Options struct {
	Publisher Publisher
	// ProduceTimeout bounds how long one batch waits for Kafka's acks.
	ProduceTimeout time.Duration
	// Registry receives the HTTP and ingest metrics and is served on
	// /metrics.
	Registry *prometheus.Registry
}

// NewHandler returns the service's routes:
//
//	POST /v1/events  ingest a batch
//	GET  /healthz    {"status":"ok"}
//	GET  /readyz     {"status":"ready"} or 503 kafka_unavailable
//	GET  /metrics    Prometheus text exposition
//
// and 404/405 JSON errors for everything else.
func NewHandler(opts Options) http.Handler {
	h := &eventsHandler{
		publisher:      opts.Publisher,
		produceTimeout: opts.ProduceTimeout,
		metrics:        NewMetrics(opts.Registry),
	}
	rt := httpx.NewRouter(httpx.NewHTTPMetrics(opts.Registry))
	rt.Handle(http.MethodPost, "/v1/events", h)
	rt.HandleFunc(http.MethodGet, "/healthz", httpx.Healthz)
	rt.Handle(http.MethodGet, "/readyz", httpx.Readyz(opts.Publisher.Ping, ReadyTimeout, errKafkaNotReachable))
	rt.Handle(http.MethodGet, "/metrics", httpx.MetricsHandler(opts.Registry))
	return rt
}

type eventsHandler struct {
	publisher      Publisher
	produceTimeout time.Duration
	metrics        *Metrics
}

// ServeHTTP is POST /v1/events: 415 before the body is read, then 413
// body_too_large, 400 malformed_body, 413 too_many_events, validation,
// publishing (503 kafka_unavailable), and the 200 IngestResponse.
func (h *eventsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqMedia := RequestMedia(r.Header)
	if reqMedia == MediaUnsupported {
		httpx.WriteError(w, errUnsupportedMediaType)
		return
	}
	body, herr := readBody(w, r)
	if herr != nil {
		httpx.WriteError(w, herr)
		return
	}
	batch, herr := Prepare(reqMedia, body)
	if herr != nil {
		httpx.WriteError(w, herr)
		return
	}
	h.metrics.rejected.Add(float64(len(batch.Rejected)))

	if n := len(batch.Records); n > 0 {
		// The batch's fate does not depend on the client staying: a
		// disconnect neither cancels the records nor cuts the wait short.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.produceTimeout)
		err := h.publisher.Publish(ctx, batch.Records)
		cancel()
		if err != nil {
			failed := n
			if pe, ok := errors.AsType[*PublishError](err); ok {
				failed = pe.Failed
			}
			h.metrics.produceErrors.Add(float64(failed))
			h.metrics.failed.Add(float64(n))
			httpx.WriteError(w, errKafkaUnavailable)
			return
		}
		h.metrics.accepted.Add(float64(n))
	}

	respMedia := ResponseMedia(r.Header, reqMedia)
	out, err := EncodeResponse(respMedia, &ingestv1.IngestResponse{
		Accepted: uint32(len(batch.Records)),
		Rejected: batch.Rejected,
	})
	if err != nil {
		// Unreachable: the response holds only strings that decoded as
		// valid UTF-8.
		httpx.WriteError(w, errMalformedBody)
		return
	}
	httpx.Write(w, http.StatusOK, respMedia.ContentType(), out)
}
