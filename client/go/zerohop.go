// Package zerohop is the Go client of zerohop: the node's zerohopd over shared-memory
// rings, through libzerohop's C ABI (cgo). Objects, items and streams, with Go's
// conventions: every call takes a context.Context whose deadline bounds it, errors are
// matched with errors.Is (ErrNotFound, ErrConditionFailed, ...), objects are read and
// written as io.Reader and io.Writer, item attributes are typed Go values.
//
//	c, err := zerohop.Connect(nil) // $ZEROHOP_SOCKET, $ZEROHOP_ACCESS_KEY
//	if err != nil { ... }
//	defer c.Close()
//	item, err := c.GetItem(ctx, "/demo/cars/c1")
//	if errors.Is(err, zerohop.ErrNotFound) { ... }
//
// A Client is safe for many goroutines at once: they share one session (its rings and its
// buffer regions) with the daemon. When zerohopd restarts the client reconnects by itself;
// a call in flight at that moment that is safe to repeat is repeated, any other fails with
// ErrUnavailable saying that its outcome is unknown.
//
// Building: cgo finds libzerohop with pkg-config (package "zerohop-c"): installed, or from a
// build directory with PKG_CONFIG_PATH=<build>/meson-uninstalled and
// LD_LIBRARY_PATH=<build>/client.
package zerohop

/*
#cgo pkg-config: zerohop-c
#include <stdlib.h>
#include <zerohop/zerohop.h>
*/
import "C"

import (
	"context"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// Options for Connect; the zero value of each field means its default.
type Options struct {
	SocketPath       string        // default: $ZEROHOP_SOCKET, else /run/zerohop/zerohop.sock
	AccessKey        string        // default: $ZEROHOP_ACCESS_KEY
	ClientBytes      uint64        // the shared region for puts (default 16 MiB)
	DaemonBytes      uint64        // the shared region for gets (default 16 MiB)
	Timeout          time.Duration // a call without a sooner deadline gives up after this (30 s)
	ReconnectTimeout time.Duration // how long to keep trying to reach a restarting daemon (10 s)
}

// Client is a session with the node's zerohopd. Safe for concurrent use.
type Client struct {
	mu sync.RWMutex // calls share it; Close takes it alone
	h  *C.zh_client // nil once closed
}

// Connect opens a session with zerohopd; options may be nil.
func Connect(options *Options) (*Client, error) {
	var o C.zh_options
	var socket, key *C.char
	if options != nil {
		if options.SocketPath != "" {
			socket = C.CString(options.SocketPath)
			defer C.free(unsafe.Pointer(socket))
		}
		if options.AccessKey != "" {
			key = C.CString(options.AccessKey)
			defer C.free(unsafe.Pointer(key))
		}
		o.socket_path = socket
		o.access_key = key
		o.client_bytes = C.uint64_t(options.ClientBytes)
		o.daemon_bytes = C.uint64_t(options.DaemonBytes)
		o.timeout_ms = C.uint32_t(options.Timeout / time.Millisecond)
		o.reconnect_timeout_ms = C.uint32_t(options.ReconnectTimeout / time.Millisecond)
	}
	runtime.LockOSThread() // zh_last_error is the thread's
	defer runtime.UnlockOSThread()
	h := C.zh_connect(&o)
	if h == nil {
		return nil, newError("connect", "", CodeUnavailable, C.GoString(C.zh_last_error()))
	}
	return &Client{h: h}, nil
}

// Close ends the session, after the calls in progress. Views and put buffers of this
// client must be released first. Closing twice is harmless.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.h != nil {
		C.zh_close(c.h)
		c.h = nil
	}
	return nil
}

// SessionID is the daemon's id of the current session (it changes on a reconnect).
func (c *Client) SessionID() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.h == nil {
		return 0
	}
	return uint64(C.zh_session_id(c.h))
}

// call runs one C ABI call for operation op on path: the context's cancellation is seen
// before it starts, its deadline bounds the wait, and a failure becomes an *Error. The call
// and the reading of its error stay on one OS thread (the C ABI's deadline and last error
// are the thread's).
func (c *Client) call(ctx context.Context, op, path string, f func(h *C.zh_client) C.int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.h == nil {
		return newError(op, path, CodeFailedPrecondition, "the client is closed")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if deadline, ok := ctx.Deadline(); ok {
		C.zh_set_deadline(C.int64_t(deadline.UnixNano()))
		defer C.zh_set_deadline(0)
	}
	if rc := f(c.h); rc != C.ZH_OK {
		return newError(op, path, Code(rc), C.GoString(C.zh_last_error()))
	}
	return nil
}

// cstrings holds C copies of Go strings for one call.
type cstrings []*C.char

func (s *cstrings) of(v string) *C.char {
	p := C.CString(v)
	*s = append(*s, p)
	return p
}

// orNil is of(v), or NULL for "".
func (s *cstrings) orNil(v string) *C.char {
	if v == "" {
		return nil
	}
	return s.of(v)
}

func (s *cstrings) free() {
	for _, p := range *s {
		C.free(unsafe.Pointer(p))
	}
	*s = nil
}

// Sync makes every acknowledged write durable on the daemon's stores.
func (c *Client) Sync(ctx context.Context) error {
	return c.call(ctx, "sync", "", func(h *C.zh_client) C.int { return C.zh_sync(h) })
}

// DaemonStatus is the daemon's counters.
type DaemonStatus struct {
	ProtocolVersion uint32
	Workers         uint32
	SessionsOpen    uint64
	SessionsTotal   uint64
	SessionsRefused uint64
	Requests        uint64
	RequestErrors   uint64
	BadDescriptors  uint64
}

// Status asks the daemon for its counters.
func (c *Client) Status(ctx context.Context) (DaemonStatus, error) {
	var st C.zh_daemon_status
	err := c.call(ctx, "status", "", func(h *C.zh_client) C.int { return C.zh_status(h, &st) })
	return DaemonStatus{
		ProtocolVersion: uint32(st.protocol_version),
		Workers:         uint32(st.workers),
		SessionsOpen:    uint64(st.sessions_open),
		SessionsTotal:   uint64(st.sessions_total),
		SessionsRefused: uint64(st.sessions_refused),
		Requests:        uint64(st.requests),
		RequestErrors:   uint64(st.request_errors),
		BadDescriptors:  uint64(st.bad_descriptors),
	}, err
}
