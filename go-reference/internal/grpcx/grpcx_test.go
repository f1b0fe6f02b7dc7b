package grpcx

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	fanoutv1 "github.com/parallax-dev/parallax/go-reference/internal/pb/fanoutv1"
)

func TestCodecMovesRawMessagesUnchangedAndOthersAsProto(t *testing.T) {
	in := RawMessage{0x0a, 0x01, 'a', 0xff}
	out, err := Codec{}.Marshal(&in)
	if err != nil || !bytes.Equal(out.Materialize(), in) {
		t.Fatalf("raw marshal: %x %v", out.Materialize(), err)
	}
	var back RawMessage
	if err := (Codec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(in)}, &back); err != nil || !bytes.Equal(back, in) {
		t.Fatalf("raw unmarshal: %x %v", back, err)
	}

	msg := &fanoutv1.SubscribeRequest{Topics: []string{"a"}, Limit: 2}
	encoded, err := Codec{}.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := proto.Marshal(msg)
	if !bytes.Equal(encoded.Materialize(), want) {
		t.Fatalf("proto marshal: %x, want %x", encoded.Materialize(), want)
	}
	var decoded fanoutv1.SubscribeRequest
	if err := (Codec{}).Unmarshal(encoded, &decoded); err != nil || !proto.Equal(&decoded, msg) {
		t.Fatalf("proto unmarshal: %v %v", &decoded, err)
	}
	if (Codec{}).Name() != "proto" {
		t.Fatal("the codec must be named proto: clients see application/grpc")
	}
}
