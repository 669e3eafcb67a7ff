// Package ingest turns Kafka messages into points: the consumer group that
// reads topics with explicit commits, the line-protocol and JSON decoders,
// and the dead-letter writer for input that cannot be decoded.
package ingest

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// Point is one decoded point. Its byte slices alias the decoder's buffers
// and are valid only during the Handler call that receives it.
type Point struct {
	Measurement []byte
	// Tags are sorted by key and unescaped.
	Tags []Tag
	// Fields holds the numeric fields (floats, integers and booleans as 0/1).
	// String fields are skipped.
	Fields []Field
	// Time is the point's timestamp in Unix nanoseconds.
	Time int64
}

// Tag is one tag of a point.
type Tag struct{ Key, Value []byte }

// Field is one numeric field of a point.
type Field struct {
	Key   []byte
	Value float64
}

// Reason is the stable label of why input was rejected or skipped. It is the
// value of the dead-letter header and of the counters' reason label.
type Reason string

// The reasons a decoder or the windowing reports.
const (
	ReasonSyntax         Reason = "syntax"        // not valid line protocol / JSON
	ReasonEmpty          Reason = "empty_message" // a message with no content
	ReasonTooLarge       Reason = "message_too_large"
	ReasonNoNumericField Reason = "no_numeric_field"   // only string fields (skipped, not dead-lettered)
	ReasonNonFinite      Reason = "non_finite_value"   // NaN or ±Inf
	ReasonOutOfRange     Reason = "value_out_of_range" // a number float64/int64 cannot hold
	ReasonWrongType      Reason = "wrong_type"         // e.g. a JSON tag that is not a string
	ReasonBadTimestamp   Reason = "bad_timestamp"      // unparsable or out of range
	ReasonFuture         Reason = "timestamp_in_future"
	ReasonLate           Reason = "late"          // behind the allowed lateness
	ReasonSeriesCap      Reason = "series_cap"    // a new series past window.max_series
	ReasonSinkRejected   Reason = "sink_rejected" // the sink refused a result (4xx)
	// ReasonPrecision is a timestamp that only makes sense in another
	// precision than kafka.precision (see Options.PrecisionTolerance).
	ReasonPrecision     Reason = "precision"
	ReasonTooManyTags   Reason = "too_many_tags"       // more than kafka.max_tags tags in a point
	ReasonTooManyFields Reason = "too_many_fields"     // more than kafka.max_fields fields in a point
	ReasonKeyTooLong    Reason = "series_key_too_long" // a series key longer than MaxSeriesKeyBytes
	// ReasonInvalidName is a measurement, tag key, tag value or field key
	// InfluxDB cannot store (empty, not UTF-8, a control character, a
	// trailing backslash): JSON can carry them, line protocol cannot.
	ReasonInvalidName Reason = "invalid_name"
)

// DeadLetters reports whether input rejected for r goes to the dead-letter
// topic. Skipped input (no numeric field) and capped series are only
// counted: they are not malformed, and dead-lettering them would copy a
// whole cardinality burst into the dead-letter topic.
func (r Reason) DeadLetters() bool {
	switch r {
	case ReasonNoNumericField, ReasonSeriesCap, ReasonLate:
		return false
	}
	return true
}

// Handler receives what a decoder finds in a message.
type Handler interface {
	// Point is called for each decoded point with at least one numeric field.
	Point(p *Point)
	// Bad is called for each part of the message that could not be used:
	// raw is the offending line or object (aliasing the message), reason its
	// label, err the detail.
	Bad(raw []byte, reason Reason, err error)
}

// Decoder decodes one Kafka message value. msgTime (Unix ns) is the
// message's timestamp, used for points that carry none. Implementations
// reuse their buffers and are not safe for concurrent use.
type Decoder interface {
	Decode(value []byte, msgTime int64, h Handler)
}

// Options configure the decoders.
type Options struct {
	// Precision is the unit of integer timestamps in nanoseconds (1, 1e3,
	// 1e6 or 1e9).
	Precision int64
	// MaxFuture rejects points more than this many nanoseconds ahead of
	// their message's timestamp; 0 disables the check.
	MaxFuture int64
	// MaxMessageBytes rejects larger messages whole; 0 means no limit.
	MaxMessageBytes int
	// MaxTags and MaxFields cap one point's tags and fields (0:
	// DefaultMaxTags, DefaultMaxFields); a point with more is reported as
	// ReasonTooManyTags / ReasonTooManyFields. With them and
	// MaxSeriesKeyBytes, the work per message is O(n log n) in its size.
	MaxTags   int
	MaxFields int
	// PrecisionTolerance (ns) is how far a point's timestamp may be from
	// its message's timestamp before the decoder asks whether another
	// precision explains it (see Options.timestamp); 0 means
	// DefaultPrecisionTolerance, a negative value turns the check off.
	PrecisionTolerance int64
}

// NewDecoder returns the decoder for a kafka.format value.
func NewDecoder(format string, o Options) (Decoder, error) {
	switch format {
	case "influx":
		return NewLineProtocol(o), nil
	case "json":
		return NewJSON(o), nil
	}
	return nil, errors.New("unknown format " + format + " (use influx or json)")
}

// checkMessage reports a message too large or without content to h and
// returns false for it.
func checkMessage(value []byte, o Options, h Handler) bool {
	if o.MaxMessageBytes > 0 && len(value) > o.MaxMessageBytes {
		h.Bad(value, ReasonTooLarge, fmt.Errorf("message of %d bytes is larger than the limit of %d", len(value), o.MaxMessageBytes))
		return false
	}
	if len(bytes.TrimSpace(value)) == 0 {
		h.Bad(value, ReasonEmpty, errEmpty)
		return false
	}
	return true
}

