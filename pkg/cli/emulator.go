package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/certalloc/certalloc/pkg/casemu"
	"github.com/certalloc/certalloc/pkg/netpath"
)

// The emulator's default key, for tests and scripts that name it.
const (
	EmulatorKeyID  = casemu.DemoKeyID
	EmulatorSecret = casemu.DemoSecret
)

const emulatorLong = `Runs an emulator of the cas AssignCertificateCount endpoint on loopback. It
behaves like the service: it checks signatures, nonces and timestamps, limits
the account to --rate-limit requests in any sliding second (Throttling.User
with x-acs-retry-after, or 429), answers NotFound for Ids missing from
--instances, keeps each Id's total, and can inject the faults of a real
network and of broken proxies. It prints the endpoint and the credentials to
use. Stop it with Ctrl-C; it prints what it saw.`

type emulatorOptions struct {
	listen, addrFile, keyID, secret, token, instances, region string
	pathJitter, pathListen, pathAddrFile                      string
	rateLimit                                                 int
	throttle429, quiet, countRefusals                         bool
	seed                                                      uint64
	faults                                                    map[string]*string // by casemu.Faults.Set key
	more                                                      []string           // --fault key=value
}

// emulatorFaults are the emulator's fault flags: each sets one key of
// casemu.Faults.Set, which checks its value.
var emulatorFaults = []struct{ flag, key, typ, help string }{
	{"latency", "latency", "duration", "processing time: a duration (50ms) or a uniform range (20ms-80ms)"},
	{"arrival-jitter", "jitter", "MEAN±SD", "one-way network delay per request, normal MEAN±SD (e.g. 40ms±30ms); the rate limit counts arrivals after it"},
	{"answer", "answer", "CODE[:STATUS]", "answer every authenticated request with this error, CODE[:STATUS] (e.g. InvalidApi.NotFound); nothing is applied"},
	{"error-503", "503", "fraction", "fraction of calls answered 503 ServiceUnavailable"},
	{"error-500", "500", "fraction", "fraction of calls answered 500 InternalError"},
	{"throttle", "throttle", "fraction", "fraction of calls answered with a spurious throttle (see --throttle-shapes)"},
	{"throttle-shapes", "throttle-shapes", "shapes", "shapes of --throttle answers: all, or a comma list of " + strings.Join(casemu.ThrottleShapes, ", ")},
	{"drop", "drop", "fraction", "fraction of calls applied, then dropped without an answer"},
	{"hang", "hang", "fraction", "fraction of calls applied, then answered only after --hang-for"},
	{"hang-for", "hangfor", "duration", "how long a hung call waits (default 30s)"},
	{"fail-ids", "fail", "ids", "comma-separated Ids that always fail with InvalidParameter"},
	{"numeric-json", "numeric-json", "fraction", "fraction answered 500/400 with a numeric RequestId and Code (the SDK panics on them); not applied"},
	{"html-502", "html", "fraction", "fraction applied, then answered 502 with a ~100 KB HTML page"},
	{"redirect", "redirect", "fraction", "fraction answered 302 to another path; not applied"},
	{"ok-error", "200-error", "fraction", "fraction answered 200 with an error Code in the body; not applied"},
	{"endless", "endless", "fraction", "fraction applied, then answered 200 with a body that never ends"},
	{"no-request-id", "no-requestid", "fraction", "fraction applied, then answered 200 without RequestId"},
}

