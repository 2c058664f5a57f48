package sync

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"time"
)

// targetState is what an incremental run knows of the target between
// runs, as of its last successful apply: each managed group's tuples as a
// digest (they equalled the desired ones then), the objects this instance
// owns, and where in the target's changelogs that knowledge ends.
type targetState struct {
	Version     int    `json:"version"`
	Fingerprint string `json:"fingerprint"`
	// Groups maps each managed group whose tuples are known to the digest
	// of those tuples. A group absent here is read.
	Groups map[string]uint64 `json:"groups"`
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
	targetStateVersion = 1
	registryPosition   = "registry"
)

// encodeTargetState is gzip-compressed JSON: small enough (tens of bytes
// per group) that a structured codec would not pay for itself.
func encodeTargetState(s *targetState) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(s); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
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
	raw, err := io.ReadAll(io.LimitReader(zr, 1<<30))
	if err != nil {
		return nil, fmt.Errorf("damaged: %w", err)
	}
	var s targetState
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("damaged: %w", err)
	}
	if s.Version != targetStateVersion {
		return nil, fmt.Errorf("version %d, this groupsync reads %d", s.Version, targetStateVersion)
	}
	if s.Groups == nil {
		s.Groups = map[string]uint64{}
	}
	return &s, nil
}

// groupDigests returns, for each desired group, a digest of its desired
// tuples (tuples are sorted by object, so each group's are together).
func groupDigests(d *Desired, scope Scope) map[string]uint64 {
	out := make(map[string]uint64, len(d.Groups))
	h := fnv.New64a()
	var lenBuf [8]byte
	flush := func(obj string) {
		if obj != "" {
			out[obj] = h.Sum64()
		}
		h.Reset()
	}
	cur := ""
	for _, t := range d.Tuples {
		if !scope.Contains(t) {
			continue
		}
		if t.Object != cur {
			flush(cur)
			cur = t.Object
		}
		for _, s := range [...]string{t.User, t.Relation} {
			binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(s)))
			h.Write(lenBuf[:])
			h.Write([]byte(s))
		}
	}
	flush(cur)
	empty := fnv.New64a().Sum64()
	for _, g := range d.Groups {
		if _, ok := out[g.Object]; !ok {
			out[g.Object] = empty
		}
	}
	return out
}
