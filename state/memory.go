package state

import (
	"context"
	"slices"
	"sync"
)

// Memory keeps the state in the process: for the daemon, whose runs share
// it; a restart begins with a full read.
type Memory struct {
	name string
	mu   sync.Mutex
	data []byte
}

// NewMemory returns an empty memory store of its own.
func NewMemory() *Memory { return &Memory{name: "memory"} }

var (
	sharedMu sync.Mutex
	shared   = map[string]*Memory{}
)

// Shared returns the process-wide memory store of that name, so that every
// run of a daemon (which builds its source anew from the config each time)
// finds the state the previous run saved.
func Shared(name string) *Memory {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	m := shared[name]
	if m == nil {
		m = &Memory{name: "memory " + name}
		shared[name] = m
	}
	return m
}

func (m *Memory) Load(context.Context) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.data), nil
}

func (m *Memory) Save(_ context.Context, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.data = slices.Clone(data)
	return nil
}

func (m *Memory) String() string { return m.name }
