package zerohop

/*
#include <stdlib.h>
#include <zerohop/zerohop.h>
*/
import "C"

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"time"
	"unsafe"
)

// Attrs are an item's attributes. Values are bool, int64, float64, string, []byte,
// time.Time, []int64 or []float64 (gets return these); puts also take int, int32, uint32,
// float32 and the other sized integers that fit an int64.
type Attrs map[string]any

// toC builds the C map of a; the caller frees it (NULL for an empty map).
func (a Attrs) toC() (*C.zh_attrs, error) {
	if len(a) == 0 {
		return nil, nil
	}
	m := C.zh_attrs_new()
	names := make([]string, 0, len(a))
	for k := range a {
		names = append(names, k)
	}
	sort.Strings(names) // the first bad one is always the same
	for _, k := range names {
		if err := setC(m, k, a[k]); err != nil {
			C.zh_attrs_free(m)
			return nil, err
		}
	}
	return m, nil
}

func setC(m *C.zh_attrs, name string, v any) error {
	n := C.CString(name)
	defer C.free(unsafe.Pointer(n))
	var rc C.int
	switch x := v.(type) {
	case bool:
		b := C.int(0)
		if x {
			b = 1
		}
		rc = C.zh_attrs_set_bool(m, n, b)
	case int, int8, int16, int32, int64:
		rc = C.zh_attrs_set_int64(m, n, C.int64_t(reflect.ValueOf(x).Int()))
	case uint8, uint16, uint32: // (a uint64 may not fit an int64)
		rc = C.zh_attrs_set_int64(m, n, C.int64_t(reflect.ValueOf(x).Uint()))
	case float32, float64:
		rc = C.zh_attrs_set_double(m, n, C.double(reflect.ValueOf(x).Float()))
	case string:
		b := []byte(x)
		rc = C.zh_attrs_set_string(m, n, (*C.char)(bytesPtr(b)), C.size_t(len(b)))
	case []byte:
		rc = C.zh_attrs_set_blob(m, n, bytesPtr(x), C.size_t(len(x)))
	case time.Time:
		rc = C.zh_attrs_set_timestamp(m, n, C.int64_t(x.Unix()), C.int32_t(x.Nanosecond()))
	case []int64:
		var p *C.int64_t
		if len(x) > 0 {
			p = (*C.int64_t)(unsafe.Pointer(&x[0]))
		}
		rc = C.zh_attrs_set_int64_array(m, n, p, C.size_t(len(x)))
	case []float64:
		var p *C.double
		if len(x) > 0 {
			p = (*C.double)(unsafe.Pointer(&x[0]))
		}
		rc = C.zh_attrs_set_double_array(m, n, p, C.size_t(len(x)))
	default:
		return fmt.Errorf("attribute %s: a %T has no zerohop type (bool, int64, float64, string, []byte, time.Time, []int64, []float64)", name, v)
	}
	if rc != C.ZH_OK {
		return fmt.Errorf("attribute %s: %s", name, C.GoString(C.zh_last_error()))
	}
	return nil
}

// attrsOf converts a C map (which stays the caller's).
func attrsOf(m *C.zh_attrs) Attrs {
	count := int(C.zh_attrs_count(m))
	a := make(Attrs, count)
	for i := 0; i < count; i++ {
		n := C.zh_attrs_name(m, C.size_t(i))
		name := C.GoString(n)
		switch C.zh_attrs_type(m, n) {
		case C.ZH_BOOL:
			var v C.int
			C.zh_attrs_get_bool(m, n, &v)
			a[name] = v != 0
		case C.ZH_INT64:
			var v C.int64_t
			C.zh_attrs_get_int64(m, n, &v)
			a[name] = int64(v)
		case C.ZH_DOUBLE:
			var v C.double
			C.zh_attrs_get_double(m, n, &v)
			a[name] = float64(v)
		case C.ZH_STRING:
			var p *C.char
			var size C.size_t
			C.zh_attrs_get_string(m, n, &p, &size)
			a[name] = C.GoStringN(p, C.int(size))
		case C.ZH_BLOB:
			var p unsafe.Pointer
			var size C.size_t
			C.zh_attrs_get_blob(m, n, &p, &size)
			a[name] = C.GoBytes(p, C.int(size))
		case C.ZH_TIMESTAMP:
			var secs C.int64_t
			var nsecs C.int32_t
			C.zh_attrs_get_timestamp(m, n, &secs, &nsecs)
			a[name] = time.Unix(int64(secs), int64(nsecs))
		case C.ZH_INT64_ARRAY:
			var p *C.int64_t
			var count C.size_t
			C.zh_attrs_get_int64_array(m, n, &p, &count)
			a[name] = append([]int64{}, unsafe.Slice((*int64)(unsafe.Pointer(p)), int(count))...)
		case C.ZH_DOUBLE_ARRAY:
			var p *C.double
			var count C.size_t
			C.zh_attrs_get_double_array(m, n, &p, &count)
			a[name] = append([]float64{}, unsafe.Slice((*float64)(unsafe.Pointer(p)), int(count))...)
		}
	}
	return a
}

