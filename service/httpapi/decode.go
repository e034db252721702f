package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
)

// MaxBody is the largest request body a server reads.
const MaxBody = 1 << 20

// DecodeJSON reads the request body, at most MaxBody bytes of one JSON
// value with no unknown fields, into v. Its errors are *Error.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return Errorf(CodeUnsupported, fmt.Sprintf("content type %q: send application/json", ct))
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return Errorf(CodeTooLarge, fmt.Sprintf("request body over %d bytes", MaxBody))
		}
		if errors.Is(err, io.EOF) {
			return Errorf(CodeInvalid, "empty request body: send a JSON object")
		}
		return Errorf(CodeInvalid, "decoding request body: "+err.Error())
	}
	if dec.More() {
		return Errorf(CodeInvalid, "request body holds more than one JSON value")
	}
	return nil
}
