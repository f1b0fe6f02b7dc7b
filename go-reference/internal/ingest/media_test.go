package ingest

import (
	"net/http"
	"testing"
)

func TestRequestMedia(t *testing.T) {
	tests := []struct {
		name        string
		contentType []string
		want        Media
	}{
		{"protobuf", []string{"application/x-protobuf"}, MediaProtobuf},
		{"protobuf alias application/protobuf", []string{"application/protobuf"}, MediaProtobuf},
		{"protobuf alias vnd.google.protobuf", []string{"application/vnd.google.protobuf"}, MediaProtobuf},
		{"json", []string{"application/json"}, MediaJSON},
		{"case is ignored", []string{"Application/JSON"}, MediaJSON},
		{"parameters are ignored", []string{"application/json; charset=utf-8"}, MediaJSON},
		{"spaces before parameters are ignored", []string{"application/x-protobuf ;proto=parallax.ingest.v1.EventBatch"}, MediaProtobuf},
		{"empty parameter list is ignored", []string{"application/json;"}, MediaJSON},
		{"missing is unsupported", nil, MediaUnsupported},
		{"empty is unsupported", []string{""}, MediaUnsupported},
		{"text/plain is unsupported", []string{"text/plain"}, MediaUnsupported},
		{"wildcard is unsupported", []string{"*/*"}, MediaUnsupported},
		{"json suffix types are unsupported", []string{"application/problem+json"}, MediaUnsupported},
		{"a prefix is not a match", []string{"application/jsonx"}, MediaUnsupported},
		{"Unicode case folding is not ASCII case folding", []string{"application/j\u017fon"}, MediaUnsupported},
		{"non-ASCII bytes make the value unsupported", []string{"application/json; charset=\xe9"}, MediaUnsupported},
		{"only the first Content-Type counts", []string{"text/plain", "application/json"}, MediaUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.contentType {
				h.Add("Content-Type", v)
			}
			if got := RequestMedia(h); got != tt.want {
				t.Fatalf("RequestMedia(%q) = %v, want %v", tt.contentType, got, tt.want)
			}
		})
	}
}

func TestResponseMedia(t *testing.T) {
	tests := []struct {
		name    string
		accept  []string
		request Media
		want    Media
	}{
		{"missing Accept falls back to the request type (json)", nil, MediaJSON, MediaJSON},
		{"missing Accept falls back to the request type (protobuf)", nil, MediaProtobuf, MediaProtobuf},
		{"wildcard falls back to the request type", []string{"*/*"}, MediaProtobuf, MediaProtobuf},
		{"application/* falls back to the request type", []string{"application/*"}, MediaJSON, MediaJSON},
		{"Accept naming neither falls back", []string{"text/html, text/plain"}, MediaJSON, MediaJSON},
		{"json is chosen over a protobuf request", []string{"application/json"}, MediaProtobuf, MediaJSON},
		{"protobuf is chosen over a json request", []string{"application/x-protobuf"}, MediaJSON, MediaProtobuf},
		{"a protobuf alias means protobuf", []string{"application/vnd.google.protobuf"}, MediaJSON, MediaProtobuf},
		{"the first supported type wins", []string{"text/html, application/x-protobuf, application/json"}, MediaJSON, MediaProtobuf},
		{"q-values are ignored", []string{"application/x-protobuf;q=0.1, application/json;q=1"}, MediaJSON, MediaProtobuf},
		{"q=0 is ignored too", []string{"application/json;q=0"}, MediaProtobuf, MediaJSON},
		{"case and spaces are ignored", []string{"  APPLICATION/JSON  "}, MediaProtobuf, MediaJSON},
		{"empty items are skipped", []string{",,application/json"}, MediaProtobuf, MediaJSON},
		{"all Accept lines are read in order", []string{"text/html", "application/json"}, MediaProtobuf, MediaJSON},
		{"a line with non-ASCII bytes is skipped", []string{"application/json, text/\xe9", "application/x-protobuf"}, MediaJSON, MediaProtobuf},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.accept {
				h.Add("Accept", v)
			}
			if got := ResponseMedia(h, tt.request); got != tt.want {
				t.Fatalf("ResponseMedia(%q, %v) = %v, want %v", tt.accept, tt.request, got, tt.want)
			}
		})
	}
}

func TestResponseContentTypeIsExactlyOneOfTwo(t *testing.T) {
	if got := MediaProtobuf.ContentType(); got != "application/x-protobuf" {
		t.Errorf("protobuf: %q", got)
	}
	if got := MediaJSON.ContentType(); got != "application/json" {
		t.Errorf("json: %q", got)
	}
}
