package queryapi

import "strings"

// DecodeFastJSON decodes the body of a status query in the form clients
// send, {"users":["id",…]} with any JSON whitespace between tokens and ids
// without escapes or control characters, as encoding/json would (see
// httpapi.FastDecoder): a profile of 500-id lookups found encoding/json's
// decoding of the request a seventh of the handler's time. Any other body
// (another or a repeated key, an escape, null, a stray byte) is left to
// encoding/json, which decodes it or says what is wrong with it.
func (q *queryRequest) DecodeFastJSON(body []byte) bool {
	s := string(body) // one allocation, of which every id is a part
	i := skipSpace(s, 0)
	for _, token := range []string{"{", `"users"`, ":", "["} {
		if !strings.HasPrefix(s[i:], token) {
			return false
		}
		i = skipSpace(s, i+len(token))
	}
	users := make([]string, 0, strings.Count(s, `"`)/2)
	if strings.HasPrefix(s[i:], "]") {
		i = skipSpace(s, i+1)
	} else {
		for {
			if i == len(s) || s[i] != '"' {
				return false
			}
			end := i + 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' || s[end] < 0x20 {
					return false
				}
				end++
			}
			if end == len(s) {
				return false
			}
			users = append(users, s[i+1:end])
			i = skipSpace(s, end+1)
			if i == len(s) {
				return false
			}
			if s[i] == ']' {
				i = skipSpace(s, i+1)
				break
			}
			if s[i] != ',' {
				return false
			}
			i = skipSpace(s, i+1)
		}
	}
	if !strings.HasPrefix(s[i:], "}") || skipSpace(s, i+1) != len(s) {
		return false
	}
	q.Users = users
	return true
}

// skipSpace returns the index of the first byte of s at or after i that
// is not JSON whitespace.
func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}
