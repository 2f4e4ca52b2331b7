package main

import (
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/certalloc/certalloc/pkg/casemu"
	"github.com/certalloc/certalloc/pkg/cli"
)

// TestMain makes this test binary double as the certalloc command, so that
// scripts and process tests run the real main in a real process.
func TestMain(m *testing.M) {
	// The SDK's default credentials chain ends at the ECS metadata service;
	// tests must never reach for it.
	os.Setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
	// A race-enabled binary sleeps a second at exit, for racing goroutines
	// to report; the tests start over a hundred certalloc processes. A race
	// still fails the process (exit 66), which fails its test.
	if os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	testscript.Main(m, map[string]func(){"certalloc": func() { os.Exit(run()) }})
}

// Test credentials, distinctive so a leak is easy to find.
const (
	testKeyID  = "LTAI5tTestKeyId00000000"
	testSecret = "s3cret-Zq9x!TEST+secret/value"
	testToken  = "STS.tokEN+with/odd=chars-and-length-0123456789"
)

type emulatorKey struct{}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "../../testdata/script",
		Setup: func(env *testscript.Env) error {
			emu := casemu.New(casemu.Config{Keys: map[string]casemu.Key{
				cli.EmulatorKeyID: {Secret: cli.EmulatorSecret},
				testKeyID:         {Secret: testSecret, SecurityToken: testToken},
			}})
			srv := httptest.NewServer(emu)
			env.Defer(srv.Close)
			env.Values[emulatorKey{}] = emu
			env.Setenv("EMU", srv.URL)
			testdata, err := filepath.Abs(filepath.Join("..", "..", "testdata"))
			if err != nil {
				return err
			}
			env.Setenv("TESTDATA", testdata)
			env.Setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", cli.EmulatorKeyID)
			env.Setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", cli.EmulatorSecret)
			env.Setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
			env.Setenv("GORACE", os.Getenv("GORACE"))
			env.Setenv("HOME", env.WorkDir+"/home")
			return os.MkdirAll(env.WorkDir+"/home", 0o755)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"emu":   emuCmd,
			"lines": linesCmd,
		},
	})
}

// emuCmd drives and checks the script's emulator:
//
//	emu faults key=value...        set faults (casemu.FaultKeys: latency=20ms-80ms 503=0.1 throttle-shapes=all fail=1,2 ...)
//	emu state ID TOTAL APPLIED     check one Id's state
//	emu stat NAME OP N             check a counter: requests, applied, maxwindow, or a code; OP is == <= >=
func emuCmd(ts *testscript.TestScript, neg bool, args []string) {
	emu := ts.Value(emulatorKey{}).(*casemu.Server)
	if len(args) == 0 {
		ts.Fatalf("usage: emu faults|state|stat ...")
	}
	switch args[0] {
	case "faults":
		var f casemu.Faults
		for _, kv := range args[1:] {
			k, v, _ := strings.Cut(kv, "=")
			ts.Check(f.Set(k, v))
		}
		emu.SetFaults(f)
	case "state":
		if len(args) != 4 {
			ts.Fatalf("usage: emu state ID TOTAL APPLIED")
		}
		id, _ := strconv.ParseInt(args[1], 10, 64)
		a, ok := emu.State(id)
		got := fmt.Sprintf("%d %d", a.CertTotalCount, a.Applied)
		if !ok {
			got = "- 0"
		}
		want := args[2] + " " + args[3]
		if (got == want) == neg {
			ts.Fatalf("emu state %d = %s; want %s%s", id, got, map[bool]string{true: "not ", false: ""}[neg], want)
		}
	case "stat":
		if len(args) != 4 {
			ts.Fatalf("usage: emu stat NAME OP N")
		}
		st := emu.Stats()
		var got int
		switch args[1] {
		case "requests":
			got = st.Requests
		case "applied":
			got = st.Applied
		case "maxwindow":
			got = st.MaxInWindow
		default:
			got = st.ByCode[args[1]]
		}
		want, err := strconv.Atoi(args[3])
		ts.Check(err)
		ok := map[string]bool{"==": got == want, "<=": got <= want, ">=": got >= want}[args[2]]
		if ok == neg {
			ts.Fatalf("emu stat %s = %d; want %s %d", args[1], got, args[2], want)
		}
	default:
		ts.Fatalf("unknown emu command %q", args[0])
	}
}

// linesCmd checks a file's line count: lines FILE N.
func linesCmd(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: lines FILE N")
	}
	got := strings.Count(ts.ReadFile(args[0]), "\n")
	want, err := strconv.Atoi(args[1])
	ts.Check(err)
	if (got == want) == neg {
		ts.Fatalf("%s has %d lines; want %d", args[0], got, want)
	}
}
