package queryapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/schemas/status"
	"github.com/presence-im/presence/service/httpapi"
)

// Answers of lookups are written by hand (redisstore.Status.AppendJSON)
// into reused buffers: encoding/json took longer than Redis to write a
// batch of 500 statuses.

// maxPooledBuffer is the largest answer buffer kept for reuse.
const maxPooledBuffer = 1 << 20

// buffers holds the buffers answers are encoded in, for reuse.
type buffers struct{ pool sync.Pool }

func (p *buffers) get(size int) *[]byte {
	if b, ok := p.pool.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, size)
	return &b
}

func (p *buffers) put(b *[]byte) {
	if cap(*b) > maxPooledBuffer {
		return
	}
	*b = (*b)[:0]
	p.pool.Put(b)
}

// statusBuffers holds the memory status queries read statuses into
// (redisstore.StatusBuffer), for reuse: at most MaxBatch statuses and
// maxPooledSessions sessions each (a buffer grown larger by users with
// many sessions is dropped). Other lookups (one user, a friends list of
// any length) read into memory of their own.
type statusBuffers struct{ pool sync.Pool }

// maxPooledSessions is the most sessions a pooled status buffer holds
// room for: four per user of a full status query.
const maxPooledSessions = 4 * MaxBatch

func (p *statusBuffers) get() *redisstore.StatusBuffer {
	if b, ok := p.pool.Get().(*redisstore.StatusBuffer); ok {
		return b
	}
	return new(redisstore.StatusBuffer)
}

func (p *statusBuffers) put(b *redisstore.StatusBuffer) {
	if b.Holds(maxPooledSessions) {
		return
	}
	p.pool.Put(b)
}

// writeEncoded answers status with what encode appends to a buffer (a
// reused one, or a new one of capacity size), which must be what
// httpapi.WriteJSON writes but for the final newline.
func (s *Server) writeEncoded(w http.ResponseWriter, status, size int, encode func([]byte) []byte) {
	buf := s.buffers.get(size)
	*buf = append(encode(*buf), '\n')
	httpapi.WriteEncoded(w, status, *buf)
	s.buffers.put(buf)
}

// appendResults appends {"results":[…] to b (the object left open), a
// status or null for each of statuses.
func appendResults(b []byte, statuses []*redisstore.Status) []byte {
	b = append(b, `{"results":[`...)
	for i, st := range statuses {
		if i > 0 {
			b = append(b, ',')
		}
		b = st.AppendJSON(b)
	}
	return append(b, ']')
}

// writeResults answers {"results":[…]} with statuses, as httpapi.WriteJSON
// writes a queryResponse.
func (s *Server) writeResults(w http.ResponseWriter, statuses []*redisstore.Status) {
	s.writeEncoded(w, http.StatusOK, answerSize(len(statuses)), func(b []byte) []byte {
		return append(appendResults(b, statuses), '}')
	})
}

// answerSize is a guess of the size of an answer of n statuses.
func answerSize(n int) int { return 64 + 192*n }

// DecodeResults decodes the answer of a status query, {"results":[…]},
// for a Go client: what encoding/json decodes into a struct with the
// field Results []*redisstore.Status `json:"results"`, or its error. An
// answer as the query API writes it is read by hand
// (status.JSONReader), which costs a fraction of what encoding/json
// does; any other form is left to encoding/json. The statuses share
// their memory.
func DecodeResults(body []byte) ([]*redisstore.Status, error) {
	if results, ok := decodeResultsFast(string(body)); ok {
		return results, nil
	}
	var resp queryResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, err
	}
	return resp.Results, nil
}

// decodeResultsFast reads s when it is {"results":[…]} as writeResults
// writes it, but for any JSON whitespace at the end.
func decodeResultsFast(s string) ([]*redisstore.Status, bool) {
	s, ok := strings.CutPrefix(s, `{"results":[`)
	if !ok {
		return nil, false
	}
	results := make([]*redisstore.Status, 0, MaxBatch)
	var r status.JSONReader
	if s, ok = strings.CutPrefix(s, "]"); !ok {
		for {
			var st *redisstore.Status
			if st, s, ok = r.Read(s); !ok {
				return nil, false
			}
			results = append(results, st)
			if s, ok = strings.CutPrefix(s, ","); !ok {
				break
			}
		}
		if s, ok = strings.CutPrefix(s, "]"); !ok {
			return nil, false
		}
	}
	if s, ok = strings.CutPrefix(s, "}"); !ok || skipSpace(s, 0) != len(s) {
		return nil, false
	}
	return results, true
}
