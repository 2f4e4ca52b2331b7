package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/certalloc/certalloc/pkg/casemu"
)

// The emulator's default key, for tests and scripts that name it.
const (
	EmulatorKeyID  = casemu.DemoKeyID
	EmulatorSecret = casemu.DemoSecret
)

const emulatorLong = `Runs an emulator of the cas AssignCertificateCount endpoint on loopback: it
checks signatures, nonces and timestamps like the real service, limits each
AccessKey to --rate-limit requests in any sliding second (Throttling.User),
keeps each Id's total, and can inject faults. It prints the endpoint and the
credentials to use. Stop it with Ctrl-C; it prints what it saw.`

type emulatorOptions struct {
	listen, addrFile, keyID, secret, token, latency, failIDs string
	rateLimit                                                int
	e503, e500, throttle, drop, hang                         float64
	hangFor                                                  time.Duration
	seed                                                     uint64
	quiet                                                    bool
}

func (e *env) emulatorCmd() *cobra.Command {
	var o emulatorOptions
	cmd := &cobra.Command{
		Use:   "emulator [flags]",
		Short: "Run a local emulator of the cas endpoint",
		Long:  emulatorLong,
		Example: `  certalloc emulator
  certalloc emulator --listen 127.0.0.1:0 --addr-file /tmp/emu.addr
  certalloc emulator --latency 20ms-80ms --error-503 0.05 --drop 0.02 --fail-ids 33285,33286`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			faults, err := o.faults()
			if err != nil || e.checkOnly {
				return err
			}
			return o.serve(e.ctx, faults, e.stdout, e.stderr)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "`address` to listen on (port 0 picks a free one)")
	fs.StringVar(&o.addrFile, "addr-file", "", "write the endpoint URL to this `file` once listening")
	fs.StringVar(&o.keyID, "access-key-id", EmulatorKeyID, "AccessKeyId to accept")
	fs.StringVar(&o.secret, "access-key-secret", EmulatorSecret, "its secret")
	fs.StringVar(&o.token, "security-token", "", "make the key an STS key that needs this token")
	fs.IntVar(&o.rateLimit, "rate-limit", casemu.DefaultRateLimit, "requests per AccessKey in any sliding second; 0 turns the limit off")
	fs.StringVar(&o.latency, "latency", "", "processing time: a duration (50ms) or a uniform range (20ms-80ms)")
	fs.Float64Var(&o.e503, "error-503", 0, "fraction of calls answered 503 ServiceUnavailable")
	fs.Float64Var(&o.e500, "error-500", 0, "fraction of calls answered 500 InternalError")
	fs.Float64Var(&o.throttle, "throttle", 0, "fraction of calls answered with a spurious Throttling.User")
	fs.Float64Var(&o.drop, "drop", 0, "fraction of calls applied, then dropped without an answer")
	fs.Float64Var(&o.hang, "hang", 0, "fraction of calls applied, then answered only after --hang-for")
	fs.DurationVar(&o.hangFor, "hang-for", 30*time.Second, "how long a hung call waits")
	fs.StringVar(&o.failIDs, "fail-ids", "", "comma-separated Ids that always fail with InvalidParameter")
	fs.Uint64Var(&o.seed, "seed", 0, "seed for the fault dice (0: random)")
	fs.BoolVar(&o.quiet, "quiet", false, "do not log each request")
	return cmd
}

func (o *emulatorOptions) serve(ctx context.Context, faults casemu.Faults, stdout, stderr io.Writer) error {
	rl := o.rateLimit
	if rl == 0 {
		rl = -1
	}
	cfg := casemu.Config{
		Keys:      map[string]casemu.Key{o.keyID: {Secret: o.secret, SecurityToken: o.token}},
		RateLimit: rl, Faults: faults, Seed: o.seed,
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
	if o.addrFile != "" {
		// Written whole, then renamed, so a script polling for it never
		// reads half an address.
		tmp := o.addrFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(url+"\n"), 0o644); err != nil {
			return fmt.Errorf("emulator: %v", err)
		}
		if err := os.Rename(tmp, o.addrFile); err != nil {
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
	fmt.Fprintf(stdout, "emulator: %d requests, %d applied, most in one second %d, answers by code %v\n", st.Requests, st.Applied, st.MaxInWindow, st.ByCode)
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (o *emulatorOptions) faults() (casemu.Faults, error) {
	f := casemu.Faults{Error503Rate: o.e503, Error500Rate: o.e500, ThrottleRate: o.throttle, DropRate: o.drop, HangRate: o.hang, HangFor: o.hangFor}
	for name, v := range map[string]float64{"--error-503": o.e503, "--error-500": o.e500, "--throttle": o.throttle, "--drop": o.drop, "--hang": o.hang} {
		if v < 0 || v > 1 {
			return f, usagef("%s must be a fraction from 0 to 1, got %v", name, v)
		}
	}
	if o.latency != "" {
		var err error
		if f.LatencyMin, f.LatencyMax, err = casemu.ParseLatency(o.latency); err != nil {
			return f, usagef("--%v", err)
		}
	}
	if o.failIDs != "" {
		var err error
		if f.FailIDs, err = casemu.ParseIDs(o.failIDs); err != nil {
			return f, usagef("--fail-ids: %v", err)
		}
	}
	return f, nil
}
