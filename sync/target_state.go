package sync

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"
)

// targetState is what an incremental run knows of the target between
// runs, as of its last successful apply: each managed group's tuples
// (they equalled the desired ones then), the objects this instance owns,
// and where in the target's changelogs that knowledge ends.
type targetState struct {
	Version     int    `json:"version"`
	Fingerprint string `json:"fingerprint"`
	// Users is the table of the tuples' users that Groups index; each
	// appears once, so a million tuples cost a few bytes each.
	Users []string `json:"users"`
	// Groups maps each managed group whose tuples are known to their
	// users (the relation is the scope's), as indexes into Users, in the
	// order of the users' strings. A group absent here is read.
	Groups map[string]userList `json:"groups"`
	// Owned is every object the registry records as this instance's.
	Owned []string `json:"owned"`
	// Positions are the changelog positions the knowledge is good up to:
	// per object type, and registryPosition for the ownership records.
	Positions map[string]ChangePosition `json:"positions"`
	// FullAt is when the scope was last read in full.
	FullAt time.Time `json:"full_at"`
	// FullNext, when set, says why the next run must read in full.
	FullNext string `json:"full_next,omitempty"`
}

const (
	targetStateVersion = 3
	registryPosition   = "registry"
)

// encodeTargetState is gzip-compressed JSON: small enough (tens of bytes
// per group) that a structured codec would not pay for itself. It is
// written piece by piece into the compressor, the user table and the
// groups streamed, so that the JSON of a large tenant (megabytes) is never
// whole in memory; the result is what encoding/json would write, spaced
// by newlines.
func encodeTargetState(s *targetState) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	w := bufio.NewWriter(zw)
	enc := json.NewEncoder(w)
	var err error
	field := func(name string, v any) {
		if err == nil {
			w.WriteString("," + strconv.Quote(name) + ":")
			err = enc.Encode(v)
		}
	}
	w.WriteString(`{"version":` + strconv.Itoa(s.Version))
	field("fingerprint", s.Fingerprint)
	w.WriteString(`,"users":[`)
	for i, u := range s.Users {
		if i > 0 {
			w.WriteByte(',')
		}
		if err == nil {
			err = enc.Encode(u)
		}
	}
	w.WriteString(`],"groups":{`)
	for i, obj := range slices.Sorted(maps.Keys(s.Groups)) {
		if i > 0 {
			w.WriteByte(',')
		}
		if err == nil {
			err = enc.Encode(obj)
		}
		w.WriteByte(':')
		if err == nil {
			err = enc.Encode(s.Groups[obj])
		}
	}
	w.WriteString("}")
	field("owned", s.Owned)
	field("positions", s.Positions)
	field("full_at", s.FullAt)
	if s.FullNext != "" {
		field("full_next", s.FullNext)
	}
	w.WriteString("}\n")
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// decodeTargetState returns the state in data, or an error for anything
// it cannot trust entirely: a damaged or half-written state is never
// used in part.
func decodeTargetState(data []byte) (*targetState, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("not a gzip stream: %w", err)
	}
	// Inflated into the decoder, not into a buffer of its own. (The
	// decoder still holds the whole JSON value while it decodes it: at a
	// large tenant ~7 MB for a moment, early in a run, before its peak.)
	var s targetState
	dec := json.NewDecoder(io.LimitReader(zr, 1<<30))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("damaged: %w", err)
	}
	// Read to the end, so that gzip checks its checksum and nothing
	// follows the state.
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("damaged: %v after the state", cmp.Or(err, errors.New("data")))
	}
	if s.Version != targetStateVersion {
		return nil, fmt.Errorf("version %d, this groupsync reads %d", s.Version, targetStateVersion)
	}
	if s.Groups == nil {
		s.Groups = map[string]userList{}
	}
	for obj, users := range s.Groups {
		if err := users.check(len(s.Users)); err != nil {
			return nil, fmt.Errorf("damaged: group %s: %w", obj, err)
		}
	}
	return &s, nil
}