// namesOf gives C copies of names (kept in s) and their array (freed by the caller).
func namesOf(s *cstrings, names []string) (**C.char, func()) {
	if len(names) == 0 {
		return nil, func() {}
	}
	arr := (**C.char)(C.malloc(C.size_t(len(names)) * C.size_t(unsafe.Sizeof((*C.char)(nil)))))
	view := unsafe.Slice(arr, len(names))
	for i, n := range names {
		view[i] = s.of(n)
	}
	return arr, func() { C.free(unsafe.Pointer(arr)) }
}

// GetItem reads an item's attributes: those named (none: every user attribute; "**":
// the system ones too).
func (c *Client) GetItem(ctx context.Context, path string, names ...string) (Attrs, error) {
	var s cstrings
	defer s.free()
	arr, freeArr := namesOf(&s, names)
	defer freeArr()
	var out *C.zh_attrs
	err := c.call(ctx, "get_item", path, func(h *C.zh_client) C.int {
		return C.zh_get_item(h, s.of(path), arr, C.size_t(len(names)), &out)
	})
	if err != nil {
		return nil, err
	}
	defer C.zh_attrs_free(out)
	return attrsOf(out), nil
}

// PutItem replaces the item at path with attrs; condition ("" for none) must hold for
// what is there (else ErrConditionFailed).
func (c *Client) PutItem(ctx context.Context, path string, attrs Attrs, condition string) (Info, error) {
	m, err := attrs.toC()
	if err != nil {
		return Info{}, newError("put_item", path, CodeInvalidArgument, err.Error())
	}
	defer C.zh_attrs_free(m)
	var s cstrings
	defer s.free()
	var out C.zh_info
	err = c.call(ctx, "put_item", path, func(h *C.zh_client) C.int {
		return C.zh_put_item(h, s.of(path), m, s.orNil(condition), &out)
	})
	return infoOf(&out), err
}

// Item is one item of a scan or of PutItems.
type Item struct {
	Path  string // PutItems: the item's path; a scan: its name in the table
	Attrs Attrs
}

// PutItems puts many items in one request; each gets its own error (nil when put). The
// returned error is for the request as a whole.
func (c *Client) PutItems(ctx context.Context, items []Item) ([]error, error) {
	var s cstrings
	defer s.free()
	n := len(items)
	if n == 0 {
		return nil, nil
	}
	paths := unsafe.Slice((**C.char)(C.malloc(C.size_t(n)*C.size_t(unsafe.Sizeof((*C.char)(nil))))), n)
	defer C.free(unsafe.Pointer(&paths[0]))
	maps := unsafe.Slice((**C.zh_attrs)(C.malloc(C.size_t(n)*C.size_t(unsafe.Sizeof((*C.zh_attrs)(nil))))), n)
	defer C.free(unsafe.Pointer(&maps[0]))
	codes := make([]C.int, n)
	for i := range maps {
		maps[i] = nil
	}
	defer func() {
		for _, m := range maps {
			C.zh_attrs_free(m)
		}
	}()
	for i, it := range items {
		m, err := it.Attrs.toC()
		if err != nil {
			return nil, newError("put_items", it.Path, CodeInvalidArgument, err.Error())
		}
		maps[i] = m
		paths[i] = s.of(it.Path)
	}
	err := c.call(ctx, "put_items", "", func(h *C.zh_client) C.int {
		return C.zh_put_items(h, &paths[0], (**C.zh_attrs)(unsafe.Pointer(&maps[0])), C.size_t(n), &codes[0])
	})
	if err != nil {
		return nil, err
	}
	errs := make([]error, n)
	for i, code := range codes {
		if code != C.ZH_OK {
			errs[i] = newError("put_item", items[i].Path, Code(code), "not put ("+kinds[Code(code)].Error()+")")
		}
	}
	return errs, nil
}

