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
	// Decoded as it is inflated: the inflated JSON of a large tenant is
	// tens of megabytes that need not sit in memory.
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
		for _, u := range users {
			if int(u) >= len(s.Users) {
				return nil, fmt.Errorf("damaged: group %s names user %d of %d", obj, u, len(s.Users))
			}
		}
	}
	return &s, nil
}

// userList is a group's users as ascending indexes into the user table,
// kept as the base64 of their uvarint gaps: one or two bytes a tuple, and
// quick to write and read, where JSON numbers take six and a parse each.
type userList []uint32

func (l userList) MarshalJSON() ([]byte, error) {
	buf := make([]byte, 0, len(l)*2)
	prev := uint32(0)
	for i, u := range l {
		gap := u - prev
		if i > 0 && u <= prev {
			return nil, fmt.Errorf("user list not ascending at %d", i)
		}
		buf = binary.AppendUvarint(buf, uint64(gap))
		prev = u
	}
	return json.Marshal(buf)
}

func (l *userList) UnmarshalJSON(data []byte) error {
	var buf []byte
	if err := json.Unmarshal(data, &buf); err != nil {
		return err
	}
	out := make(userList, 0, len(buf))
	var prev uint64
	for len(buf) > 0 {
		gap, n := binary.Uvarint(buf)
		if n <= 0 {
			return fmt.Errorf("damaged user list")
		}
		buf = buf[n:]
		if len(out) > 0 && gap == 0 {
			return fmt.Errorf("user list not ascending")
		}
		prev += gap
		if prev > math.MaxUint32 {
			return fmt.Errorf("user index out of range")
		}
		out = append(out, uint32(prev))
	}
	*l = out
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
	stored := s.Groups[obj]
	if len(stored) != g.Len() {
		return false
	}
	for i, u := range stored {
		if s.Users[u] != g.User(i) {
			return false
		}
	}
	return true
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

// tuples returns a stored group's tuples with relation.
func (s *targetState) tuples(obj, relation string) []Tuple {
	stored := s.Groups[obj]
	out := make([]Tuple, len(stored))
	for i, u := range stored {
		out[i] = Tuple{User: s.Users[u], Relation: relation, Object: obj}
	}
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
		s.Groups[obj] = ids
	}
}
