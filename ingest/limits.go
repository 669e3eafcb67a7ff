package ingest

import (
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/tsrep/tsrep/config"
)

// InfluxDB's range of timestamps, in Unix nanoseconds: a point outside it
// is refused by the server ("time outside range"), so the decoders refuse
// it first, and every output timestamp is checked against it.
const (
	MinTime int64 = math.MinInt64 + 2 // -9223372036854775806
	MaxTime int64 = math.MaxInt64 - 1 // 9223372036854775806
)

// InTimeRange reports whether t is a timestamp InfluxDB stores.
func InTimeRange(t int64) bool { return t >= MinTime && t <= MaxTime }

// MaxSeriesKeyBytes is the longest series key (AppendSeriesKey) a decoder
// lets through: InfluxDB's own limit on a series key, and what a
// checkpoint stores per series. A longer point is reported as
// ReasonKeyTooLong.
const MaxSeriesKeyBytes = 1<<16 - 1

// Defaults of the per-point caps and of the precision check, for Options
// fields left 0 (config.Default holds the same values).
const (
	DefaultMaxTags            = 256
	DefaultMaxFields          = 1024
	DefaultPrecisionTolerance = int64(20 * 365 * 24 * time.Hour)
)

// withDefaults fills the zero fields that have a default.
func (o Options) withDefaults() Options {
	if o.Precision <= 0 {
		o.Precision = 1
	}
	if o.MaxTags <= 0 {
		o.MaxTags = DefaultMaxTags
	}
	if o.MaxFields <= 0 {
		o.MaxFields = DefaultMaxFields
	}
	if o.PrecisionTolerance == 0 {
		o.PrecisionTolerance = DefaultPrecisionTolerance
	}
	return o
}

// DecoderOptions maps the [kafka] section to the decoders' options.
func DecoderOptions(k config.Kafka) Options {
	prec, _ := config.PrecisionDuration(k.Precision) // Validate reported a bad one
	o := Options{
		Precision:          int64(prec),
		MaxFuture:          int64(k.MaxFuture.Duration),
		MaxMessageBytes:    k.MaxFetchBytes,
		MaxTags:            k.MaxTags,
		MaxFields:          k.MaxFields,
		PrecisionTolerance: int64(k.PrecisionTolerance.Duration),
	}
	if o.PrecisionTolerance <= 0 {
		o.PrecisionTolerance = -1 // "0s" turns the check off
	}
	return o
}

// absDiff is |a-b| without overflow.
func absDiff(a, b int64) uint64 {
	if a > b {
		return uint64(a) - uint64(b)
	}
	return uint64(b) - uint64(a)
}

// precisions are the units kafka.precision can name, in nanoseconds.
var precisions = [...]int64{1, 1e3, 1e6, 1e9}

func precisionName(p int64) string {
	switch p {
	case 1:
		return "ns"
	case 1e3:
		return "us"
	case 1e6:
		return "ms"
	case 1e9:
		return "s"
	}
	return fmt.Sprintf("%dns", p)
}

// timestamp turns a point's integer timestamp ts, in units of
// o.Precision, into Unix nanoseconds, and checks it: within InfluxDB's
// range (else ReasonBadTimestamp), and plausible for the precision.
//
// The precision check: a timestamp further than o.PrecisionTolerance from
// its message's timestamp that would be within it read in another
// precision (seconds read as nanoseconds land in January 1970; nanoseconds
// read as seconds overflow) is reported as ReasonPrecision. Only such a
// timestamp: one that no other precision explains, however old (a
// backfill of history produced today), is used as it is. It is skipped
// when the message has no timestamp of its own (msgTime <= 0) or the
// check is off (o.PrecisionTolerance < 0).
func (o *Options) timestamp(ts, msgTime int64) (int64, Reason, error) {
	t, ok := scale(ts, o.Precision)
	if ok && InTimeRange(t) && (o.PrecisionTolerance <= 0 || msgTime <= 0 || absDiff(t, msgTime) <= uint64(o.PrecisionTolerance)) {
		return t, "", nil
	}
	if alt, found := o.otherPrecision(ts, msgTime); found {
		return 0, ReasonPrecision, fmt.Errorf("timestamp %d is implausible in %s: read in %s it would be within %s of its message's time %s; "+
			"set kafka.precision = %q if the producer writes %s (or raise kafka.precision_tolerance)",
			ts, precisionName(o.Precision), precisionName(alt), time.Duration(o.PrecisionTolerance),
			time.Unix(0, msgTime).UTC().Format(time.RFC3339), precisionName(alt), precisionName(alt))
	}
	if !ok {
		return 0, ReasonBadTimestamp, fmt.Errorf("timestamp %d overflows int64 nanoseconds at precision %dns", ts, o.Precision)
	}
	if !InTimeRange(t) {
		return 0, ReasonBadTimestamp, fmt.Errorf("timestamp %d is outside InfluxDB's range [%d, %d]", t, MinTime, MaxTime)
	}
	return t, "", nil // far from the message time, and no other precision explains it
}

