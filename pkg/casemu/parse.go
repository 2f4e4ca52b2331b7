package casemu

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseLatency reads a processing time as "50ms" (fixed) or "20ms-80ms"
// (uniform range), for Faults.LatencyMin and LatencyMax.
func ParseLatency(s string) (lo, hi time.Duration, err error) {
	a, b, isRange := strings.Cut(s, "-")
	if lo, err = time.ParseDuration(a); err != nil || lo < 0 {
		return 0, 0, fmt.Errorf("latency %q: want a duration or MIN-MAX", s)
	}
	if !isRange {
		return lo, lo, nil
	}
	if hi, err = time.ParseDuration(b); err != nil || hi < lo {
		return 0, 0, fmt.Errorf("latency %q: want MIN-MAX with MIN <= MAX", s)
	}
	return lo, hi, nil
}

// ParseIDs reads a comma-separated list of Ids, for Faults.FailIDs.
func ParseIDs(s string) (map[int64]bool, error) {
	ids := map[int64]bool{}
	for _, f := range strings.Split(s, ",") {
		id, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not an Id", f)
		}
		ids[id] = true
	}
	return ids, nil
}