// userList is a group's users as ascending indexes into the user table,
// kept as their uvarint gaps, as stored (the JSON is their base64): one or
// two bytes a tuple where a []uint32 takes four, and read in one pass
// when a group is compared or kept.
type userList []byte

// newUserList encodes ascending indexes.
func newUserList(ids []uint32) userList {
	buf := make([]byte, 0, len(ids)+len(ids)/4)
	prev := uint32(0)
	for _, u := range ids {
		buf = binary.AppendUvarint(buf, uint64(u-prev))
		prev = u
	}
	return buf
}

// each calls f with each index in order until f returns false; it
// reports false, with f not called again, for a damaged list (a gap of 0
// past the first, a varint cut short, an index past 32 bits).
func (l userList) each(f func(u uint32) bool) bool {
	var prev uint64
	for i, buf := 0, []byte(l); len(buf) > 0; i++ {
		gap, n := binary.Uvarint(buf)
		if n <= 0 || i > 0 && gap == 0 || prev+gap > math.MaxUint32 {
			return false
		}
		buf = buf[n:]
		prev += gap
		if !f(uint32(prev)) {
			return true
		}
	}
	return true
}

// check reports how a list read from a state is damaged: not ascending,
// cut short, or naming a user past the table's n.
func (l userList) check(n int) error {
	bad := -1
	if !l.each(func(u uint32) bool {
		if int(u) >= n {
			bad = int(u)
			return false
		}
		return true
	}) {
		return fmt.Errorf("damaged user list")
	}
	if bad >= 0 {
		return fmt.Errorf("names user %d of %d", bad, n)
	}
	return nil
}

// groupTuples returns each desired group's tuples in scope: views into
// d.Members. Desired groups with no tuple are there with none.
func groupTuples(d *Desired, scope Scope) map[string]memberGroup {
	out := d.Members.groups()
	for obj, g := range out {
		out[obj] = g.within(scope)
	}
	for _, g := range d.Groups {
		if _, ok := out[g.Object]; !ok {
			out[g.Object] = memberGroup{}
		}
	}
	return out
}

// sameUsers reports whether a group's stored users are the users of
// its desired tuples (both in the users' string order).
func (s *targetState) sameUsers(obj string, g memberGroup) bool {
	i, same := 0, true
	s.Groups[obj].each(func(u uint32) bool {
		same = i < g.Len() && s.Users[u] == g.User(i)
		i++
		return same
	})
	return same && i == g.Len()
}

// holds reports whether s stores exactly groups, each with its users.
func (s *targetState) holds(groups map[string]memberGroup) bool {
	if len(s.Groups) != len(groups) {
		return false
	}
	for obj, g := range groups {
		if _, ok := s.Groups[obj]; !ok || !s.sameUsers(obj, g) {
			return false
		}
	}
	return true
}

// users returns a stored group's users.
func (s *targetState) users(obj string) []string {
	var out []string
	s.Groups[obj].each(func(u uint32) bool {
		out = append(out, s.Users[u])
		return true
	})
	return out
}

// keepGroups stores the groups' tuples in s.
func (s *targetState) keepGroups(groups map[string]memberGroup) {
	index := map[string]uint32{}
	for _, g := range groups {
		for i := range g.Len() {
			if _, ok := index[g.User(i)]; !ok {
				index[g.User(i)] = 0
			}
		}
	}
	s.Users = make([]string, 0, len(index))
	for u := range index {
		s.Users = append(s.Users, u)
	}
	slices.Sort(s.Users)
	for i, u := range s.Users {
		index[u] = uint32(i)
	}
	s.Groups = make(map[string]userList, len(groups))
	for obj, g := range groups {
		ids := make([]uint32, g.Len())
		for i := range ids {
			ids[i] = index[g.User(i)]
		}
		s.Groups[obj] = newUserList(ids)
	}
}
