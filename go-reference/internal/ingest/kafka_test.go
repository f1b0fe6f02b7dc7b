package ingest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

// These tests need no broker: nothing listens on port 1.
func unreachableKafka(t *testing.T) *KafkaPublisher {
	t.Helper()
	p, err := NewKafkaPublisher(KafkaConfig{
		Brokers:         []string{"127.0.0.1:1"},
		Topic:           "events",
		Linger:          5 * time.Millisecond,
		DeliveryTimeout: 300 * time.Millisecond,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

func TestKafkaPublishWithoutABrokerFailsEveryRecordWithinTheTimeout(t *testing.T) {
	p := unreachableKafka(t)
	records := []Record{{Key: []byte("t"), Value: []byte("v1"), EventID: "a"}, {Key: []byte("u"), Value: []byte("v2"), EventID: "b"}}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := p.Publish(ctx, records)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %v", took)
	}
	pe, ok := errors.AsType[*PublishError](err)
	if !ok || pe.Failed != 2 || pe.Total != 2 {
		t.Fatalf("got %v", err)
	}
}

func TestKafkaPingWithoutABrokerFails(t *testing.T) {
	p := unreachableKafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.Ping(ctx); err == nil {
		t.Fatal("ping succeeded")
	}
}
