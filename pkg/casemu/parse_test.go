package casemu

import (
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
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

func TestParseJitter(t *testing.T) {
	tests := []struct {
		in       string
		mean, sd time.Duration
		err      bool
	}{
		{"40ms±30ms", 40 * time.Millisecond, 30 * time.Millisecond, false},
		{"40ms+-30ms", 40 * time.Millisecond, 30 * time.Millisecond, false},
		{" 1s ± 250ms ", time.Second, 250 * time.Millisecond, false},
		{"40ms", 40 * time.Millisecond, 0, false},
		{"0s±0s", 0, 0, false},
		{"40ms±", 0, 0, true},
		{"±30ms", 0, 0, true},
		{"-5ms±1ms", 0, 0, true},
		{"40ms±-1ms", 0, 0, true},
		{"40±30", 0, 0, true},
	}
	for _, tt := range tests {
		mean, sd, err := ParseJitter(tt.in)
		if mean != tt.mean || sd != tt.sd || (err != nil) != tt.err {
			t.Errorf("ParseJitter(%q) = %v, %v, %v; want %v, %v, err %v", tt.in, mean, sd, err, tt.mean, tt.sd, tt.err)
		}
	}
}

func TestParseAnswer(t *testing.T) {
	tests := []struct {
		in     string
		code   string
		status int
		err    bool
	}{
		{"InvalidApi.NotFound", "InvalidApi.NotFound", 404, false},
		{"UnsupportedHTTPMethod", "UnsupportedHTTPMethod", 403, false},
		{"Some.New_Code-2", "Some.New_Code-2", 400, false},
		{"Some.Code:503", "Some.Code", 503, false},
		{"Some.Code:200", "", 0, true},
		{"Some.Code:abc", "", 0, true},
		{"", "", 0, true},
		{"bad code", "", 0, true},
	}
	for _, tt := range tests {
		code, status, err := ParseAnswer(tt.in)
		if code != tt.code || status != tt.status || (err != nil) != tt.err {
			t.Errorf("ParseAnswer(%q) = %q, %d, %v; want %q, %d, err %v", tt.in, code, status, err, tt.code, tt.status, tt.err)
		}
	}
}

func TestParseThrottleShapes(t *testing.T) {
	if got, err := ParseThrottleShapes("429-bare, Rejected.Throttling"); err != nil || len(got) != 2 || got[0] != Shape429Bare || got[1] != ShapeRejected {
		t.Errorf("ParseThrottleShapes = %v, %v", got, err)
	}
	if got, err := ParseThrottleShapes("all"); err != nil || len(got) != len(ThrottleShapes) {
		t.Errorf("ParseThrottleShapes(all) = %v, %v", got, err)
	}
	if _, err := ParseThrottleShapes("Throttling,Throttle"); err == nil || !strings.Contains(err.Error(), "429-bare") {
		t.Errorf("an unknown shape: %v; want an error listing the shapes", err)
	}
}

func TestParseInstances(t *testing.T) {
	tests := []struct {
		name, in string
		want     map[int64]Instance
		err      string
	}{
		{"plain", "Id,Quota\n1,10\n2,0\n3,\n", map[int64]Instance{1: {10}, 2: {0}, 3: {0}}, ""},
		{"any order and case, BOM", "\ufeffQUOTA, id\n5,7\n", map[int64]Instance{7: {5}}, ""},
		{"no quota column", "Id\n1\n2\n", map[int64]Instance{1: {}, 2: {}}, ""},
		{"empty", "", nil, "empty file"},
		{"no Id column", "Instance,Quota\n1,2\n", nil, "no Id column"},
		{"no rows", "Id,Quota\n", nil, "no instance"},
		{"bad Id", "Id,Quota\n1,2\nx,3\n", nil, "line 3"},
		{"negative quota", "Id,Quota\n1,-2\n", nil, "Quota"},
		{"duplicate", "Id\n4\n4\n", nil, "twice"},
	}
	for _, tt := range tests {
		got, err := ParseInstances(strings.NewReader(tt.in))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: err %v; want one mentioning %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || !maps.Equal(got, tt.want) {
			t.Errorf("%s: %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}

func TestLoadInstances(t *testing.T) {
	path := filepath.Join(t.TempDir(), "instances.csv")
	os.WriteFile(path, []byte("Id,Quota\n33285,50\n"), 0o644)
	if got, err := LoadInstances(path); err != nil || got[33285].Quota != 50 {
		t.Errorf("LoadInstances = %v, %v", got, err)
	}
	os.WriteFile(path, []byte("Id\nnope\n"), 0o644)
	if _, err := LoadInstances(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("a bad file: %v; want an error naming it", err)
	}
}

func TestFaultsSet(t *testing.T) {
	var f Faults
	for _, kv := range []string{"latency=20ms-80ms", "jitter=40ms±30ms", "throttle=0.12", "throttle-shapes=429,429-bare",
		"503=0.1", "500=0.05", "numeric-json=0.01", "redirect=0.02", "200-error=0.03", "drop=0.04", "hang=0.05",
		"hangfor=2s", "html=0.06", "endless=0.07", "no-requestid=0.08", "fail=1,2", "answer=InvalidApi.NotFound"} {
		k, v, _ := strings.Cut(kv, "=")
		if err := f.Set(k, v); err != nil {
			t.Fatalf("Set(%s): %v", kv, err)
		}
	}
	want := Faults{LatencyMin: 20 * time.Millisecond, LatencyMax: 80 * time.Millisecond,
		JitterMean: 40 * time.Millisecond, JitterStdDev: 30 * time.Millisecond,
		AnswerCode: "InvalidApi.NotFound", AnswerStatus: 404,
		ThrottleRate: 0.12, ThrottleShapes: []string{Shape429, Shape429Bare}, Error503Rate: 0.1, Error500Rate: 0.05,
		NumericJSONRate: 0.01, RedirectRate: 0.02, OKErrorRate: 0.03, DropRate: 0.04, HangRate: 0.05, HangFor: 2 * time.Second,
		HTMLRate: 0.06, EndlessRate: 0.07, NoRequestIDRate: 0.08, FailIDs: map[int64]bool{1: true, 2: true}}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("Set gave\n%+v\nwant\n%+v", f, want)
	}
	if err := f.Set("throttle", ""); err != nil || f.ThrottleRate != 0 {
		t.Errorf("clearing a rate: %v, %v", f.ThrottleRate, err)
	}
	for _, kv := range [][2]string{{"throttle", "1.5"}, {"drop", "x"}, {"latency", "fast"}, {"hangfor", "-1s"}, {"nope", "1"}, {"answer", "a b"}} {
		if err := f.Set(kv[0], kv[1]); err == nil {
			t.Errorf("Set(%s=%s) accepted", kv[0], kv[1])
		}
	}
}

// A bad value, control characters and all, is quoted at most once, and
// the error stays on one line.
func TestFaultsSetErrorsOneLine(t *testing.T) {
	for _, kv := range [][2]string{
		{"answer", "x\ny"}, {"latency", "1s\r\n"}, {"jitter", "\x1b[2J"}, {"drop", "2\n"},
		{"hangfor", "-1s"}, {"hangfor", "x\ny"}, {"fail", "1;\n2"}, {"throttle-shapes", "\n"},
	} {
		var f Faults
		err := f.Set(kv[0], kv[1])
		if err == nil {
			t.Errorf("Set(%q, %q) accepted it", kv[0], kv[1])
			continue
		}
		msg := err.Error()
		if strings.ContainsAny(msg, "\n\r\x1b") || strings.Count(msg, strconv.Quote(kv[1])) > 1 {
			t.Errorf("Set(%q, %q) = %q; want one line quoting the value at most once", kv[0], kv[1], msg)
		}
	}
}
