// Package proxytest is an HTTPS proxy for tests that must see where a
// client connects without letting anything leave the machine: it records
// each CONNECT target and refuses the tunnel. Like net/http/httptest, only
// tests import it.
package proxytest

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"
)

// Refusing starts a proxy on loopback that answers every request with
// status and sends its "METHOD host" on targets. It stops when the test
// ends.
func Refusing(t testing.TB, status int) (addr string, targets <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan string, 64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				ch <- req.Method + " " + req.Host
				fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status, http.StatusText(status))
			}()
		}
	}()
	return ln.Addr().String(), ch
}

// Recording is Refusing with 403 Forbidden.
func Recording(t testing.TB) (addr string, targets <-chan string) {
	t.Helper()
	return Refusing(t, http.StatusForbidden)
}
