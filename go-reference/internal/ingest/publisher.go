package ingest

import (
	"context"
	"fmt"
)

// Publisher hands records to Kafka.
type Publisher interface {
	// Publish hands all records to the producer together and waits for
	// their acknowledgements together. It returns nil only when Kafka
	// acknowledged every record before ctx was done; otherwise a
	// *PublishError counting the records that were not acknowledged.
	Publish(ctx context.Context, records []Record) error
	// Ping succeeds when a Kafka metadata request succeeds before ctx is
	// done.
	Ping(ctx context.Context) error
}

// PublishError says how many records of a batch Kafka did not acknowledge
// (failed, or still unacknowledged when the batch's time ran out).
type PublishError struct {
	Failed int
	Total  int
	// Err is the first record error, or the context's error on timeout.
	Err error
}

func (e *PublishError) Error() string {
	return fmt.Sprintf("kafka did not acknowledge %d of %d records: %v", e.Failed, e.Total, e.Err)
}

func (e *PublishError) Unwrap() error { return e.Err }
