package ingest

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaConfig configures the franz-go producer.
type KafkaConfig struct {
	Brokers []string
	Topic   string
	// Linger is how long a partition's batch may wait for more records.
	Linger time.Duration
	// DeliveryTimeout bounds how long a record may wait for its
	// acknowledgement (the produce timeout). franz-go refuses less than a
	// second, so shorter values are raised to one second; the batch's
	// context (the produce timeout, see Publish) still bounds the wait.
	DeliveryTimeout time.Duration
}

// minDeliveryTimeout is the least record timeout franz-go accepts.
const minDeliveryTimeout = time.Second

// KafkaPublisher publishes records with franz-go: idempotent, acks=all
// (franz-go's defaults), lz4, murmur2 key partitioning (franz-go's default,
// the Java client's).
type KafkaPublisher struct {
	client *kgo.Client
}

// NewKafkaPublisher builds the producer. It does not connect yet.
func NewKafkaPublisher(cfg KafkaConfig, log *slog.Logger) (*KafkaPublisher, error) {
	client, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.AllowAutoTopicCreation(),
		kgo.ProducerLinger(cfg.Linger),
		kgo.ProducerBatchCompression(kgo.Lz4Compression()),
		kgo.RecordDeliveryTimeout(max(cfg.DeliveryTimeout, minDeliveryTimeout)),
		// The Rust twin's librdkafka buffers up to 1,000,000 records /
		// 1 GiB; franz-go's default of 10,000 records would make one full
		// batch block every concurrent request.
		kgo.MaxBufferedRecords(1_000_000),
		kgo.MaxBufferedBytes(1<<30),
		kgo.WithLogger(slogAdapter{log: log}),
	)
	if err != nil {
		return nil, err
	}
	return &KafkaPublisher{client: client}, nil
}

// Publish produces every record, then waits for all promises or for ctx.
// Records still unacknowledged when ctx is done count as failed; franz-go
// fails the ones it has not sent yet with ctx's error.
func (p *KafkaPublisher) Publish(ctx context.Context, records []Record) error {
	var (
		wg       sync.WaitGroup
		acked    atomic.Int64
		firstErr atomic.Pointer[error]
	)
	wg.Add(len(records))
	promise := func(_ *kgo.Record, err error) {
		if err == nil {
			acked.Add(1)
		} else {
			firstErr.CompareAndSwap(nil, &err)
		}
		wg.Done()
	}
	// The batch's kgo.Records, their headers and the header values are
	// allocated once per batch rather than three objects per record; the
	// client keeps pointers into them until every promise has run, which
	// keeps the arrays alive.
	recs := make([]kgo.Record, len(records))
	headers := make([]kgo.RecordHeader, len(records))
	idBytes := 0
	for i := range records {
		idBytes += len(records[i].EventID)
	}
	ids := make([]byte, 0, idBytes)
	for i := range records {
		rec := &records[i]
		start := len(ids)
		ids = append(ids, rec.EventID...)
		headers[i] = kgo.RecordHeader{Key: "event-id", Value: ids[start:len(ids):len(ids)]}
		recs[i] = kgo.Record{Key: rec.Key, Value: rec.Value, Headers: headers[i : i+1 : i+1]}
		p.client.Produce(ctx, &recs[i], promise)
	}

	all := make(chan struct{})
	go func() { wg.Wait(); close(all) }()
	var cause error
	select {
	case <-all:
	case <-ctx.Done():
		cause = ctx.Err()
	}
	// Read once: promises that complete after this point do not change the
	// answer.
	n := int(acked.Load())
	if n == len(records) {
		return nil
	}
	if e := firstErr.Load(); e != nil {
		cause = *e
	}
	return &PublishError{Failed: len(records) - n, Total: len(records), Err: cause}
}

// Ping issues a metadata request (no topics) to any reachable broker.
func (p *KafkaPublisher) Ping(ctx context.Context) error {
	return p.client.Ping(ctx)
}

// Close flushes buffered records (until ctx is done) and closes the client.
func (p *KafkaPublisher) Close(ctx context.Context) error {
	err := p.client.Flush(ctx)
	p.client.Close()
	return err
}

// slogAdapter sends franz-go's warnings and errors to slog.
type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (a slogAdapter) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	l := slog.LevelInfo
	switch level {
	case kgo.LogLevelError:
		l = slog.LevelError
	case kgo.LogLevelWarn:
		l = slog.LevelWarn
	case kgo.LogLevelDebug:
		l = slog.LevelDebug
	}
	a.log.Log(context.Background(), l, "kafka: "+msg, keyvals...)
}
