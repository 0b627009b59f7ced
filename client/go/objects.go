package zerohop

/*
#include <stdlib.h>
#include <zerohop/zerohop.h>
*/
import "C"

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"time"
	"unsafe"
)

// Type is what a path names.
type Type int

const (
	TypeObject    Type = C.ZH_TYPE_OBJECT
	TypeDirectory Type = C.ZH_TYPE_DIRECTORY
	TypeStream    Type = C.ZH_TYPE_STREAM
	TypeSymlink   Type = C.ZH_TYPE_SYMLINK
	TypeShard     Type = C.ZH_TYPE_SHARD
	TypeSpecial   Type = C.ZH_TYPE_SPECIAL
)

// Info is the metadata of an object, an item, a directory or a stream.
type Info struct {
	Type         Type
	Mode         os.FileMode // permission bits
	UID, GID     uint32
	ID           uint64
	Size         int64
	ModTime      time.Time
	ChangeTime   time.Time
	AccessTime   time.Time // set at creation and by set_metadata; reads do not move it
	LastSequence uint64    // of a stream's shard
	Subdirs      uint64    // of a directory: how many directories and streams it holds
}

func infoOf(i *C.zh_info) Info {
	return Info{
		Type:         Type(i._type),
		Mode:         os.FileMode(i.mode & 0o7777),
		UID:          uint32(i.uid),
		GID:          uint32(i.gid),
		ID:           uint64(i.id),
		Size:         int64(i.size),
		ModTime:      time.Unix(int64(i.mtime_secs), int64(i.mtime_nsecs)),
		ChangeTime:   time.Unix(int64(i.ctime_secs), int64(i.ctime_nsecs)),
		AccessTime:   time.Unix(int64(i.atime_secs), int64(i.atime_nsecs)),
		LastSequence: uint64(i.last_sequence),
		Subdirs:      uint64(i.subdirs),
	}
}

// bytesPtr is the address of b's first byte for C (nil when empty). The C ABI reads it
// during the call only.
func bytesPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// Stat gives the metadata of path.
func (c *Client) Stat(ctx context.Context, path string) (Info, error) {
	var s cstrings
	defer s.free()
	var out C.zh_info
	err := c.call(ctx, "stat", path, func(h *C.zh_client) C.int { return C.zh_stat(h, s.of(path), &out) })
	return infoOf(&out), err
}

// Entry is one name of a listing.
type Entry struct {
	Name string
	Info Info
}

// ListOptions narrow a listing; nil lists from the start.
type ListOptions struct {
	Prefix string // only names that start with it
	Marker string // continue after this name (a page's NextMarker)
	Limit  int    // at most this many (default 1000)
}

// ListPage is one page of a listing.
type ListPage struct {
	Entries    []Entry
	NextMarker string // where the next page starts
	Truncated  bool   // more entries follow
}

// List lists a directory, a page at a time; "/" lists the containers this key can read.
func (c *Client) List(ctx context.Context, dir string, opts *ListOptions) (ListPage, error) {
	if opts == nil {
		opts = &ListOptions{}
	}
	var s cstrings
	defer s.free()
	var l *C.zh_list
	err := c.call(ctx, "list", dir, func(h *C.zh_client) C.int {
		return C.zh_list_dir(h, s.of(dir), s.orNil(opts.Prefix), s.orNil(opts.Marker), C.uint32_t(opts.Limit), &l)
	})
	if err != nil {
		return ListPage{}, err
	}
	defer C.zh_list_free(l)
	n := int(C.zh_list_count(l))
	page := ListPage{
		Entries:    make([]Entry, n),
		NextMarker: C.GoString(C.zh_list_next_marker(l)),
		Truncated:  C.zh_list_truncated(l) != 0,
	}
	for i := range page.Entries {
		page.Entries[i] = Entry{Name: C.GoString(C.zh_list_name(l, C.size_t(i))), Info: infoOf(C.zh_list_info(l, C.size_t(i)))}
	}
	return page, nil
}

// Mkdir makes a directory with the permission bits mode.
func (c *Client) Mkdir(ctx context.Context, path string, mode os.FileMode) error {
	var s cstrings
	defer s.free()
	return c.call(ctx, "mkdir", path, func(h *C.zh_client) C.int { return C.zh_mkdir(h, s.of(path), C.uint32_t(mode.Perm())) })
}

// Rmdir removes an empty directory.
func (c *Client) Rmdir(ctx context.Context, path string) error {
	var s cstrings
	defer s.free()
	return c.call(ctx, "rmdir", path, func(h *C.zh_client) C.int { return C.zh_rmdir(h, s.of(path)) })
}

// Rename moves from to to, atomically, replacing what to names.
func (c *Client) Rename(ctx context.Context, from, to string) error {
	return c.rename(ctx, from, to, 0)
}

// RenameNoReplace moves from to to unless to exists (then ErrAlreadyExists).
func (c *Client) RenameNoReplace(ctx context.Context, from, to string) error {
	return c.rename(ctx, from, to, 1)
}

