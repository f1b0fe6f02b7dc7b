package ingest

import (
	"net/http"

	"github.com/parallax-dev/parallax/go-reference/internal/httpx"
)

// The error answers of the ingestion service. Messages are fixed per code
// (docs/contract-ingest.md, "Error bodies").
var (
	errMalformedBody = &httpx.Error{
		Status:  http.StatusBadRequest,
		Code:    "malformed_body",
		Message: "request body is not a valid EventBatch",
	}
	errBodyTooLarge = &httpx.Error{
		Status:  http.StatusRequestEntityTooLarge,
		Code:    "body_too_large",
		Message: "request body exceeds 8388608 bytes",
	}
	errTooManyEvents = &httpx.Error{
		Status:  http.StatusRequestEntityTooLarge,
		Code:    "too_many_events",
		Message: "batch holds more than 10000 events",
	}
	errUnsupportedMediaType = &httpx.Error{
		Status:  http.StatusUnsupportedMediaType,
		Code:    "unsupported_media_type",
		Message: "Content-Type must be application/x-protobuf or application/json",
	}
	errKafkaUnavailable = &httpx.Error{
		Status:     http.StatusServiceUnavailable,
		Code:       "kafka_unavailable",
		Message:    "Kafka did not acknowledge the batch; retry later",
		RetryAfter: "1",
	}
	errKafkaNotReachable = &httpx.Error{
		Status:     http.StatusServiceUnavailable,
		Code:       "kafka_unavailable",
		Message:    "Kafka is not reachable",
		RetryAfter: "1",
	}
)
