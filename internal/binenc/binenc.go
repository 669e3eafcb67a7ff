// Package binenc writes and reads the little-endian binary state of tsrep's
// stages (window buffers, learner state) for checkpoints. Writer and Reader
// keep the first error, so a codec reads as a flat list of fields and checks
// once at the end. Lengths are bounded on read so a corrupt or hostile file
// cannot make the reader allocate without limit.
package binenc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// MaxLen bounds any single length read from state (elements, not bytes).
const MaxLen = 1 << 28

// ErrCorrupt is wrapped by every decoding error.
var ErrCorrupt = errors.New("corrupt state")

// Writer appends values to a byte slice.
type Writer struct{ B []byte }

// U8 appends a byte.
func (w *Writer) U8(v uint8) { w.B = append(w.B, v) }

// Bool appends a bool.
func (w *Writer) Bool(v bool) {
	if v {
		w.B = append(w.B, 1)
	} else {
		w.B = append(w.B, 0)
	}
}

// U32 appends a uint32.
func (w *Writer) U32(v uint32) { w.B = binary.LittleEndian.AppendUint32(w.B, v) }

// U64 appends a uint64.
func (w *Writer) U64(v uint64) { w.B = binary.LittleEndian.AppendUint64(w.B, v) }

// I64 appends an int64.
func (w *Writer) I64(v int64) { w.U64(uint64(v)) }

// F64 appends a float64.
func (w *Writer) F64(v float64) { w.U64(math.Float64bits(v)) }

// Len appends a length.
func (w *Writer) Len(n int) { w.U32(uint32(n)) }

// String appends a length-prefixed string.
func (w *Writer) String(s string) {
	w.Len(len(s))
	w.B = append(w.B, s...)
}

// Bytes appends length-prefixed bytes.
func (w *Writer) Bytes(b []byte) {
	w.Len(len(b))
	w.B = append(w.B, b...)
}

// F64s appends a length-prefixed []float64.
func (w *Writer) F64s(v []float64) {
	w.Len(len(v))
	// Grown once and filled in place: an append per value was most of the
	// time a checkpoint took to encode.
	n := len(w.B)
	w.grow(8 * len(v))
	w.B = w.B[:n+8*len(v)]
	b := w.B[n:]
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(x))
	}
}

// grow makes room for n more bytes, at least doubling the buffer when it
// must move (append grows large slices by a quarter, and a checkpoint of
// a few hundred MB written into an unsized buffer was copied many times
// over).
func (w *Writer) grow(n int) {
	if cap(w.B)-len(w.B) >= n {
		return
	}
	b := make([]byte, len(w.B), max(2*cap(w.B), len(w.B)+n))
	copy(b, w.B)
	w.B = b
}

// Bools appends a length-prefixed []bool, one byte each.
func (w *Writer) Bools(v []bool) {
	w.Len(len(v))
	for _, x := range v {
		w.Bool(x)
	}
}

// Reader reads values written by Writer.
type Reader struct {
	B   []byte
	err error
}

// NewReader reads b.
func NewReader(b []byte) *Reader { return &Reader{B: b} }

// Err is the first error met, wrapping ErrCorrupt.
func (r *Reader) Err() error { return r.err }

// Fail records an error found by the caller (a value out of range).
func (r *Reader) Fail(format string, a ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, a...))
	}
}

func (r *Reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.B) {
		r.Fail("truncated: want %d bytes, %d left", n, len(r.B))
		return nil
	}
	b := r.B[:n]
	r.B = r.B[n:]
	return b
}

// U8 reads a byte.
func (r *Reader) U8() uint8 {
	b := r.take(1)
	if b == nil {
		return 0
	}
	return b[0]
}

// Bool reads a bool.
func (r *Reader) Bool() bool {
	switch v := r.U8(); v {
	case 0:
		return false
	case 1:
		return true
	default:
		r.Fail("bool byte %d", v)
		return false
	}
}

// U32 reads a uint32.
func (r *Reader) U32() uint32 {
	b := r.take(4)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(b)
}

// U64 reads a uint64.
func (r *Reader) U64() uint64 {
	b := r.take(8)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

// I64 reads an int64.
func (r *Reader) I64() int64 { return int64(r.U64()) }

// F64 reads a float64.
func (r *Reader) F64() float64 { return math.Float64frombits(r.U64()) }

// Len reads a length and checks it against max (and MaxLen) and against the
// bytes left, given each element takes at least elemSize bytes.
func (r *Reader) Len(max, elemSize int) int {
	n := int(r.U32())
	if max <= 0 || max > MaxLen {
		max = MaxLen
	}
	if r.err == nil && (n > max || n*elemSize > len(r.B)) {
		r.Fail("length %d out of range (max %d, %d bytes left)", n, max, len(r.B))
		return 0
	}
	return n
}

// String reads a length-prefixed string of at most max bytes.
func (r *Reader) String(max int) string { return string(r.take(r.Len(max, 1))) }

// Bytes reads length-prefixed bytes (aliasing the input).
func (r *Reader) Bytes(max int) []byte { return r.take(r.Len(max, 1)) }

// F64s reads a length-prefixed []float64 of at most max elements into dst
// (reused when big enough).
func (r *Reader) F64s(dst []float64, max int) []float64 {
	n := r.Len(max, 8)
	if r.err != nil {
		return dst[:0]
	}
	if cap(dst) < n {
		dst = make([]float64, n)
	}
	dst = dst[:n]
	b := r.take(8 * n)
	if r.err != nil {
		return dst[:0]
	}
	for i := range dst {
		dst[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return dst
}

// Bools reads a length-prefixed []bool of at most max elements into dst.
func (r *Reader) Bools(dst []bool, max int) []bool {
	n := r.Len(max, 1)
	if r.err != nil {
		return dst[:0]
	}
	if cap(dst) < n {
		dst = make([]bool, n)
	}
	dst = dst[:n]
	for i := range dst {
		dst[i] = r.Bool()
	}
	return dst
}

// Done fails if bytes are left over.
func (r *Reader) Done() error {
	if r.err == nil && len(r.B) != 0 {
		r.Fail("%d bytes left over", len(r.B))
	}
	return r.err
}
