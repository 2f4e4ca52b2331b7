package netpath

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// server accepts connections and hands each to handle.
func server(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return ln.Addr().String()
}

func proxy(t *testing.T, target string, mean, sd time.Duration) *Proxy {
	t.Helper()
	p, err := Listen("127.0.0.1:0", target, mean, sd, 7)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, p *Proxy) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// Chunks of one connection, each drawn its own delay (sd as large as the
// mean, so later draws are often shorter), reach the server in the order
// they were sent.
func TestOrderKept(t *testing.T) {
	got := make(chan []byte, 1)
	addr := server(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		got <- b
		c.Close()
	})
	p := proxy(t, addr, 20*time.Millisecond, 20*time.Millisecond)
	c := dial(t, p)
	var want []byte
	for i := range 60 {
		b := []byte{byte(i), byte(i >> 8), 'x'}
		want = append(want, b...)
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // each write its own read at the proxy
	}
	c.CloseWrite()
	select {
	case b := <-got:
		if !bytes.Equal(b, want) {
			t.Fatalf("server read %d bytes out of order: %v; want %v", len(b), b, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client's close never reached the server")
	}
}

// A chunk is held at least its delay (fixed here: sd 0) on the way to the
// server; answers come back at once.
func TestDelayApplied(t *testing.T) {
	const hold = 60 * time.Millisecond
	addr := server(t, func(c net.Conn) {
		defer c.Close()
		buf := make([]byte, 16)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			c.Write(buf[:n])
		}
	})
	c := dial(t, proxy(t, addr, hold, 0))
	buf := make([]byte, 16)
	for range 5 {
		start := time.Now()
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:4]); err != nil {
			t.Fatal(err)
		}
		if rtt := time.Since(start); rtt < hold || rtt > hold+time.Second {
			t.Fatalf("round trip %v; want the hold %v and little more", rtt, hold)
		}
	}
}

// The server's close reaches the client, and the client's half-close the
// server, after the chunks before it.
func TestClosesPropagate(t *testing.T) {
	got := make(chan []byte, 1)
	addr := server(t, func(c net.Conn) {
		b, _ := io.ReadAll(c) // until the client's half-close
		got <- b
		c.Write([]byte("bye"))
		c.Close()
	})
	c := dial(t, proxy(t, addr, 30*time.Millisecond, 10*time.Millisecond))
	c.Write([]byte("last words"))
	c.CloseWrite()
	if b := <-got; string(b) != "last words" {
		t.Fatalf("server read %q before EOF; want %q", b, "last words")
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "bye" {
		t.Fatalf("client read %q, %v; want %q and EOF", b, err, "bye")
	}
}

// Connections that end, and a Close with connections open, leave no
// goroutine behind.
func TestGoroutinesBounded(t *testing.T) {
	addr := server(t, func(c net.Conn) { io.Copy(c, c); c.Close() })
	base := runtime.NumGoroutine()
	p, err := Listen("127.0.0.1:0", addr, 5*time.Millisecond, 5*time.Millisecond, 1)
	if err != nil {
		t.Fatal(err)
	}
	open := func(n int) []net.Conn {
		var cs []net.Conn
		for range n {
			c, err := net.Dial("tcp", p.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			c.Write([]byte("x"))
			io.ReadFull(c, make([]byte, 1))
			cs = append(cs, c)
		}
		return cs
	}
	settle := func(want int, what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d goroutines; want at most %d", what, runtime.NumGoroutine(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	cs := open(20)
	// Each connection is 3 goroutines of the proxy and 1 of the server.
	if n := runtime.NumGoroutine(); n > base+1+20*4+2 {
		t.Fatalf("20 connections: %d goroutines over %d; want about 4 each", n-base, base)
	}
	for _, c := range cs {
		c.Close()
	}
	settle(base+1, "after the clients closed")
	open(20)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	settle(base, "after Close")
}
