package main

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func TestMemoryLimitFromCgroup(t *testing.T) {
	dir := t.TempDir()
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	cases := []struct {
		files []string
		want  int64
	}{
		{[]string{write("v2", "536870912\n")}, share(536870912)},
		{[]string{write("max", "max\n")}, 0},
		{[]string{filepath.Join(dir, "absent"), write("v1", "268435456")}, share(268435456)},
		{[]string{write("v1huge", "9223372036854771712")}, 0},
		{nil, 0},
	}
	for _, c := range cases {
		if got := setMemoryLimitFromCgroup(c.files); got != c.want {
			t.Errorf("%v: limit %d, want %d", c.files, got, c.want)
		}
	}
	t.Setenv("GOMEMLIMIT", "100MiB")
	if got := setMemoryLimitFromCgroup([]string{filepath.Join(dir, "v2")}); got != 0 {
		t.Errorf("GOMEMLIMIT set, yet the limit was replaced by %d", got)
	}
}

func share(limit int64) int64 { return int64(float64(limit) * memoryLimitShare) }

func TestGCPercentDefault(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "")
	if got := setGCPercentDefault(); got != defaultGCPercent || debug.SetGCPercent(100) != defaultGCPercent {
		t.Fatalf("without GOGC: %d, want %d", got, defaultGCPercent)
	}
	t.Setenv("GOGC", "200")
	debug.SetGCPercent(200) // what the runtime read from GOGC at start
	if got := setGCPercentDefault(); got != 200 || debug.SetGCPercent(100) != 200 {
		t.Fatalf("with GOGC=200: %d, want the operator's 200", got)
	}
}
