// Package netpath is a delaying TCP proxy: a network path with one-way
// jitter between a client and a server on loopback.
//
// Each chunk the client sends (what one read of its connection returns) is
// held for max(0, N(mean, sd)) before it is written to the server, and the
// chunks of one connection are released in order: a chunk never leaves
// before an earlier one of its connection, so a short draw behind a long
// one waits for it, as bytes on one TCP stream do. The server's answers
// pass at once. The server counts a request when it reads it, that is when
// the proxy releases it, so arrival jitter is what the server sees, not a
// number it is told (compare pkg/casemu's Faults.JitterMean, which holds a
// request inside the handler and stamps it there).
//
// Closes propagate: the client's end of the stream half-closes the
// server's side after every chunk before it has been released, and the
// server's end half-closes the client's. Every connection costs three
// goroutines, all gone when both ends are closed or Close is called.
package netpath

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// maxQueued bounds the chunks one connection may hold in flight: past it
// the proxy stops reading the client, which then waits as on a full TCP
// window. A chunk is at most chunkSize bytes.
const (
	maxQueued = 64
	chunkSize = 32 << 10
)

// Proxy forwards connections from its listener to a target address.
type Proxy struct {
	ln       net.Listener
	target   string
	mean, sd time.Duration

	mu     sync.Mutex
	rng    *rand.Rand
	conns  map[net.Conn]struct{}
	closed bool
	stats  Stats
	wg     sync.WaitGroup
}

// Stats counts what the proxy carried.
type Stats struct {
	Conns  int // connections accepted
	Chunks int // chunks the clients sent, each held on its own
	// Blocked counts chunks held past their own draw because an earlier
	// chunk of their connection was still held: head-of-line blocking.
	Blocked int
}

// Stats returns a copy of the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Listen starts a proxy on addr (port 0 picks a free one) in front of
// target, holding each chunk the client sends for max(0, N(mean, sd)).
// seed seeds the delays; 0 picks one at random.
func Listen(addr, target string, mean, sd time.Duration, seed uint64) (*Proxy, error) {
	if mean < 0 || sd < 0 {
		return nil, errors.New("netpath: mean and standard deviation must not be negative")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if seed == 0 {
		seed = rand.Uint64()
	}
	p := &Proxy{
		ln: ln, target: target, mean: mean, sd: sd,
		rng:   rand.New(rand.NewPCG(seed, seed^0x5bd1e995)),
		conns: map[net.Conn]struct{}{},
	}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address clients connect to.
func (p *Proxy) Addr() net.Addr { return p.ln.Addr() }

// Close stops accepting, closes every connection (chunks still held are
// dropped, as a path that went down drops them) and returns once every
// goroutine of the proxy has ended.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

// track registers a connection for Close; false when the proxy is closed.
func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.stats.Conns++
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

func (p *Proxy) count(blocked bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.Chunks++
	if blocked {
		p.stats.Blocked++
	}
}

// delay draws one chunk's hold.
func (p *Proxy) delay() time.Duration {
	if p.sd == 0 {
		return p.mean
	}
	p.mu.Lock()
	z := p.rng.NormFloat64()
	p.mu.Unlock()
	return max(0, p.mean+time.Duration(z*float64(p.sd)))
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed; a transient accept error on loopback is not worth a retry loop
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

type chunk struct {
	b       []byte
	release time.Time
	eof     bool // the client closed its side after the chunks before
}

// serve runs one connection: the client's bytes through a delay queue,
// the server's straight back.
func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	if !p.track(client, server) {
		client.Close()
		server.Close()
		return
	}
	defer func() {
		client.Close()
		server.Close()
		p.untrack(client, server)
	}()

	queue := make(chan chunk, maxQueued)
	var done sync.WaitGroup
	done.Add(2)
	go func() { // client -> queue: stamps each chunk with its release
		defer done.Done()
		defer close(queue)
		var last time.Time
		for {
			buf := make([]byte, chunkSize)
			n, err := client.Read(buf)
			if n > 0 {
				// In order: never before the chunk ahead of it.
				own := time.Now().Add(p.delay())
				p.count(own.Before(last))
				last = maxTime(last, own)
				queue <- chunk{b: buf[:n], release: last}
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					queue <- chunk{release: last, eof: true}
					return
				}
				// A reset, or Close: the server side goes too, so
				// that its copy ends.
				server.Close()
				return
			}
		}
	}()
	go func() { // server -> client, undelayed
		defer done.Done()
		_, err := io.Copy(client, server)
		if err != nil {
			// A broken path breaks both ways.
			client.Close()
			server.Close()
			return
		}
		closeWrite(client)
	}()
	// queue -> server, each chunk at its release.
	timer := time.NewTimer(0)
	<-timer.C
	for c := range queue {
		if d := time.Until(c.release); d > 0 {
			timer.Reset(d)
			<-timer.C
		}
		if c.eof {
			closeWrite(server)
			continue
		}
		if _, err := server.Write(c.b); err != nil {
			client.Close()
			server.Close()
		}
	}
	done.Wait()
}

// closeWrite half-closes c, or closes it where half-close is not offered.
func closeWrite(c net.Conn) {
	if hc, ok := c.(interface{ CloseWrite() error }); ok {
		hc.CloseWrite()
		return
	}
	c.Close()
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
