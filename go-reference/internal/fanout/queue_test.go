package fanout

import (
	"strconv"
	"testing"
)

func frameN(i int) *frame { return &frame{data: []byte(strconv.Itoa(i))} }

func drain(q *queue) []string {
	var got []string
	for f := q.pop(); f != nil; f = q.pop() {
		got = append(got, string(f.data))
	}
	return got
}

func TestQueueKeepsFramesInOrder(t *testing.T) {
	q := newQueue(8, 8)
	for i := range 5 {
		if r := q.push(frameN(i)); r != pushed {
			t.Fatalf("push %d: %v", i, r)
		}
	}
	if got := drain(q); len(got) != 5 || got[0] != "0" || got[4] != "4" {
		t.Fatalf("got %v", got)
	}
}

func TestQueueDropsTheOldestFrameWhenFull(t *testing.T) {
	q := newQueue(4, 100)
	for i := range 10 {
		r := q.push(frameN(i))
		if want := map[bool]pushResult{true: pushed, false: droppedOne}[i < 4]; r != want {
			t.Fatalf("push %d: got %v, want %v", i, r, want)
		}
	}
	if got := drain(q); len(got) != 4 || got[0] != "6" || got[3] != "9" {
		t.Fatalf("kept %v, want the newest four 6..9", got)
	}
}

func TestQueueClosesAtTheDropLimitAndRefusesMore(t *testing.T) {
	q := newQueue(2, 3)
	q.push(frameN(0))
	q.push(frameN(1))
	if r := q.push(frameN(2)); r != droppedOne {
		t.Fatalf("got %v", r)
	}
	q.push(frameN(3))
	if r := q.push(frameN(4)); r != dropLimitHit {
		t.Fatalf("third drop in a row: got %v", r)
	}
	if r := q.push(frameN(5)); r != refused {
		t.Fatalf("after closing: got %v", r)
	}
	if got := drain(q); got != nil {
		t.Fatalf("a closed queue still holds %v", got)
	}
}

func TestQueueWrittenFrameEndsARunOfDrops(t *testing.T) {
	q := newQueue(1, 2)
	q.push(frameN(0))
	if r := q.push(frameN(1)); r != droppedOne { // drop 1 of the run
		t.Fatalf("got %v", r)
	}
	q.pop()
	q.written()
	q.push(frameN(2))
	if r := q.push(frameN(3)); r != droppedOne { // drop 1 of a new run
		t.Fatalf("the run did not restart: %v", r)
	}
	if r := q.push(frameN(4)); r != dropLimitHit {
		t.Fatalf("got %v", r)
	}
}

func TestQueuePopAloneDoesNotEndARunOfDrops(t *testing.T) {
	// Taking a frame is not writing it: a writer stuck on a full socket
	// keeps the run going.
	q := newQueue(1, 2)
	q.push(frameN(0))
	q.push(frameN(1))
	q.pop()
	q.push(frameN(2))
	if r := q.push(frameN(3)); r != dropLimitHit {
		t.Fatalf("got %v", r)
	}
}

func TestQueueGrowsOnDemandAndGivesBackABurstsRing(t *testing.T) {
	q := newQueue(256, 64)
	if q.ring != nil {
		t.Fatal("an idle queue holds a ring")
	}
	q.push(frameN(0))
	if len(q.ring) != initialRing {
		t.Fatalf("ring of %d after one push", len(q.ring))
	}
	for i := 1; i < 100; i++ {
		q.push(frameN(i))
	}
	if len(q.ring) != 128 || q.len() != 100 {
		t.Fatalf("ring of %d holding %d", len(q.ring), q.len())
	}
	got := drain(q)
	if len(got) != 100 || got[0] != "0" || got[99] != "99" {
		t.Fatalf("order lost while growing: %v", got)
	}
	if q.ring != nil {
		t.Fatalf("drained queue keeps a ring of %d", len(q.ring))
	}
}

func TestQueueNeverGrowsPastItsCapacity(t *testing.T) {
	q := newQueue(5, 1000)
	for i := range 50 {
		q.push(frameN(i))
	}
	if len(q.ring) != 5 {
		t.Fatalf("ring of %d", len(q.ring))
	}
	if got := drain(q); len(got) != 5 || got[0] != "45" {
		t.Fatalf("got %v", got)
	}
}

func TestQueuePushSignalsTheWriterWithoutBlocking(t *testing.T) {
	q := newQueue(8, 8)
	q.push(frameN(0))
	q.push(frameN(1)) // the signal is already pending: must not block
	select {
	case <-q.wake:
	default:
		t.Fatal("no wake-up pending")
	}
}
