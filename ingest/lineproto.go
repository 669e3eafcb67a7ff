package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// LineProtocol decodes InfluxDB line protocol, as Telegraf's Kafka output
// writes it: one or more lines per message, multi-field points, any tag
// order, integer/unsigned/float/boolean fields (string fields are skipped).
// A bad line is reported to the Handler and the next line is decoded. It
// does not allocate in steady state.
type LineProtocol struct {
	o Options
	b pointBuilder
	p lpParser
}

// NewLineProtocol returns a line-protocol decoder.
func NewLineProtocol(o Options) *LineProtocol {
	if o.Precision <= 0 {
		o.Precision = 1
	}
	d := &LineProtocol{o: o}
	d.p.b = &d.b
	return d
}

// Decode implements Decoder.
func (d *LineProtocol) Decode(value []byte, msgTime int64, h Handler) {
	if !checkMessage(value, d.o, h) {
		return
	}
	for pos := skipEmptyLines(value, 0); pos < len(value); pos = skipEmptyLines(value, pos) {
		start := pos
		var reason Reason
		var err error
		pos, reason, err = d.decodeEntry(value, pos, msgTime, h)
		if err != nil {
			h.Bad(bytes.TrimRight(value[start:pos], "\r\n"), reason, err)
		}
	}
}

// decodeEntry decodes the entry at buf[start] and returns where the next
// one starts.
func (d *LineProtocol) decodeEntry(buf []byte, start int, msgTime int64, h Handler) (int, Reason, error) {
	end, meas, tb, e := d.p.parse(buf, start)
	if e.err != nil {
		if e.here && e.at > start {
			return e.at, e.reason, e.err
		}
		return recoverLine(buf, e.at), e.reason, e.err
	}
	reason, err := d.point(meas, tb, msgTime, h)
	return end, reason, err
}

func (d *LineProtocol) point(meas, tb []byte, msgTime int64, h Handler) (Reason, error) {
	t := msgTime
	if tb != nil {
		var err error
		if t, err = parseTimestamp(tb, d.o.Precision); err != nil {
			return ReasonBadTimestamp, err
		}
	}
	if d.o.MaxFuture > 0 && t-msgTime > d.o.MaxFuture {
		return ReasonFuture, fmt.Errorf("timestamp %d is more than kafka.max_future ahead of the message time %d", t, msgTime)
	}
	if len(d.b.fldOff) == 0 {
		return ReasonNoNumericField, errors.New("point has no numeric field")
	}
	h.Point(d.b.finish(meas, t))
	return "", nil
}

// parseTimestamp parses an integer timestamp in units of prec nanoseconds.
func parseTimestamp(b []byte, prec int64) (int64, error) {
	ts, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid timestamp %q", b)
	}
	return scaleTimestamp(ts, prec)
}

func scaleTimestamp(ts, prec int64) (int64, error) {
	if prec == 1 {
		return ts, nil
	}
	if ts > math.MaxInt64/prec || ts < math.MinInt64/prec {
		return 0, fmt.Errorf("timestamp %d overflows int64 nanoseconds at precision %dns", ts, prec)
	}
	return ts * prec, nil
}
