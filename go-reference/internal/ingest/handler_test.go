package ingest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	"github.com/parallax-dev/parallax/go-reference/internal/ingest/ingesttest"
	ingestv1 "github.com/parallax-dev/parallax/go-reference/internal/pb/ingestv1"
)

// fakePublisher records what it is asked to publish and answers with err,
// or blocks until ctx is done when block is set.
type fakePublisher struct {
	mu      sync.Mutex
	batches [][]Record
	err     error
	block   bool
	pingErr error
}

func (f *fakePublisher) Publish(ctx context.Context, records []Record) error {
	f.mu.Lock()
	f.batches = append(f.batches, records)
	f.mu.Unlock()
	if f.block {
		<-ctx.Done()
		return &PublishError{Failed: len(records), Total: len(records), Err: ctx.Err()}
	}
	return f.err
}

func (f *fakePublisher) Ping(context.Context) error { return f.pingErr }

type fixture struct {
	t   *testing.T
	pub *fakePublisher
	reg *prometheus.Registry
	h   http.Handler
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, pub: &fakePublisher{}, reg: prometheus.NewRegistry()}
	f.h = NewHandler(Options{Publisher: f.pub, ProduceTimeout: 50 * time.Millisecond, Registry: f.reg})
	return f
}

func (f *fixture) do(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

func (f *fixture) post(contentType string, body []byte, headers ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/v1/events", bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	return f.do(req)
}

func (f *fixture) counter(want string, names ...string) {
	f.t.Helper()
	if err := testutil.GatherAndCompare(f.reg, strings.NewReader(want), names...); err != nil {
		f.t.Fatal(err)
	}
}

func expect(t *testing.T, rec *httptest.ResponseRecorder, status int, contentType, body string) {
	t.Helper()
	if rec.Code != status {
		t.Errorf("status %d, want %d", rec.Code, status)
	}
	if ct := rec.Header().Get("Content-Type"); ct != contentType {
		t.Errorf("Content-Type %q, want %q", ct, contentType)
	}
	if got := rec.Body.String(); got != body {
		t.Errorf("body %q\nwant %q", got, body)
	}
}

const (
	bodyMalformed     = `{"code":"malformed_body","message":"request body is not a valid EventBatch"}`
	bodyTooLarge      = `{"code":"body_too_large","message":"request body exceeds 8388608 bytes"}`
	bodyTooManyEvents = `{"code":"too_many_events","message":"batch holds more than 10000 events"}`
	bodyUnsupported   = `{"code":"unsupported_media_type","message":"Content-Type must be application/x-protobuf or application/json"}`
	bodyKafka         = `{"code":"kafka_unavailable","message":"Kafka did not acknowledge the batch; retry later"}`
	bodyNotReachable  = `{"code":"kafka_unavailable","message":"Kafka is not reachable"}`
	bodyNotFound      = `{"code":"not_found","message":"no such route"}`
	bodyNotAllowed    = `{"code":"method_not_allowed","message":"method not allowed on this route"}`
)

const oneEventJSON = `{"events":[{"eventId":"e1","tenantId":"t1","type":"click","payload":"aGk="}]}`

func TestPostJSONBatchAnswersAcceptedCountAsJSON(t *testing.T) {
	f := newFixture(t)
	rec := f.post("application/json", []byte(oneEventJSON))
	expect(t, rec, 200, "application/json", `{"accepted":1,"rejected":[]}`)
}

func TestPostPublishesEachAcceptedEventAsOneRecord(t *testing.T) {
	f := newFixture(t)
	f.post("application/json", []byte(oneEventJSON))
	if len(f.pub.batches) != 1 || len(f.pub.batches[0]) != 1 {
		t.Fatalf("batches %v", f.pub.batches)
	}
	r := f.pub.batches[0][0]
	want, _ := proto.MarshalOptions{Deterministic: true}.Marshal(&ingestv1.Event{EventId: "e1", TenantId: "t1", Type: "click", Payload: []byte("hi")})
	if string(r.Key) != "t1" || r.EventID != "e1" || !bytes.Equal(r.Value, want) {
		t.Fatalf("record %+v", r)
	}
}

func TestPostProtobufBatchAnswersProtobuf(t *testing.T) {
	f := newFixture(t)
	rec := f.post("application/x-protobuf", ingesttest.EncodedBatch(1, 3))
	want, _ := proto.Marshal(&ingestv1.IngestResponse{Accepted: 3})
	expect(t, rec, 200, "application/x-protobuf", string(want))
}

func TestPostAnswersInTheFirstSupportedAcceptType(t *testing.T) {
	f := newFixture(t)
	rec := f.post("application/x-protobuf", ingesttest.EncodedBatch(1, 2), "Accept", "text/html, application/json")
	expect(t, rec, 200, "application/json", `{"accepted":2,"rejected":[]}`)
}

func TestPostAnswersAProtobufAliasWithTheCanonicalContentType(t *testing.T) {
	f := newFixture(t)
	rec := f.post("application/vnd.google.protobuf", nil)
	expect(t, rec, 200, "application/x-protobuf", "")
}

func TestPostEmptyProtobufBodyIsAnEmptyBatch(t *testing.T) {
	f := newFixture(t)
	rec := f.post("application/x-protobuf", nil, "Accept", "application/json")
	expect(t, rec, 200, "application/json", `{"accepted":0,"rejected":[]}`)
	if len(f.pub.batches) != 0 {
		t.Fatalf("published %v", f.pub.batches)
	}
}

func TestPostEmptyJSONBodyIsMalformed(t *testing.T) {
	f := newFixture(t)
	expect(t, f.post("application/json", nil), 400, "application/json", bodyMalformed)
}

func TestPostListsRejectedEventsAndPublishesTheRest(t *testing.T) {
	f := newFixture(t)
	body := `{"events":[{"eventId":"e-0","tenantId":"t","type":"a"},{"eventId":"e-1","tenantId":"t"},{"eventId":"e-0","tenantId":"t","type":"a"}]}`
	rec := f.post("application/json", []byte(body))
	expect(t, rec, 200, "application/json",
		`{"accepted":1,"rejected":[{"index":1,"eventId":"e-1","reason":"missing_type"},{"index":2,"eventId":"e-0","reason":"duplicate_event_id"}]}`)
}

func TestPostWhereEveryEventIsRejectedStillAnswers200WithoutPublishing(t *testing.T) {
	f := newFixture(t)
	rec := f.post("application/json", []byte(`{"events":[{"eventId":""}]}`))
	expect(t, rec, 200, "application/json", `{"accepted":0,"rejected":[{"index":0,"eventId":"","reason":"invalid_event_id"}]}`)
	if len(f.pub.batches) != 0 {
		t.Fatalf("published %v", f.pub.batches)
	}
}

func TestPostWithoutContentTypeIs415(t *testing.T) {
	f := newFixture(t)
	expect(t, f.post("", []byte(oneEventJSON)), 415, "application/json", bodyUnsupported)
}

func TestPostWithOtherContentTypeIs415(t *testing.T) {
	f := newFixture(t)
	expect(t, f.post("text/plain", []byte(oneEventJSON)), 415, "application/json", bodyUnsupported)
}

// failingReader fails the test if the handler reads the body.
type failingReader struct{ t *testing.T }

func (r failingReader) Read([]byte) (int, error) {
	r.t.Error("body was read")
	return 0, io.EOF
}

func TestPost415IsDecidedBeforeTheBodyIsRead(t *testing.T) {
	f := newFixture(t)
	req := httptest.NewRequest(http.MethodPost, "/v1/events", failingReader{t})
	req.ContentLength = MaxBodyBytes + 1
	expect(t, f.do(req), 415, "application/json", bodyUnsupported)
}

func TestPostDeclaringMoreThan8MiBIs413WithoutReadingTheBody(t *testing.T) {
	f := newFixture(t)
	req := httptest.NewRequest(http.MethodPost, "/v1/events", failingReader{t})
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = MaxBodyBytes + 1
	expect(t, f.do(req), 413, "application/json", bodyTooLarge)
}

func TestPostStreamingMoreThan8MiBIs413(t *testing.T) {
	f := newFixture(t)
	req := httptest.NewRequest(http.MethodPost, "/v1/events", io.MultiReader(strings.NewReader(" "), bytes.NewReader(make([]byte, MaxBodyBytes))))
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = -1 // chunked: only counting can tell
	expect(t, f.do(req), 413, "application/json", bodyTooLarge)
}

func TestPostOfExactly8MiBIsNotTooLarge(t *testing.T) {
	f := newFixture(t)
	body := bytes.Repeat([]byte(" "), MaxBodyBytes)
	// 8 MiB of whitespace is not a valid EventBatch: the size limit passed.
	expect(t, f.post("application/json", body), 400, "application/json", bodyMalformed)
}

func TestPostMalformedBodyIs400(t *testing.T) {
	f := newFixture(t)
	expect(t, f.post("application/json", []byte(`{"events":[{"color":"red"}]}`)), 400, "application/json", bodyMalformed)
	expect(t, f.post("application/x-protobuf", []byte{0x0a, 0x05, 0x0a}), 400, "application/json", bodyMalformed)
}

func TestPostOf10000EventsIsAccepted(t *testing.T) {
	f := newFixture(t)
	rec := f.post("application/x-protobuf", ingesttest.EncodedBatch(2, MaxEvents), "Accept", "application/json")
	expect(t, rec, 200, "application/json", `{"accepted":10000,"rejected":[]}`)
}

func TestPostOfMoreThan10000EventsIs413(t *testing.T) {
	f := newFixture(t)
	// 10,001 empty events: each is the two bytes 0x0a 0x00.
	body := bytes.Repeat([]byte{0x0a, 0x00}, MaxEvents+1)
	expect(t, f.post("application/x-protobuf", body), 413, "application/json", bodyTooManyEvents)
}

func TestPostMalformedBeatsTooManyEvents(t *testing.T) {
	f := newFixture(t)
	body := append(bytes.Repeat([]byte{0x0a, 0x00}, MaxEvents+1), 0xff)
	expect(t, f.post("application/x-protobuf", body), 400, "application/json", bodyMalformed)
}

func TestPostWhenKafkaFailsIs503WithRetryAfter(t *testing.T) {
	f := newFixture(t)
	f.pub.err = &PublishError{Failed: 1, Total: 1, Err: errors.New("broker down")}
	rec := f.post("application/json", []byte(oneEventJSON))
	expect(t, rec, 503, "application/json", bodyKafka)
	if got := rec.Header().Get("Retry-After"); got != "1" {
		t.Fatalf("Retry-After %q", got)
	}
}

func TestPostWhenKafkaDoesNotAnswerIs503AfterTheProduceTimeout(t *testing.T) {
	f := newFixture(t)
	f.pub.block = true
	start := time.Now()
	rec := f.post("application/json", []byte(oneEventJSON))
	if took := time.Since(start); took < 50*time.Millisecond || took > 2*time.Second {
		t.Errorf("answered after %v", took)
	}
	expect(t, rec, 503, "application/json", bodyKafka)
}

func TestPostCountsEventOutcomes(t *testing.T) {
	f := newFixture(t)
	f.post("application/json", []byte(`{"events":[{"eventId":"a","tenantId":"t","type":"x"},{"eventId":"b"}]}`))
	f.pub.err = &PublishError{Failed: 1, Total: 2, Err: errors.New("one record failed")}
	f.post("application/json", []byte(`{"events":[{"eventId":"c","tenantId":"t","type":"x"},{"eventId":"d","tenantId":"t","type":"x"}]}`))
	f.counter(`
# HELP ingest_events_total Events by outcome: accepted (acknowledged by Kafka), rejected (by validation), failed (in a batch Kafka did not acknowledge).
# TYPE ingest_events_total counter
ingest_events_total{outcome="accepted"} 1
ingest_events_total{outcome="failed"} 2
ingest_events_total{outcome="rejected"} 1
# HELP ingest_kafka_produce_errors_total Records Kafka did not acknowledge.
# TYPE ingest_kafka_produce_errors_total counter
ingest_kafka_produce_errors_total 1
`, "ingest_events_total", "ingest_kafka_produce_errors_total")
}

func TestPostCountsRequestsUnderItsRoute(t *testing.T) {
	f := newFixture(t)
	f.post("application/json", []byte(oneEventJSON))
	f.post("text/plain", nil)
	f.counter(`
# HELP http_requests_total HTTP requests answered, by route and status.
# TYPE http_requests_total counter
http_requests_total{route="/v1/events",status="200"} 1
http_requests_total{route="/v1/events",status="415"} 1
`, "http_requests_total")
}

func TestGetOnEventsIs405AllowPost(t *testing.T) {
	f := newFixture(t)
	rec := f.do(httptest.NewRequest(http.MethodGet, "/v1/events", nil))
	expect(t, rec, 405, "application/json", bodyNotAllowed)
	if got := rec.Header().Get("Allow"); got != "POST" {
		t.Fatalf("Allow %q", got)
	}
}

func TestPostOnGetRoutesIs405AllowGet(t *testing.T) {
	f := newFixture(t)
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		for _, method := range []string{http.MethodPost, http.MethodHead, http.MethodPut} {
			rec := f.do(httptest.NewRequest(method, path, nil))
			if rec.Code != 405 || rec.Header().Get("Allow") != "GET" || rec.Body.String() != bodyNotAllowed {
				t.Errorf("%s %s: %d Allow %q %s", method, path, rec.Code, rec.Header().Get("Allow"), rec.Body)
			}
		}
	}
}

