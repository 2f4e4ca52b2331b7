package casemu

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
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

// ParseJitter reads a one-way arrival delay as "40ms±30ms" (or "40ms+-30ms"),
// a mean and a standard deviation, or "40ms" for a fixed delay, for
// Faults.JitterMean and JitterStdDev.
func ParseJitter(s string) (mean, sd time.Duration, err error) {
	a, b, spread := strings.Cut(s, "±")
	if !spread {
		a, b, spread = strings.Cut(s, "+-")
	}
	if mean, err = time.ParseDuration(strings.TrimSpace(a)); err != nil || mean < 0 {
		return 0, 0, fmt.Errorf("arrival jitter %q: want MEAN±SD, such as 40ms±30ms", s)
	}
	if !spread {
		return mean, 0, nil
	}
	if sd, err = time.ParseDuration(strings.TrimSpace(b)); err != nil || sd < 0 {
		return 0, 0, fmt.Errorf("arrival jitter %q: want MEAN±SD with SD >= 0, such as 40ms±30ms", s)
	}
	return mean, sd, nil
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

// ParseThrottleShapes reads a comma-separated list of spurious throttle
// shapes (see ThrottleShapes), or "all", for Faults.ThrottleShapes.
func ParseThrottleShapes(s string) ([]string, error) {
	if strings.TrimSpace(s) == "all" {
		return slices.Clone(ThrottleShapes), nil
	}
	var shapes []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(ThrottleShapes, f) {
			return nil, fmt.Errorf("throttle shape %q: want all or some of %s", f, strings.Join(ThrottleShapes, ","))
		}
		shapes = append(shapes, f)
	}
	return shapes, nil
}

var codeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._-]{0,99}$`)

// ParseAnswer reads a run-wide answer as "CODE" or "CODE:STATUS", for
// Faults.AnswerCode and AnswerStatus. Without a status, the gateway's codes
// (InvalidApi.NotFound 404, UnsupportedHTTPMethod 403, ...) get their own and
// any other code gets 400.
func ParseAnswer(s string) (code string, status int, err error) {
	code, st, hasStatus := strings.Cut(s, ":")
	if !codeRE.MatchString(code) {
		return "", 0, fmt.Errorf("answer %q: want an error code such as InvalidApi.NotFound, optionally :STATUS", s)
	}
	if !hasStatus {
		return code, codeStatus(code), nil
	}
	status, err = strconv.Atoi(st)
	if err != nil || status < 400 || status > 599 {
		return "", 0, fmt.Errorf("answer %q: the status must be an HTTP error status from 400 to 599", s)
	}
	return code, status, nil
}

// FaultKeys names the keys Faults.Set takes, with the form of each value.
const FaultKeys = `latency=50ms|20ms-80ms  jitter=40ms±30ms  answer=CODE[:STATUS]
throttle=RATE  throttle-shapes=all|SHAPE,...  503=RATE  500=RATE  numeric-json=RATE  redirect=RATE  200-error=RATE
drop=RATE  hang=RATE  hangfor=30s  html=RATE  endless=RATE  no-requestid=RATE  fail=ID,...`

// Set sets one fault by key (see FaultKeys), for command lines and test
// scripts that take faults as key=value pairs. A RATE is a fraction from 0
// to 1; an empty value clears the fault.
func (f *Faults) Set(key, value string) error {
	rates := map[string]*float64{
		"throttle": &f.ThrottleRate, "503": &f.Error503Rate, "500": &f.Error500Rate,
		"numeric-json": &f.NumericJSONRate, "redirect": &f.RedirectRate, "200-error": &f.OKErrorRate,
		"drop": &f.DropRate, "hang": &f.HangRate, "html": &f.HTMLRate, "endless": &f.EndlessRate,
		"no-requestid": &f.NoRequestIDRate,
	}
	if p, ok := rates[key]; ok {
		if value == "" {
			*p = 0
			return nil
		}
		x, err := strconv.ParseFloat(value, 64)
		if err != nil || x < 0 || x > 1 {
			return fmt.Errorf("fault %s=%q: want a fraction from 0 to 1", key, value)
		}
		*p = x
		return nil
	}
	var err error
	switch key {
	case "latency":
		f.LatencyMin, f.LatencyMax = 0, 0
		if value != "" {
			f.LatencyMin, f.LatencyMax, err = ParseLatency(value)
		}
	case "jitter":
		f.JitterMean, f.JitterStdDev = 0, 0
		if value != "" {
			f.JitterMean, f.JitterStdDev, err = ParseJitter(value)
		}
	case "answer":
		f.AnswerCode, f.AnswerStatus = "", 0
		if value != "" {
			f.AnswerCode, f.AnswerStatus, err = ParseAnswer(value)
		}
	case "throttle-shapes":
		f.ThrottleShapes = nil
		if value != "" {
			f.ThrottleShapes, err = ParseThrottleShapes(value)
		}
	case "hangfor":
		f.HangFor = 0
		if value != "" {
			if f.HangFor, err = time.ParseDuration(value); err == nil && f.HangFor <= 0 {
				err = fmt.Errorf("%q: want a positive duration", value)
			}
		}
	case "fail":
		f.FailIDs = nil
		if value != "" {
			f.FailIDs, err = ParseIDs(value)
		}
	default:
		return fmt.Errorf("unknown fault %q; the keys are:\n%s", key, FaultKeys)
	}
	if err != nil {
		// Every parser's error quotes the value: quoting it again would
		// only repeat it (and print any control character raw).
		return fmt.Errorf("fault %s: %w", key, err)
	}
	return nil
}

// LoadInstances reads the instances file at path (see ParseInstances).
func LoadInstances(path string) (map[int64]Instance, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, err := ParseInstances(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// ParseInstances reads the known instances, for Config.Instances, from CSV
// with a header: an Id column and an optional Quota column (empty or 0: no
// quota), in any order and any case, like a plan.
func ParseInstances(r io.Reader) (map[int64]Instance, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("instances: empty file; want a header such as Id,Quota")
		}
		return nil, fmt.Errorf("instances: %w", err)
	}
	idCol, quotaCol := -1, -1
	for i, h := range header {
		switch strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))) {
		case "id":
			idCol = i
		case "quota":
			quotaCol = i
		}
	}
	if idCol < 0 {
		return nil, fmt.Errorf("instances: the header has no Id column (found: %s)", strings.Join(header, ","))
	}
	m := map[int64]Instance{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("instances: %w", err)
		}
		line, _ := cr.FieldPos(0)
		cell := func(col int) string {
			if col < 0 || col >= len(rec) {
				return ""
			}
			return strings.TrimSpace(rec[col])
		}
		id, err := strconv.ParseInt(cell(idCol), 10, 64)
		if err != nil || id <= 0 {
			return nil, fmt.Errorf("instances line %d: Id %q is not a positive integer", line, cell(idCol))
		}
		if _, dup := m[id]; dup {
			return nil, fmt.Errorf("instances line %d: Id %d is listed twice", line, id)
		}
		var inst Instance
		if q := cell(quotaCol); q != "" {
			if inst.Quota, err = strconv.ParseInt(q, 10, 64); err != nil || inst.Quota < 0 {
				return nil, fmt.Errorf("instances line %d: Quota %q is not a count", line, q)
			}
		}
		m[id] = inst
	}
	if len(m) == 0 {
		return nil, errors.New("instances: no instance listed")
	}
	return m, nil
}