func (c *Client) rename(ctx context.Context, from, to string, noReplace C.int) error {
	var s cstrings
	defer s.free()
	return c.call(ctx, "rename", from, func(h *C.zh_client) C.int { return C.zh_rename(h, s.of(from), s.of(to), noReplace) })
}

// Symlink makes path a symbolic link to target.
func (c *Client) Symlink(ctx context.Context, path, target string) error {
	var s cstrings
	defer s.free()
	return c.call(ctx, "symlink", path, func(h *C.zh_client) C.int { return C.zh_symlink(h, s.of(path), s.of(target)) })
}

// Readlink gives a symbolic link's target.
func (c *Client) Readlink(ctx context.Context, path string) (string, error) {
	var s cstrings
	defer s.free()
	var target *C.char
	err := c.call(ctx, "readlink", path, func(h *C.zh_client) C.int { return C.zh_readlink(h, s.of(path), &target) })
	if err != nil {
		return "", err
	}
	defer C.zh_free(unsafe.Pointer(target))
	return C.GoString(target), nil
}

// Delete removes an object, an item or a symbolic link.
func (c *Client) Delete(ctx context.Context, path string) error {
	return c.DeleteIf(ctx, path, "")
}

// DeleteIf removes path if condition (an expression, docs/EXPRESSIONS.md) holds for it,
// else fails with ErrConditionFailed; "" is no condition.
func (c *Client) DeleteIf(ctx context.Context, path, condition string) error {
	var s cstrings
	defer s.free()
	return c.call(ctx, "delete", path, func(h *C.zh_client) C.int { return C.zh_delete(h, s.of(path), s.orNil(condition)) })
}

// ---- objects ---------------------------------------------------------------------------

// Get reads a whole object.
func (c *Client) Get(ctx context.Context, path string) ([]byte, error) {
	return c.GetRange(ctx, path, 0, -1)
}

// GetRange reads length bytes at offset (-1: to the end); fewer where the object ends.
func (c *Client) GetRange(ctx context.Context, path string, offset, length int64) ([]byte, error) {
	var s cstrings
	defer s.free()
	var data unsafe.Pointer
	var size C.size_t
	err := c.call(ctx, "get", path, func(h *C.zh_client) C.int {
		return C.zh_get_copy(h, s.of(path), C.uint64_t(offset), toEnd(length), &data, &size)
	})
	if err != nil {
		return nil, err
	}
	defer C.zh_free(data)
	return C.GoBytes(data, C.int(size)), nil
}

func toEnd(length int64) C.uint64_t {
	if length < 0 {
		return C.ZH_TO_END
	}
	return C.uint64_t(length)
}

// View is a get's bytes in place in the daemon's shared region: no copy. Bytes is valid
// until Release, which must be called (and the slice not used after it).
type View struct {
	v    *C.zh_view
	once sync.Once
}

// GetView reads length bytes at offset (-1: to the end) without copying them; at most half
// the daemon region per call (read larger objects in ranges or with a Reader).
func (c *Client) GetView(ctx context.Context, path string, offset, length int64) (*View, error) {
	var s cstrings
	defer s.free()
	var v *C.zh_view
	err := c.call(ctx, "get", path, func(h *C.zh_client) C.int {
		return C.zh_get(h, s.of(path), C.uint64_t(offset), toEnd(length), &v)
	})
	if err != nil {
		return nil, err
	}
	return &View{v: v}, nil
}

// Bytes are the view's bytes, in shared memory: read-only, valid until Release.
func (v *View) Bytes() []byte {
	n := int(C.zh_view_size(v.v))
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(C.zh_view_data(v.v)), n)
}

// Info is the object's metadata at the time of the get.
func (v *View) Info() Info { return infoOf(C.zh_view_info(v.v)) }

// Release gives the bytes back to the daemon. Releasing twice is harmless.
func (v *View) Release() {
	v.once.Do(func() { C.zh_view_release(v.v) })
}

// PutOptions go with a put; nil for none.
type PutOptions struct {
	Attrs     Attrs  // attributes stored with the object
	Condition string // the put happens only if this holds for what is there (ErrConditionFailed)
}

// Put replaces the object at path with data, atomically; objects of any size (large ones
// stream through the shared region).
func (c *Client) Put(ctx context.Context, path string, data []byte, opts *PutOptions) (Info, error) {
	if opts == nil {
		opts = &PutOptions{}
	}
	attrs, err := opts.Attrs.toC()
	if err != nil {
		return Info{}, newError("put", path, CodeInvalidArgument, err.Error())
	}
	defer C.zh_attrs_free(attrs)
	var s cstrings
	defer s.free()
	var out C.zh_info
	err = c.call(ctx, "put", path, func(h *C.zh_client) C.int {
		return C.zh_put(h, s.of(path), bytesPtr(data), C.size_t(len(data)), attrs, s.orNil(opts.Condition), &out)
	})
	return infoOf(&out), err
}

