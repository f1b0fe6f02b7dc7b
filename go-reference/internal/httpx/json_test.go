package httpx

import (
	"bytes"
	"encoding/json"
	"testing"
)

func quote(s string) string { return string(AppendString(nil, s)) }

func TestAppendStringEscapesQuoteAndBackslash(t *testing.T) {
	if got, want := quote(`a"b\c`), `"a\"b\\c"`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestAppendStringUsesShortEscapesForCommonControlCharacters(t *testing.T) {
	if got, want := quote("\b\f\n\r\t"), `"\b\f\n\r\t"`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestAppendStringUsesLowerCaseUnicodeEscapesForOtherControlCharacters(t *testing.T) {
	if got, want := quote("\x00\x01\x0b\x1f"), `"\u0000\u0001\u000b\u001f"`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestAppendStringEscapesLineAndParagraphSeparators(t *testing.T) {
	if got, want := quote("a\u2028b\u2029c"), `"a\u2028b\u2029c"`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestAppendStringKeepsHTMLCharactersDELAndNonASCIIVerbatim(t *testing.T) {
	in := "<a href=\"x\">&amp;</a>\x7fé\u2027\u202a🦀"
	want := "\"<a href=\\\"x\\\">&amp;</a>\x7fé\u2027\u202a🦀\""
	if got := quote(in); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestAppendStringWritesEmptyStringAsTwoQuotes(t *testing.T) {
	if got := quote(""); got != `""` {
		t.Fatalf("got %s", got)
	}
}

func TestAppendStringReplacesInvalidUTF8LikeEncodingJSON(t *testing.T) {
	if got, want := quote("a\xffb"), `"a\ufffdb"`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// encodingJSON is the reference the contract names: encoding/json with
// SetEscapeHTML(false), minus Encode's trailing newline.
func encodingJSON(t testing.TB, s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

func TestAppendStringMatchesEncodingJSONForEveryByteAndSpecialRune(t *testing.T) {
	var cases []string
	for b := range 256 {
		cases = append(cases, "x"+string(rune(b))+"y", "x"+string([]byte{byte(b)})+"y")
	}
	cases = append(cases, "\u2028\u2029", "\U0001F600", "\uFFFD", "\xed\xa0\x80", "\xf4\x90\x80\x80")
	for _, s := range cases {
		if got, want := quote(s), encodingJSON(t, s); got != want {
			t.Errorf("quote(%q) = %s, encoding/json = %s", s, got, want)
		}
	}
}

func FuzzAppendStringMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{"", `"\`, "\b\f\n\r\t\x00\x1f\x7f", "\u2028\u2029", "<>&", "é🦀", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := quote(s), encodingJSON(t, s); got != want {
			t.Fatalf("quote(%q) = %s, encoding/json = %s", s, got, want)
		}
	})
}
