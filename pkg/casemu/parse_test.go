package casemu

import (
	"testing"
	"time"
)

func TestParseLatency(t *testing.T) {
	tests := []struct {
		in     string
		lo, hi time.Duration
		err    bool
	}{
		{"50ms", 50 * time.Millisecond, 50 * time.Millisecond, false},
		{"20ms-80ms", 20 * time.Millisecond, 80 * time.Millisecond, false},
		{"80ms-20ms", 0, 0, true},
		{"fast", 0, 0, true},
		{"1s-", 0, 0, true},
	}
	for _, tt := range tests {
		lo, hi, err := ParseLatency(tt.in)
		if lo != tt.lo || hi != tt.hi || (err != nil) != tt.err {
			t.Errorf("ParseLatency(%q) = %v, %v, %v; want %v, %v, err %v", tt.in, lo, hi, err, tt.lo, tt.hi, tt.err)
		}
	}
}

func TestParseIDs(t *testing.T) {
	ids, err := ParseIDs("1, 2,33285")
	if err != nil || len(ids) != 3 || !ids[33285] {
		t.Errorf("ParseIDs = %v, %v", ids, err)
	}
	if _, err := ParseIDs("1,x"); err == nil {
		t.Error("ParseIDs(1,x) accepted a non-Id")
	}
}
