package main

// The handler against a real zerohopd (ZEROHOPD names the binary), through a real HTTP
// server on loopback.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"zerohop.dev/zerohop"
)

func TestServesObjectsByKeyWithTheRightStatus(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "zh.sock")
	config := fmt.Sprintf("listen: %s\nworkers: 2\nmetrics_port: 0\nlog_level: error\nmounts:\n  - {container: demo, options: {dir: %s/store}}\n"+
		"credentials:\n  - {key: rw-key, containers: {demo: rw}}\n", socket, dir)
	if err := os.WriteFile(filepath.Join(dir, "zerohopd.yaml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	daemon := exec.Command(os.Getenv("ZEROHOPD"), "--config", filepath.Join(dir, "zerohopd.yaml"))
	daemon.Stderr = os.Stderr
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { daemon.Process.Signal(syscall.SIGTERM); daemon.Wait() }()
	var c *zerohop.Client
	var err error
	for i := 0; i < 500; i++ {
		if c, err = zerohop.Connect(&zerohop.Options{SocketPath: socket, AccessKey: "rw-key"}); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	body := bytes.Repeat([]byte("zerohop "), 300000) // 2.4 MiB: several chunks
	if err := c.Mkdir(ctx, "/demo/img", 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "/demo/img/cat.jpg", body, nil); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Handler(c, "demo", 5*time.Second))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/img/cat.jpg")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, body) || resp.ContentLength != int64(len(body)) {
		t.Fatalf("GET: %d, %d bytes, %v", resp.StatusCode, len(got), err)
	}
	for path, want := range map[string]int{"/img/dog.jpg": 404, "/img": 404, "/": 400, "/../etc/passwd": 404} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	resp, err = http.Head(srv.URL + "/img/cat.jpg")
	if err != nil || resp.StatusCode != 200 || resp.ContentLength != int64(len(body)) {
		t.Fatalf("HEAD: %v, %v", resp, err)
	}
	resp, err = http.Post(srv.URL+"/img/cat.jpg", "text/plain", nil)
	if err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %v, %v", resp, err)
	}
}
