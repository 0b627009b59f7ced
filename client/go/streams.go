package zerohop

/*
#include <stdlib.h>
#include <zerohop/zerohop.h>
*/
import "C"

import (
	"context"
	"time"
	"unsafe"
)

// CreateStream makes a stream of shards shards keeping records for retention (0: the
// daemon's default).
func (c *Client) CreateStream(ctx context.Context, path string, shards int, retention time.Duration) error {
	var s cstrings
	defer s.free()
	return c.call(ctx, "create_stream", path, func(h *C.zh_client) C.int {
		return C.zh_create_stream(h, s.of(path), C.uint32_t(shards), C.int64_t(retention/time.Second))
	})
}

// StreamDescription is a stream's shape.
type StreamDescription struct {
	Shards    int
	Retention time.Duration
}

// DescribeStream gives a stream's shard count and retention.
func (c *Client) DescribeStream(ctx context.Context, path string) (StreamDescription, error) {
	var s cstrings
	defer s.free()
	var shards C.uint32_t
	var retention C.int64_t
	err := c.call(ctx, "describe_stream", path, func(h *C.zh_client) C.int {
		return C.zh_describe_stream(h, s.of(path), &shards, &retention)
	})
	return StreamDescription{Shards: int(shards), Retention: time.Duration(retention) * time.Second}, err
}

// DeleteStream removes a stream and its records.
func (c *Client) DeleteStream(ctx context.Context, path string) error {
	var s cstrings
	defer s.free()
	return c.call(ctx, "delete_stream", path, func(h *C.zh_client) C.int { return C.zh_delete_stream(h, s.of(path)) })
}

// RecordInput is a record to add. Its shard is chosen by PartitionKey when given, else
// Shard when ShardSet, else round robin.
type RecordInput struct {
	Data         []byte
	PartitionKey string
	Shard        int
	ShardSet     bool
}

// RecordResult is where one record went, or why it did not.
type RecordResult struct {
	Shard    int
	Sequence uint64
	Err      error
}

// PutRecords adds records to a stream in one request; each gets its own result. The
// returned error is for the request as a whole.
func (c *Client) PutRecords(ctx context.Context, path string, records []RecordInput) ([]RecordResult, error) {
	n := len(records)
	if n == 0 {
		return nil, nil
	}
	var s cstrings
	defer s.free()
	// The inputs point at the records' bytes: C memory, since the array itself goes to C.
	in := unsafe.Slice((*C.zh_record_input)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof(C.zh_record_input{})))), n)
	defer C.free(unsafe.Pointer(&in[0]))
	var data []unsafe.Pointer
	defer func() {
		for _, p := range data {
			C.free(p)
		}
	}()
	for i, r := range records {
		if len(r.Data) > 0 {
			p := C.CBytes(r.Data)
			data = append(data, p)
			in[i].data = p
		}
		in[i].size = C.size_t(len(r.Data))
		in[i].shard = -1
		if r.ShardSet {
			in[i].shard = C.int32_t(r.Shard)
		}
		in[i].partition_key = s.orNil(r.PartitionKey)
	}
	out := make([]C.zh_record_result, n)
	err := c.call(ctx, "put_records", path, func(h *C.zh_client) C.int {
		return C.zh_put_records(h, s.of(path), &in[0], C.size_t(n), &out[0])
	})
	if err != nil {
		return nil, err
	}
	results := make([]RecordResult, n)
	for i, r := range out {
		results[i] = RecordResult{Shard: int(r.shard), Sequence: uint64(r.sequence)}
		if r.code != C.ZH_OK {
			results[i].Err = newError("put_record", path, Code(r.code), "not put ("+kinds[Code(r.code)].Error()+")")
		}
	}
	return results, nil
}

// SeekType says where Seek looks.
type SeekType int

const (
	SeekEarliest SeekType = C.ZH_SEEK_EARLIEST // the oldest record kept
	SeekLatest   SeekType = C.ZH_SEEK_LATEST   // after the newest: only records still to come
	SeekSequence SeekType = C.ZH_SEEK_SEQUENCE // the record with this sequence number
	SeekTime     SeekType = C.ZH_SEEK_TIME     // the first record that arrived at or after a time
)

// SeekTo says where to start reading a shard.
type SeekTo struct {
	Type     SeekType
	Sequence uint64    // SeekSequence
	Time     time.Time // SeekTime
}

// Seek gives the sequence number to read a shard from.
func (c *Client) Seek(ctx context.Context, path string, shard int, to SeekTo) (uint64, error) {
	var s cstrings
	defer s.free()
	var next C.uint64_t
	var secs, nsecs int64
	if to.Type == SeekTime {
		secs, nsecs = to.Time.Unix(), int64(to.Time.Nanosecond())
	}
	err := c.call(ctx, "seek", path, func(h *C.zh_client) C.int {
		return C.zh_seek(h, s.of(path), C.uint32_t(shard), C.int(to.Type), C.uint64_t(to.Sequence), C.int64_t(secs),
			C.int32_t(nsecs), &next)
	})
	return uint64(next), err
}

// Record is a record read from a shard.
type Record struct {
	Shard        int
	Sequence     uint64
	Arrival      time.Time
	Data         []byte
	PartitionKey string
}

// GetRecords reads up to limit records (0: 1000) of a shard from sequence on; next is
// where the following read continues.
func (c *Client) GetRecords(ctx context.Context, path string, shard int, sequence uint64, limit int) (records []Record, next uint64, err error) {
	var s cstrings
	defer s.free()
	var out *C.zh_records
	err = c.call(ctx, "get_records", path, func(h *C.zh_client) C.int {
		return C.zh_get_records(h, s.of(path), C.uint32_t(shard), C.uint64_t(sequence), C.uint32_t(limit), 0, &out)
	})
	if err != nil {
		return nil, sequence, err
	}
	defer C.zh_records_free(out)
	n := int(C.zh_records_count(out))
	records = make([]Record, n)
	for i := range records {
		var r C.zh_record
		C.zh_records_get(out, C.size_t(i), &r)
		records[i] = Record{
			Shard:    int(r.shard),
			Sequence: uint64(r.sequence),
			Arrival:  time.Unix(int64(r.arrival_secs), int64(r.arrival_nsecs)),
			Data:     C.GoBytes(r.data, C.int(r.size)),
		}
		if r.partition_key != nil {
			records[i].PartitionKey = C.GoString(r.partition_key)
		}
	}
	return records, uint64(C.zh_records_next_sequence(out)), nil
}
