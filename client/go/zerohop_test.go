package zerohop_test

// The Go package against a real zerohopd (ZEROHOPD names the binary; the test command sets
// it, PKG_CONFIG_PATH and LD_LIBRARY_PATH). Every operation, io.Reader/io.Writer, errors,
// deadlines, many goroutines, and a daemon restart during use.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"zerohop.dev/zerohop"
)

type daemon struct {
	dir    string
	socket string
	cmd    *exec.Cmd
}

func startDaemon(t *testing.T) *daemon {
	t.Helper()
	bin := os.Getenv("ZEROHOPD")
	if bin == "" {
		t.Fatal("ZEROHOPD must name the zerohopd binary")
	}
	dir := t.TempDir()
	d := &daemon{dir: dir, socket: filepath.Join(dir, "zh.sock")}
	config := fmt.Sprintf("listen: %s\nworkers: 2\nmetrics_port: 0\nlog_level: warning\n"+
		"mounts:\n  - {container: demo, options: {dir: %s/store}}\n"+
		"credentials:\n  - {key: rw-key, containers: {demo: rw}}\n  - {key: ro-key, containers: {demo: r}}\n",
		d.socket, dir)
	if err := os.WriteFile(filepath.Join(dir, "zerohopd.yaml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	d.start(t)
	t.Cleanup(func() { d.stop(syscall.SIGTERM) })
	return d
}

func (d *daemon) start(t *testing.T) {
	t.Helper()
	d.cmd = exec.Command(os.Getenv("ZEROHOPD"), "--config", filepath.Join(d.dir, "zerohopd.yaml"))
	d.cmd.Stderr = os.Stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 500; i++ {
		if c, err := zerohop.Connect(&zerohop.Options{SocketPath: d.socket, AccessKey: "rw-key"}); err == nil {
			c.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("zerohopd did not come up")
}

func (d *daemon) stop(sig syscall.Signal) {
	if d.cmd != nil {
		d.cmd.Process.Signal(sig)
		d.cmd.Wait()
		d.cmd = nil
	}
}

func connect(t *testing.T, d *daemon, key string) *zerohop.Client {
	t.Helper()
	c, err := zerohop.Connect(&zerohop.Options{SocketPath: d.socket, AccessKey: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// must is v, or a panic (which fails the test run) on an error: for the calls whose failure
// is not what a test is about.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestObjectsRoundTripWithRangesAppendsAndRenames(t *testing.T) {
	c := connect(t, startDaemon(t), "rw-key")
	ctx := context.Background()
	if err := c.Mkdir(ctx, "/demo/a", 0o755); err != nil {
		t.Fatal(err)
	}
	info := must(c.Put(ctx, "/demo/a/b.txt", []byte("hello world"), &zerohop.PutOptions{Attrs: zerohop.Attrs{"lang": "en"}}))
	if info.Size != 11 || info.Type != zerohop.TypeObject {
		t.Fatalf("put gave %+v", info)
	}
	if got := must(c.Get(ctx, "/demo/a/b.txt")); string(got) != "hello world" {
		t.Fatalf("get gave %q", got)
	}
	if got := must(c.GetRange(ctx, "/demo/a/b.txt", 6, 3)); string(got) != "wor" {
		t.Fatalf("ranged get gave %q", got)
	}
	must(c.Append(ctx, "/demo/a/b.txt", []byte("!")))
	must(c.WriteAt(ctx, "/demo/a/b.txt", 0, []byte("J")))
	must(c.Truncate(ctx, "/demo/a/b.txt", 5))
	if got := must(c.Get(ctx, "/demo/a/b.txt")); string(got) != "Jello" {
		t.Fatalf("after append, write and truncate: %q", got)
	}
	if st := must(c.Stat(ctx, "/demo/a/b.txt")); st.Size != 5 || st.ModTime.IsZero() {
		t.Fatalf("stat gave %+v", st)
	}
	if st := must(c.Stat(ctx, "/demo/a")); st.Type != zerohop.TypeDirectory || st.Subdirs != 0 {
		t.Fatalf("the parent is a %v with %d subdirectories", st.Type, st.Subdirs)
	}
	if st := must(c.Stat(ctx, "/demo")); st.Subdirs == 0 || st.AccessTime.IsZero() {
		t.Fatalf("the container holds /demo/a: %+v", st)
	}
	if err := c.Mkdir(ctx, "/demo/d", 0o750); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		must(c.Put(ctx, fmt.Sprintf("/demo/d/f%d", i), []byte{byte(i)}, nil))
	}
	page := must(c.List(ctx, "/demo/d", &zerohop.ListOptions{Limit: 3}))
	if len(page.Entries) != 3 || !page.Truncated || page.Entries[0].Name != "f0" {
		t.Fatalf("first page %+v", page)
	}
	page = must(c.List(ctx, "/demo/d", &zerohop.ListOptions{Marker: page.NextMarker}))
	if len(page.Entries) != 2 || page.Truncated || page.Entries[1].Name != "f4" || page.Entries[1].Info.Size != 1 {
		t.Fatalf("second page %+v", page)
	}
	if containers := must(c.List(ctx, "/", nil)); len(containers.Entries) != 1 || containers.Entries[0].Name != "demo" {
		t.Fatalf("containers %+v", containers)
	}
	if err := c.Rename(ctx, "/demo/d/f0", "/demo/d/g0"); err != nil {
		t.Fatal(err)
	}
	if err := c.RenameNoReplace(ctx, "/demo/d/f1", "/demo/d/g0"); !errors.Is(err, zerohop.ErrAlreadyExists) {
		t.Fatalf("rename over an existing name without replacing: %v", err)
	}
	if err := c.Symlink(ctx, "/demo/link", "d/g0"); err != nil {
		t.Fatal(err)
	}
	if target := must(c.Readlink(ctx, "/demo/link")); target != "d/g0" {
		t.Fatalf("readlink gave %q", target)
	}
	for _, p := range []string{"/demo/d/g0", "/demo/d/f1", "/demo/d/f2", "/demo/d/f3", "/demo/d/f4", "/demo/link"} {
		if err := c.Delete(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Rmdir(ctx, "/demo/d"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stat(ctx, "/demo/d"); !errors.Is(err, zerohop.ErrNotFound) {
		t.Fatalf("stat of a removed directory: %v", err)
	}
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if st := must(c.Status(ctx)); st.Workers != 2 || st.SessionsOpen < 1 {
		t.Fatalf("status %+v", st)
	}
}

func TestObjectsAreReadersAndWritersOfAnySize(t *testing.T) {
	c := connect(t, startDaemon(t), "rw-key")
	ctx := context.Background()
	big := make([]byte, 40<<20+123) // more than the 16 MiB regions: streamed both ways
	for i := range big {
		big[i] = byte(i * 7 / 3)
	}
	w := c.NewWriter(ctx, "/demo/big", nil)
	if _, err := io.Copy(w, bytes.NewReader(big)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stat(ctx, "/demo/big"); !errors.Is(err, zerohop.ErrNotFound) {
		t.Fatalf("an object is visible before its writer closed: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Info().Size != int64(len(big)) {
		t.Fatalf("the writer put %d bytes", w.Info().Size)
	}
	var out bytes.Buffer
	n, err := io.Copy(&out, c.NewReader(ctx, "/demo/big"))
	if err != nil || n != int64(len(big)) || !bytes.Equal(out.Bytes(), big) {
		t.Fatalf("read back %d bytes, err %v, equal %v", n, err, bytes.Equal(out.Bytes(), big))
	}
	if got := must(c.Get(ctx, "/demo/big")); !bytes.Equal(got, big) {
		t.Fatal("Get of a large object differs")
	}
	r := c.NewReader(ctx, "/demo/big")
	p := make([]byte, 100)
	if n, err := r.ReadAt(p, int64(len(big))-50); n != 50 || err != io.EOF || !bytes.Equal(p[:50], big[len(big)-50:]) {
		t.Fatalf("ReadAt over the end: %d, %v", n, err)
	}
	if off, err := r.Seek(-10, io.SeekEnd); err != nil || off != int64(len(big))-10 {
		t.Fatalf("seek from the end: %d, %v", off, err)
	}
	rest, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(rest, big[len(big)-10:]) {
		t.Fatalf("the last 10 bytes: %v, %v", rest, err)
	}
	if _, err := io.ReadAll(c.NewReader(ctx, "/demo/missing")); !errors.Is(err, zerohop.ErrNotFound) {
		t.Fatalf("reading a missing object: %v", err)
	}
	empty := must(c.Put(ctx, "/demo/empty", nil, nil))
	if got, err := io.ReadAll(c.NewReader(ctx, "/demo/empty")); err != nil || len(got) != 0 || empty.Size != 0 {
		t.Fatalf("an empty object: %q, %v", got, err)
	}
}

func TestAViewIsTheSharedRegionInPlace(t *testing.T) {
	c := connect(t, startDaemon(t), "rw-key")
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	must(c.Put(ctx, "/demo/v", data, nil))
	v := must(c.GetView(ctx, "/demo/v", 0, -1))
	if !bytes.Equal(v.Bytes(), data) || v.Info().Size != int64(len(data)) {
		t.Fatal("the view differs from what was put")
	}
	v.Release()
	v.Release() // harmless
	// Views that are released give their room back: far more than the region holds in all.
	for i := 0; i < 100; i++ {
		v := must(c.GetView(ctx, "/demo/v", int64(i), 1000))
		if v.Bytes()[0] != data[i] {
			t.Fatalf("view %d starts with %d", i, v.Bytes()[0])
		}
		v.Release()
	}
}

func TestItemsMapEveryValueTypeBothWays(t *testing.T) {
	c := connect(t, startDaemon(t), "rw-key")
	ctx := context.Background()
	if err := c.Mkdir(ctx, "/demo/cars", 0o755); err != nil {
		t.Fatal(err)
	}
	when := time.Date(2026, 12, 5, 10, 30, 0, 123456789, time.UTC)
	in := zerohop.Attrs{
		"b": true, "i": int64(-42), "small": 7, "f": 2.5, "s": "héllo", "blob": []byte{0, 1, 2},
		"t": when, "ints": []int64{1, -2, 3}, "floats": []float64{0.5, 1.5},
	}
	must(c.PutItem(ctx, "/demo/cars/c1", in, ""))
	got := must(c.GetItem(ctx, "/demo/cars/c1"))
	want := zerohop.Attrs{
		"b": true, "i": int64(-42), "small": int64(7), "f": 2.5, "s": "héllo", "blob": []byte{0, 1, 2},
		"ints": []int64{1, -2, 3}, "floats": []float64{0.5, 1.5},
	}
	gotTime, _ := got["t"].(time.Time)
	delete(got, "t")
	if !reflect.DeepEqual(got, want) || !gotTime.Equal(when) {
		t.Fatalf("got %#v (t %v)", got, gotTime)
	}
	if got := must(c.GetItem(ctx, "/demo/cars/c1", "i", "s")); len(got) != 2 || got["s"] != "héllo" {
		t.Fatalf("projection %v", got)
	}
	must(c.UpdateItem(ctx, "/demo/cars/c1", "i = i + 10; trips = if_not_exists(trips, 0) + 1", nil))
	if got := must(c.GetItem(ctx, "/demo/cars/c1", "i", "trips")); got["i"] != int64(-32) || got["trips"] != int64(1) {
		t.Fatalf("after the update: %v", got)
	}
	if _, err := c.UpdateItem(ctx, "/demo/cars/c1", "i = 0", &zerohop.UpdateOptions{Condition: "i > 100"}); !errors.Is(err, zerohop.ErrConditionFailed) {
		t.Fatalf("an update whose condition fails: %v", err)
	}
	must(c.UpdateItem(ctx, "/demo/cars/c1", "i = 0", &zerohop.UpdateOptions{Condition: "i > 100", ElseUpdate: "i = 1"}))
	if got := must(c.GetItem(ctx, "/demo/cars/c1", "i")); got["i"] != int64(1) {
		t.Fatalf("the else-update did not run: %v", got)
	}
	if _, err := c.PutItem(ctx, "/demo/cars/c1", zerohop.Attrs{"x": 1}, "not exists(i)"); !errors.Is(err, zerohop.ErrConditionFailed) {
		t.Fatalf("a put whose condition fails: %v", err)
	}
	if _, err := c.PutItem(ctx, "/demo/cars/c2", zerohop.Attrs{"x": struct{}{}}, ""); !errors.Is(err, zerohop.ErrInvalidArgument) ||
		!strings.Contains(err.Error(), "struct") {
		t.Fatalf("a value of no zerohop type: %v", err)
	}
	if err := c.DeleteItem(ctx, "/demo/cars/c1", "i == 2"); !errors.Is(err, zerohop.ErrConditionFailed) {
		t.Fatalf("a delete whose condition fails: %v", err)
	}
	if err := c.DeleteItem(ctx, "/demo/cars/c1", "i == 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetItem(ctx, "/demo/cars/c1"); !errors.Is(err, zerohop.ErrNotFound) {
		t.Fatalf("a deleted item: %v", err)
	}
}

func TestScansPageFilterProjectAndSegment(t *testing.T) {
	c := connect(t, startDaemon(t), "rw-key")
	ctx := context.Background()
	if err := c.Mkdir(ctx, "/demo/t", 0o755); err != nil {
		t.Fatal(err)
	}
	var items []zerohop.Item
	for i := 0; i < 250; i++ {
		items = append(items, zerohop.Item{Path: fmt.Sprintf("/demo/t/k%03d", i), Attrs: zerohop.Attrs{"n": i, "pad": "x"}})
	}
	items = append(items, zerohop.Item{Path: "/demo/nope/../../escape", Attrs: zerohop.Attrs{"n": 1}})
	errs := must(c.PutItems(ctx, items))
	for i, err := range errs[:250] {
		if err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
	}
	if errs[250] == nil {
		t.Fatal("an item with a bad path was put")
	}
	all := must(c.Scan(ctx, "/demo/t", &zerohop.ScanOptions{PageSize: 40}).All())
	if len(all) != 250 {
		t.Fatalf("scanned %d items", len(all))
	}
	sc := c.Scan(ctx, "/demo/t", &zerohop.ScanOptions{Filter: "n >= 200", Names: []string{"n"}, PageSize: 7})
	seen := 0
	for sc.Next() {
		it := sc.Item()
		if n := it.Attrs["n"].(int64); n < 200 || len(it.Attrs) != 1 || it.Path != fmt.Sprintf("k%03d", n) {
			t.Fatalf("scan gave %+v", it)
		}
		seen++
	}
	if sc.Err() != nil || seen != 50 {
		t.Fatalf("filtered scan: %d items, %v", seen, sc.Err())
	}
	total := 0
	for seg := 0; seg < 3; seg++ {
		total += len(must(c.Scan(ctx, "/demo/t", &zerohop.ScanOptions{Segment: seg, TotalSegments: 3}).All()))
	}
	if total != 250 {
		t.Fatalf("three segments hold %d items", total)
	}
	if _, err := c.Scan(ctx, "/demo/t", &zerohop.ScanOptions{Filter: "n >"}).All(); !errors.Is(err, zerohop.ErrInvalidArgument) {
		t.Fatalf("a malformed filter: %v", err)
	}
}

func TestStreamsTakeRecordsAndGiveThemBackInOrder(t *testing.T) {
	c := connect(t, startDaemon(t), "rw-key")
	ctx := context.Background()
	if err := c.CreateStream(ctx, "/demo/events", 2, time.Hour); err != nil {
		t.Fatal(err)
	}
	if d := must(c.DescribeStream(ctx, "/demo/events")); d.Shards != 2 || d.Retention != time.Hour {
		t.Fatalf("describe %+v", d)
	}
	var in []zerohop.RecordInput
	for i := 0; i < 10; i++ {
		in = append(in, zerohop.RecordInput{Data: []byte(fmt.Sprintf("r%d", i)), Shard: 1, ShardSet: true})
	}
	in = append(in, zerohop.RecordInput{Data: []byte("bad shard"), Shard: 9, ShardSet: true})
	res := must(c.PutRecords(ctx, "/demo/events", in))
	for i, r := range res[:10] {
		if r.Err != nil || r.Shard != 1 {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
	if res[10].Err == nil {
		t.Fatal("a record for a shard that does not exist was put")
	}
	from := must(c.Seek(ctx, "/demo/events", 1, zerohop.SeekTo{Type: zerohop.SeekEarliest}))
	recs, next, err := c.GetRecords(ctx, "/demo/events", 1, from, 4)
	if err != nil || len(recs) != 4 || string(recs[0].Data) != "r0" || next != recs[3].Sequence+1 {
		t.Fatalf("first read: %d records, next %d, %v", len(recs), next, err)
	}
	recs, _, err = c.GetRecords(ctx, "/demo/events", 1, next, 0)
	if err != nil || len(recs) != 6 || string(recs[5].Data) != "r9" || recs[0].Arrival.IsZero() {
		t.Fatalf("second read: %d records, %v", len(recs), err)
	}
	at := must(c.Seek(ctx, "/demo/events", 1, zerohop.SeekTo{Type: zerohop.SeekSequence, Sequence: recs[2].Sequence}))
	if at != recs[2].Sequence {
		t.Fatalf("seek to a sequence gave %d", at)
	}
	latest := must(c.Seek(ctx, "/demo/events", 1, zerohop.SeekTo{Type: zerohop.SeekLatest}))
	if recs, _, _ := c.GetRecords(ctx, "/demo/events", 1, latest, 0); len(recs) != 0 {
		t.Fatalf("%d records after the latest", len(recs))
	}
	if err := c.DeleteStream(ctx, "/demo/events"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DescribeStream(ctx, "/demo/events"); !errors.Is(err, zerohop.ErrNotFound) {
		t.Fatalf("a deleted stream: %v", err)
	}
}

func TestErrorsMatchWithErrorsIsAndCarryTheDaemonsMessage(t *testing.T) {
	d := startDaemon(t)
	c := connect(t, d, "rw-key")
	ro := connect(t, d, "ro-key")
	ctx := context.Background()
	_, err := c.Get(ctx, "/demo/missing")
	var zerr *zerohop.Error
	if !errors.Is(err, zerohop.ErrNotFound) || !errors.As(err, &zerr) || zerr.Code != zerohop.CodeNotFound ||
		zerr.Op != "get" || zerr.Path != "/demo/missing" || !strings.Contains(err.Error(), "/demo/missing") {
		t.Fatalf("a missing object: %#v", err)
	}
	if _, err := ro.Put(ctx, "/demo/x", []byte("x"), nil); !errors.Is(err, zerohop.ErrPermissionDenied) ||
		!strings.Contains(err.Error(), "does not grant write") {
		t.Fatalf("a put with a read-only key: %v", err)
	}
	if _, err := c.Stat(ctx, "relative/path"); !errors.Is(err, zerohop.ErrInvalidArgument) {
		t.Fatalf("a bad path: %v", err)
	}
	if _, err := zerohop.Connect(&zerohop.Options{SocketPath: d.socket, AccessKey: "wrong"}); err == nil ||
		!strings.Contains(err.Error(), "unknown access key") {
		t.Fatalf("a wrong key: %v", err)
	}
	if _, err := zerohop.Connect(&zerohop.Options{SocketPath: "/nonexistent/zh.sock"}); !errors.Is(err, zerohop.ErrUnavailable) {
		t.Fatalf("no daemon: %v", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Stat(canceled, "/demo"); !errors.Is(err, context.Canceled) {
		t.Fatalf("a canceled context: %v", err)
	}
	closed := connect(t, d, "rw-key")
	closed.Close()
	if _, err := closed.Stat(ctx, "/demo"); !errors.Is(err, zerohop.ErrFailedPrecondition) || closed.Close() != nil {
		t.Fatalf("a call on a closed client: %v", err)
	}
}

func TestAContextDeadlineBoundsACallToADaemonThatDoesNotAnswer(t *testing.T) {
	d := startDaemon(t)
	c := connect(t, d, "rw-key")
	must(c.Put(context.Background(), "/demo/x", []byte("x"), nil))
	d.cmd.Process.Signal(syscall.SIGSTOP)
	waitStopped(t, d.cmd.Process.Pid)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Stat(ctx, "/demo/x")
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, zerohop.ErrDeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("a call past its deadline: %v after %v", err, time.Since(start))
	}
	d.cmd.Process.Signal(syscall.SIGCONT)
	// The deadline was this call's only: the next waits as long as it needs.
	if st, err := c.Stat(context.Background(), "/demo/x"); err != nil || st.Size != 1 {
		t.Fatalf("after the daemon continued: %+v, %v", st, err)
	}
}

// waitStopped waits until every thread of pid has stopped.
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	for i := 0; i < 1000; i++ {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		stopped := len(tasks) > 0
		for _, task := range tasks {
			stat, _ := os.ReadFile(task)
			stopped = stopped && bytes.Contains(stat, []byte(") T "))
		}
		if stopped {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatal("zerohopd did not stop")
}

func TestManyGoroutinesShareOneClient(t *testing.T) {
	c := connect(t, startDaemon(t), "rw-key")
	ctx := context.Background()
	const goroutines, each = 32, 50
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				key := fmt.Sprintf("/demo/g%d-k%d", g, i)
				if _, err := c.PutItem(ctx, key, zerohop.Attrs{"g": g, "i": i}, ""); err != nil {
					errs <- err
					return
				}
				if _, err := c.UpdateItem(ctx, "/demo/counter", "n = if_not_exists(n, 0) + 1", nil); err != nil {
					errs <- err
					return
				}
				got, err := c.GetItem(ctx, key)
				if err != nil || got["g"] != int64(g) || got["i"] != int64(i) {
					errs <- fmt.Errorf("%s: %v, %v", key, got, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := must(c.GetItem(ctx, "/demo/counter")); got["n"] != int64(goroutines*each) {
		t.Fatalf("the counter is %v, not %d", got["n"], goroutines*each)
	}
}

func TestADaemonRestartDuringUseIsSurvived(t *testing.T) {
	d := startDaemon(t)
	c := connect(t, d, "rw-key")
	ctx := context.Background()
	must(c.Put(ctx, "/demo/kept", []byte("before"), nil))
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// Readers keep reading while the daemon is killed and started again: reads are safe to
	// repeat, so none of them fails.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads sync.Map
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			n := 0
			for {
				select {
				case <-stop:
					reads.Store(g, n)
					return
				default:
				}
				got, err := c.Get(ctx, "/demo/kept")
				if err != nil || string(got) != "before" {
					errs <- fmt.Errorf("a read during the restart: %q, %v", got, err)
					return
				}
				n++
			}
		}(g)
	}
	time.Sleep(50 * time.Millisecond)
	d.stop(syscall.SIGKILL)
	d.start(t)
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	must(c.Put(ctx, "/demo/after", []byte("after"), nil))
	if got := must(c.Get(ctx, "/demo/after")); string(got) != "after" {
		t.Fatalf("a put after the restart reads back %q", got)
	}
}
