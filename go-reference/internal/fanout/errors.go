package fanout

import (
	"net/http"

	"github.com/parallax-dev/parallax/go-reference/internal/httpx"
)

// The error answers of the fan-out service (docs/contract-fanout.md, "Other
// routes and errors"); 404 not_found and 405 method_not_allowed come from
// httpx.
var (
	errInvalidTopics = &httpx.Error{
		Status:  http.StatusBadRequest,
		Code:    "invalid_topics",
		Message: "topics must be 1-64 names of 1-64 bytes of A-Z a-z 0-9 . _ -",
	}
	errInvalidNotification = &httpx.Error{
		Status:  http.StatusBadRequest,
		Code:    "invalid_notification",
		Message: "notification must be a JSON object with a valid topic and a body",
	}
	errBodyTooLarge = &httpx.Error{
		Status:  http.StatusRequestEntityTooLarge,
		Code:    "body_too_large",
		Message: "request body exceeds 16384 bytes",
	}
	errUnsupportedMediaType = &httpx.Error{
		Status:  http.StatusUnsupportedMediaType,
		Code:    "unsupported_media_type",
		Message: "Content-Type must be application/json",
	}
	errUpgradeRequired = &httpx.Error{
		Status:  http.StatusUpgradeRequired,
		Code:    "upgrade_required",
		Message: "this route needs a WebSocket upgrade",
	}
	// errKafkaUnavailable is both the notify answer when Kafka does not
	// acknowledge in time and the /readyz answer until the consumer has
	// its partitions: the contract gives the code one message.
	errKafkaUnavailable = &httpx.Error{
		Status:     http.StatusServiceUnavailable,
		Code:       "kafka_unavailable",
		Message:    "Kafka did not acknowledge the notification; retry later",
		RetryAfter: "1",
	}
)
