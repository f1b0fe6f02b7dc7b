package cache

import "github.com/prometheus/client_golang/prometheus"

// lookupCounters are the cache_requests_total series of get or head.
type lookupCounters struct {
	hit, miss, invalid prometheus.Counter
}

// Metrics are the cache_* metrics: cache_requests_total counted by the
// handler, and cache_evictions_total, cache_entries and cache_bytes read
// from the store at scrape time.
type Metrics struct {
	get, head                                lookupCounters
	putStored, putInvalid                    prometheus.Counter
	deleteDeleted, deleteMiss, deleteInvalid prometheus.Counter
}

// NewMetrics registers cache_requests_total (every op/result pair of the
// contract, from 0) and the store's collector with reg.
func NewMetrics(reg prometheus.Registerer, store *Store) *Metrics {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cache_requests_total",
		Help: "Session requests by op (get, head, put, delete) and result (hit, miss, stored, deleted, invalid: a 400 or 413).",
	}, []string{"op", "result"})
	reg.MustRegister(requests, newStoreCollector(store))
	lookup := func(op string) lookupCounters {
		return lookupCounters{
			hit:     requests.WithLabelValues(op, "hit"),
			miss:    requests.WithLabelValues(op, "miss"),
			invalid: requests.WithLabelValues(op, "invalid"),
		}
	}
	return &Metrics{
		get:           lookup("get"),
		head:          lookup("head"),
		putStored:     requests.WithLabelValues("put", "stored"),
		putInvalid:    requests.WithLabelValues("put", "invalid"),
		deleteDeleted: requests.WithLabelValues("delete", "deleted"),
		deleteMiss:    requests.WithLabelValues("delete", "miss"),
		deleteInvalid: requests.WithLabelValues("delete", "invalid"),
	}
}

// storeCollector exports the store's own counters. Reading them at scrape
// time keeps the hot path free of shared atomics: each shard counts under
// the lock it already holds.
type storeCollector struct {
	store                     *Store
	evictions, entries, bytes *prometheus.Desc
}

func newStoreCollector(store *Store) *storeCollector {
	return &storeCollector{
		store: store,
		evictions: prometheus.NewDesc("cache_evictions_total",
			"Entries the cache removed by itself, by reason: capacity (least recently used, to make room after a PUT) or expired (past its TTL, found on access, by the sweep or as the LRU victim).",
			[]string{"reason"}, nil),
		entries: prometheus.NewDesc("cache_entries",
			"Entries held, expired ones included until removed.", nil, nil),
		bytes: prometheus.NewDesc("cache_bytes",
			"Accounted bytes of the entries held: id + value + content type + 64 each.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.evictions
	ch <- c.entries
	ch <- c.bytes
}

// Collect implements prometheus.Collector.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.store.Stats()
	ch <- prometheus.MustNewConstMetric(c.evictions, prometheus.CounterValue, float64(st.EvictedCapacity), "capacity")
	ch <- prometheus.MustNewConstMetric(c.evictions, prometheus.CounterValue, float64(st.EvictedExpired), "expired")
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(st.Entries))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(st.Bytes))
}