// otherPrecision returns a precision other than o.Precision in which ts
// lies within o.PrecisionTolerance of msgTime.
func (o *Options) otherPrecision(ts, msgTime int64) (int64, bool) {
	if o.PrecisionTolerance <= 0 || msgTime <= 0 {
		return 0, false
	}
	for _, p := range precisions {
		if p == o.Precision {
			continue
		}
		if t, ok := scale(ts, p); ok && InTimeRange(t) && absDiff(t, msgTime) <= uint64(o.PrecisionTolerance) {
			return p, true
		}
	}
	return 0, false
}

// scale is ts*prec, and false if that overflows int64.
func scale(ts, prec int64) (int64, bool) {
	if prec == 1 {
		return ts, true
	}
	if ts > math.MaxInt64/prec || ts < math.MinInt64/prec {
		return 0, false
	}
	return ts * prec, true
}

// futureOK reports whether t is at most maxFuture (0: no limit) ahead of
// msgTime.
func futureOK(t, msgTime, maxFuture int64) bool {
	return maxFuture <= 0 || t <= msgTime || uint64(t)-uint64(msgTime) <= uint64(maxFuture)
}

// validName reports whether s can be a measurement, tag key, tag value or
// field key of a point InfluxDB stores and line protocol round-trips (the
// rules of line-protocol/v2's encoder, which writes tsrep's output):
// non-empty, valid UTF-8, no ASCII control character, no trailing
// backslash. The line-protocol grammar lets nothing else through; JSON
// needs the check.
func validName(s []byte) error {
	if len(s) == 0 {
		return fmt.Errorf("is empty")
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("%q holds the control character %q", s, c)
		}
	}
	if !utf8.Valid(s) {
		return fmt.Errorf("%q is not valid UTF-8", s)
	}
	if s[len(s)-1] == '\\' {
		return fmt.Errorf("%q ends with a backslash", s)
	}
	return nil
}

// escapedLen is the length of s as appendEscaped writes it.
func escapedLen(s []byte, esc *byteSet) int {
	n := len(s)
	for _, c := range s {
		if esc[c] {
			n++
		}
	}
	return n
}

// checkLimits reports a point that is over the caps: more tags or fields
// than configured (counted while parsing, only the first ones kept), or a
// series key longer than MaxSeriesKeyBytes for one of its fields.
func (b *pointBuilder) checkLimits(meas []byte, o *Options) (Reason, error) {
	if b.nTags > o.MaxTags {
		return ReasonTooManyTags, fmt.Errorf("point has %d tags, more than kafka.max_tags = %d", b.nTags, o.MaxTags)
	}
	if b.nFields > o.MaxFields {
		return ReasonTooManyFields, fmt.Errorf("point has %d fields, more than kafka.max_fields = %d", b.nFields, o.MaxFields)
	}
	// Escaping at most doubles a name: most points are far below the limit.
	if 2*(len(meas)+len(b.scratch))+2*len(b.tagOff)+1 <= MaxSeriesKeyBytes {
		return "", nil
	}
	n := escapedLen(meas, measurementEsc)
	for _, s := range b.tagOff {
		n += 2 + escapedLen(b.scratch[s.k0:s.k1], tagEsc) + escapedLen(b.scratch[s.v0:s.v1], tagEsc)
	}
	longest := 0
	for _, s := range b.fldOff {
		longest = max(longest, 1+escapedLen(b.scratch[s.k0:s.k1], fieldEsc))
	}
	if n+longest > MaxSeriesKeyBytes {
		return ReasonKeyTooLong, fmt.Errorf("series key of %d bytes (measurement, tags and field) is longer than %d, InfluxDB's limit", n+longest, MaxSeriesKeyBytes)
	}
	return "", nil
}
