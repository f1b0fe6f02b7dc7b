package fanout

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// KafkaConfig configures the Kafka path.
type KafkaConfig struct {
	Brokers []string
	// Topic carries the frames (--kafka-topic).
	Topic string
}

// KafkaBus is the Kafka path with franz-go. It publishes each notification
// frame (key: the notification's topic, so one topic's frames share a
// partition and keep their order) and consumes every partition of the topic
// from the records stamped since the bus was created, without a consumer
// group — each process sees every record — broadcasting each record's value
// to the local subscribers of the topic in its key. (Record timestamps are
// the producers' clocks: across machines, skew beyond the time between
// start-up and the first notify could drop a record.)
//
// Readiness: a direct (group-less) consumer has no "partitions assigned"
// callback. franz-go assigns a topic's partitions when their metadata
// loads, resolves their end offsets, and only then includes them in fetch
// requests. So the bus is ready once the topic has partitions and a fetch
// request has been written to the leader of each of them: from then on, no
// acknowledged record can be missed.
type KafkaBus struct {
	client *kgo.Client
	topic  string
	hub    *Hub
	log    *slog.Logger

	ready atomic.Bool
	// fetchedFrom holds the ids of the brokers a fetch was written to.
	fetchMu     sync.Mutex
	fetchedFrom map[int32]bool
}

// NewKafkaBus builds the client. It connects in the background; Run
// consumes.
func NewKafkaBus(cfg KafkaConfig, hub *Hub, log *slog.Logger) (*KafkaBus, error) {
	b := &KafkaBus{topic: cfg.Topic, hub: hub, log: log, fetchedFrom: make(map[int32]bool)}
	client, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.AllowAutoTopicCreation(),
		// Producer: acks=all (also franz-go's default, with idempotence);
		// every notify waits for its own acknowledgement, so there is no
		// batch to linger for.
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.RecordDeliveryTimeout(PublishTimeout),
		// Consumer: all partitions, no group, from the first record
		// stamped at or after now. For partitions loaded at once that is
		// their end; a partition franz-go loads later (a topic still being
		// auto-created, its metadata retried) starts at the records
		// produced since now instead of at its end by then, which would
		// silently skip them.
		kgo.ConsumeTopics(cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AfterMilli(time.Now().UnixMilli())),
		kgo.WithHooks(fetchHook{b}),
		kgo.WithLogger(slogAdapter{log: log}),
	)
	if err != nil {
		return nil, err
	}
	b.client = client
	return b, nil
}

// Publish produces frame keyed by topic and waits for the acknowledgement
// or for ctx. A record still in flight when ctx is done may yet be
// delivered (then the client retries and subscribers see it twice).
func (b *KafkaBus) Publish(ctx context.Context, topic string, frame []byte) error {
	acked := make(chan error, 1)
	b.client.Produce(ctx, &kgo.Record{Key: []byte(topic), Value: frame}, func(_ *kgo.Record, err error) {
		acked <- err
	})
	select {
	case err := <-acked:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Ready reports whether the consumer has its partitions.
func (b *KafkaBus) Ready() bool { return b.ready.Load() }

// Run consumes until ctx is done, broadcasting each record to the local
// subscribers of its key. Records whose key is not a topic name are
// skipped.
func (b *KafkaBus) Run(ctx context.Context) {
	go b.watchReadiness(ctx)
	for {
		fetches := b.client.PollFetches(ctx)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			b.log.Warn("kafka fetch failed", "topic", topic, "partition", partition, "err", err)
		})
		fetches.EachRecord(func(r *kgo.Record) {
			if topic := string(r.Key); ValidTopic(topic) {
				b.hub.Broadcast(topic, r.Value)
			}
		})
	}
}

// Close flushes the producer (until ctx is done) and closes the client.
func (b *KafkaBus) Close(ctx context.Context) error {
	err := b.client.Flush(ctx)
	b.client.Close()
	return err
}

// readinessPoll is how often watchReadiness looks until ready.
const readinessPoll = 100 * time.Millisecond

// watchReadiness sets ready once every partition's leader has been sent a
// fetch (see KafkaBus), then returns.
func (b *KafkaBus) watchReadiness(ctx context.Context) {
	tick := time.NewTicker(readinessPoll)
	defer tick.Stop()
	for {
		if b.partitionsAssigned(ctx) {
			b.ready.Store(true)
			b.log.Info("kafka consumer ready", "topic", b.topic)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (b *KafkaBus) partitionsAssigned(ctx context.Context) bool {
	b.fetchMu.Lock()
	none := len(b.fetchedFrom) == 0
	b.fetchMu.Unlock()
	if none {
		return false // no need to ask for metadata yet
	}
	req := kmsg.NewPtrMetadataRequest()
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(b.topic)
	req.Topics = append(req.Topics, t)
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, b.client)
	if err != nil || len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 || len(resp.Topics[0].Partitions) == 0 {
		return false
	}
	b.fetchMu.Lock()
	defer b.fetchMu.Unlock()
	for _, p := range resp.Topics[0].Partitions {
		if !b.fetchedFrom[p.Leader] {
			return false
		}
	}
	return true
}

// fetchHook records the brokers fetch requests were written to.
type fetchHook struct{ b *KafkaBus }

func (h fetchHook) OnBrokerWrite(meta kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err != nil || key != (*kmsg.FetchRequest)(nil).Key() {
		return
	}
	h.b.fetchMu.Lock()
	h.b.fetchedFrom[meta.NodeID] = true
	h.b.fetchMu.Unlock()
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
