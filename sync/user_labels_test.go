package sync

import "testing"

func TestUserLabels(t *testing.T) {
	l := newUserLabels(
		[]string{"user:b", "", "user:a", "user:c", "user:d"},
		[]string{"bob@x", "nobody@x", "", "carol@x", "dan@x"})
	if l.Len() != 3 {
		t.Fatalf("Len = %d, want 3 (no label for user:a, no user for the second)", l.Len())
	}
	for user, want := range map[string]string{"user:b": "bob@x", "user:c": "carol@x", "user:d": "dan@x"} {
		if got, ok := l.Label(user); !ok || got != want {
			t.Errorf("Label(%q) = %q, %v; want %q", user, got, ok, want)
		}
	}
	for _, user := range []string{"user:a", "", "user:0", "user:e"} {
		if got, ok := l.Label(user); ok {
			t.Errorf("Label(%q) = %q, want none", user, got)
		}
	}
	if got, ok := newUserLabels([]string{"user:a"}, nil).Label("user:a"); ok {
		t.Errorf("no labels at all: Label = %q", got)
	}
}