var errEmpty = errors.New("message has no content")

// sortTags sorts the tags by key, equal keys in input order (their
// offsets in scratch grow with it), in O(n log n) (pdqsort) and without
// allocating. Tags that arrive sorted, as Telegraf writes them, are only
// checked.
func (b *pointBuilder) sortTags() {
	scr := b.scratch
	key := func(s span) []byte { return scr[s.k0:s.k1] }
	sorted := true
	for i := 1; i < len(b.tagOff); i++ {
		if bytes.Compare(key(b.tagOff[i-1]), key(b.tagOff[i])) > 0 {
			sorted = false
			break
		}
	}
	if sorted {
		return
	}
	slices.SortFunc(b.tagOff, func(x, y span) int {
		if countTagCompare != nil {
			countTagCompare()
		}
		if c := bytes.Compare(scr[x.k0:x.k1], scr[y.k0:y.k1]); c != 0 {
			return c
		}
		return cmp.Compare(x.k0, y.k0)
	})
}

// countTagCompare, if set (by tests), is called for every comparison of
// the tag sort: the work of a point's decoding is asserted by count, not
// by time.
var countTagCompare func()

// pointBuilder collects one point's tags and fields into reused storage.
// Names are copied into scratch because decoders may reuse their own
// buffers between calls; offsets are resolved into slices once the point is
// complete, since appending to scratch may move it.
//
// Tags and fields past the caps (maxTags, maxFields) are counted but not
// kept, so a huge point costs its parse and no more; checkLimits then
// reports it.
type pointBuilder struct {
	scratch   []byte
	tagOff    []span
	fldOff    []span
	vals      []float64
	p         Point
	maxTags   int
	maxFields int
	nTags     int // tags seen, kept or not
	nFields   int // fields seen (string fields too), kept or not
}

type span struct{ k0, k1, v0, v1 int }

func (b *pointBuilder) reset() {
	b.scratch = b.scratch[:0]
	b.tagOff = b.tagOff[:0]
	b.fldOff = b.fldOff[:0]
	b.vals = b.vals[:0]
	b.nTags, b.nFields = 0, 0
}

// setCaps sets the caps from the decoder's options.
func (b *pointBuilder) setCaps(o Options) { b.maxTags, b.maxFields = o.MaxTags, o.MaxFields }

// tagFull counts a tag and reports whether the cap is already reached (the
// tag is then not kept).
func (b *pointBuilder) tagFull() bool {
	b.nTags++
	return b.maxTags > 0 && len(b.tagOff) >= b.maxTags
}

// fieldFull is tagFull for fields.
func (b *pointBuilder) fieldFull() bool {
	b.nFields++
	return b.maxFields > 0 && len(b.fldOff) >= b.maxFields
}

func (b *pointBuilder) addTag(k, v []byte) {
	if b.tagFull() {
		return
	}
	k0 := len(b.scratch)
	b.scratch = append(b.scratch, k...)
	v0 := len(b.scratch)
	b.scratch = append(b.scratch, v...)
	b.tagOff = append(b.tagOff, span{k0, v0, v0, len(b.scratch)})
}

// addTagEsc adds a tag whose key and value may hold line-protocol escapes.
func (b *pointBuilder) addTagEsc(k []byte, kEsc bool, v []byte, vEsc bool) {
	if b.tagFull() {
		return
	}
	k0 := len(b.scratch)
	if kEsc {
		b.scratch = unescape(b.scratch, k, keyEsc)
	} else {
		b.scratch = append(b.scratch, k...)
	}
	v0 := len(b.scratch)
	if vEsc {
		b.scratch = unescape(b.scratch, v, keyEsc)
	} else {
		b.scratch = append(b.scratch, v...)
	}
	b.tagOff = append(b.tagOff, span{k0, v0, v0, len(b.scratch)})
}

// addFieldEsc adds a field whose key may hold line-protocol escapes.
func (b *pointBuilder) addFieldEsc(k []byte, kEsc bool, v float64) {
	if !kEsc {
		b.addField(k, v)
		return
	}
	if b.fieldFull() {
		return
	}
	k0 := len(b.scratch)
	b.scratch = unescape(b.scratch, k, keyEsc)
	b.fldOff = append(b.fldOff, span{k0: k0, k1: len(b.scratch)})
	b.vals = append(b.vals, v)
}

func (b *pointBuilder) addField(k []byte, v float64) {
	if b.fieldFull() {
		return
	}
	k0 := len(b.scratch)
	b.scratch = append(b.scratch, k...)
	b.fldOff = append(b.fldOff, span{k0: k0, k1: len(b.scratch)})
	b.vals = append(b.vals, v)
}

// finish resolves the point, with the tags sorted by key. A repeated tag
// key keeps its last value, as InfluxDB does.
func (b *pointBuilder) finish(measurement []byte, t int64) *Point {
	p := &b.p
	p.Measurement = measurement
	p.Time = t
	b.sortTags()
	p.Tags = p.Tags[:0]
	for _, s := range b.tagOff {
		p.Tags = append(p.Tags, Tag{Key: b.scratch[s.k0:s.k1], Value: b.scratch[s.v0:s.v1]})
	}
	// Equal keys keep their input order, so the later value sits last;
	// drop the earlier ones.
	out := p.Tags[:0]
	for i, tg := range p.Tags {
		if i+1 < len(p.Tags) && bytes.Equal(tg.Key, p.Tags[i+1].Key) {
			continue
		}
		out = append(out, tg)
	}
	p.Tags = out
	p.Fields = p.Fields[:0]
	for i, s := range b.fldOff {
		p.Fields = append(p.Fields, Field{Key: b.scratch[s.k0:s.k1], Value: b.vals[i]})
	}
	return p
}
