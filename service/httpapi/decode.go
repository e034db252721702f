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

// MaxBody is the largest request body a server reads.
const MaxBody = 1 << 20

// DecodeJSON reads the request body, at most MaxBody bytes of valid UTF-8
// holding one JSON value with no unknown fields, into v. The body is read
// as JSON whatever its Content-Type says. Its errors are *Error.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return Errorf(CodeTooLarge, fmt.Sprintf("request body over %d bytes", MaxBody))
		}
		return Errorf(CodeInvalid, "reading request body: "+err.Error())
	}
	// encoding/json would quietly replace invalid UTF-8 with U+FFFD.
	if !utf8.Valid(body) {
		return Errorf(CodeInvalid, "request body is not valid UTF-8")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return Errorf(CodeInvalid, "empty request body: send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Errorf(CodeInvalid, "decoding request body: "+err.Error())
	}
	if dec.More() {
		return Errorf(CodeInvalid, "request body holds more than one JSON value")
	}
	return nil
}
