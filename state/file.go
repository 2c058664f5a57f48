package state

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// File keeps the state in one file, replaced atomically (write a
// temporary file next to it, sync, rename), readable by its owner only.
type File struct {
	path  string
	field string // where path is in the config, for messages
}

// NewFile returns a store at path; the directory must exist.
func NewFile(path string) *File { return &File{path: path, field: "source.msgraph.delta.state.path"} }

func (f *File) Load(context.Context) ([]byte, error) {
	data, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state file (%s): %w", f.field, err)
	}
	return data, nil
}

func (f *File) Save(_ context.Context, data []byte) (err error) {
	dir := filepath.Dir(f.path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(f.path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write state file (%s): %w", f.field, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("write state file %s: %w", f.path, err)
	}
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write state file %s: %w", f.path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("write state file %s: %w", f.path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("write state file %s: %w", f.path, err)
	}
	if err = os.Rename(tmp.Name(), f.path); err != nil {
		return fmt.Errorf("write state file %s: %w", f.path, err)
	}
	// Make the rename itself durable where the platform allows it.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func (f *File) String() string { return "file " + f.path }
