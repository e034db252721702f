package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"
)

// MaxBody is the largest request body a server reads: room for a batch of
// 10000 events with long ids.
const MaxBody = 8 << 20

// FastDecoder is a request that decodes the usual form of its body
// itself, faster than encoding/json (the lookups of 500 ids spent more time
// in encoding/json than anywhere else in the query API but Redis).
// DecodeFastJSON decodes body, which DecodeJSON has checked is valid
// UTF-8 without lone surrogate escapes, when it is in a form it knows, and
// reports whether it did; it must decode that form exactly as encoding/json
// would, and when it returns false leave the request untouched for
// encoding/json to decode (or refuse) the body.
type FastDecoder interface {
	DecodeFastJSON(body []byte) bool
}

// DecodeJSON reads the request body, at most MaxBody bytes of valid UTF-8
// holding one JSON value with no unknown fields, into v. The body is read
// as JSON whatever its Content-Type says; a v that is a FastDecoder
// decodes the form it knows itself. Its errors are *Error.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return Errorf(CodeTooLarge, fmt.Sprintf("request body over %d bytes", MaxBody))
		}
		return Errorf(CodeInvalid, "reading request body: "+err.Error())
	}
	// encoding/json would quietly replace invalid UTF-8, and escaped lone
	// surrogates, with U+FFFD: two different ids would become one.
	if !utf8.Valid(body) {
		return Errorf(CodeInvalid, "request body is not valid UTF-8")
	}
	if i := loneSurrogate(body); i >= 0 {
		return Errorf(CodeInvalid, fmt.Sprintf("request body has an unpaired UTF-16 surrogate escape at byte %d", i))
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return Errorf(CodeInvalid, "empty request body: send a JSON object")
	}
	if f, ok := v.(FastDecoder); ok && f.DecodeFastJSON(body) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Errorf(CodeInvalid, "decoding request body: "+err.Error())
	}
	// Not dec.More, which takes a stray '}' or ']' after the value for
	// the end of the body.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Errorf(CodeInvalid, "request body holds more than one JSON value")
	}
	return nil
}

// loneSurrogate returns the position of the first \uD800-\uDFFF escape in
// body that is not half of a high-low pair, or -1.
func loneSurrogate(body []byte) int {
	for i := 0; i < len(body); i++ {
		if body[i] != '\\' || i+1 >= len(body) {
			continue
		}
		if body[i+1] != 'u' {
			i++ // skip the escaped character, which may be a backslash
			continue
		}
		r, ok := hex4(body, i+2)
		if !ok || r < 0xD800 || r > 0xDFFF {
			continue
		}
		if r >= 0xDC00 { // a low surrogate with no high one before it
			return i
		}
		if i+11 < len(body) && body[i+6] == '\\' && body[i+7] == 'u' {
			if low, ok := hex4(body, i+8); ok && low >= 0xDC00 && low <= 0xDFFF {
				i += 11
				continue
			}
		}
		return i
	}
	return -1
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[at : at+4] {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}
