// Package file is a source that reads a tenant from a YAML or JSON file:
// for demos, tests and GitOps, where the groups live in a repository.
//
// The format (JSON is the same with braces):
//
//	users:
//	  - id: 6e7b...            # stable id, required, unique
//	    upn: alice@example.com
//	    mail: alice@example.com
//	    disabled: false
//	    guest: false
//	    attributes: {employeeId: "1042"}
//	groups:
//	  - id: 0b1c...            # stable id, required, unique
//	    name: Engineering      # display name, required
//	    members: [6e7b...]     # user ids
//	    subgroups: [9f2a...]   # group ids
package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"

	gsync "github.com/groupsync/groupsync/sync"
)

// Tenant is the file's document.
type Tenant struct {
	Users  []User  `yaml:"users" json:"users"`
	Groups []Group `yaml:"groups" json:"groups"`
}

// User is one user in the file.
type User struct {
	ID         string            `yaml:"id" json:"id"`
	UPN        string            `yaml:"upn,omitempty" json:"upn,omitempty"`
	Mail       string            `yaml:"mail,omitempty" json:"mail,omitempty"`
	Disabled   bool              `yaml:"disabled,omitempty" json:"disabled,omitempty"`
	Guest      bool              `yaml:"guest,omitempty" json:"guest,omitempty"`
	Attributes map[string]string `yaml:"attributes,omitempty" json:"attributes,omitempty"`
}

// Group is one group in the file.
type Group struct {
	ID        string   `yaml:"id" json:"id"`
	Name      string   `yaml:"name" json:"name"`
	Members   []string `yaml:"members,omitempty" json:"members,omitempty"`
	Subgroups []string `yaml:"subgroups,omitempty" json:"subgroups,omitempty"`
}

// Source reads the file anew on every Snapshot, so a daemon sees edits.
type Source struct {
	Path string
}

// New returns a source for the file at path.
func New(path string) *Source { return &Source{Path: path} }

var _ gsync.ReadDescriber = (*Source)(nil)

// LastRead says how Snapshot reads: in full, always, and without a single
// request (it reads a local file).
func (s *Source) LastRead() gsync.SourceRead { return gsync.SourceRead{Mode: "full"} }

// Snapshot reads and checks the file. Any problem is an error naming the
// entry: a hand-edited file with a typo must not silently drop members.
func (s *Source) Snapshot(ctx context.Context) (*gsync.Snapshot, error) {
	data, err := os.ReadFile(s.Path)
	if err != nil {
		return nil, fmt.Errorf("file source: %w", err)
	}
	t, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("file source %s: %w", s.Path, err)
	}
	return t.Snapshot(), nil
}

// Parse decodes and validates a tenant document (YAML or JSON).
func Parse(data []byte) (*Tenant, error) {
	var t Tenant
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&t); err != nil && !errors.Is(err, io.EOF) {
		msg := strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n")
		return nil, errors.New(strings.Join(strings.Fields(msg), " "))
	}
	return &t, t.Validate()
}

// Validate checks ids are present and unique and every member exists.
func (t *Tenant) Validate() error {
	var errs []error
	users := make(map[string]bool, len(t.Users))
	for i, u := range t.Users {
		switch {
		case u.ID == "":
			errs = append(errs, fmt.Errorf("users[%d] (upn %q): id is required", i, u.UPN))
		case users[u.ID]:
			errs = append(errs, fmt.Errorf("users[%d]: id %q is used twice", i, u.ID))
		}
		users[u.ID] = true
	}
	groups := make(map[string]bool, len(t.Groups))
	for i, g := range t.Groups {
		switch {
		case g.ID == "":
			errs = append(errs, fmt.Errorf("groups[%d] (name %q): id is required", i, g.Name))
		case groups[g.ID]:
			errs = append(errs, fmt.Errorf("groups[%d]: id %q is used twice", i, g.ID))
		}
		if g.Name == "" {
			errs = append(errs, fmt.Errorf("groups[%d] (id %q): name is required", i, g.ID))
		}
		groups[g.ID] = true
	}
	for i, g := range t.Groups {
		for j, m := range g.Members {
			if !users[m] {
				errs = append(errs, fmt.Errorf("groups[%d] (%q): members[%d] %q is not the id of a user under users", i, g.Name, j, m))
			}
		}
		for j, m := range g.Subgroups {
			if !groups[m] {
				errs = append(errs, fmt.Errorf("groups[%d] (%q): subgroups[%d] %q is not the id of a group under groups", i, g.Name, j, m))
			}
		}
	}
	return errors.Join(errs...)
}

// Snapshot converts the document to the engine's snapshot.
func (t *Tenant) Snapshot() *gsync.Snapshot {
	s := &gsync.Snapshot{
		Users:  make([]gsync.User, len(t.Users)),
		Groups: make([]gsync.Group, len(t.Groups)),
	}
	for i, u := range t.Users {
		s.Users[i] = gsync.User{ID: u.ID, UPN: u.UPN, Mail: u.Mail, Attributes: u.Attributes, Disabled: u.Disabled, Guest: u.Guest}
	}
	for i, g := range t.Groups {
		s.Groups[i] = gsync.Group{ID: g.ID, Name: g.Name, Users: g.Members, Groups: g.Subgroups}
	}
	return s
}

// Check reads and validates the file.
func (s *Source) Check(ctx context.Context) []gsync.CheckResult {
	r := gsync.CheckResult{What: "file source " + s.Path}
	snap, err := s.Snapshot(ctx)
	if err != nil {
		r.Err = err
	} else {
		r.Note = fmt.Sprintf("%d groups, %d users", len(snap.Groups), len(snap.Users))
	}
	return []gsync.CheckResult{r}
}

var _ gsync.SliceSource = (*Source)(nil)

// SnapshotSlice reads the file and cuts the slice out of it (see
// gsync.SliceSource): the file is small and local, so reading it whole is
// the cheapest way to read part of it.
func (s *Source) SnapshotSlice(ctx context.Context, sl gsync.Slice) (*gsync.Snapshot, error) {
	snap, err := s.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	return gsync.SliceSnapshot(snap, sl), nil
}