// WriteAt writes data into the object at offset (growing it as needed).
func (c *Client) WriteAt(ctx context.Context, path string, offset int64, data []byte) (Info, error) {
	var s cstrings
	defer s.free()
	var out C.zh_info
	err := c.call(ctx, "write", path, func(h *C.zh_client) C.int {
		return C.zh_write(h, s.of(path), C.uint64_t(offset), bytesPtr(data), C.size_t(len(data)), &out)
	})
	return infoOf(&out), err
}

// Append adds data at the end of the object (making it if absent), atomically: concurrent
// appends never interleave.
func (c *Client) Append(ctx context.Context, path string, data []byte) (Info, error) {
	var s cstrings
	defer s.free()
	var out C.zh_info
	err := c.call(ctx, "append", path, func(h *C.zh_client) C.int {
		return C.zh_append(h, s.of(path), bytesPtr(data), C.size_t(len(data)), &out)
	})
	return infoOf(&out), err
}

// Truncate sets the object's size.
func (c *Client) Truncate(ctx context.Context, path string, size int64) (Info, error) {
	var s cstrings
	defer s.free()
	var out C.zh_info
	err := c.call(ctx, "truncate", path, func(h *C.zh_client) C.int {
		return C.zh_truncate(h, s.of(path), C.uint64_t(size), &out)
	})
	return infoOf(&out), err
}

// ---- io.Reader and io.Writer -------------------------------------------------------------

// Reader reads an object as a file: io.Reader, io.ReaderAt, io.Seeker and io.WriterTo.
// Each read is one ranged get copied once, from the shared region into the caller's slice.
// Not for concurrent Read/Seek (ReadAt is).
type Reader struct {
	c      *Client
	ctx    context.Context
	path   string
	offset int64
}

// NewReader reads the object at path; ctx bounds every read.
func (c *Client) NewReader(ctx context.Context, path string) *Reader {
	return &Reader{c: c, ctx: ctx, path: path}
}

// chunk bounds one get: well under half of the smallest daemon region a session gets.
const chunk = 1 << 20

// ReadAt reads len(p) bytes at off; io.EOF with fewer where the object ends.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		want := len(p) - n
		if want > chunk {
			want = chunk
		}
		got, err := r.readOnce(p[n:n+want], off+int64(n))
		n += got
		if err != nil {
			return n, err
		}
		if got < want {
			return n, io.EOF
		}
	}
	return n, nil
}

func (r *Reader) readOnce(p []byte, off int64) (int, error) {
	var s cstrings
	defer s.free()
	n := 0
	err := r.c.call(r.ctx, "get", r.path, func(h *C.zh_client) C.int {
		var v *C.zh_view
		rc := C.zh_get(h, s.of(r.path), C.uint64_t(off), C.uint64_t(len(p)), &v)
		if rc == C.ZH_OK {
			if size := int(C.zh_view_size(v)); size > 0 {
				n = copy(p, unsafe.Slice((*byte)(C.zh_view_data(v)), size))
			}
			C.zh_view_release(v)
		}
		return rc
	})
	if errors.Is(err, ErrOutOfRange) {
		return 0, io.EOF
	}
	return n, err
}

// Read reads from the current offset.
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) > chunk {
		p = p[:chunk]
	}
	n, err := r.readOnce(p, r.offset)
	r.offset += int64(n)
	if err == nil && n == 0 {
		return 0, io.EOF
	}
	return n, err
}

// Seek sets the offset of the next Read (io.SeekEnd asks the object's size).
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += r.offset
	case io.SeekEnd:
		info, err := r.c.Stat(r.ctx, r.path)
		if err != nil {
			return r.offset, err
		}
		offset += info.Size
	}
	if offset < 0 {
		return r.offset, newError("seek", r.path, CodeInvalidArgument, "a negative offset")
	}
	r.offset = offset
	return offset, nil
}

// WriteTo copies the rest of the object to w, a chunk at a time.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	buf := make([]byte, chunk)
	var total int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// Writer makes an object from what is written to it: nothing is visible until Close puts
// it, atomically, replacing what was there (so a failed writer leaves the old object).
// The bytes are held in memory until then.
type Writer struct {
	c      *Client
	ctx    context.Context
	path   string
	opts   *PutOptions
	buf    bytes.Buffer
	closed bool
	info   Info
}

// NewWriter writes the object at path when closed; opts may be nil.
func (c *Client) NewWriter(ctx context.Context, path string, opts *PutOptions) *Writer {
	return &Writer{c: c, ctx: ctx, path: path, opts: opts}
}

func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, newError("write", w.path, CodeFailedPrecondition, "the writer is closed")
	}
	return w.buf.Write(p)
}

// ReadFrom takes everything r has.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	if w.closed {
		return 0, newError("write", w.path, CodeFailedPrecondition, "the writer is closed")
	}
	return w.buf.ReadFrom(r)
}

// Close puts the object. Closing again returns nil and puts nothing.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	info, err := w.c.Put(w.ctx, w.path, w.buf.Bytes(), w.opts)
	w.info = info
	w.buf = bytes.Buffer{}
	return err
}

// Info is the metadata of the object Close put.
func (w *Writer) Info() Info { return w.info }