func TestUnknownPathIs404(t *testing.T) {
	f := newFixture(t)
	for _, path := range []string{"/", "/v1/events/", "/v1/event", "/v2/events"} {
		expect(t, f.do(httptest.NewRequest(http.MethodPost, path, nil)), 404, "application/json", bodyNotFound)
	}
}

func TestHealthzIsOK(t *testing.T) {
	f := newFixture(t)
	expect(t, f.do(httptest.NewRequest(http.MethodGet, "/healthz", nil)), 200, "application/json", `{"status":"ok"}`)
}

func TestReadyzIsReadyWhenKafkaAnswers(t *testing.T) {
	f := newFixture(t)
	expect(t, f.do(httptest.NewRequest(http.MethodGet, "/readyz", nil)), 200, "application/json", `{"status":"ready"}`)
}

func TestReadyzIs503KafkaUnavailableWhenKafkaDoesNotAnswer(t *testing.T) {
	f := newFixture(t)
	f.pub.pingErr = errors.New("no broker")
	rec := f.do(httptest.NewRequest(http.MethodGet, "/readyz", nil))
	expect(t, rec, 503, "application/json", bodyNotReachable)
	if got := rec.Header().Get("Retry-After"); got != "1" {
		t.Fatalf("Retry-After %q", got)
	}
}

func TestMetricsExposesTheContractMetrics(t *testing.T) {
	f := newFixture(t)
	f.post("application/json", []byte(oneEventJSON))
	rec := f.do(httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("%d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	for _, want := range []string{
		`http_requests_total{route="/v1/events",status="200"} 1`,
		`http_request_duration_seconds_bucket{route="/v1/events",le="0.0005"}`,
		`ingest_events_total{outcome="accepted"} 1`,
		`ingest_events_total{outcome="failed"} 0`,
		`ingest_kafka_produce_errors_total 0`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
}
