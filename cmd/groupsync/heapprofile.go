package main

import (
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"time"
)

// watchHeapPeak writes a heap profile to path each time the live heap
// grows a tenth past its highest so far, so that at exit the file shows
// what the heap held near its peak (GROUPSYNC_HEAPPROFILE, for
// benchmarks). The profile is as of the last GC, which is what "live"
// means anyway.
func watchHeapPeak(path string) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak uint64
	for range time.Tick(50 * time.Millisecond) {
		metrics.Read(sample)
		if v := sample[0].Value.Uint64(); v > peak+peak/10 {
			peak = v
			if f, err := os.Create(path); err == nil {
				pprof.WriteHeapProfile(f)
				f.Close()
			}
		}
	}
}
