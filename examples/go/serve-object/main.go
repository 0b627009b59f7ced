// serve-object: a function handler in Go that serves an object by key over HTTP, the way
// a serverless function (OpenFaaS, Knative, nuclio) would sit behind its platform's router.
//
//	GET /<key>   the object /<container>/<key>: 200 with its bytes, 404, 403, 504
//	HEAD /<key>  its size and modification time only
//
// One zerohop.Client serves every request (it is safe for many goroutines): all of them
// share one session with the node's zerohopd. The request's context bounds each call, so a
// client that goes away or a slow daemon never holds a handler past -timeout.
//
//	ZEROHOP_SOCKET=... ZEROHOP_ACCESS_KEY=... serve-object -container demo -listen :8080
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"zerohop.dev/zerohop"
)

// Handler serves the objects of container; every call gives up after timeout.
func Handler(c *zerohop.Client, container string, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "only GET and HEAD", http.StatusMethodNotAllowed)
			return
		}
		key := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if key == "" {
			http.Error(w, "no key", http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		object := "/" + container + "/" + key
		info, err := c.Stat(ctx, object)
		if err != nil {
			fail(w, err)
			return
		}
		if info.Type != zerohop.TypeObject {
			http.Error(w, key+" is not an object", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Last-Modified", info.ModTime.UTC().Format(http.TimeFormat))
		if r.Method == http.MethodHead {
			return
		}
		// A chunk at a time from the daemon's shared memory to the socket. An object
		// replaced between the stat and the read is sent as it now is, cut to the size
		// announced.
		if _, err := io.CopyN(w, c.NewReader(ctx, object), info.Size); err != nil {
			log.Printf("serving %s: %v", object, err) // the header is gone: the client sees a short body
		}
	})
}

// fail answers with the HTTP status that says what went wrong.
func fail(w http.ResponseWriter, err error) {
	status := http.StatusBadGateway
	switch {
	case errors.Is(err, zerohop.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, zerohop.ErrPermissionDenied):
		status = http.StatusForbidden
	case errors.Is(err, zerohop.ErrInvalidArgument):
		status = http.StatusBadRequest
	case errors.Is(err, context.DeadlineExceeded):
		status = http.StatusGatewayTimeout
	case errors.Is(err, zerohop.ErrUnavailable):
		status = http.StatusServiceUnavailable
	}
	http.Error(w, err.Error(), status)
}

func main() {
	listen := flag.String("listen", ":8080", "address to serve on")
	container := flag.String("container", "demo", "the container whose objects are served")
	timeout := flag.Duration("timeout", 5*time.Second, "the longest one request waits for zerohopd")
	flag.Parse()
	c, err := zerohop.Connect(nil) // ZEROHOP_SOCKET, ZEROHOP_ACCESS_KEY
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	log.Printf("serving /%s on %s", *container, *listen)
	log.Fatal(http.ListenAndServe(*listen, Handler(c, *container, *timeout)))
}
