package zerohop

import (
	"context"
	"errors"
	"fmt"
)

// Code is the kind of a failure: the codes of absl::Status and gRPC.
type Code int

const (
	CodeOK                 Code = 0
	CodeCanceled           Code = 1
	CodeUnknown            Code = 2
	CodeInvalidArgument    Code = 3
	CodeDeadlineExceeded   Code = 4
	CodeNotFound           Code = 5
	CodeAlreadyExists      Code = 6
	CodePermissionDenied   Code = 7
	CodeResourceExhausted  Code = 8
	CodeFailedPrecondition Code = 9
	CodeAborted            Code = 10
	CodeOutOfRange         Code = 11
	CodeUnimplemented      Code = 12
	CodeInternal           Code = 13
	CodeUnavailable        Code = 14
	CodeDataLoss           Code = 15
	CodeUnauthenticated    Code = 16
)

// The kinds of failure, for errors.Is. ErrConditionFailed is a condition (of a put, an
// update or a delete) that did not hold.
var (
	ErrCanceled           = errors.New("zerohop: canceled")
	ErrUnknown            = errors.New("zerohop: unknown error")
	ErrInvalidArgument    = errors.New("zerohop: invalid argument")
	ErrDeadlineExceeded   = errors.New("zerohop: deadline exceeded")
	ErrNotFound           = errors.New("zerohop: not found")
	ErrAlreadyExists      = errors.New("zerohop: already exists")
	ErrPermissionDenied   = errors.New("zerohop: permission denied")
	ErrResourceExhausted  = errors.New("zerohop: resource exhausted")
	ErrConditionFailed    = errors.New("zerohop: condition failed (failed precondition)")
	ErrAborted            = errors.New("zerohop: aborted")
	ErrOutOfRange         = errors.New("zerohop: out of range")
	ErrUnimplemented      = errors.New("zerohop: unimplemented")
	ErrInternal           = errors.New("zerohop: internal error")
	ErrUnavailable        = errors.New("zerohop: unavailable")
	ErrDataLoss           = errors.New("zerohop: data loss")
	ErrUnauthenticated    = errors.New("zerohop: unauthenticated")
	ErrFailedPrecondition = ErrConditionFailed
)

var kinds = map[Code]error{
	CodeCanceled:           ErrCanceled,
	CodeUnknown:            ErrUnknown,
	CodeInvalidArgument:    ErrInvalidArgument,
	CodeDeadlineExceeded:   ErrDeadlineExceeded,
	CodeNotFound:           ErrNotFound,
	CodeAlreadyExists:      ErrAlreadyExists,
	CodePermissionDenied:   ErrPermissionDenied,
	CodeResourceExhausted:  ErrResourceExhausted,
	CodeFailedPrecondition: ErrConditionFailed,
	CodeAborted:            ErrAborted,
	CodeOutOfRange:         ErrOutOfRange,
	CodeUnimplemented:      ErrUnimplemented,
	CodeInternal:           ErrInternal,
	CodeUnavailable:        ErrUnavailable,
	CodeDataLoss:           ErrDataLoss,
	CodeUnauthenticated:    ErrUnauthenticated,
}

// Error is a failed call: the operation, its path, the kind and the daemon's message.
type Error struct {
	Op      string
	Path    string
	Code    Code
	Message string
}

func newError(op, path string, code Code, message string) *Error {
	return &Error{Op: op, Path: path, Code: code, Message: message}
}

func (e *Error) Error() string {
	if e.Path != "" {
		return fmt.Sprintf("zerohop %s %s: %s", e.Op, e.Path, e.Message)
	}
	return fmt.Sprintf("zerohop %s: %s", e.Op, e.Message)
}

// Is matches the kind's Err* value; a deadline also matches context.DeadlineExceeded, so
// a context's deadline reads the same whether it passed before or during the call.
func (e *Error) Is(target error) bool {
	if target == context.DeadlineExceeded {
		return e.Code == CodeDeadlineExceeded
	}
	kind, ok := kinds[e.Code]
	return ok && kind == target
}
