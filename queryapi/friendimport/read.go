// Package friendimport loads an existing friend graph into Presence: a CSV
// file of "user,friend" lines becomes both halves of every friendship on
// presence.friends, the same records the query API writes for
// PUT /v1/apps/{app}/users/{user}/friends/{friend}. Every record is keyed,
// so importing a file again changes nothing but the timestamps.
//
// The input is read and checked whole before anything is written: a bad
// line stops the import with an error naming it, and nothing is written.
package friendimport

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
)

// Input is a checked friend list of one app, held in memory as read
// (about the size of the file).
type Input struct {
	app   string
	data  []byte
	edges int
}

// Read reads a friend list of app: CSV lines "user,friend" (RFC 4180, so an
// id holding a comma or a quote is quoted), each naming one friendship. A
// first line "user,friend" is a header and skipped; so is a UTF-8 byte
// order mark. Every line is checked as the query API checks a friendship:
// two valid ids that differ, here also without leading or trailing spaces,
// which are more likely a formatting slip than part of an id. The error
// names the first bad line; its error wraps schemas.ErrInvalid when a line
// holds an invalid friendship.
func Read(r io.Reader, app string) (*Input, error) {
	if err := schemas.ValidateApp(app); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading the friend list: %w", err)
	}
	in := &Input{app: app, data: bytes.TrimPrefix(data, []byte("\uFEFF"))}
	n := 0
	err = in.each(func(line int, user, friend string) error {
		if err := check(app, user, friend); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		n++
		return nil
	})
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, errors.New("the friend list holds no friendship: want lines \"user,friend\"")
	}
	in.edges = n
	return in, nil
}

// Edges is how many friendships the list holds (lines, less the header);
// each becomes two records.
func (in *Input) Edges() int { return in.edges }

// each calls fn with every friendship of the list and its line number,
// stopping at the first error.
func (in *Input) each(fn func(line int, user, friend string) error) error {
	cr := csv.NewReader(bytes.NewReader(in.data))
	cr.FieldsPerRecord = 2
	cr.ReuseRecord = true
	for first := true; ; first = false {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return fmt.Errorf("line %d: %w (want \"user,friend\")", pe.StartLine, pe.Err)
			}
			return fmt.Errorf("reading the friend list: %w", err)
		}
		if first && rec[0] == "user" && rec[1] == "friend" {
			continue
		}
		line, _ := cr.FieldPos(0)
		if err := fn(line, rec[0], rec[1]); err != nil {
			return err
		}
	}
}

// check checks one friendship as the query API would, and its ids for
// stray spaces.
func check(app, user, friend string) error {
	for _, id := range []struct{ what, id string }{{"user", user}, {"friend", friend}} {
		if id.id != "" && strings.TrimSpace(id.id) != id.id {
			return fmt.Errorf("%w %s id %q: leading or trailing spaces", schemas.ErrInvalid, id.what, id.id)
		}
	}
	return schemas.ValidateFriendEdge(&pb.FriendEdge{App: app, User: user, Friend: friend, TimestampMs: 1})
}