func (e *env) emulatorCmd() *cobra.Command {
	o := emulatorOptions{faults: map[string]*string{}}
	cmd := &cobra.Command{
		Use:   "emulator [flags]",
		Short: "Run a local emulator of the cas endpoint",
		Long:  emulatorLong,
		Example: `  certalloc emulator
  certalloc emulator --listen 127.0.0.1:0 --addr-file /tmp/emu.addr
  certalloc emulator --latency 20ms-80ms --error-503 0.05 --drop 0.02 --fail-ids 33285,33286
  certalloc emulator --arrival-jitter 40ms±30ms --throttle 0.12 --throttle-shapes all
  certalloc emulator --listen 127.0.0.1:0 --path-jitter 40ms±30ms --path-addr-file /tmp/path.addr --count-refusals
  certalloc emulator --answer InvalidApi.NotFound:404`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			faults, err := o.faultSettings()
			if err != nil {
				return err
			}
			path, err := o.pathSettings()
			if err != nil || e.checkOnly {
				return err
			}
			return o.serve(e.ctx, faults, path, e.stdout, e.stderr)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "`address` to listen on (port 0 picks a free one)")
	fs.StringVar(&o.addrFile, "addr-file", "", "write the endpoint URL to this `file` once listening")
	fs.StringVar(&o.keyID, "access-key-id", EmulatorKeyID, "AccessKeyId to accept")
	fs.StringVar(&o.secret, "access-key-secret", EmulatorSecret, "its secret")
	fs.StringVar(&o.token, "security-token", "", "make the key an STS key that needs this token")
	fs.IntVar(&o.rateLimit, "rate-limit", casemu.DefaultRateLimit, "requests per account in any sliding second; 0 turns the limit off")
	fs.BoolVar(&o.countRefusals, "count-refusals", false, "count throttled requests against the limit too, as some gateways do: a client pushing into a full window keeps it full")
	fs.StringVar(&o.pathJitter, "path-jitter", "", "also listen on a delaying TCP proxy in front of the emulator that holds each chunk the client sends for max(0, N(MEAN, SD)), in order per connection (e.g. 40ms±30ms); the limit counts requests as the proxy releases them")
	fs.StringVar(&o.pathListen, "path-listen", "127.0.0.1:0", "`address` of the --path-jitter proxy (port 0 picks a free one)")
	fs.StringVar(&o.pathAddrFile, "path-addr-file", "", "write the --path-jitter proxy's endpoint URL to this `file` once listening")
	fs.BoolVar(&o.throttle429, "throttle-429", false, "answer the rate limit with HTTP 429 instead of 400 Throttling.User (same JSON, same x-acs-retry-after)")
	fs.StringVar(&o.region, "region", "", "region the endpoint serves; a request naming another RegionId gets InvalidRegion.NotFound (default: serve any)")
	fs.StringVar(&o.instances, "instances", "", "CSV `file` of known instances (Id[,Quota]); other Ids get NotFound, a CertTotalCount above Quota InvalidParameter.CertTotalCount")
	for _, f := range emulatorFaults {
		v := &faultFlag{typ: f.typ}
		o.faults[f.key] = &v.s
		fs.Var(v, f.flag, f.help)
	}
	fs.StringArrayVar(&o.more, "fault", nil, "set a fault as `key=value` (repeatable); keys: "+strings.Join(strings.Fields(casemu.FaultKeys), " "))
	fs.Uint64Var(&o.seed, "seed", 0, "seed for the fault dice (0: random)")
	fs.BoolVar(&o.quiet, "quiet", false, "do not log each request")
	cmd.RegisterFlagCompletionFunc("throttle-shapes", cobra.FixedCompletions(append([]string{"all"}, casemu.ThrottleShapes...), cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// faultFlag is a fault flag's value, kept as typed for Faults.Set to
// check; typ is what --help calls it.
type faultFlag struct{ s, typ string }

func (f *faultFlag) String() string     { return f.s }
func (f *faultFlag) Set(v string) error { f.s = v; return nil }
func (f *faultFlag) Type() string       { return f.typ }

// pathSpec is the --path-jitter proxy's delay; on says whether to run one.
type pathSpec struct {
	on       bool
	mean, sd time.Duration
}

// pathSettings checks the --path-* flags.
func (o *emulatorOptions) pathSettings() (pathSpec, error) {
	if o.pathJitter == "" {
		if o.pathAddrFile != "" {
			return pathSpec{}, usagef("--path-addr-file needs --path-jitter")
		}
		return pathSpec{}, nil
	}
	mean, sd, err := casemu.ParseJitter(o.pathJitter)
	if err != nil {
		return pathSpec{}, usageError{"--path-jitter: " + err.Error()}
	}
	return pathSpec{on: true, mean: mean, sd: sd}, nil
}

// writeAddr writes an endpoint URL whole, then renames it into place, so a
// script polling for the file never reads half an address.
func writeAddr(path, url string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(url+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// faultSettings turns the fault flags into casemu.Faults.
func (o *emulatorOptions) faultSettings() (casemu.Faults, error) {
	var f casemu.Faults
	for _, ef := range emulatorFaults {
		if v := *o.faults[ef.key]; v != "" {
			if err := f.Set(ef.key, v); err != nil {
				return f, usageError{"--" + ef.flag + ": " + err.Error()}
			}
		}
	}
	for _, kv := range o.more {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return f, usagef("--fault %q: want key=value", kv)
		}
		if err := f.Set(k, v); err != nil {
			return f, usageError{"--fault: " + err.Error()}
		}
	}
	return f, nil
}

func (o *emulatorOptions) serve(ctx context.Context, faults casemu.Faults, path pathSpec, stdout, stderr io.Writer) error {
	rl := o.rateLimit
	if rl == 0 {
		rl = -1
	}
	cfg := casemu.Config{
		Keys:      map[string]casemu.Key{o.keyID: {Secret: o.secret, SecurityToken: o.token}},
		RateLimit: rl, Faults: faults, Seed: o.seed, Throttle429: o.throttle429, Region: o.region,
		CountRefusals: o.countRefusals,
	}
	if o.instances != "" {
		var err error
		if cfg.Instances, err = casemu.LoadInstances(o.instances); err != nil {
			return fmt.Errorf("--instances: %v", err)
		}
	}
	if !o.quiet {
		cfg.Log = func(format string, args ...any) {
			fmt.Fprintf(stderr, "%s %s\n", time.Now().UTC().Format("15:04:05.000"), fmt.Sprintf(format, args...))
		}
	}
	emu := casemu.New(cfg)

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("emulator: %v", err)
	}
	url := "http://" + ln.Addr().String()
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		fmt.Fprintf(stderr, "warning: listening on %s, not loopback; certalloc only sends plain http to loopback\n", ln.Addr())
	}
	srv := &http.Server{Handler: emu, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	fmt.Fprintf(stdout, "certalloc emulator: cas %s %s on %s\n", casemu.Version, casemu.Action, url)
	fmt.Fprintf(stdout, "Use it with:\n  export ALIBABA_CLOUD_ACCESS_KEY_ID=%s\n  export ALIBABA_CLOUD_ACCESS_KEY_SECRET=%s\n", o.keyID, o.secret)
	if o.token != "" {
		fmt.Fprintf(stdout, "  export ALIBABA_CLOUD_SECURITY_TOKEN=%s\n", o.token)
	}
	fmt.Fprintf(stdout, "  certalloc apply --endpoint %s plans/example.csv\n", url)
	if path.on {
		px, err := netpath.Listen(o.pathListen, ln.Addr().String(), path.mean, path.sd, o.seed)
		if err != nil {
			srv.Close()
			return fmt.Errorf("emulator: --path-listen: %v", err)
		}
		defer px.Close()
		pathURL := "http://" + px.Addr().String()
		fmt.Fprintf(stdout, "Network path (each chunk the client sends held %s): %s\n  certalloc apply --endpoint %s plans/example.csv\n", o.pathJitter, pathURL, pathURL)
		if o.pathAddrFile != "" {
			if err := writeAddr(o.pathAddrFile, pathURL); err != nil {
				srv.Close()
				return fmt.Errorf("emulator: %v", err)
			}
		}
	}
	if o.addrFile != "" {
		if err := writeAddr(o.addrFile, url); err != nil {
			srv.Close()
			return fmt.Errorf("emulator: %v", err)
		}
	}

	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("emulator: %v", err)
	}
	shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	srv.Shutdown(shut)
	st := emu.Stats()
	fmt.Fprintf(stdout, "emulator: %d requests, %d applied, %d throttled by the limit, most in one second %d, %d redirects followed; answers: %s\n",
		st.Requests, st.Applied, st.Limited, st.MaxInWindow, st.RedirectsFollowed, answersByCode(st.ByCode))
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// answersByCode is the emulator's answer counts for people: successes
// first, then each error code (the emulator's Stats keys successes as ""),
// most frequent first.
func answersByCode(byCode map[string]int) string {
	codes := slices.Collect(maps.Keys(byCode))
	slices.SortFunc(codes, func(a, b string) int {
		switch {
		case a == "" && b != "":
			return -1
		case b == "" && a != "":
			return 1
		}
		return cmp.Or(cmp.Compare(byCode[b], byCode[a]), cmp.Compare(a, b))
	})
	if len(codes) == 0 {
		return "none"
	}
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprintf("%d %s", byCode[c], cmp.Or(c, "succeeded"))
	}
	return strings.Join(parts, ", ")
}
