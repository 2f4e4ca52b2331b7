// Package job runs one certalloc job: it decides which rows of a plan to
// send (given the last report and a baseline), sends them through
// pkg/apply, and writes the run's record: the report, the failures file,
// the JSON summary and the Prometheus metrics.
//
// It is the whole of a run without the command line: pkg/cli parses flags
// into a Config, calls Run or Plan, prints what comes back and maps it to an
// exit code. Tests call Run directly.
//
// Data flows one way: job reads plans (pkg/plan) and reports
// (pkg/report), runs rows (pkg/apply) through clients (pkg/cas), and
// writes reports (pkg/report). None of those packages imports job.
package job