// UpdateOptions go with an update; nil for none.
type UpdateOptions struct {
	Condition  string // the update happens only if this holds (else ErrConditionFailed) ...
	ElseUpdate string // ... unless this is given: then this one happens instead
}

// UpdateItem changes an item in place with an update expression ("hits = hits + 1;
// last = :now" style, docs/EXPRESSIONS.md), atomically; the item is made if absent.
func (c *Client) UpdateItem(ctx context.Context, path, update string, opts *UpdateOptions) (Info, error) {
	if opts == nil {
		opts = &UpdateOptions{}
	}
	var s cstrings
	defer s.free()
	var out C.zh_info
	err := c.call(ctx, "update_item", path, func(h *C.zh_client) C.int {
		return C.zh_update_item(h, s.of(path), s.of(update), s.orNil(opts.Condition), s.orNil(opts.ElseUpdate), &out)
	})
	return infoOf(&out), err
}

// DeleteItem removes an item if condition ("" for none) holds for it.
func (c *Client) DeleteItem(ctx context.Context, path, condition string) error {
	return c.DeleteIf(ctx, path, condition)
}

// ScanOptions shape a scan; nil scans every item.
type ScanOptions struct {
	Filter        string   // only items for which this holds
	Names         []string // the attributes to return (none: every user attribute)
	Marker        string   // continue after this item (a Scanner's Marker)
	PageSize      int      // items per request (default 1000)
	Segment       int      // scan segment Segment of TotalSegments (0 of 0 or 1: all)
	TotalSegments int
}

// Scanner walks the items of a table a page at a time, like bufio.Scanner:
//
//	sc := c.Scan(ctx, "/demo/cars", &zerohop.ScanOptions{Filter: "speed > 100"})
//	for sc.Next() {
//		use(sc.Item())
//	}
//	if err := sc.Err(); err != nil { ... }
type Scanner struct {
	c     *Client
	ctx   context.Context
	table string
	opts  ScanOptions
	page  []Item
	pos   int
	done  bool
	err   error
}

// Scan starts a scan of table.
func (c *Client) Scan(ctx context.Context, table string, opts *ScanOptions) *Scanner {
	sc := &Scanner{c: c, ctx: ctx, table: table, pos: -1}
	if opts != nil {
		sc.opts = *opts
	}
	return sc
}

// Next moves to the next item, fetching the next page when needed; false at the end or
// on an error (see Err).
func (sc *Scanner) Next() bool {
	for sc.pos+1 >= len(sc.page) {
		if sc.done || sc.err != nil {
			return false
		}
		sc.fetch()
	}
	sc.pos++
	return true
}

func (sc *Scanner) fetch() {
	var s cstrings
	defer s.free()
	arr, freeArr := namesOf(&s, sc.opts.Names)
	defer freeArr()
	total := sc.opts.TotalSegments
	if total == 0 {
		total = 1
	}
	in := C.zh_scan{
		filter:         s.orNil(sc.opts.Filter),
		names:          arr,
		name_count:     C.size_t(len(sc.opts.Names)),
		marker:         s.orNil(sc.opts.Marker),
		limit:          C.uint32_t(sc.opts.PageSize),
		segment:        C.uint32_t(sc.opts.Segment),
		total_segments: C.uint32_t(total),
	}
	var out *C.zh_items
	sc.err = sc.c.call(sc.ctx, "scan", sc.table, func(h *C.zh_client) C.int {
		return C.zh_get_items(h, s.of(sc.table), &in, &out)
	})
	if sc.err != nil {
		return
	}
	defer C.zh_items_free(out)
	n := int(C.zh_items_count(out))
	sc.page = make([]Item, n)
	for i := range sc.page {
		sc.page[i] = Item{Path: C.GoString(C.zh_items_name(out, C.size_t(i))), Attrs: attrsOf(C.zh_items_attrs(out, C.size_t(i)))}
	}
	sc.pos = -1
	sc.opts.Marker = C.GoString(C.zh_items_next_marker(out))
	sc.done = C.zh_items_done(out) != 0
}

// Item is the current item.
func (sc *Scanner) Item() Item { return sc.page[sc.pos] }

// Err is the error that ended the scan, nil at its end.
func (sc *Scanner) Err() error { return sc.err }

// Marker is where a scan continues after the current page (ScanOptions.Marker).
func (sc *Scanner) Marker() string { return sc.opts.Marker }

// All collects the remaining items.
func (sc *Scanner) All() ([]Item, error) {
	var items []Item
	for sc.Next() {
		items = append(items, sc.Item())
	}
	return items, sc.Err()
}
