package queryapi

import (
	"net/http"
	"sync"

	"github.com/presence-im/presence/redisstore"
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
