package job

import (
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The metrics file is written by hand (eight gauges: client_golang would
// bring a registry and protobuf for nothing), so it is read back here with
// the parser node_exporter's textfile collector itself uses.
func TestMetricsParseAsTheCollectorReadsThem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.prom")
	end := time.Unix(1795000000, 0)
	failed := &Summary{Succeeded: 3, Failed: 1, Requests: 5, Throttled: 1, ElapsedSec: 1.5, ExitCode: ExitPartial, end: end}
	ok := &Summary{Succeeded: 4, Skipped: 1, Unchanged: 2, Requests: 4, ElapsedSec: 0.5, ExitCode: ExitOK, end: end.Add(time.Hour)}
	tests := []struct {
		name        string
		s           *Summary
		want        map[string]float64
		lastSuccess float64 // 0: absent
	}{
		{"a failed first run sets no last-success time", failed, map[string]float64{
			"certalloc_requests": 5, "certalloc_throttled_requests": 1, "certalloc_last_run_exit_code": 3,
			"certalloc_last_run_duration_seconds": 1.5, "certalloc_last_run_timestamp_seconds": 1795000000}, 0},
		{"a run with every row succeeded sets it", ok, map[string]float64{"certalloc_last_run_exit_code": 0}, 1795003600},
		{"a failed run after it keeps it", failed, map[string]float64{"certalloc_last_run_exit_code": 3}, 1795003600},
	}
	for _, tt := range tests {
		if err := tt.s.writeMetrics(path, false); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: the collector would reject the file: %v", tt.name, err)
		}
		for name, want := range tt.want {
			fam := fams[name]
			if fam == nil || fam.GetType().String() != "GAUGE" || fam.Metric[0].GetGauge().GetValue() != want {
				t.Errorf("%s: %s = %v; want a gauge of %v", tt.name, name, fam, want)
			}
		}
		ls := fams["certalloc_last_success_timestamp_seconds"]
		switch {
		case tt.lastSuccess == 0 && ls != nil:
			t.Errorf("%s: last success = %v; want none", tt.name, ls)
		case tt.lastSuccess != 0 && (ls == nil || ls.Metric[0].GetGauge().GetValue() != tt.lastSuccess):
			t.Errorf("%s: last success = %v; want %v", tt.name, ls, tt.lastSuccess)
		}
		rows := fams["certalloc_rows"]
		if rows == nil || len(rows.Metric) != 5 {
			t.Fatalf("%s: certalloc_rows = %v; want one series per status", tt.name, rows)
		}
		got := map[string]float64{}
		for _, m := range rows.Metric {
			got[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
		want := map[string]float64{"succeeded": float64(tt.s.Succeeded), "failed": float64(tt.s.Failed), "not_attempted": 0,
			"skipped": float64(tt.s.Skipped), "unchanged": float64(tt.s.Unchanged)}
		if !maps.Equal(got, want) {
			t.Errorf("%s: certalloc_rows by status = %v; want %v", tt.name, got, want)
		}
	}
}
